"""Any split of a valid stream gives the same stanzas; any garbage gives stanzas or one error, never a crash."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from boshcm.xml.parser import StanzaReceived, StreamClosed, StreamOpened, StreamParseError, StreamParser
from boshcm.xml.writer import serialize

HEADER = (b"<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")

xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff",
                                 min_codepoint=0x20), max_size=40)
names = st.sampled_from(["message", "presence", "iq"])
attribute_values = st.dictionaries(st.sampled_from(["to", "id", "type", "from"]), xml_text, max_size=3)


@st.composite
def stanzas(draw: st.DrawFn) -> bytes:
    name = draw(names)
    attrs = "".join(f" {key}={quoteattr(value)}" for key, value in draw(attribute_values).items())
    children = "".join(f"<body>{escape(text)}</body>" for text in draw(st.lists(xml_text, max_size=3)))
    return f"<{name}{attrs}>{children}</{name}>".encode()


def parse_in_chunks(data: bytes, cuts: list[int]) -> list[object]:
    parser = StreamParser()
    events: list[object] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += parser.feed(data[previous:cut])
        previous = cut
    return [serialize(e.element) if isinstance(e, StanzaReceived) else e for e in events]


@settings(max_examples=150, deadline=None)
@given(st.lists(stanzas(), min_size=1, max_size=6), st.data())
def test_any_split_of_a_valid_stream_gives_the_same_events(stanza_list: list[bytes], data: st.DataObject) -> None:
    stream = HEADER + b"".join(stanza_list) + b"</stream:stream>"
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=30))
    whole = parse_in_chunks(stream, [])
    assert parse_in_chunks(stream, cuts) == whole
    assert isinstance(whole[0], StreamOpened) and isinstance(whole[-1], StreamClosed)
    assert len(whole) == len(stanza_list) + 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_garbage_gives_only_stanzas_and_at_most_one_error(garbage: bytes, cuts: list[int]) -> None:
    events = parse_in_chunks(HEADER + garbage, [len(HEADER) + cut for cut in cuts if cut <= len(garbage)])
    errors = [event for event in events if isinstance(event, StreamParseError)]
    assert len(errors) <= 1
    if errors:
        assert events[-1] is errors[0]
    assert all(isinstance(event, bytes | StreamOpened | StreamClosed | StreamParseError) for event in events)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"<", b">", b"/", b"<!", b"<?", b"&", b";", b"&amp;", b"<a>", b"</a>",
                                 b"<message>", b"</message>", b"x", b"'", b"=", b" ", b"\xc3", b"\xa9"]),
                max_size=60))
def test_markup_soup_never_raises(tokens: list[bytes]) -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    for token in tokens:
        parser.feed(token)
