"""The poll fast path (`parse_poll`) never disagrees with the full path (lxml under the stream rules): whatever it
accepts, `parse_request(parse_document(...))` reads the same; everything else it leaves to that path."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from boshcm.bosh.body import BadRequest, RequestBody, parse_poll, parse_request
from boshcm.errors import RemoteProtocolError
from boshcm.xml.parser import DEFAULT_MAX_ATTRIBUTES, parse_document

HTTPBIND = "http://jabber.org/protocol/httpbind"

names = st.sampled_from(["sid", "type", "wait", "to", "rid", "xmlns", "xmlns:xmpp", "xmpp:restart", "xml:lang",
                         "xmlnsx", "_a", "a.b-c", "1bad"])
values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=12),
    st.sampled_from([HTTPBIND, "urn:xmpp:xbosh", "", "x\"y", "x'y", "a&amp;b", "a&b", "a<b", "a>b", "\t", "a\nb", "é",
                     "\x01", "&#10;"]),
    st.text(max_size=4))
rids = st.one_of(st.integers(min_value=0, max_value=2**54).map(str), st.sampled_from(["", "-1", "1.5", " 1", "٣"]))
# Mostly what the fast path takes, so that the property is tested where it matters; then one change at a time.
spaces = st.sampled_from([" "] * 8 + ["  ", "\t", "\n", ""])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    attributes = [("rid", draw(rids)), ("xmlns", draw(st.sampled_from([HTTPBIND] * 6 + ["urn:other", ""])))]
    if draw(st.booleans()):
        attributes.append(("xmlns:xmpp", draw(st.sampled_from(["urn:xmpp:xbosh"] * 4 + ["", "urn:other"]))))
    attributes += draw(st.lists(st.tuples(names, values), max_size=4))
    parts = [draw(st.sampled_from([""] * 8 + [" ", "<?xml version='1.0'?>"])), "<",
             draw(st.sampled_from(["body"] * 8 + ["Body", "b:body"]))]
    for name, value in draw(st.permutations(attributes)):
        quote = draw(st.sampled_from(["'", '"']))
        equals = draw(st.sampled_from(["="] * 8 + [" = "]))
        parts.append(f"{draw(spaces)}{name}{equals}{quote}{value}{quote}")
    parts.append(draw(st.sampled_from(["/>"] * 4 + ["></body>"] * 3 + [" />", "  />", "> </body>", "></Body>", ">",
                                                                 "/> "])))
    return "".join(parts).encode()


def full_path(data: bytes) -> RequestBody | None:
    try:
        return parse_request(parse_document(data, max_bytes=65_536, max_depth=32))
    except (RemoteProtocolError, BadRequest):
        return None


@settings(max_examples=600, deadline=None)
@given(bodies())
def test_the_poll_fast_path_agrees_with_the_full_path_or_stands_aside(data: bytes) -> None:
    fast = parse_poll(data, max_attributes=DEFAULT_MAX_ATTRIBUTES)
    if fast is not None:
        assert fast == full_path(data), data


def test_polls_as_clients_send_them_take_the_fast_path() -> None:
    polls = [  # Strophe.js, a terminate, double quotes and a space before the end
        f"<body rid='4131573290' xmlns='{HTTPBIND}' sid='ff7ca5a8-0f1c-4c5e-8e53-5f0d44a6c0f3'/>",
        f"<body rid='12' sid='s' type='terminate' xmlns='{HTTPBIND}'/>",
        f'<body xmlns="{HTTPBIND}" rid="12" sid="s" />',
        f"<body xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='12' sid='s'></body>",  # tests/integration
    ]
    for poll in polls:
        fast = parse_poll(poll.encode(), max_attributes=DEFAULT_MAX_ATTRIBUTES)
        assert fast is not None and fast == full_path(poll.encode())


def test_a_body_with_more_attributes_than_allowed_is_left_to_the_full_path() -> None:
    data = f"<body rid='1' xmlns='{HTTPBIND}' a='1' b='2'/>".encode()
    assert parse_poll(data, max_attributes=3) is None
    assert parse_poll(data, max_attributes=4) is not None


def test_what_is_not_well_formed_or_not_a_poll_is_left_to_the_full_path() -> None:
    for data in (f"<body rid='1' rid='2' xmlns='{HTTPBIND}'/>",            # a repeated attribute
                 f"<body rid='1' xmlns='{HTTPBIND}' xmlns='{HTTPBIND}'/>",  # a repeated namespace declaration
                 "<body rid='1' xmlns='urn:other'/>", "<body rid='1'/>",  # another namespace, none
                 f"<body rid='1' xmlns='{HTTPBIND}' xmlns:xmpp=''/>",      # an empty prefix declaration
                 f"<body rid='1' xmlns='{HTTPBIND}' xmpp:restart='true'/>",  # an undeclared prefix
                 f"<body rid='1' xmlns='{HTTPBIND}' a='&#10;'/>",         # a character reference
                 f"<body rid='x' xmlns='{HTTPBIND}'/>"):                  # a bad rid: the full path's error
        assert parse_poll(data.encode(), max_attributes=DEFAULT_MAX_ATTRIBUTES) is None, data
