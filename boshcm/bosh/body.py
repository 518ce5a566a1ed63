"""The <body/> wire model (XEP-0124 §4): parse client requests, build responses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lxml import etree

from boshcm.errors import BoshCondition
from boshcm.stanza import NS_STREAM, NS_XML, Element, qname

NS_HTTPBIND: Final = "http://jabber.org/protocol/httpbind"
NS_XBOSH: Final = "urn:xmpp:xbosh"
# XEP-0124 §5: rid values never exceed 2^53 - 1, so clients can hold them in JavaScript numbers.
MAX_RID: Final = 9_007_199_254_740_991
BODY_TAG: Final = qname(NS_HTTPBIND, "body")


class BadRequest(Exception):
    """The request is not a usable <body/> (XEP-0124 §17.2 bad-request)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestBody:
    rid: int
    sid: str | None
    attrs: dict[str, str]
    payloads: tuple[Element, ...]

    def get(self, name: str) -> str | None:
        return self.attrs.get(name)

    def int_attr(self, name: str) -> int | None:
        value = self.attrs.get(name)
        if value is None:
            return None
        if not value.isdigit():
            raise BadRequest(f"{name} must be a non-negative integer")
        return int(value)

    @property
    def is_terminate(self) -> bool:
        return self.attrs.get("type") == "terminate"

    @property
    def restart(self) -> bool:
        return self.attrs.get(qname(NS_XBOSH, "restart")) == "true"

    @property
    def xmpp_version(self) -> str | None:
        return self.attrs.get(qname(NS_XBOSH, "version"))

    @property
    def lang(self) -> str | None:
        return self.attrs.get(qname(NS_XML, "lang"))


def parse_request(root: Element) -> RequestBody:
    if root.tag != BODY_TAG:
        raise BadRequest("not a BOSH <body/>")
    rid_text = root.get("rid")
    if rid_text is None or not rid_text.isdigit() or int(rid_text) > MAX_RID:
        raise BadRequest("rid must be an integer below 2^53")
    payloads = tuple(child for child in root if isinstance(child.tag, str))
    return RequestBody(rid=int(rid_text), sid=root.get("sid"), attrs=dict(root.attrib), payloads=payloads)


def build_body(attrs: dict[str, str], payloads: Sequence[Element] = ()) -> Element:
    # XEP-0206 §8: stanzas carry their own xmlns; the stream prefix is declared for <stream:features>.
    body = etree.Element(BODY_TAG, nsmap={None: NS_HTTPBIND, "xmpp": NS_XBOSH, "stream": NS_STREAM})
    for key, value in attrs.items():
        body.set(key, value)
    for payload in payloads:
        body.append(payload)
    return body


def build_terminate(condition: BoshCondition | None, payloads: Sequence[Element] = ()) -> Element:
    attrs = {"type": "terminate"}
    if condition is not None:
        attrs["condition"] = condition.value
    return build_body(attrs, payloads)
