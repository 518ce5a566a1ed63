"""The only producer of XML bytes.

Stanzas are serialised with their own default namespace (`<message xmlns="jabber:client">`) so one element
fits a TCP stream, a BOSH <body/> (XEP-0206 §8) or a WebSocket frame unchanged.
"""

from __future__ import annotations

from typing import Final
from xml.sax.saxutils import quoteattr

from lxml import etree

from boshcm.stanza import NS_STREAM, NS_XML

STREAM_CLOSE: Final = b"</stream:stream>"


def serialize(element: etree._Element) -> bytes:
    """UTF-8 bytes of one element, no XML declaration (parsed stanzas arrive namespace-clean)."""
    return etree.tostring(element, encoding="utf-8")


def stream_header(*, attrs: dict[str, str], default_ns: str = "jabber:client") -> bytes:
    """RFC 6120 §4.7: the opening <stream:stream> tag, with the XML declaration."""
    parts = [f'<?xml version="1.0"?><stream:stream xmlns={quoteattr(default_ns)} xmlns:stream="{NS_STREAM}"']
    for name, value in attrs.items():
        key = "xml:lang" if name in ("xml:lang", f"{{{NS_XML}}}lang") else name
        parts.append(f" {key}={quoteattr(value)}")
    parts.append(">")
    return "".join(parts).encode()
