"""The stream parser fed whole, byte by byte and in pieces, with every kind of bad input."""

from __future__ import annotations

import pytest
from lxml import etree

from boshcm.errors import RemoteProtocolError, StreamErrorCondition
from boshcm.xml.parser import (
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    StreamParseError,
    StreamParser,
    parse_document,
)
from boshcm.xml.writer import serialize, stream_header

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xml:lang='de' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")
STANZAS = (b"<message to='bob@localhost' type='chat'><body>Gr\xc3\xbc\xc3\x9fe &amp; &#x263A; &lt;3</body></message>"
           b"\n <iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
           b"<presence><show>away</show><x xmlns='urn:example:deep'><a><b><![CDATA[<raw>]]></b></a></x></presence>")
STREAM = HEADER + STANZAS + b"</stream:stream>"


def feed_in_pieces(data: bytes, size: int, parser: StreamParser | None = None) -> list[object]:
    parser = parser or StreamParser()
    events: list[object] = []
    for start in range(0, len(data), size):
        events += parser.feed(data[start:start + size])
    return events


def summary(events: list[object]) -> list[object]:
    return [serialize(event.element) if isinstance(event, StanzaReceived) else event for event in events]


def test_whole_stream_gives_header_stanzas_and_close() -> None:
    events = StreamParser().feed(STREAM)
    opened = events[0]
    assert isinstance(opened, StreamOpened)
    assert opened.tag == "{http://etherx.jabber.org/streams}stream"
    assert opened.default_ns == "jabber:client"
    assert opened.attrs["to"] == "localhost" and opened.attrs["{http://www.w3.org/XML/1998/namespace}lang"] == "de"
    stanzas = [event.element for event in events if isinstance(event, StanzaReceived)]
    assert [etree.QName(s).localname for s in stanzas] == ["message", "iq", "presence"]
    assert stanzas[0].findtext("{jabber:client}body") == "Grüße & ☺ <3"
    assert stanzas[2].findtext(".//{urn:example:deep}b") == "<raw>"
    assert isinstance(events[-1], StreamClosed)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_any_fragment_size_gives_the_same_events(size: int) -> None:
    assert summary(feed_in_pieces(STREAM, size)) == summary(StreamParser().feed(STREAM))


def test_stanzas_serialise_with_their_own_namespace_only() -> None:
    events = StreamParser().feed(HEADER + b"<message to='a@b'><body>x</body></message>")
    (stanza,) = [event.element for event in events if isinstance(event, StanzaReceived)]
    assert serialize(stanza) == b'<message xmlns="jabber:client" to="a@b"><body>x</body></message>'


def test_finished_stanzas_and_keepalives_leave_nothing_buffered() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    for _ in range(1000):
        parser.feed(b"<message><body>hello</body></message>")
        parser.feed(b" ")
        parser.feed(b"\n\t")
    assert parser.buffered_bytes == 0
    parser.feed(b"<message><body>hel")
    assert parser.buffered_bytes == len(b"<message><body>hel")


def test_reset_starts_a_new_stream() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    parser.reset()
    events = parser.feed(HEADER + b"<message/>")
    assert isinstance(events[0], StreamOpened) and isinstance(events[1], StanzaReceived)


OPEN = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


# Namespaces in XML 1.0 §5 (and what a strict parser such as lxml.etree.fromstring refuses): lxml's pull
# parser alone accepts every one of these and would pass the broken names on.
NAMESPACE_ERRORS = [
    OPEN + b"<foo:bar/>",
    OPEN + b"<message><body>hi</body><foo:bar/></message>",
    OPEN + b"<message z:b='2'><body>hi</body></message>",
    OPEN + b"<message><x xmlns='urn:x' z:b='2'/></message>",
    OPEN + b"<message xmlns:p=''/>",
    OPEN + b"<message><x xmlns:p='urn:p'><y xmlns:p=''><p:z/></y></x></message>",
    OPEN + b"<message xmlns:a='urn:u' xmlns:b='urn:u' a:x='1' b:x='2'/>",
    OPEN + b"<message xmlns:xml='urn:not-xml'/>",
    OPEN + b"<message xmlns:p='not a uri'><p:x/></message>",
    OPEN + b"<a:b:c xmlns:a='urn:a'/>",
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:p=''>",
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' z:to='x'>",
    b"<s:stream xmlns='jabber:client'>",
]


