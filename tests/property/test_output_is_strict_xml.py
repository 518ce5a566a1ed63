"""Whatever a peer sends, every stanza the parser lets through serialises to XML a strict parser accepts.

A strict, namespace-aware parser (lxml.etree.fromstring with a default XMLParser) is what other clients,
the quiz bot and MUC history replay meet: one namespace-broken stanza relayed to a room would disconnect
them all. So the invariant is checked on the writer's output, for stanzas with random prefixes,
declarations and attributes, valid and invalid, through both parser entry points.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from boshcm.errors import RemoteProtocolError
from boshcm.xml.parser import StanzaReceived, StreamParseError, StreamParser, parse_document
from boshcm.xml.writer import serialize
from tests.property.test_xml_parser_properties import NAMESPACE_NAMES, PREFIXES, namespaced_stanzas

STREAMS_NS = "http://etherx.jabber.org/streams"


def strictly_parses(data: bytes) -> bool:
    try:
        etree.fromstring(data)
    except etree.XMLSyntaxError:
        return False
    return True


@st.composite
def stream_headers(draw: st.DrawFn) -> bytes:
    """A stream header whose extra declarations may themselves be broken."""
    extra = draw(st.lists(st.tuples(st.sampled_from(PREFIXES), st.sampled_from(NAMESPACE_NAMES)), max_size=2))
    declarations = "".join(f" xmlns:{prefix}='{uri}'" for prefix, uri in extra)
    return (f"<stream:stream xmlns='jabber:client' xmlns:stream='{STREAMS_NS}'{declarations} "
            f"to='localhost' version='1.0'>").encode()


@settings(max_examples=150, deadline=None)
@given(stream_headers(), st.lists(namespaced_stanzas, min_size=1, max_size=5), st.integers(min_value=1, max_value=64))
def test_every_stanza_from_a_stream_serialises_to_strict_xml(header: bytes, stanzas: list[bytes], piece: int) -> None:
    stream = header + b"".join(stanzas)
    parser = StreamParser()
    events = []
    for start in range(0, len(stream), piece):
        events += parser.feed(stream[start:start + piece])
    emitted = [event.element for event in events if isinstance(event, StanzaReceived)]
    for element in emitted:
        assert strictly_parses(serialize(element))
    # And the parser is no stricter than needed: each stanza gets through exactly when a strict parser
    # accepts it in the context of its stream.
    if not any(isinstance(event, StreamParseError) for event in events):
        assert all(strictly_parses(header + stanza + b"</stream:stream>") for stanza in stanzas)
        assert len(emitted) == len(stanzas)
    else:
        accepted = len(emitted)
        assert all(strictly_parses(header + stanza + b"</stream:stream>") for stanza in stanzas[:accepted])
        assert accepted == len(stanzas) or not strictly_parses(
            header + stanzas[accepted] + b"</stream:stream>")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PREFIXES), st.sampled_from(NAMESPACE_NAMES)), max_size=2),
       st.lists(namespaced_stanzas, max_size=4))
def test_every_document_parse_document_accepts_serialises_to_strict_xml(
        declarations: list[tuple[str, str]], stanzas: list[bytes]) -> None:
    attributes = "".join(f" xmlns:{prefix}='{uri}'" for prefix, uri in declarations)
    document = (f"<body xmlns='http://jabber.org/protocol/httpbind'{attributes} rid='1'>".encode()
                + b"".join(stanza.replace(b">", b" xmlns='jabber:client'>", 1) if b"xmlns=" not in stanza
                           else stanza for stanza in stanzas) + b"</body>")
    try:
        body = parse_document(document, max_bytes=1_000_000, max_depth=10)
    except RemoteProtocolError:
        assert not strictly_parses(document)
        return
    assert strictly_parses(document)
    assert strictly_parses(serialize(body))
    for child in body:
        assert strictly_parses(serialize(child))
