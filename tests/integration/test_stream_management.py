"""XEP-0198 over real sockets: slixmpp's xep_0198 through a relay that drops, and resumption across transports."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.bosh_client import BoshClient
from tests.integration.relay import Relay
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient, trusting_only
from tests.servers import running_server

SM = "urn:xmpp:sm:3"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>"
ALICE_WEB = JID.parse("alice@localhost/web")


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(TIMEOUT_SECONDS / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def client(server: Server, clients: list[XmppClient], jid: str, password: str, port: int | None = None,
           plugins: tuple[str, ...] = ()) -> XmppClient:
    ca_cert = server.config.data_path / SELF_SIGNED_CERT
    made = XmppClient(jid, password, port=port or server.c2s.port, plugins=plugins, ca_cert=ca_cert,
                      ssl_context=trusting_only(ca_cert))
    clients.append(made)
    return made


def bodies(queue: asyncio.Queue[Any]) -> list[str]:
    found = []
    while not queue.empty():
        message = queue.get_nowait()
        if message["body"]:
            found.append(message["body"])
    return found


async def test_slixmpp_resumes_through_a_dropped_connection_and_gets_each_message_once(
        server: Server, clients: list[XmppClient]) -> None:
    relay = Relay("127.0.0.1", server.c2s.port)
    await relay.start()
    try:
        alice = client(server, clients, "alice@localhost/desk", "alice-secret", port=relay.port,
                       plugins=("xep_0198",))
        resumed = asyncio.Event()
        alice.xmpp.add_event_handler("session_resumed", lambda _event: resumed.set())
        sm = alice.xmpp.plugin["xep_0198"]
        sm.window = 1  # the client asks for an ack after each stanza: its queue stays short
        await alice.connect()
        await eventually(lambda: bool(sm.sm_id), "<enabled/>")
        bob = client(server, clients, "bob@localhost/phone", "bob-secret")
        await bob.connect()

        bob.xmpp.send_message(mto="alice@localhost/desk", mbody="before", mtype="chat")
        assert (await alice.next_message())["body"] == "before"

        relay.drop()
        await asyncio.wait_for(alice.disconnected.wait(), TIMEOUT_SECONDS)
        await eventually(lambda: server.resumptions.detached_count == 1, "the session to be detached")
        assert server.router.is_bound(JID.parse("alice@localhost/desk"))  # still there for bob
        for body in ("while away 1", "while away 2"):
            bob.xmpp.send_message(mto="alice@localhost/desk", mbody=body, mtype="chat")
        await asyncio.sleep(0.1)

        alice.disconnected.clear()
        alice.xmpp.connect(host="127.0.0.1", port=relay.port)
        await asyncio.wait_for(resumed.wait(), TIMEOUT_SECONDS)
        bob.xmpp.send_message(mto="alice@localhost/desk", mbody="after", mtype="chat")
        got = [(await alice.next_message())["body"] for _ in range(3)]
        assert got == ["while away 1", "while away 2", "after"]  # "before" is not sent twice
        await asyncio.sleep(0.1)
        assert bodies(alice.messages) == []
        assert server.resumptions.detached_count == 0
    finally:
        await relay.stop()


class WsClient:
    """A raw RFC 7395 client: one element per frame."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def frame(self) -> etree._Element:
        message = await self.ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return etree.fromstring(message.data.encode())

    async def login(self, resource: str) -> None:
        await self.ws.send_str(OPEN)
        await self.frame()
        await self.frame()
        token = base64.b64encode(b"\0alice\0alice-secret").decode()
        await self.ws.send_str(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        assert etree.QName(await self.frame()).localname == "success"
        await self.ws.send_str(OPEN)
        await self.frame()
        features = await self.frame()
        assert features.find(f"{{{SM}}}sm") is not None
        await self.ws.send_str("<iq xmlns='jabber:client' type='set' id='b'><bind "
                               f"xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")
        await self.frame()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def ws_url(server: Server) -> str:
    assert server.http is not None
    return f"ws://127.0.0.1:{server.http.port}/xmpp-websocket"


def bosh_url(server: Server) -> str:
    assert server.http is not None
    return f"http://127.0.0.1:{server.http.port}/http-bind"


async def bosh_authenticated(http: aiohttp.ClientSession, server: Server) -> BoshClient:
    bosh = BoshClient(http, bosh_url(server))
    await bosh.create()
    token = base64.b64encode(b"\0alice\0alice-secret").decode()
    await bosh.post(bosh.body(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"))
    restarted = await bosh.post(bosh.body(**{"to": "localhost", "xmpp:restart": "true"}))
    # Not advertised over BOSH (StanzaJS would hang, see Transport), yet <enable/> and <resume/> work there.
    assert restarted.find(f".//{{{SM}}}sm") is None
    return bosh


async def test_websocket_session_resumed_over_bosh_then_over_c2s(server: Server, clients: list[XmppClient],
                                                                 http: aiohttp.ClientSession) -> None:
    bob = client(server, clients, "bob@localhost/phone", "bob-secret")
    await bob.connect()
    async with http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
        page = WsClient(ws)
        await page.login("web")
        await ws.send_str(f"<enable xmlns='{SM}' resume='true'/>")
        enabled = await page.frame()
        assert enabled.get("resume") == "true" and enabled.get("max") == "300"
        previd = enabled.get("id")
        bob.xmpp.send_message(mto="alice@localhost/web", mbody="over websocket", mtype="chat")
        assert (await page.frame()).findtext("{jabber:client}body") == "over websocket"
    # The WebSocket is gone without a <close/> (a blocked network): the session waits.
    await eventually(lambda: server.resumptions.detached_count == 1, "the WebSocket session to be detached")
    bob.xmpp.send_message(mto="alice@localhost/web", mbody="while away", mtype="chat")
    await asyncio.sleep(0.1)

    # The page falls back to BOSH and resumes: it had handled one stanza.
    bosh = await bosh_authenticated(http, server)
    answer = await bosh.post(bosh.body(f"<resume xmlns='{SM}' previd='{previd}' h='1'/>"))
    resumed, resent, request = list(answer)
    assert (etree.QName(resumed).localname, resumed.get("h")) == ("resumed", "0")
    assert resent.findtext("{jabber:client}body") == "while away"
    assert etree.QName(request).localname == "r"
    bosh.start_polling()
    bob.xmpp.send_message(mto="alice@localhost/web", mbody="over bosh", mtype="chat")
    assert (await bosh.next("message")).findtext("{jabber:client}body") == "over bosh"

    # Now a desktop client resumes the same session over c2s while the BOSH session still runs: the BOSH
    # session is replaced (conflict) and the c2s stream gets everything not acknowledged.
    desk = client(server, clients, "alice@localhost/web", "alice-secret", plugins=("xep_0198",))
    sm = desk.xmpp.plugin["xep_0198"]
    sm.sm_id, sm.handled = previd, 2  # as if this client had been the page: it handled two stanzas
    resumed_event = asyncio.Event()
    desk.xmpp.add_event_handler("session_resumed", lambda _event: resumed_event.set())
    desk.xmpp.connect(host="127.0.0.1", port=server.c2s.port)
    await asyncio.wait_for(resumed_event.wait(), TIMEOUT_SECONDS)
    terminate = await bosh.next("error")
    assert terminate.find("{urn:ietf:params:xml:ns:xmpp-streams}conflict") is not None
    assert (await desk.next_message())["body"] == "over bosh"
    bob.xmpp.send_message(mto="alice@localhost/web", mbody="over c2s", mtype="chat")
    assert (await desk.next_message())["body"] == "over c2s"
    assert server.router.is_bound(ALICE_WEB)
    await bosh.close()


async def test_resumption_with_another_accounts_id_is_item_not_found(server: Server,
                                                                     http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
        page = WsClient(ws)
        await page.login("web")
        await ws.send_str(f"<enable xmlns='{SM}' resume='true'/>")
        previd = (await page.frame()).get("id")
        async with http.ws_connect(ws_url(server), protocols=("xmpp",)) as other:
            await other.send_str(OPEN)
            mallory = WsClient(other)
            await mallory.frame()
            await mallory.frame()
            token = base64.b64encode(b"\0bob\0bob-secret").decode()
            await other.send_str(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
            await mallory.frame()
            await other.send_str(OPEN)
            await mallory.frame()
            await mallory.frame()
            await other.send_str(f"<resume xmlns='{SM}' previd='{previd}' h='0'/>")
            failed = await mallory.frame()
            assert etree.QName(failed).localname == "failed"
            assert failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
        # Alice's stream is untouched.
        await ws.send_str(f"<r xmlns='{SM}'/>")
        assert (await page.frame()).get("h") == "0"


async def test_expiry_delivers_unacked_messages_to_another_resource_and_bounces_iqs(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    clients: list[XmppClient] = []
    async with running_server(tmp_path, {"stream_management.resume_seconds": 0.5}) as server:
        phone = client(server, clients, "alice@localhost/phone", "alice-secret")
        await phone.connect()
        phone.xmpp.send_presence()
        bob = client(server, clients, "bob@localhost/laptop", "bob-secret")
        await bob.connect()
        async with http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
            page = WsClient(ws)
            await page.login("web")
            await ws.send_str(f"<enable xmlns='{SM}' resume='true'/>")
            assert (await page.frame()).get("max") == "1"  # 0.5 s: whole seconds on the wire, rounded up
        await eventually(lambda: server.resumptions.detached_count == 1, "the session to be detached")
        bob.xmpp.send_message(mto="alice@localhost/web", mbody="did you see this?", mtype="chat")
        version = bob.xmpp.plugin["xep_0030"].get_info(jid="alice@localhost/web", timeout=TIMEOUT_SECONDS)
        late = await phone.next_message()
        assert late["body"] == "did you see this?"
        assert late["delay"]["stamp"] is not None
        with pytest.raises(IqError) as error:
            await version
        assert error.value.iq["error"]["condition"] == "service-unavailable"
        assert not server.router.is_bound(ALICE_WEB)
        for made in clients:
            await made.close()


async def test_a_bosh_terminate_ends_a_resumable_session_for_good(server: Server,
                                                                  http: aiohttp.ClientSession) -> None:
    """XEP-0124 §13 terminate is the client saying goodbye, not a lost connection: nothing waits for a resume."""
    bosh = await bosh_authenticated(http, server)
    bound = await bosh.post(bosh.body("<iq xmlns='jabber:client' type='set' id='b'>"
                                      "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind>"
                                      "</iq>"))
    assert bound.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid") is not None
    enabled = await bosh.post(bosh.body(f"<enable xmlns='{SM}' resume='true'/>"))
    previd = enabled.find(f"{{{SM}}}enabled").get("id")  # type: ignore[union-attr]
    await bosh.post(bosh.body("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate"))
    await eventually(lambda: not server.router.is_bound(ALICE_WEB), "alice/web unbound after terminate")
    again = await bosh_authenticated(http, server)
    answer = await again.post(again.body(f"<resume xmlns='{SM}' previd='{previd}' h='0'/>"))
    failed = answer.find(f"{{{SM}}}failed")
    assert failed is not None and failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None


# --- rooms across a resumption (XEP-0198 §5 with XEP-0045) -------------------------------------------------
# A detached session keeps its room occupancy: while Alice's connection is gone, others keep talking and join,
# nobody sees her leave and her nick stays hers; on resumption she gets what the room sent meanwhile and
# posts as before. Only when the resumption time runs out does the room see her go. Alice's side runs on each
# transport whose connection can die under her: c2s (slixmpp's xep_0198 through a relay), WebSocket (raw
# frames through a relay) and BOSH (raw bodies; the session dies of inactivity when she stops polling).

MUC = "http://jabber.org/protocol/muc"
ROOM = "resume-night@conference.localhost"
Element = etree._Element
ROOM_TRANSPORTS = ("c2s", "websocket", "bosh")


def local(element: Element) -> str:
    return etree.QName(element).localname


def from_room(nick: str, kind: str, type_: str | None = None) -> Callable[[Element], bool]:
    """Matches a stanza of `kind` from the occupant ROOM/nick (of `type_`, when given)."""
    return lambda e: (local(e) == kind and e.get("from") == f"{ROOM}/{nick}"
                      and (type_ is None or e.get("type") == type_))


class RoomAlice:
    """Alice as the room tests drive her. On a raw transport she counts the stanzas she handles (h), answers
    the server's <r/> and resumes on a fresh connection; subclasses say how to connect and authenticate, send,
    receive and lose the connection."""

    def __init__(self, *, resumable: bool) -> None:
        self.resumable = resumable  # False: no <enable/>, as a client without XEP-0198
        self.h = 0
        self.counting = False
        self.previd: str | None = None
        self.backlog: list[Element] = []

    async def authenticated(self) -> None:
        """A new connection, SASL PLAIN as alice, the stream restarted: ready to bind or resume."""
        raise NotImplementedError

    async def send(self, xml: str) -> None:
        raise NotImplementedError

    async def receive(self) -> list[Element]:
        raise NotImplementedError

    async def lose_connection(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def acknowledge(self, answer: str) -> None:
        await self.send(answer)

    async def start(self) -> None:
        await self.authenticated()
        await self.send("<iq xmlns='jabber:client' type='set' id='b'><bind "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>")
        await self.next(lambda e: local(e) == "iq" and e.get("id") == "b")
        if not self.resumable:
            return
        await self.send(f"<enable xmlns='{SM}' resume='true'/>")
        self.previd = (await self.next(lambda e: local(e) == "enabled")).get("id")
        self.counting = True

    async def join(self, nick: str) -> None:
        await self.send(f"<presence xmlns='jabber:client' to='{ROOM}/{nick}'><x xmlns='{MUC}'>"
                        "<history maxstanzas='0'/></x></presence>")
        await self.next(lambda e: local(e) == "message" and e.find("{jabber:client}subject") is not None)

    async def say(self, text: str) -> None:
        await self.send(f"<message xmlns='jabber:client' to='{ROOM}' type='groupchat'><body>{text}</body></message>")

    async def resume(self) -> None:
        await self.authenticated()
        await self.send(f"<resume xmlns='{SM}' previd='{self.previd}' h='{self.h}'/>")
        answer = await self.next(lambda e: local(e) in ("resumed", "failed"))
        assert local(answer) == "resumed", etree.tostring(answer)

    async def next(self, where: Callable[[Element], bool]) -> Element:
        """The next element that matches; stanzas passed over on the way count as handled."""
        while True:
            while not self.backlog:
                self.backlog = await self.receive()
            element = self.backlog.pop(0)
            if etree.QName(element).namespace == SM and local(element) == "r":
                await self.acknowledge(f"<a xmlns='{SM}' h='{self.h}'/>")
                continue
            if self.counting and local(element) in ("message", "presence", "iq"):
                self.h += 1
            if where(element):
                return element


class WebSocketAlice(RoomAlice):
    def __init__(self, http: aiohttp.ClientSession, relay: Relay, *, resumable: bool) -> None:
        super().__init__(resumable=resumable)
        self.http, self.relay = http, relay
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def authenticated(self) -> None:
        self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{self.relay.port}/xmpp-websocket", protocols=("xmpp",))
        page = WsClient(self.ws)
        await self.send(OPEN)
        await page.frame()
        await page.frame()
        token = base64.b64encode(b"\0alice\0alice-secret").decode()
        await self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        assert local(await page.frame()) == "success"
        await self.send(OPEN)
        await page.frame()
        await page.frame()

    async def send(self, xml: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(xml)

    async def receive(self) -> list[Element]:
        assert self.ws is not None
        return [await WsClient(self.ws).frame()]

    async def lose_connection(self) -> None:
        self.relay.drop()  # no <close/>, no closing handshake: the network is gone

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


class BoshAlice(RoomAlice):
    def __init__(self, http: aiohttp.ClientSession, server: Server, *, resumable: bool) -> None:
        super().__init__(resumable=resumable)
        self.http, self.server = http, server
        self.bosh: BoshClient | None = None
        self.answer = ""  # an <a/> goes with the next request: alone it would be held up to `wait`

    async def authenticated(self) -> None:
        self.answer = ""  # a new stream: nothing to acknowledge there yet
        self.bosh = await bosh_authenticated(self.http, self.server)

    async def acknowledge(self, answer: str) -> None:
        self.answer = answer

    async def send(self, xml: str) -> None:
        assert self.bosh is not None
        payload, self.answer = self.answer + xml, ""
        self.backlog.extend(await self.bosh.post(self.bosh.body(payload)))

    async def receive(self) -> list[Element]:
        assert self.bosh is not None
        payload, self.answer = self.answer, ""
        return list(await self.bosh.post(self.bosh.body(payload)))  # held up to `wait` when there is nothing

    async def lose_connection(self) -> None:
        pass  # she stops polling: the BOSH session ends after `bosh.inactivity_seconds`, the stream waits

    async def close(self) -> None:
        pass


class SlixmppAlice(RoomAlice):
    """slixmpp's own xep_0198 does the counting, the acks and the resumption; stanzas are read raw."""

    def __init__(self, server: Server, relay: Relay, clients: list[XmppClient], *, resumable: bool) -> None:
        super().__init__(resumable=resumable)
        self.client = client(server, clients, "alice@localhost/desk", "alice-secret", port=relay.port,
                             plugins=("xep_0198",) if resumable else ())
        self.relay = relay
        self.received: asyncio.Queue[Element] = asyncio.Queue()
        for kind in ("message", "presence"):
            self.client.xmpp.register_handler(Callback(
                f"raw {kind}", MatchXPath(f"{{jabber:client}}{kind}"),
                lambda stanza: self.received.put_nowait(etree.fromstring(ElementTree.tostring(stanza.xml)))))
        self.resumed = asyncio.Event()
        self.client.xmpp.add_event_handler("session_resumed", lambda _event: self.resumed.set())

    async def start(self) -> None:
        await self.client.connect()
        if self.resumable:
            sm = self.client.xmpp.plugin["xep_0198"]
            await eventually(lambda: bool(sm.sm_id), "<enabled/>")

    async def send(self, xml: str) -> None:
        # Through slixmpp's stanza objects, so that its xep_0198 counts them.
        element = ElementTree.fromstring(xml)
        make = self.client.xmpp.Presence if element.tag.endswith("}presence") else self.client.xmpp.Message
        make(xml=element).send()

    async def receive(self) -> list[Element]:
        return [await asyncio.wait_for(self.received.get(), TIMEOUT_SECONDS)]

    async def lose_connection(self) -> None:
        self.relay.drop()
        await asyncio.wait_for(self.client.disconnected.wait(), TIMEOUT_SECONDS)

    async def resume(self) -> None:
        self.client.disconnected.clear()
        self.client.xmpp.connect(host="127.0.0.1", port=self.relay.port)
        await asyncio.wait_for(self.resumed.wait(), TIMEOUT_SECONDS)

    async def close(self) -> None:
        pass  # with the other clients


@contextlib.asynccontextmanager
async def room_scene(tmp_path: Path, transport: str, overrides: dict[str, object], *, resumable: bool = True
                     ) -> AsyncIterator[tuple[Server, RoomAlice, XmppClient, list[XmppClient]]]:
    """A server, Bob's room (created by Bob, over c2s) and Alice logged in on `transport`, not in it yet."""
    clients: list[XmppClient] = []
    async with running_server(tmp_path, {"bosh.inactivity_seconds": 1.0, **overrides},
                              {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}) as server, \
            aiohttp.ClientSession() as http:
        assert server.http is not None
        relay = Relay("127.0.0.1", server.c2s.port if transport == "c2s" else server.http.port)
        await relay.start()
        alice: RoomAlice = {"c2s": lambda: SlixmppAlice(server, relay, clients, resumable=resumable),
                            "websocket": lambda: WebSocketAlice(http, relay, resumable=resumable),
                            "bosh": lambda: BoshAlice(http, server, resumable=resumable)}[transport]()
        try:
            bob = client(server, clients, "bob@localhost/phone", "bob-secret", plugins=("xep_0045", "xep_0004"))
            await bob.connect()
            muc = bob.xmpp.plugin["xep_0045"]
            await muc.join_muc_wait(ROOM, "Bob", maxstanzas=0, timeout=TIMEOUT_SECONDS)
            await muc.set_room_config(ROOM, bob.xmpp.plugin["xep_0004"].make_form(ftype="submit"))
            await alice.start()
            yield server, alice, bob, clients
        finally:
            await alice.close()
            await asyncio.gather(*(made.close() for made in clients), return_exceptions=True)
            await relay.stop()


def saw_leave(xmpp: XmppClient, nick: str) -> bool:
    """Whether an unavailable presence of ROOM/nick is among what `xmpp` received so far (all taken)."""
    seen = False
    while not xmpp.presences.empty():
        presence = xmpp.presences.get_nowait()
        seen |= str(presence["from"]) == f"{ROOM}/{nick}" and presence["type"] == "unavailable"
    return seen


@pytest.mark.parametrize("transport", ROOM_TRANSPORTS)
async def test_room_occupancy_survives_a_resumption(tmp_path: Path, transport: str) -> None:
    async with room_scene(tmp_path, transport, {}) as (server, alice, bob, clients):
        await alice.join("Alice")
        await bob.presence_from(ROOM)  # Alice's join
        await alice.lose_connection()
        await eventually(lambda: server.resumptions.detached_count == 1, "Alice's session to be detached")

        # While she is away: Bob talks, Carol cannot take her nick, and joins under her own and finds her there.
        bob.xmpp.send_message(mto=ROOM, mbody="while you were away", mtype="groupchat")
        carol = client(server, clients, "carol@localhost/tab", "carol-secret", plugins=("xep_0045",))
        await carol.connect()
        carol_muc = carol.xmpp.plugin["xep_0045"]
        with pytest.raises(PresenceError) as taken:
            await carol_muc.join_muc_wait(ROOM, "Alice", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        assert taken.value.condition == "conflict"  # XEP-0045 §7.2.9
        _presence, _subject, occupants, _history = await carol_muc.join_muc_wait(
            ROOM, "Carol", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        assert {str(p["from"]) for p in occupants} == {f"{ROOM}/Alice", f"{ROOM}/Bob", f"{ROOM}/Carol"}

        await alice.resume()
        away = await alice.next(from_room("Bob", "message"))
        assert away.findtext("{jabber:client}body") == "while you were away"
        # One stanza for the whole room, kept in her queue while she was away: written with her own address.
        assert away.get("to") == "alice@localhost/desk", etree.tostring(away)
        carol_join = await alice.next(from_room("Carol", "presence"))
        assert carol_join.get("type") is None
        await alice.say("back")
        back = await alice.next(from_room("Alice", "message"))
        assert back.findtext("{jabber:client}body") == "back" and back.get("to") == "alice@localhost/desk"
        heard = await bob.next_message()
        while heard["body"] != "back":
            heard = await bob.next_message()
        assert str(heard["from"]) == f"{ROOM}/Alice"
        assert not saw_leave(bob, "Alice") and not saw_leave(carol, "Alice")  # nobody saw her go and come back
        assert server.resumptions.detached_count == 0


@pytest.mark.parametrize("transport", ROOM_TRANSPORTS)
async def test_room_sees_a_session_leave_when_its_resumption_time_runs_out(tmp_path: Path, transport: str) -> None:
    async with room_scene(tmp_path, transport, {"stream_management.resume_seconds": 1.0}) as (server, alice, bob,
                                                                                              _clients):
        await alice.join("Alice")
        await bob.presence_from(ROOM)
        await alice.lose_connection()
        await eventually(lambda: server.resumptions.detached_count == 1, "Alice's session to be detached")
        detached_at = asyncio.get_running_loop().time()
        gone = await bob.presence_from(ROOM, "unavailable")
        assert str(gone["from"]) == f"{ROOM}/Alice"
        assert asyncio.get_running_loop().time() - detached_at > 0.5  # when the time ran out, not at the drop
        assert server.resumptions.detached_count == 0


@pytest.mark.parametrize("transport", ROOM_TRANSPORTS)
async def test_room_sees_a_session_without_resumption_leave_when_its_connection_dies(tmp_path: Path,
                                                                                    transport: str) -> None:
    """The contrast: without <enable/> nothing waits, the session ends with its connection (BOSH: after
    `bosh.inactivity_seconds`) and the room is told at once."""
    async with room_scene(tmp_path, transport, {}, resumable=False) as (server, alice, bob, _clients):
        await alice.join("Alice")
        await bob.presence_from(ROOM)
        await alice.lose_connection()
        gone = await bob.presence_from(ROOM, "unavailable")
        assert str(gone["from"]) == f"{ROOM}/Alice"
        assert not server.router.is_bound(JID.parse("alice@localhost/desk"))
        assert server.resumptions.detached_count == 0