@pytest.mark.parametrize(("bad", "condition"), [
    (b"<!DOCTYPE stream [<!ENTITY lol 'lol'>]>" + OPEN, StreamErrorCondition.RESTRICTED_XML),
    (OPEN + b"<!DOCTYPE x>", StreamErrorCondition.RESTRICTED_XML),
    (b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>"
     b"<lolz>&lol2;</lolz>", StreamErrorCondition.RESTRICTED_XML),
    (b"<!DOCTYPE x [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>" + OPEN + b"<m>&xxe;</m>",
     StreamErrorCondition.RESTRICTED_XML),
    (OPEN + b"<message><body>&xxe;</body></message>", StreamErrorCondition.RESTRICTED_XML),
    (OPEN + b"<?php evil() ?>", StreamErrorCondition.RESTRICTED_XML),
    (OPEN + b"<message><!-- hidden --></message>", StreamErrorCondition.RESTRICTED_XML),
    (OPEN + b"<message></presence>", StreamErrorCondition.NOT_WELL_FORMED),
    (OPEN + b"<message><body>\xff\xfe\xfd</body></message>", StreamErrorCondition.NOT_WELL_FORMED),
    (OPEN + b"<message a='1' a='2'/>", StreamErrorCondition.NOT_WELL_FORMED),
    (OPEN + b"<message><body>&#0;</body></message>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"garbage before the stream" + OPEN, StreamErrorCondition.NOT_WELL_FORMED),
    (OPEN + b"<m>" + b"<a>" * 70, StreamErrorCondition.POLICY_VIOLATION),
    (OPEN + b"<message><body>" + b"x" * 300_000, StreamErrorCondition.POLICY_VIOLATION),
    (b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' " + b"a='x' " * 5000,
     StreamErrorCondition.POLICY_VIOLATION),
    *[(bad, StreamErrorCondition.NOT_WELL_FORMED) for bad in NAMESPACE_ERRORS],
    (OPEN + b"<message a='" + b"v" * 400_000 + b"'/>", StreamErrorCondition.POLICY_VIOLATION),
    (OPEN + b"<message" + b"".join(b" a%d=''" % i for i in range(65)) + b"/>", StreamErrorCondition.POLICY_VIOLATION),
    (OPEN + b"<message>" + b"<x" + b"".join(b" a%d=''" % i for i in range(65)) + b"/></message>",
     StreamErrorCondition.POLICY_VIOLATION),
    (b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'" + b"".join(b" a%d=''" % i for i in range(65))
     + b">", StreamErrorCondition.POLICY_VIOLATION),
    (OPEN + b" " * 300_000, StreamErrorCondition.POLICY_VIOLATION),
    (OPEN + b"<message>" + b"<![CDATA[" + b"x" * 300_000, StreamErrorCondition.POLICY_VIOLATION),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?>" + OPEN, StreamErrorCondition.UNSUPPORTED_ENCODING),
])
@pytest.mark.parametrize("size", [1, 5, 100_000, 10_000_000])
def test_bad_input_gives_exactly_one_error_and_the_parser_stops(bad: bytes, condition: StreamErrorCondition,
                                                                  size: int) -> None:
    parser = StreamParser()
    events = feed_in_pieces(bad + b"<message/>" * 3 + b"</message>", size, parser)
    errors = [event for event in events if isinstance(event, StreamParseError)]
    assert [error.condition for error in errors] == [condition]
    assert events[-1] is errors[0]
    assert parser.feed(b"<message/>") == []


@pytest.mark.parametrize("bad", NAMESPACE_ERRORS)
@pytest.mark.parametrize("size", [1, 6, 100_000])
def test_namespace_errors_are_not_well_formed_and_nothing_broken_gets_through(bad: bytes, size: int) -> None:
    events = feed_in_pieces(bad + b"<message/>", size)
    assert [type(event) for event in events if not isinstance(event, StreamOpened)] == [StreamParseError]
    assert isinstance(events[-1], StreamParseError)
    assert events[-1].condition is StreamErrorCondition.NOT_WELL_FORMED


def test_oversize_is_detected_while_the_stanza_is_still_arriving() -> None:
    parser = StreamParser(max_stanza_bytes=10_000)
    parser.feed(OPEN + b"<message><body>")
    events: list[object] = []
    for _ in range(5):
        events += parser.feed(b"y" * 4000)
    assert any(isinstance(e, StreamParseError) and e.condition is StreamErrorCondition.POLICY_VIOLATION
               for e in events)


def test_stanza_just_under_the_limit_is_accepted() -> None:
    parser = StreamParser(max_stanza_bytes=65_536)
    parser.feed(OPEN)
    stanza = b"<message><body>" + b"z" * 50_000 + b"</body></message>"
    events = feed_in_pieces(stanza, 8192, parser)
    assert [type(event) for event in events] == [StanzaReceived]


def stanza_of(size: int, *, in_attribute: bool) -> bytes:
    """A message of exactly `size` bytes whose bulk sits in an attribute or in the body text."""
    shell = b"<message to='a@b' id=''><body></body></message>"
    filler = b"q" * (size - len(shell))
    if in_attribute:
        return b"<message to='a@b' id='" + filler + b"'><body></body></message>"
    return b"<message to='a@b' id=''><body>" + filler + b"</body></message>"


def feed_until_error(parser: StreamParser, data: bytes, size: int) -> tuple[list[object], int]:
    """Feeds in pieces until the parser reports an error; returns the events and how many bytes it took."""
    events: list[object] = []
    for start in range(0, len(data), size):
        events += parser.feed(data[start:start + size])
        if any(isinstance(event, StreamParseError) for event in events):
            return events, start + size
    return events, len(data)


def test_a_huge_attribute_fails_while_it_arrives_and_is_never_buffered_whole() -> None:
    limit, chunk = 262_144, 65_536
    parser = StreamParser(max_stanza_bytes=limit)
    assert [type(event) for event in parser.feed(OPEN)] == [StreamOpened]
    stanza = b"<message to='a@b' data='" + b"A" * (2 * 1024 * 1024) + b"'><body/></message>"
    events, fed = feed_until_error(parser, stanza, chunk)
    assert [event.condition for event in events if isinstance(event, StreamParseError)] == [
        StreamErrorCondition.POLICY_VIOLATION]
    assert fed <= limit + chunk
    assert parser.buffered_bytes <= limit + chunk


@pytest.mark.parametrize("size", [1, 7, 1000, 100_000])
@pytest.mark.parametrize("in_attribute", [True, False])
@pytest.mark.parametrize(("stanza_bytes", "accepted"), [(3072, True), (4096, True), (4097, False), (5120, False)])
def test_small_limits_count_every_byte_of_the_stanza_from_its_first_bracket(
        stanza_bytes: int, accepted: bool, in_attribute: bool, size: int) -> None:
    parser = StreamParser(max_stanza_bytes=4096)
    parser.feed(OPEN)
    stanza = stanza_of(stanza_bytes, in_attribute=in_attribute)
    assert len(stanza) == stanza_bytes
    events = feed_in_pieces(stanza + b"<presence/>", size, parser)
    if accepted:
        assert [type(event) for event in events] == [StanzaReceived, StanzaReceived]
    else:
        assert [type(event) for event in events] == [StreamParseError]
        assert events[0] == StreamParseError(condition=StreamErrorCondition.POLICY_VIOLATION,
                                             text="Stanza larger than 4096 bytes")


@pytest.mark.parametrize("size", [1, 3, 100_000])
def test_whitespace_before_a_stanza_counts_towards_it(size: int) -> None:
    parser = StreamParser(max_stanza_bytes=4096)
    parser.feed(OPEN)
    assert [type(e) for e in feed_in_pieces(b" " * 96 + stanza_of(4000, in_attribute=False), size, parser)] == [
        StanzaReceived]
    events = feed_in_pieces(b"\n" * 97 + stanza_of(4000, in_attribute=False), size, parser)
    assert [type(event) for event in events] == [StreamParseError]


def test_keepalives_between_stanzas_do_not_add_up_across_stanzas() -> None:
    parser = StreamParser(max_stanza_bytes=4096)
    parser.feed(OPEN)
    events: list[object] = []
    for _ in range(200):
        events += parser.feed(b" " * 100)
        events += parser.feed(b"<message/>")
    assert [type(event) for event in events] == [StanzaReceived] * 200


def test_text_at_stream_level_is_checked_and_ignored() -> None:
    events = StreamParser().feed(OPEN + b"hello &amp; bye<message/>bye</stream:stream>")
    assert [type(e) for e in events] == [StreamOpened, StanzaReceived, StreamClosed]
    (error,) = StreamParser().feed(OPEN + b"<message/>&bye;</stream:stream>")[2:]
    assert isinstance(error, StreamParseError) and error.condition is StreamErrorCondition.RESTRICTED_XML
    (error,) = StreamParser().feed(OPEN + b"hello &bye;<message/>")[1:]
    assert isinstance(error, StreamParseError) and error.condition is StreamErrorCondition.RESTRICTED_XML


@pytest.mark.parametrize("size", [1, 9, 100_000])
def test_attribute_cap_counts_namespace_declarations(size: int) -> None:
    sixty_four = b"<message xmlns='jabber:client'" + b"".join(b" a%d=''" % i for i in range(63)) + b"/>"
    events = feed_in_pieces(OPEN + sixty_four + sixty_four.replace(b"<message ", b"<message xmlns:p='urn:p' "),
                            size)
    assert [type(e) for e in events] == [StreamOpened, StanzaReceived, StreamParseError]
    assert events[-1] == StreamParseError(condition=StreamErrorCondition.POLICY_VIOLATION,
                                          text="More than 64 attributes on one element")


def test_attribute_cap_is_a_parameter() -> None:
    events = StreamParser(max_attributes=2).feed(OPEN + b"<message to='a' id='b'/><message to='a' id='b' type='c'/>")
    assert [type(e) for e in events] == [StreamOpened, StanzaReceived, StreamParseError]


@pytest.mark.parametrize("size", [1, 4, 100_000])
def test_stanzas_before_a_namespace_error_are_delivered_first(size: int) -> None:
    events = feed_in_pieces(OPEN + b"<message/>\n<iq xmlns:p=''/><message/>", size)
    assert [type(e) for e in events] == [StreamOpened, StanzaReceived, StreamParseError]
    assert isinstance(events[2], StreamParseError) and events[2].condition is StreamErrorCondition.NOT_WELL_FORMED


def test_declared_prefixes_from_the_stanza_and_the_stream_header_are_kept() -> None:
    events = StreamParser().feed(OPEN + b"<message xmlns:p='urn:p'><p:x p:a='1'/><stream:error/></message>")
    (stanza,) = [event.element for event in events if isinstance(event, StanzaReceived)]
    assert stanza.findall("{urn:p}x")[0].get("{urn:p}a") == "1"
    assert stanza.find("{http://etherx.jabber.org/streams}error") is not None
    assert etree.fromstring(serialize(stanza)).find("{urn:p}x") is not None


def test_nothing_after_the_end_of_the_stream_is_looked_at() -> None:
    events = StreamParser(max_stanza_bytes=100).feed(OPEN + b"</stream:stream>" + b"x" * 1000)
    assert [type(e) for e in events] == [StreamOpened, StreamClosed]
    events = StreamParser().feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/><garbage")
    assert [type(e) for e in events] == [StreamOpened, StreamClosed]


@pytest.mark.parametrize("size", [1, 5, 100_000])
def test_a_mismatched_end_tag_fails_at_once_not_when_the_depth_comes_back(size: int) -> None:
    events = feed_in_pieces(OPEN + b"<message to='bob@localhost'><body>unclosed</message>", size)
    assert [type(e) for e in events] == [StreamOpened, StreamParseError]
    assert isinstance(events[1], StreamParseError) and events[1].condition is StreamErrorCondition.NOT_WELL_FORMED


def test_the_stream_must_end_with_its_own_name() -> None:
    (error,) = StreamParser().feed(OPEN + b"<message/></stream:other>")[2:]
    assert isinstance(error, StreamParseError) and error.condition is StreamErrorCondition.NOT_WELL_FORMED


def test_whitespace_keepalives_between_stanzas_are_ignored() -> None:
    events = StreamParser().feed(OPEN + b"\n \n<message/>\n\t ")
    assert [type(e) for e in events] == [StreamOpened, StanzaReceived]


def test_parse_document_reads_one_bosh_body() -> None:
    body = parse_document(b"<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind' "
                          b"rid='9007199254740000'><message xmlns='jabber:client' to='a@b'/></body>",
                          max_bytes=10_000, max_depth=10)
    assert body.get("rid") == "9007199254740000"
    assert body[0].tag == "{jabber:client}message"


@pytest.mark.parametrize(("bad", "condition"), [
    (b"<!DOCTYPE body [<!ENTITY a 'b'>]><body>&a;</body>", StreamErrorCondition.RESTRICTED_XML),
    (b"<body><!-- x --></body>", StreamErrorCondition.RESTRICTED_XML),
    (b"<body>&undefined;</body>", StreamErrorCondition.RESTRICTED_XML),
    (b"<body><a></body>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"<body/><body/>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"", StreamErrorCondition.NOT_WELL_FORMED),
    (b"<body>" + b"<a>" * 20 + b"</a>" * 20 + b"</body>", StreamErrorCondition.POLICY_VIOLATION),
    (b"<body>" + b"x" * 20_000 + b"</body>", StreamErrorCondition.POLICY_VIOLATION),
    (b"<body xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'><foo:bar/></message></body>",
     StreamErrorCondition.NOT_WELL_FORMED),
    (b"<body><message xmlns='jabber:client' z:b='2'/></body>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"<body><message xmlns='jabber:client' xmlns:p=''/></body>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"<body xmlns:p=''/>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' z:to='x'/>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"<body><m xmlns:a='urn:u' xmlns:b='urn:u' a:x='1' b:x='2'/></body>", StreamErrorCondition.NOT_WELL_FORMED),
    (b"<body><m" + b"".join(b" a%d=''" % i for i in range(65)) + b"/></body>", StreamErrorCondition.POLICY_VIOLATION),
    (b"<?xml version='1.0' encoding='UTF-16'?><body/>", StreamErrorCondition.UNSUPPORTED_ENCODING),
    (b"<body><?php x ?></body>", StreamErrorCondition.RESTRICTED_XML),
])
def test_parse_document_refuses_bad_input(bad: bytes, condition: StreamErrorCondition) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_document(bad, max_bytes=10_000, max_depth=10)
    assert caught.value.condition is condition


@pytest.mark.parametrize(("size", "accepted"), [(3072, True), (4096, True), (4097, False), (5120, False)])
def test_parse_document_is_exact_at_small_limits(size: int, accepted: bool) -> None:
    shell = b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'></body>"
    document = shell.replace(b"></body>", b">" + b"z" * (size - len(shell)) + b"</body>")
    assert len(document) == size
    if accepted:
        assert parse_document(document, max_bytes=4096, max_depth=10).get("rid") == "1"
    else:
        with pytest.raises(RemoteProtocolError) as caught:
            parse_document(document, max_bytes=4096, max_depth=10)
        assert caught.value.condition is StreamErrorCondition.POLICY_VIOLATION


def test_parse_document_attribute_cap_is_a_parameter() -> None:
    document = b"<body rid='1' sid='2' to='x'/>"
    assert parse_document(document, max_bytes=100, max_depth=2, max_attributes=3).get("to") == "x"
    with pytest.raises(RemoteProtocolError) as caught:
        parse_document(document, max_bytes=100, max_depth=2, max_attributes=2)
    assert caught.value.condition is StreamErrorCondition.POLICY_VIOLATION


def test_parse_document_keeps_cdata_and_declared_prefixes() -> None:
    body = parse_document(b"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:p='urn:p'>"
                          b"<message xmlns='jabber:client'><body><![CDATA[<&>]]></body><p:x/></message></body>",
                          max_bytes=1000, max_depth=5)
    assert body[0].findtext("{jabber:client}body") == "<&>"
    assert body[0].find("{urn:p}x") is not None


def test_stream_header_escapes_attribute_values_and_round_trips() -> None:
    header = stream_header(attrs={"from": "localhost", "id": "a'b\"<c>&",
                                  "{http://www.w3.org/XML/1998/namespace}lang": "en"})
    (opened,) = StreamParser().feed(header)
    assert isinstance(opened, StreamOpened)
    assert opened.attrs["id"] == "a'b\"<c>&"
    assert opened.default_ns == "jabber:client"
