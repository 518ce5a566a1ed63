"""The whole server's invariant: whatever a peer sends, every stanza the server writes to anyone parses with a
strict namespace-aware parser.

Alice sends hypothesis-made stanzas (random prefixes, declarations and attributes inside messages to a user,
to a room, privately through the room, presence and iqs through occupant JIDs) over a real parser into the
embedded server's router and conference service. Everything delivered — to bob, back to alice as errors or
reflections, and the room history a later joiner gets — is serialised by the one writer and parsed strictly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.jid import JID
from boshcm.xml.parser import StanzaReceived, StreamParser
from boshcm.xml.writer import serialize
from boshcm.xmpp.router import Deliver, RouterAction
from tests.property.test_xml_parser_properties import namespaced_elements, xml_text

ROOM = "quiz@conference.localhost"
ALICE, BOB, CAROL = JID.parse("alice@localhost/a"), JID.parse("bob@localhost/b"), JID.parse("carol@localhost/c")
HEADER = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
          b"to='localhost' version='1.0'>")
NOW = 1000.0


class Room:
    """The embedded server's router with alice and bob online and in one room."""

    def __init__(self, server: Server) -> None:
        self.router = server.router
        for jid in (ALICE, BOB, CAROL):
            self.router.bind(jid, NOW)
        for jid in (ALICE, BOB):
            self.send(jid, "<presence/>")
        self.send(ALICE, f"<presence to='{ROOM}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        self.send(ALICE, f"<iq type='set' id='c' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                         "<x xmlns='jabber:x:data' type='submit'/></query></iq>")
        self.send(BOB, f"<presence to='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>")

    def send(self, sender: JID, stanza: str) -> list[RouterAction]:
        """A well-formed stanza written without its (jabber:client) namespace."""
        return self.feed(sender, stanza.encode())

    def feed(self, sender: JID, data: bytes) -> list[RouterAction]:
        """Bytes from the sender's stream, through the real parser, into the router."""
        actions: list[RouterAction] = []
        for event in StreamParser().feed(HEADER + data):
            if isinstance(event, StanzaReceived):
                actions += self.router.handle_stanza(sender, event.element, NOW)
        return actions


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    data = Path(tmp_path_factory.mktemp("strict")) / "data"
    server = Server(load_config(None, {"quizbot.enabled": False, "server.data_dir": str(data),
                                       "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0"}))
    for name in ("alice", "bob", "carol"):
        server.accounts.add(name, "secret")
    yield Room(server)
    server.store.close()
    server.accounts.close()
    if server.rooms is not None:
        server.rooms.close()


def assert_strict(actions: list[RouterAction]) -> int:
    delivered = 0
    for action in actions:
        if isinstance(action, Deliver):
            written = serialize(action.stanza)
            try:
                etree.fromstring(written)
            except etree.XMLSyntaxError as error:
                raise AssertionError(f"the server wrote XML a strict parser rejects: {written!r}") from error
            delivered += 1
    return delivered


@st.composite
def hostile_stanzas(draw: st.DrawFn) -> bytes:
    """An outer stanza a client may send, around children with random namespace use, valid or not."""
    kind, to, stanza_type = draw(st.sampled_from([
        ("message", ROOM, "groupchat"), ("message", "bob@localhost", "chat"), ("message", f"{ROOM}/bob", "chat"),
        ("presence", f"{ROOM}/alice", None), ("iq", f"{ROOM}/bob", "get"), ("iq", "bob@localhost/b", "set"),
        ("message", "bob@localhost/b", "normal")]))
    children = draw(st.lists(namespaced_elements(1), max_size=3))
    extra = draw(st.lists(st.tuples(st.sampled_from(["xmlns:p", "p:a", "a", "xml:lang", "xmlns:q"]), xml_text),
                          max_size=2, unique_by=lambda pair: pair[0]))
    attributes = [("to", to), ("id", draw(st.sampled_from(["1", "x", "same"]))), *extra]
    if stanza_type is not None:
        attributes.append(("type", stanza_type))
    rendered = "".join(f" {key}={quoteattr(value)}" for key, value in attributes)
    body = "<body>hi</body>" if kind == "message" else ""
    return f"<{kind}{rendered}>{body}{''.join(children)}</{kind}>".encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(hostile_stanzas(), min_size=1, max_size=4))
def test_everything_the_server_writes_parses_strictly(room: Room, stanzas: list[bytes]) -> None:
    for data in stanzas:
        assert_strict(room.feed(ALICE, data))
    # A later joiner gets the room's history: the broken stanzas must not be in it.
    joined = room.send(CAROL, f"<presence to='{ROOM}/carol'><x xmlns='http://jabber.org/protocol/muc'/>"
                              "</presence>")
    assert assert_strict(joined) > 0
    assert_strict(room.send(CAROL, f"<presence to='{ROOM}/carol' type='unavailable'/>"))
