"""The <body/> wire model (XEP-0124 §4): parse client requests, build responses."""

from __future__ import annotations

import re
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
DEFAULT_CONTENT_TYPE: Final = "text/xml; charset=utf-8"
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
# RFC 9110 §5.6.3: the whitespace around ';' is spaces and tabs only. The value becomes a response header
# (bosh/http.py writes it as is): a CR or LF, which an XML character reference can put in the attribute, must not.
_OWS = r"[ \t]*"
_PARAMETER = rf'{_OWS};{_OWS}{_TOKEN}=({_TOKEN}|"[^"\\\x00-\x1f]*")'
_MEDIA_TYPE = re.compile(rf"(?P<type>{_TOKEN})/(?P<subtype>{_TOKEN})({_PARAMETER})*")
# Types a browser would run as a page on the BOSH origin, whatever the client asked for.
_ACTIVE_TYPES: Final = frozenset({"application/xhtml+xml", "image/svg+xml"})


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


def parse_content_type(value: str | None) -> str:
    """XEP-0124 §7.1 'content': the Content-Type for every response; XML or plain text only."""
    if value is None:
        return DEFAULT_CONTENT_TYPE
    match = _MEDIA_TYPE.fullmatch(value)
    if match is None:
        raise BadRequest("content is not a media type")
    media = f"{match['type']}/{match['subtype']}".lower()
    subtype = match["subtype"].lower()
    if media in _ACTIVE_TYPES or not (media == "text/plain" or subtype == "xml" or subtype.endswith("+xml")):
        raise BadRequest("content must be an XML or text/plain media type")
    return value


def parse_version(value: str) -> tuple[int, int]:
    """XEP-0124 §7.1 'ver': "major.minor", each part an integer of its own (1.11 is above 1.6)."""
    major, dot, minor = value.partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and len(value) <= 16):
        raise BadRequest("ver must be major.minor")
    return int(major), int(minor)


def parse_request(root: Element) -> RequestBody:
    if root.tag != BODY_TAG:
        raise BadRequest("not a BOSH <body/>")
    payloads = tuple(child for child in root if isinstance(child.tag, str))
    return _request(dict(root.attrib), payloads)


def _request(attrs: dict[str, str], payloads: tuple[Element, ...]) -> RequestBody:
    rid_text = attrs.get("rid")
    if rid_text is None or not rid_text.isdigit() or int(rid_text) > MAX_RID:
        raise BadRequest("rid must be an integer below 2^53")
    return RequestBody(rid=int(rid_text), sid=attrs.get("sid"), attrs=attrs, payloads=payloads)


# A poll, the request a session sends most: `<body rid='..' sid='..' xmlns='http://jabber.org/protocol/httpbind'/>`
# (Strophe.js), or with an end tag and the xbosh prefix declared, without payloads. Only the plainest form: single
# spaces, unprefixed attribute names, printable ASCII values without '<', '&' or the quote (so that no character
# reference, normalisation or encoding question arises). Whatever does not match, however well-formed, goes through
# lxml (`parse_document`), which decides (tests/property/test_bosh_body.py holds the two to the same answer).
_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]*(?::[A-Za-z_][A-Za-z0-9_.-]*)?"
_SINGLE_QUOTED = rb"'[\x20-\x25\x28-\x3b\x3d-\x7e]*'"
_DOUBLE_QUOTED = rb'"[\x20\x21\x23-\x25\x27-\x3b\x3d-\x7e]*"'
_EMPTY_BODY = re.compile(rb"<body((?: " + _NAME + rb"=(?:" + _SINGLE_QUOTED + rb"|" + _DOUBLE_QUOTED + rb"))*)"
                         rb" ?(?:/>|></body>)")
_ATTRIBUTE = re.compile(rb" (" + _NAME + rb")=(?:'([^']*)'|\"([^\"]*)\")")
# The namespace declarations a poll may carry: the default one (required) and the prefixes XEP-0206 uses.
_DECLARATIONS: Final = {b"xmlns": NS_HTTPBIND.encode(), b"xmlns:xmpp": NS_XBOSH.encode(),
                        b"xmlns:stream": NS_STREAM.encode()}


def parse_poll(data: bytes, *, max_attributes: int) -> RequestBody | None:
    """The request an empty <body/> in the plainest form makes, exactly as `parse_request(parse_document(data))`
    would; None for anything else, which is left to them (with their errors)."""
    match = _EMPTY_BODY.fullmatch(data)
    if match is None:
        return None
    found = _ATTRIBUTE.findall(match.group(1))
    if len(found) > max_attributes:
        return None
    # Most requests are polls (every occupant's, after every room message): one pass, each name decoded once.
    attrs: dict[str, str] = {}
    declared: set[bytes] = set()
    for raw_name, single, double in found:
        value = single or double
        if _DECLARATIONS.get(raw_name) == value and raw_name not in declared:
            declared.add(raw_name)
            continue
        name = raw_name.decode()
        if ":" in name or name.startswith("xmlns") or name in attrs:
            return None   # a prefix, another declaration, a repeated name: lxml's to judge
        attrs[name] = value.decode()
    if b"xmlns" not in declared:
        return None
    try:
        return _request(attrs, ())
    except BadRequest:
        return None   # the same error, from the full path


def build_body(attrs: dict[str, str], payloads: Sequence[Element] = ()) -> Element:
    # XEP-0206 §8: stanzas carry their own xmlns; the stream prefix is declared for <stream:features>.
    body = etree.Element(BODY_TAG, nsmap={None: NS_HTTPBIND, "xmpp": NS_XBOSH, "stream": NS_STREAM})
    for key, value in attrs.items():
        body.set(key, value)
    for payload in payloads:
        body.append(payload)
    return body


def with_payloads(empty_body: bytes, payloads: Sequence[bytes]) -> bytes:
    """Put already serialised stanzas into a serialised empty <body/>: each stanza is serialised only once."""
    if not payloads:
        return empty_body
    if not empty_body.endswith(b"/>"):
        raise ValueError("not an empty element")
    return b"".join((empty_body[:-2], b">", *payloads, b"</body>"))


def build_terminate(condition: BoshCondition | None, payloads: Sequence[Element] = ()) -> Element:
    attrs = {"type": "terminate"}
    if condition is not None:
        attrs["condition"] = condition.value
    return build_body(attrs, payloads)
