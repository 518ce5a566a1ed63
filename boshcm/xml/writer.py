"""The only producer of XML bytes.

Stanzas are serialised with their own default namespace (`<message xmlns="jabber:client">`) so one element
fits a TCP stream, a BOSH <body/> (XEP-0206 §8) or a WebSocket frame unchanged.
"""

from __future__ import annotations

import functools
from typing import Final
from xml.sax.saxutils import quoteattr

from lxml import etree

from boshcm.stanza import NS_STREAM, NS_XML, SHARED_ADDRESSEE, is_shared

STREAM_CLOSE: Final = b"</stream:stream>"


def serialize(element: etree._Element) -> bytes:
    """UTF-8 bytes of one element, no XML declaration (parsed stanzas arrive namespace-clean)."""
    return etree.tostring(element, encoding="utf-8")


_SHARED_TO: Final = f' to="{SHARED_ADDRESSEE}"'.encode()
# The shared stanzas serialised last, by identity, each split around its placeholder `to`. The entry keeps its
# stanza alive, so no other stanza can have its id meanwhile; a fan-out's writes come one after the other, so a
# few entries suffice.
_SPLIT_SHARED: dict[int, tuple[etree._Element, bytes, bytes]] = {}
_SPLIT_KEPT: Final = 8


def serialize_to(element: etree._Element, to: object) -> bytes:
    """`serialize`, with a shared stanza (stanza.SHARED_ADDRESSEE) addressed to `to`: serialised once for all its
    recipients, each getting the same bytes with its own JID patched in."""
    if not is_shared(element):
        return serialize(element)
    head, tail = _split(element)
    return b"".join((head, _to_attribute(to), tail))


@functools.lru_cache(maxsize=16_384)
def _to_attribute(to: object) -> bytes:
    """` to="…"` for a recipient: every room message asks it once per occupant, the same JIDs again and again, and
    quoting and encoding one took five times as long as this lookup. Bounded as JID.parse's cache."""
    return b" to=" + quoteattr(str(to)).encode()


def serialized_size(element: etree._Element) -> int:
    """The element's size on the wire; a shared stanza's with its placeholder standing for the recipient's JID."""
    if not is_shared(element):
        return len(serialize(element))
    head, tail = _split(element)
    return len(head) + len(_SHARED_TO) + len(tail)


def _split(element: etree._Element) -> tuple[bytes, bytes]:
    """A shared stanza's bytes before and after its placeholder `to`, serialised once while it is recent."""
    split = _SPLIT_SHARED.get(id(element))
    if split is None:
        head, found, tail = serialize(element).partition(_SHARED_TO)
        assert found, "a shared stanza carries the placeholder as its `to`"
        split = _SPLIT_SHARED[id(element)] = (element, head, tail)
        while len(_SPLIT_SHARED) > _SPLIT_KEPT:
            del _SPLIT_SHARED[next(iter(_SPLIT_SHARED))]
    return split[1], split[2]


def stream_header(*, attrs: dict[str, str], default_ns: str = "jabber:client") -> bytes:
    """RFC 6120 §4.7: the opening <stream:stream> tag, with the XML declaration."""
    parts = [f'<?xml version="1.0"?><stream:stream xmlns={quoteattr(default_ns)} xmlns:stream="{NS_STREAM}"']
    for name, value in attrs.items():
        key = "xml:lang" if name in ("xml:lang", f"{{{NS_XML}}}lang") else name
        parts.append(f" {key}={quoteattr(value)}")
    parts.append(">")
    return "".join(parts).encode()
