"""The one hardened XML parser: incremental for TCP streams, whole-document for BOSH bodies and WS frames.

RFC 6120 §11.1 restricts XMPP to a subset of XML: no DTDs (so no entity declarations), no comments, no
processing instructions. A small lexer finds those in the raw bytes before lxml sees them, so nothing is
ever expanded or fetched; lxml itself runs with entity resolution, DTD loading and network access off as a
second wall.

Theory of operation for streams: the lexer cuts the bytes into tokens (text, tags, CDATA) without building
anything, tracks the nesting depth and so knows where each stanza begins and ends, to the byte. That is
what makes every limit exact and enforced while bytes arrive: a stanza is counted from its first `<`
(start tag and attributes included), text at stream level counts towards the stanza after it, attributes
are counted as they are scanned, and a stanza that passes the limit is refused before the rest of it is
buffered. When a stanza is complete its bytes are parsed once by lxml's strict (non-recovering) parser, in
the namespace context of the stream header. lxml's pull parser silently accepts names with undeclared
prefixes and drops `xmlns:p=""`; the strict parser refuses them, as it refuses every other namespace error
(Namespaces in XML 1.0 §5), so nothing a strict parser would reject is ever passed on.

Every fault is reported at the byte where it is found, and a size limit passed at or before that byte wins:
so any split of the same bytes into feeds gives the same events. Peer input never raises out of
`StreamParser.feed`: every fault is one `StreamParseError` and the parser is dead afterwards.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from enum import Enum

from lxml import etree

from boshcm.errors import RemoteProtocolError, StreamErrorCondition
from boshcm.stanza import clone

# The stream header can carry many namespace declarations, but not megabytes.
MAX_HEADER_BYTES = 16_384
DEFAULT_MAX_ATTRIBUTES = 64

_OPEN_BRACKET = 0x3C  # <
_SLASH = 0x2F
# A start tag in one piece: quoted values may hold `>` (XML 1.0 §3.1). Possessive quantifiers keep a failed
# match (an incomplete tag) linear.
_START_TAG = re.compile(rb"""<[^!?/'"<>\s=][^'"<>]*+(?:(?:'[^']*+'|"[^"]*+")[^'"<>]*+)*+>""")
# The tokens most bytes are made of, each complete, in one call: text, an end tag, a start tag.
_COMMON_TOKEN = re.compile(rb"""[^<]++|</[^<>]*+>|<[^!?/'"<>\s=][^'"<>]*+(?:(?:'[^']*+'|"[^"]*+")[^'"<>]*+)*+>""")
# Inside a stanza: text up to and including the next end tag (group 1: its name) or whole start tag (group 2).
_CONTENT_AND_TAG = re.compile(
    rb"""[^<]*+<(?:/([^<>]*+)|([^!?/'"<>=\s][^'"<>/=\s]*+)[^'"<>]*+(?:(?:'[^']*+'|"[^"]*+")[^'"<>]*+)*+)>""")
_TAG_SPECIAL = re.compile(rb"""['"<>]""")
_QUOTED_VALUE = re.compile(rb"""'[^']*+'|"[^"]*+\"""")
_NOT_A_NAME_START = frozenset(b"'\"<>= \t\r\n")
_WHITESPACE_RUN = re.compile(rb"[ \t\r\n]*+")
_NON_WHITESPACE = re.compile(rb"[^ \t\r\n]")
_CDATA_OPEN = b"<![CDATA["
_XML_DECLARATION = re.compile(
    rb"""<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:'1\.[0-9]+'|"1\.[0-9]+")"""
    rb"""(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?:'([A-Za-z][A-Za-z0-9._-]*)'|"([A-Za-z][A-Za-z0-9._-]*)"))?"""
    rb"""(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:'(?:yes|no)'|"(?:yes|no)"))?[ \t\r\n]*\?>""")
_XML_DECLARATION_START = re.compile(rb"<\?xml[ \t\r\n]")
_TAG_NAME = re.compile(rb"""[^'"<>/=\s]+""")
# libxml2 error codes that mean an entity or a DTD: RFC 6120 §11.1 restricted XML, not a syntax slip.
_RESTRICTED_CODES = frozenset(getattr(etree.ErrorTypes, name) for name in dir(etree.ErrorTypes)
                              if name.startswith(("ERR_", "WAR_")) and ("ENTITY" in name or "DTD" in name
                                                                        or "DOCTYPE" in name or "PEREF" in name))
_WRAPPER_CLOSE = b"</w>"


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


_THREAD_PARSERS = threading.local()


def _strict_parser() -> etree.XMLParser:
    """This thread's one strict parser (lxml's parsers are reusable, not thread-safe). One, not one per stream or
    body: every element parsed keeps its parser alive through its document, so a session's last presence or a
    queued stanza would keep a parser and its context of five objects for the collector to walk, and a fresh
    parser for each BOSH body doubled the time to parse it (libxml2 sets up a new context)."""
    parser: etree.XMLParser | None = getattr(_THREAD_PARSERS, "strict", None)
    if parser is None:
        # Not recovering: lxml raises on every well-formedness *and* namespace error (its pull parser does not);
        # collect_ids stays on as in a default parser, which refuses a malformed xml:id.
        parser = _THREAD_PARSERS.strict = etree.XMLParser(
            resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, remove_comments=False,
            remove_pis=False)
    return parser


class _Token(Enum):
    TEXT = "text"  # character data; a run cut by the end of the bytes so far comes as several tokens
    START = "start"
    EMPTY = "empty"  # <a/>
    END = "end"
    CDATA = "cdata"
    DECLARATION = "declaration"  # <?xml ...?>, only offered at the very start


class _Fault(Exception):
    """A peer fault found at byte `offset` of the lexer's buffer (exclusive end of what was examined)."""

    def __init__(self, offset: int, condition: StreamErrorCondition, text: str) -> None:
        super().__init__(text)
        self.offset = offset
        self.condition = condition
        self.text = text


class _Lexer:
    """Cuts raw bytes into tokens; a token cut by the end of the bytes so far resumes where scanning stopped.

    Resuming (rather than rescanning from the token's start) keeps a huge tag fed byte by byte linear.
    """

    __slots__ = ("_attributes", "_max_attributes", "_partial", "_quote", "_resume", "buf", "declaration_allowed",
                 "pos")

    def __init__(self, buf: bytearray | bytes, *, max_attributes: int) -> None:
        self.buf = buf
        self.pos = 0  # where the next token starts
        self.declaration_allowed = True
        self._max_attributes = max_attributes
        self._partial: _Token | None = None
        self._resume = 0
        self._quote = 0
        self._attributes = 0

    def shift(self, removed: int) -> None:
        """The owner dropped `removed` bytes from the front of the buffer, all before `pos`."""
        self.pos -= removed
        self._resume = max(0, self._resume - removed)

    def next(self) -> tuple[_Token, int] | None:
        """The token starting at `pos` as (kind, end), or None until more bytes arrive. Raises _Fault."""
        buf, start = self.buf, self.pos
        if start >= len(buf):
            return None
        if buf[start] != _OPEN_BRACKET:
            end = buf.find(b"<", start)
            return _Token.TEXT, len(buf) if end == -1 else end
        kind = self._partial
        if kind is None:
            if len(buf) - start < 2:
                return None
            second = buf[start + 1]
            if second == _SLASH:
                kind, self._resume = _Token.END, start + 2
            elif second == 0x21:  # <!
                head = bytes(buf[start:start + len(_CDATA_OPEN)])
                if not _CDATA_OPEN.startswith(head):
                    mismatch = next(i for i, byte in enumerate(head) if byte != _CDATA_OPEN[i])
                    raise _Fault(start + mismatch + 1, StreamErrorCondition.RESTRICTED_XML,
                                 "DTDs and comments are not allowed in XMPP")
                if len(head) < len(_CDATA_OPEN):
                    return None
                kind, self._resume = _Token.CDATA, start + len(_CDATA_OPEN)
            elif second == 0x3F:  # <?
                if not self.declaration_allowed:
                    raise _Fault(start + 2, StreamErrorCondition.RESTRICTED_XML,
                                 "Processing instructions are not allowed in XMPP")
                kind, self._resume = _Token.DECLARATION, start + 2
            elif second in _NOT_A_NAME_START:
                raise _Fault(start + 2, StreamErrorCondition.NOT_WELL_FORMED, "Malformed tag")
            else:
                match = _START_TAG.match(buf, start)
                if match is not None:
                    end = match.end()
                    self.check_attributes(start, end)
                    return (_Token.EMPTY if buf[end - 2] == _SLASH else _Token.START), end
                kind, self._resume, self._quote, self._attributes = _Token.START, start + 1, 0, 0
            self._partial = kind
        if kind is _Token.START:
            return self._scan_start_tag(buf, start)
        if kind is _Token.CDATA:
            found = buf.find(b"]]>", self._resume)
            if found == -1:
                self._resume = max(self._resume, len(buf) - 2)
                return None
            self._partial = None
            return _Token.CDATA, found + 3
        # End tags and the declaration hold no quotes: their first `>` ends them.
        found = buf.find(b">", self._resume)
        if found == -1:
            self._resume = len(buf)
            return None
        self._partial = None
        return kind, found + 1

    @property
    def idle(self) -> bool:
        """No token is half-scanned."""
        return self._partial is None

    def check_attributes(self, start: int, end: int) -> None:
        # Every attribute (namespace declarations included) has exactly one quoted value; `=` bounds them.
        if self.buf.count(b"=", start, end) <= self._max_attributes:
            return
        for index, match in enumerate(_QUOTED_VALUE.finditer(self.buf, start, end)):
            if index == self._max_attributes:
                raise self._too_many_attributes(match.start() + 1)

    def _too_many_attributes(self, offset: int) -> _Fault:
        return _Fault(offset, StreamErrorCondition.POLICY_VIOLATION,
                      f"More than {self._max_attributes} attributes on one element")

    def _scan_start_tag(self, buf: bytearray | bytes, start: int) -> tuple[_Token, int] | None:
        position = self._resume
        while True:
            if self._quote:
                closing = buf.find(b"'" if self._quote == 0x27 else b'"', position)
                if closing == -1:
                    self._resume = len(buf)
                    return None
                self._quote, position = 0, closing + 1
            match = _TAG_SPECIAL.search(buf, position)
            if match is None:
                self._resume = len(buf)
                return None
            found = match.start()
            byte = buf[found]
            if byte == 0x3E:  # >
                self._partial = None
                return (_Token.EMPTY if buf[found - 1] == _SLASH and found - 1 > start else _Token.START), found + 1
            if byte == _OPEN_BRACKET:
                raise _Fault(found + 1, StreamErrorCondition.NOT_WELL_FORMED, "'<' inside a tag")
            self._attributes += 1
            if self._attributes > self._max_attributes:
                raise self._too_many_attributes(found + 1)
            self._quote, position = byte, found + 1


def _check_declaration(declaration: bytes, offset: int) -> None:
    """RFC 6120 §11.6: UTF-8 only (stream pieces are parsed without the declaration, as UTF-8)."""
    match = _XML_DECLARATION.fullmatch(declaration)
    if match is None:
        if _XML_DECLARATION_START.match(declaration) is None:
            raise _Fault(offset, StreamErrorCondition.RESTRICTED_XML, "Processing instructions are not allowed in XMPP")
        raise _Fault(offset, StreamErrorCondition.NOT_WELL_FORMED, "Malformed XML declaration")
    encoding = match.group(1) or match.group(2)
    if encoding is not None and encoding.lower() not in (b"utf-8", b"utf8"):
        raise _Fault(offset, StreamErrorCondition.UNSUPPORTED_ENCODING, "XMPP streams are UTF-8")


class StreamParser:
    """Incremental parser for one XMPP stream (and its restarts via reset())."""

    def __init__(self, *, max_stanza_bytes: int = 262_144, max_depth: int = 64,
                 max_attributes: int = DEFAULT_MAX_ATTRIBUTES) -> None:
        self._max_stanza_bytes = max_stanza_bytes
        self._max_depth = max_depth
        self._max_attributes = max_attributes
        self._xml_parser = _strict_parser()
        self.reset()

    def reset(self) -> None:
        """RFC 6120 §4.3.3: after STARTTLS and SASL both sides start a new stream, with a new parser."""
        self._buf = bytearray()
        self._lexer = _Lexer(self._buf, max_attributes=self._max_attributes)
        # Raw names of the open elements, the stream's first: end tags must match them (XML 1.0 §3 WFC: Element
        # Type Match), checked as they arrive like a pull parser would. Its length is the depth.
        self._open: list[bytes] = []
        self._unit = 0  # where the bytes of the header, or of the next stanza, begin in _buf
        self._dropped = 0  # whitespace of this unit already dropped from _buf (counted, not kept)
        self._wrapper = b""
        self._dead = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for an incomplete header or stanza: never much more than the limit."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[ParserEvent]:
        if self._dead or not data:
            return []
        self._buf += data
        events: list[ParserEvent] = []
        try:
            try:
                self._tokens(events)
            except _Fault as fault:
                raise self._size_fault(fault.offset) or fault from None
            if not self._dead:
                self._check_size(len(self._buf))  # an incomplete header or stanza counts as far as it has come
        except _Fault as fault:
            self._dead = True
            events.append(StreamParseError(condition=fault.condition, text=fault.text))
        if self._unit and not self._dead:
            del self._buf[:self._unit]
            self._lexer.shift(self._unit)
            self._unit = 0
        return events

    def _size_fault(self, offset: int) -> _Fault | None:
        size = self._dropped + offset - self._unit
        if not self._wrapper:
            if size > MAX_HEADER_BYTES:
                return _Fault(offset, StreamErrorCondition.POLICY_VIOLATION, "Stream header too large")
        elif size > self._max_stanza_bytes:
            return _Fault(offset, StreamErrorCondition.POLICY_VIOLATION,
                          f"Stanza larger than {self._max_stanza_bytes} bytes")
        return None

    def _check_size(self, end: int) -> None:
        if (fault := self._size_fault(end)) is not None:
            raise fault

    def _tokens(self, events: list[ParserEvent]) -> None:
        """Acts on each complete token. Sizes are checked where something completes and at the end of the
        bytes; a unit only grows, so that finds the same first fault as checking after every token."""
        lexer, buf, open_names = self._lexer, self._buf, self._open
        while not self._dead:
            if len(open_names) >= 2 and lexer.idle:
                self._inside_stanza(events)
                if self._dead:
                    return
            start = lexer.pos
            # Fast path: text, an end tag or a whole start tag, found in one regex call.
            match = _COMMON_TOKEN.match(buf, start) if lexer.idle else None
            if match is not None:
                end = match.end()
                if buf[start] != _OPEN_BRACKET:
                    kind = _Token.TEXT
                elif buf[start + 1] == _SLASH:
                    kind = _Token.END
                else:
                    lexer.check_attributes(start, end)
                    kind = _Token.EMPTY if buf[end - 2] == _SLASH else _Token.START
            else:
                token = lexer.next()
                if token is None:
                    return
                kind, end = token
            lexer.pos = end
            lexer.declaration_allowed = False
            depth = len(open_names)
            if kind is _Token.TEXT:
                if depth == 1:
                    if start == self._unit:
                        # Whitespace keepalives (RFC 6120 §4.6.1) count towards the next stanza but are not kept.
                        whitespace = _WHITESPACE_RUN.match(buf, start, end)
                        assert whitespace is not None
                        self._dropped += whitespace.end() - start
                        self._unit = whitespace.end()
                elif depth == 0 and (found := _NON_WHITESPACE.search(buf, start, end)) is not None:
                    raise _Fault(found.start() + 1, StreamErrorCondition.NOT_WELL_FORMED,
                                 "Text before the stream header")
            elif kind is _Token.START or kind is _Token.EMPTY:
                if depth == 0:
                    self._open_stream(start, end, kind is _Token.EMPTY, events)
                elif depth > self._max_depth:
                    raise _Fault(end, StreamErrorCondition.POLICY_VIOLATION, "Elements nested too deeply")
                elif kind is _Token.START:
                    name = _TAG_NAME.match(buf, start + 1)
                    open_names.append(b"" if name is None else name.group())
                elif depth == 1:
                    events.append(self._stanza(end))
            elif kind is _Token.END:
                self._close_element(buf[start + 2:end - 1], end)
                if depth == 2:
                    events.append(self._stanza(end))
                elif depth == 1:
                    events.append(self._close_stream(start, end))
            elif kind is _Token.CDATA:
                if depth == 0:
                    raise _Fault(end, StreamErrorCondition.NOT_WELL_FORMED, "Text before the stream header")
            else:
                _check_declaration(bytes(buf[start:end]), end)

    def _inside_stanza(self, events: list[ParserEvent]) -> None:
        """The hot path: text and whole tags inside a stanza, one regex call each, until something else."""
        lexer, buf, open_names, max_depth = self._lexer, self._buf, self._open, self._max_depth
        position = lexer.pos
        while (match := _CONTENT_AND_TAG.match(buf, position)) is not None:
            end = lexer.pos = match.end()
            name = match.group(2)
            if name is None:
                self._close_element(match.group(1), end)
                if len(open_names) == 1:
                    events.append(self._stanza(end))
                    return
            else:
                lexer.check_attributes(match.start(2) - 1, end)
                if len(open_names) > max_depth:
                    raise _Fault(end, StreamErrorCondition.POLICY_VIOLATION, "Elements nested too deeply")
                if buf[end - 2] != _SLASH:
                    open_names.append(name)
            position = end

    def _close_element(self, name: bytes | bytearray, end: int) -> None:
        if not self._open:
            raise _Fault(end, StreamErrorCondition.NOT_WELL_FORMED, "End tag before the stream header")
        expected = self._open.pop()
        if name != expected and name.rstrip(b" \t\r\n") != expected:
            raise _Fault(end, StreamErrorCondition.NOT_WELL_FORMED, "Mismatched end tag")

    def _close_stream(self, start: int, end: int) -> StreamClosed:
        self._check_size(end)
        if _NON_WHITESPACE.search(self._buf, self._unit, start) is not None:
            self._parse_in_stream(self._unit, start, end)  # text at stream level: checked, then ignored
        self._dead = True
        return StreamClosed()

    def _open_stream(self, start: int, end: int, empty: bool, events: list[ParserEvent]) -> None:
        self._check_size(end)
        tag = bytes(self._buf[start:end])
        try:
            root = etree.fromstring(tag if empty else tag[:-1] + b"/>", self._xml_parser)
        except etree.XMLSyntaxError as exc:
            raise _Fault(end, _syntax_condition(exc), _syntax_text(exc)) from None
        name = _TAG_NAME.match(tag, 1)
        assert name is not None  # lxml accepted the tag
        self._open.append(name.group())
        # Stanzas are parsed inside a stand-in for the stream element that declares what the header declared.
        declarations = [(b" xmlns=" if prefix is None else b" xmlns:" + prefix.encode() + b"=") + _quote(uri)
                        for prefix, uri in root.nsmap.items()]
        self._wrapper = b"<w" + b"".join(declarations) + b">"
        self._unit, self._dropped = end, 0
        events.append(StreamOpened(attrs=dict(root.attrib), tag=str(root.tag), default_ns=root.nsmap.get(None)))
        if empty:
            self._dead = True
            events.append(StreamClosed())

    def _stanza(self, end: int) -> StanzaReceived:
        self._check_size(end)
        root = self._parse_in_stream(self._unit, end, end)
        if len(root) != 1:
            raise _Fault(end, StreamErrorCondition.NOT_WELL_FORMED, "Not one element")
        # A copy carries its in-scope namespaces as its own declarations and leaves the stand-in behind.
        stanza = clone(root[0])
        stanza.tail = None
        etree.cleanup_namespaces(stanza)
        self._unit, self._dropped = end, 0
        return StanzaReceived(element=stanza)

    def _parse_in_stream(self, start: int, end: int, offset: int) -> etree._Element:
        try:
            return etree.fromstring(self._wrapper + self._buf[start:end] + _WRAPPER_CLOSE, self._xml_parser)
        except etree.XMLSyntaxError as exc:
            raise _Fault(offset, _syntax_condition(exc), _syntax_text(exc)) from None


def _quote(value: str) -> bytes:
    escaped = (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
               .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;"))
    return b'"' + escaped.encode() + b'"'


def _syntax_condition(exc: etree.XMLSyntaxError) -> StreamErrorCondition:
    if exc.code in _RESTRICTED_CODES:
        return StreamErrorCondition.RESTRICTED_XML
    return StreamErrorCondition.NOT_WELL_FORMED


def _syntax_text(exc: etree.XMLSyntaxError) -> str:
    # The first line is enough; lxml's messages can echo peer bytes, keep them short.
    return str(exc).splitlines()[0][:200] if str(exc) else "Not well-formed XML"


def _deeper(depth: int, kind: _Token, max_depth: int) -> int:
    if depth >= max_depth:
        raise _Fault(0, StreamErrorCondition.POLICY_VIOLATION, "Nested too deeply")
    return depth + 1 if kind is _Token.START else depth


def parse_document(data: bytes, *, max_bytes: int, max_depth: int,
                   max_attributes: int = DEFAULT_MAX_ATTRIBUTES) -> etree._Element:
    """One whole element (a BOSH <body/>, a WebSocket frame) under the same rules as streams.

    Raises RemoteProtocolError(not-well-formed | restricted-xml | policy-violation | unsupported-encoding).
    """
    if len(data) > max_bytes:
        raise RemoteProtocolError(StreamErrorCondition.POLICY_VIOLATION, f"Larger than {max_bytes} bytes")
    lexer = _Lexer(data, max_attributes=max_attributes)
    depth = 0
    try:
        while True:
            position = lexer.pos
            if (match := _CONTENT_AND_TAG.match(data, position)) is not None:
                end = match.end()
                if match.start(2) == -1:
                    depth -= 1
                else:
                    lexer.check_attributes(match.start(2) - 1, end)
                    kind = _Token.EMPTY if data[end - 2] == _SLASH else _Token.START
                    depth = _deeper(depth, kind, max_depth)
            elif (token := lexer.next()) is not None:
                kind, end = token
                if kind is _Token.END:
                    depth -= 1
                elif kind is _Token.DECLARATION:
                    _check_declaration(data[position:end], end)
                elif kind is not _Token.TEXT and kind is not _Token.CDATA:
                    depth = _deeper(depth, kind, max_depth)
            else:
                break  # the rest is incomplete: lxml says how
            lexer.pos = end
            lexer.declaration_allowed = False
    except _Fault as fault:
        raise RemoteProtocolError(fault.condition, fault.text) from None
    try:
        return etree.fromstring(data, _strict_parser())
    except etree.XMLSyntaxError as exc:
        raise RemoteProtocolError(_syntax_condition(exc), _syntax_text(exc)) from None
