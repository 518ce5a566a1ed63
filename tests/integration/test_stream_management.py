"""XEP-0198 over real sockets: slixmpp's xep_0198 through a relay that drops, and resumption across transports."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from slixmpp.exceptions import IqError

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.bosh_client import BoshClient
from tests.integration.relay import Relay
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
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
    made = XmppClient(jid, password, port=port or server.c2s.port, plugins=plugins,
                      ca_cert=server.config.data_path / SELF_SIGNED_CERT)
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
