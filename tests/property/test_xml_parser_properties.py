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


# Elements with prefixes, declarations and attributes drawn from small pools, so that valid namespace use,
# undeclared prefixes, empty and reserved bindings, and clashing expanded names all turn up often.
PREFIXES = ["p", "q", "stream", "xml", "xmlns", "foo"]
NAMESPACE_NAMES = ["urn:a", "urn:b", "jabber:client", "", "not a uri", "http://www.w3.org/XML/1998/namespace",
                   "http://www.w3.org/2000/xmlns/", "http://etherx.jabber.org/streams"]
maybe_prefix = st.one_of(st.just(""), st.sampled_from(PREFIXES))


@st.composite
def qualified_names(draw: st.DrawFn, local: st.SearchStrategy[str]) -> str:
    prefix = draw(maybe_prefix)
    return f"{prefix}:{draw(local)}" if prefix else draw(local)


@st.composite
def namespaced_elements(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(qualified_names(st.sampled_from(["message", "x", "body", "a:b"] if depth else ["message", "iq"])))
    declarations = draw(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(PREFIXES)),
                                           st.sampled_from(NAMESPACE_NAMES)), max_size=2))
    attributes = draw(st.lists(st.tuples(qualified_names(st.sampled_from(["to", "id", "a", "b"])), xml_text),
                               max_size=3))
    parts = [f"<{name}"]
    parts += [f" xmlns={quoteattr(uri)}" if prefix is None else f" xmlns:{prefix}={quoteattr(uri)}"
              for prefix, uri in declarations]
    parts += [f" {key}={quoteattr(value)}" for key, value in attributes]
    children = draw(st.lists(namespaced_elements(depth + 1), max_size=2)) if depth < 2 else []
    text = draw(xml_text)
    if not children and not text:
        return "".join(parts) + "/>"
    return "".join(parts) + ">" + escape(text) + "".join(children) + f"</{name}>"


namespaced_stanzas = namespaced_elements().map(str.encode)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(namespaced_stanzas, stanzas(), st.sampled_from([b" ", b"\n\n", b"<message>", b"x"])),
                min_size=1, max_size=6),
       st.sampled_from([64, 300, 4096, 262_144]), st.sampled_from([1, 2, 64]), st.booleans(), st.data())
def test_any_split_gives_the_same_events_including_errors(parts: list[bytes], max_stanza_bytes: int,
                                                          max_attributes: int, close: bool,
                                                          data: st.DataObject) -> None:
    stream = HEADER + b"".join(parts) + (b"</stream:stream>" if close else b"")
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=30))

    def parse(cut_at: list[int]) -> list[object]:
        parser = StreamParser(max_stanza_bytes=max_stanza_bytes, max_attributes=max_attributes)
        events: list[object] = []
        previous = 0
        for cut in [*sorted(set(cut_at)), len(stream)]:
            events += parser.feed(stream[previous:cut])
            previous = cut
        return [serialize(e.element) if isinstance(e, StanzaReceived) else e for e in events]

    whole = parse([])
    assert parse(cuts) == whole
    assert parse(list(range(len(stream)))) == whole
    errors = [event for event in whole if isinstance(event, StreamParseError)]
    assert len(errors) <= 1 and (not errors or whole[-1] is errors[0])
