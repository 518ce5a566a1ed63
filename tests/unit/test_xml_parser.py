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


def test_finished_stanzas_are_detached_from_the_stream_root() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    for _ in range(1000):
        parser.feed(b"<message><body>hello</body></message>")
    root = parser._root
    assert root is not None and len(root) == 0


def test_reset_starts_a_new_stream() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    parser.reset()
    events = parser.feed(HEADER + b"<message/>")
    assert isinstance(events[0], StreamOpened) and isinstance(events[1], StanzaReceived)


OPEN = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


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
])
@pytest.mark.parametrize("size", [1, 5, 100_000])
def test_bad_input_gives_exactly_one_error_and_the_parser_stops(bad: bytes, condition: StreamErrorCondition,
                                                                  size: int) -> None:
    parser = StreamParser()
    events = feed_in_pieces(bad + b"<message/>" * 3 + b"</message>", size, parser)
    errors = [event for event in events if isinstance(event, StreamParseError)]
    assert [error.condition for error in errors] == [condition]
    assert events[-1] is errors[0]
    assert parser.feed(b"<message/>") == []


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
])
def test_parse_document_refuses_bad_input(bad: bytes, condition: StreamErrorCondition) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_document(bad, max_bytes=10_000, max_depth=10)
    assert caught.value.condition is condition


def test_stream_header_escapes_attribute_values_and_round_trips() -> None:
    header = stream_header(attrs={"from": "localhost", "id": "a'b\"<c>&",
                                  "{http://www.w3.org/XML/1998/namespace}lang": "en"})
    (opened,) = StreamParser().feed(header)
    assert isinstance(opened, StreamOpened)
    assert opened.attrs["id"] == "a'b\"<c>&"
    assert opened.default_ns == "jabber:client"
