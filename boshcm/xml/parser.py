"""The one hardened XML parser: incremental for TCP streams, whole-document for BOSH bodies and WS frames.

RFC 6120 §11.1 restricts XMPP to a subset of XML: no DTDs (so no entity declarations), no comments, no
processing instructions. We enforce that on the raw bytes before lxml sees them, so nothing is ever
expanded or fetched, and lxml itself is configured with entity resolution, DTD loading and network access
off as a second wall. Size and depth limits are enforced while a stanza is still arriving.

Peer input never raises out of `StreamParser.feed`: every fault is one `StreamParseError` and the parser
is dead afterwards.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from lxml import etree

from boshcm.errors import RemoteProtocolError, StreamErrorCondition

# The stream header can carry many namespace declarations, but not megabytes.
MAX_HEADER_BYTES = 16_384
SLICE_BYTES = 4_096
_XML_DECLARATION = re.compile(rb"^\s*<\?xml\s[^?]*\?>")
# RFC 6120 §11.1: without a DTD only the five predefined entities and character references exist.
_ALLOWED_REFERENCE = re.compile(rb"&(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_LONGEST_REFERENCE = 11


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOpened:
    attrs: dict[str, str]
    tag: str
    default_ns: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StanzaReceived:
    element: etree._Element


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamClosed:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamParseError:
    condition: StreamErrorCondition
    text: str


ParserEvent = StreamOpened | StanzaReceived | StreamClosed | StreamParseError


def _new_lxml_parser() -> etree.XMLPullParser:
    return etree.XMLPullParser(events=("start", "end"), resolve_entities=False, load_dtd=False,
                               no_network=True, huge_tree=False, remove_comments=False, remove_pis=False)


class _RestrictedScanner:
    """Finds `<!` (DOCTYPE, comment; CDATA is allowed) and `<?` (PI) in raw bytes, across feed boundaries.

    The XML declaration at the very start of a stream is the one allowed `<?`.
    """

    def __init__(self) -> None:
        self._tail = b""
        self._at_start = True

    def violation(self, data: bytes) -> str | None:
        chunk = self._tail + data
        if self._at_start:
            stripped = chunk.lstrip()
            if len(stripped) < 6 and b"<?xml ".startswith(stripped[: len(stripped)]) and stripped:
                self._tail = chunk
                return None
            match = _XML_DECLARATION.match(chunk)
            if stripped.startswith(b"<?xml") and match is None:
                if b"?>" not in chunk:
                    self._tail = chunk
                    return None
                return "Malformed XML declaration"
            if match is not None:
                chunk = b" " * match.end() + chunk[match.end():]
            self._at_start = False
        position = 0
        while (index := chunk.find(b"<", position)) != -1:
            following = chunk[index + 1: index + 9]
            if following.startswith(b"?"):
                return "Processing instructions are not allowed in XMPP"
            if following.startswith(b"!"):
                if len(following) < 8 and b"![CDATA[".startswith(following):
                    break  # undecided until more bytes arrive
                if not following.startswith(b"![CDATA["):
                    return "DTDs and comments are not allowed in XMPP"
            position = index + 1
        position = 0
        while (index := chunk.find(b"&", position)) != -1:
            if _ALLOWED_REFERENCE.match(chunk, index) is None:
                if len(chunk) - index < _LONGEST_REFERENCE and b";" not in chunk[index:]:
                    break  # may complete in the next feed
                return "Only the predefined entities are allowed in XMPP"
            position = index + 1
        # Keep a short tail: markup or a reference may straddle two feeds.
        start = max(0, len(chunk) - _LONGEST_REFERENCE)
        cuts = [cut for cut in (chunk.rfind(b"<", start), chunk.rfind(b"&", start)) if cut != -1]
        self._tail = chunk[min(cuts):] if cuts else b""
        return None


class StreamParser:
    """Incremental parser for one XMPP stream (and its restarts via reset())."""

    def __init__(self, *, max_stanza_bytes: int = 262_144, max_depth: int = 64) -> None:
        self._max_stanza_bytes = max_stanza_bytes
        self._max_depth = max_depth
        self.reset()

    def reset(self) -> None:
        """RFC 6120 §4.3.3: after STARTTLS and SASL both sides start a new stream, with a new parser."""
        self._parser = _new_lxml_parser()
        self._scanner = _RestrictedScanner()
        self._root: etree._Element | None = None
        self._depth = 0
        self._stanza_bytes = 0
        self._slice_bytes = 0
        self._header_bytes = 0
        self._dead = False

    def feed(self, data: bytes) -> list[ParserEvent]:
        if self._dead or not data:
            return []
        if (reason := self._scanner.violation(data)) is not None:
            return self._fail(StreamErrorCondition.RESTRICTED_XML, reason)
        events: list[ParserEvent] = []
        # lxml reports no byte offsets, so stanza sizes are counted in slices: a stanza is charged every slice
        # it touches, which over-counts by less than two slices and never under-counts.
        for start in range(0, len(data), SLICE_BYTES):
            piece = data[start:start + SLICE_BYTES]
            self._feed_slice(piece, events)
            if self._dead:
                break
        return events

    def _feed_slice(self, piece: bytes, events: list[ParserEvent]) -> None:
        self._slice_bytes = len(piece)
        syntax_error: etree.XMLSyntaxError | None = None
        try:
            self._parser.feed(piece)
        except etree.XMLSyntaxError as exc:
            syntax_error = exc  # events parsed before the fault come first; they may end the stream sooner
        for action, node in self._parser.read_events():
            if (event := self._on(action, node)) is not None:
                events.append(event)
                if isinstance(event, StreamParseError | StreamClosed):
                    self._dead = True
                    return
        if syntax_error is not None:
            events.append(self._fail_event(_syntax_condition(syntax_error), _syntax_text(syntax_error)))
            return
        if self._root is None:
            self._header_bytes += len(piece)
            if self._header_bytes > MAX_HEADER_BYTES:
                events.append(self._fail_event(StreamErrorCondition.POLICY_VIOLATION, "Stream header too large"))
        elif self._depth > 1:
            self._stanza_bytes += len(piece)
            if self._stanza_bytes > self._max_stanza_bytes:
                events.append(self._too_large())

    def _too_large(self) -> StreamParseError:
        return self._fail_event(StreamErrorCondition.POLICY_VIOLATION,
                                f"Stanza larger than {self._max_stanza_bytes} bytes")

    def _on(self, action: str, node: etree._Element) -> ParserEvent | None:
        if action == "start":
            self._depth += 1
            if self._depth == 1:
                self._root = node
                nsmap = node.nsmap
                return StreamOpened(attrs=dict(node.attrib), tag=str(node.tag), default_ns=nsmap.get(None))
            if self._depth == 2:
                self._stanza_bytes = 0
            if self._depth - 1 > self._max_depth:
                return self._fail_event(StreamErrorCondition.POLICY_VIOLATION, "Elements nested too deeply")
            return None
        self._depth -= 1
        if self._depth == 0:
            return StreamClosed()
        if self._depth == 1:
            assert self._root is not None
            if self._stanza_bytes + self._slice_bytes > self._max_stanza_bytes:
                return self._too_large()
            # A copy carries its in-scope namespaces as its own declarations; the original is dropped from
            # the root so a long stream keeps flat memory.
            stanza = copy.deepcopy(node)
            stanza.tail = None
            etree.cleanup_namespaces(stanza)
            self._root.remove(node)
            return StanzaReceived(element=stanza)
        return None

    def _fail(self, condition: StreamErrorCondition, text: str) -> list[ParserEvent]:
        return [self._fail_event(condition, text)]

    def _fail_event(self, condition: StreamErrorCondition, text: str) -> StreamParseError:
        self._dead = True
        return StreamParseError(condition=condition, text=text)


def _syntax_condition(exc: etree.XMLSyntaxError) -> StreamErrorCondition:
    message = str(exc).lower()
    if "entity" in message or "doctype" in message or "dtd" in message:
        return StreamErrorCondition.RESTRICTED_XML
    return StreamErrorCondition.NOT_WELL_FORMED


def _syntax_text(exc: etree.XMLSyntaxError) -> str:
    # The first line is enough; lxml's messages can echo peer bytes, keep them short.
    return str(exc).splitlines()[0][:200] if str(exc) else "Not well-formed XML"


def parse_document(data: bytes, *, max_bytes: int, max_depth: int) -> etree._Element:
    """One whole element (a BOSH <body/>, a WebSocket frame) under the same rules as streams.

    Raises RemoteProtocolError(not-well-formed | restricted-xml | policy-violation).
    """
    if len(data) > max_bytes:
        raise RemoteProtocolError(StreamErrorCondition.POLICY_VIOLATION, f"Larger than {max_bytes} bytes")
    if (reason := _RestrictedScanner().violation(data)) is not None:
        raise RemoteProtocolError(StreamErrorCondition.RESTRICTED_XML, reason)
    parser = _new_lxml_parser()
    depth = 0
    root: etree._Element | None = None
    try:
        parser.feed(data)
        for action, node in parser.read_events():
            if action == "start":
                depth += 1
                if depth > max_depth:
                    raise RemoteProtocolError(StreamErrorCondition.POLICY_VIOLATION, "Nested too deeply")
                if root is None:
                    root = node
            else:
                depth -= 1
        result = parser.close()
    except etree.XMLSyntaxError as exc:
        raise RemoteProtocolError(_syntax_condition(exc), _syntax_text(exc)) from None
    assert root is not None and result is root
    return result
