"""Guests (SASL ANONYMOUS) resume too, over real sockets: slixmpp's xep_0198 through a dropping relay on c2s,
a raw RFC 7395 client on WebSocket; their rooms and messages when the window runs out; archive byte caps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from boshcm.xmpp.mam import Filter
from tests.integration.relay import Relay
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.security.transports import NS_BIND, NS_SASL, WebSocketRawClient
from tests.servers import running_server

SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ROOM = "guests@conference.localhost"
Element = etree._Element


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(TIMEOUT_SECONDS / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def make_client(server: Server, clients: list[XmppClient], jid: str, password: str, *, port: int | None = None,
                plugins: tuple[str, ...] = (), mechanism: str | None = None) -> XmppClient:
    made = XmppClient(jid, password, port=port or server.c2s.port, plugins=plugins, mechanism=mechanism,
                      ca_cert=server.config.data_path / SELF_SIGNED_CERT)
    clients.append(made)
    return made


async def close_all(clients: list[XmppClient]) -> None:
    await asyncio.gather(*(made.close() for made in clients), return_exceptions=True)


class WsGuest:
    """A raw WebSocket client that logs in anonymously and then speaks XEP-0198 by hand."""

    def __init__(self, server: Server) -> None:
        self.raw = WebSocketRawClient(server)
        self.handled = 0  # stanzas read since <enabled/>: the 'h' of a later <resume/>
        self._counting = False

    async def anonymous_login(self) -> None:
        await self.raw.connect()
        mechanisms = await self.raw.features()
        assert "ANONYMOUS" in [m.text for m in mechanisms.iter(f"{{{NS_SASL}}}mechanism")]
        await self.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
        assert etree.QName(await self.next()).localname == "success"
        await self.raw.open_stream()
        await self.raw.features()

    async def online(self) -> tuple[str, str]:
        """Logged in, bound, resumable, available: (its JID, the resumption id)."""
        await self.anonymous_login()
        await self.send(f"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
        jid = (await self.next()).findtext(f".//{{{NS_BIND}}}jid")
        assert jid
        await self.send(f"<enable xmlns='{SM}' resume='true'/>")
        enabled = await self.next()
        assert (etree.QName(enabled).localname, enabled.get("resume")) == ("enabled", "true"), etree.tostring(enabled)
        self._counting = True
        previd = enabled.get("id")
        assert previd
        await self.send("<presence xmlns='jabber:client'/>")
        await self.next()  # its own presence
        return jid, previd

    async def send(self, text: str) -> None:
        await self.raw.send_raw(text.encode())

    async def next(self) -> Element:
        received = await self.raw.next_element()
        assert received is not None, "the stream ended"
        if self._counting and received.tag.startswith("{jabber:client}"):
            self.handled += 1
        return received

    async def drain(self) -> None:
        """Read everything sent so far (an <r/> is answered after it)."""
        await self.send(f"<r xmlns='{SM}'/>")
        while etree.QName(await self.next()).localname != "a":
            pass

    async def next_message(self) -> Element:
        while (received := await self.next()).tag != "{jabber:client}message" or \
                received.find("{jabber:client}body") is None:
            pass
        return received

    async def vanish(self) -> None:
        """The network goes: the socket closes without an XMPP <close/>."""
        await self.raw.close()


async def test_slixmpp_guest_resumes_over_c2s_through_a_dropped_connection(tmp_path: Path) -> None:
    clients: list[XmppClient] = []
    async with running_server(tmp_path, {"c2s.anonymous": True}) as server:
        relay = Relay("127.0.0.1", server.c2s.port)
        await relay.start()
        try:
            guest = make_client(server, clients, "localhost", "", port=relay.port, plugins=("xep_0198",),
                                mechanism="ANONYMOUS")
            resumed = asyncio.Event()
            guest.xmpp.add_event_handler("session_resumed", lambda _event: resumed.set())
            sm = guest.xmpp.plugin["xep_0198"]
            sm.window = 1
            await guest.connect()
            await eventually(lambda: bool(sm.sm_id), "<enabled/> with an id for the guest")
            name = JID.parse(str(guest.xmpp.boundjid))
            assert name.local in server.users.anonymous
            bob = make_client(server, clients, "bob@localhost/phone", "bob-secret")
            await bob.connect()
            bob.xmpp.send_message(mto=str(name), mbody="before", mtype="chat")
            assert (await guest.next_message())["body"] == "before"

            relay.drop()
            await asyncio.wait_for(guest.disconnected.wait(), TIMEOUT_SECONDS)
            await eventually(lambda: server.resumptions.detached_count == 1, "the guest's session to be detached")
            assert server.router.is_bound(name)
            bob.xmpp.send_message(mto=str(name), mbody="while away", mtype="chat")
            await asyncio.sleep(0.1)

            guest.disconnected.clear()
            guest.xmpp.connect(host="127.0.0.1", port=relay.port)  # a new anonymous login, then <resume/>
            await asyncio.wait_for(resumed.wait(), TIMEOUT_SECONDS)
            assert (await guest.next_message())["body"] == "while away"
            bob.xmpp.send_message(mto=str(name), mbody="after", mtype="chat")
            assert (await guest.next_message())["body"] == "after"
            # Same JID as before; the name the second login was given has gone again.
            assert server.users.anonymous == {name.local} and server.resumptions.detached_count == 0
        finally:
            await close_all(clients)
            await relay.stop()


async def test_websocket_guest_keeps_its_room_while_away_and_resumes(tmp_path: Path) -> None:
    clients: list[XmppClient] = []
    async with running_server(tmp_path) as server:
        try:
            bob = make_client(server, clients, "bob@localhost/phone", "bob-secret", plugins=("xep_0045", "xep_0004"))
            await bob.connect()
            muc = bob.xmpp.plugin["xep_0045"]
            await muc.join_muc_wait(ROOM, "Bob", maxstanzas=0, timeout=TIMEOUT_SECONDS)
            await muc.set_room_config(ROOM, bob.xmpp.plugin["xep_0004"].make_form(ftype="submit"))

            guest = WsGuest(server)
            jid, previd = await guest.online()
            await guest.send(f"<presence xmlns='jabber:client' to='{ROOM}/Guest'>"
                             "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
            await bob.presence_from(ROOM)  # the guest joined
            bob.xmpp.send_message(mto=jid, mbody="hello guest", mtype="chat")
            live = await guest.next_message()
            # A guest keeps no archive: no XEP-0359 id that would name an entry in one.
            assert live.find("{urn:xmpp:sid:0}stanza-id") is None
            await guest.drain()

            await guest.vanish()
            await eventually(lambda: server.resumptions.detached_count == 1, "the guest's session to be detached")
            bob.xmpp.send_message(mto=jid, mbody="while away", mtype="chat")
            await asyncio.sleep(0.2)

            again = WsGuest(server)
            await again.anonymous_login()
            assert len(server.users.anonymous) == 2  # its own throw-away name, for now
            await again.send(f"<resume xmlns='{SM}' previd='{previd}' h='{guest.handled}'/>")
            resumed = await again.next()
            assert etree.QName(resumed).localname == "resumed", etree.tostring(resumed)
            assert (await again.next_message()).findtext("{jabber:client}body") == "while away"
            assert server.users.anonymous == {JID.parse(jid).local}
            # The room never saw the guest leave.
            while not bob.presences.empty():
                assert bob.presences.get_nowait()["type"] != "unavailable"
            bob.xmpp.send_message(mto=ROOM, mbody="still here?", mtype="groupchat")
            assert (await again.next_message()).findtext("{jabber:client}body") == "still here?"
            await again.vanish()
        finally:
            await close_all(clients)


async def test_when_a_guests_window_runs_out_its_room_sees_it_leave_and_messages_bounce(tmp_path: Path) -> None:
    clients: list[XmppClient] = []
    async with running_server(tmp_path, {"stream_management.resume_seconds": 0.5}) as server:
        try:
            bob = make_client(server, clients, "bob@localhost/phone", "bob-secret", plugins=("xep_0045", "xep_0004"))
            await bob.connect()
            muc = bob.xmpp.plugin["xep_0045"]
            await muc.join_muc_wait(ROOM, "Bob", maxstanzas=0, timeout=TIMEOUT_SECONDS)
            await muc.set_room_config(ROOM, bob.xmpp.plugin["xep_0004"].make_form(ftype="submit"))
            guest = WsGuest(server)
            jid, _previd = await guest.online()
            await guest.send(f"<presence xmlns='jabber:client' to='{ROOM}/Guest'>"
                             "<x xmlns='http://jabber.org/protocol/muc'/></presence>")
            await bob.presence_from(ROOM)
            await guest.vanish()
            await eventually(lambda: server.resumptions.detached_count == 1, "the guest's session to be detached")
            bob.xmpp.send_message(mto=jid, mbody="are you there?", mtype="chat")

            left = await bob.presence_from(ROOM, "unavailable")
            assert left["from"].resource == "Guest"
            bounced = await bob.next_message(with_body=False)
            while bounced["type"] != "error":
                bounced = await bob.next_message(with_body=False)
            assert bounced["error"]["condition"] == "service-unavailable"
            assert bounced["body"] == "are you there?"
            assert server.users.anonymous == set() and not server.router.is_bound(JID.parse(jid))
            assert server.store.offline_messages(JID.parse(jid).local or "") == []
        finally:
            await close_all(clients)


async def test_an_account_archive_stays_within_its_byte_cap(tmp_path: Path) -> None:
    clients: list[XmppClient] = []
    cap = 4_000
    async with running_server(tmp_path, {"mam.max_bytes_per_account": cap}) as server:
        try:
            alice = make_client(server, clients, "alice@localhost/desk", "alice-secret")
            bob = make_client(server, clients, "bob@localhost/phone", "bob-secret")
            await alice.connect()
            await bob.connect()
            for number in range(40):
                bob.xmpp.send_message(mto="alice@localhost/desk", mbody=f"{number:03d} " + "x" * 200, mtype="chat")
            for _ in range(40):
                await alice.next_message()
            store = server.archive_store
            assert store is not None
            for archive in ("alice@localhost", "bob@localhost"):
                rows = store.page(archive, Filter(), after=None, before=None, limit=1000, newest_first=False)
                assert 0 < sum(len(row.stanza) for _seq, row in rows) <= cap
                # The newest survived, the oldest went.
                assert etree.fromstring(rows[-1][1].stanza).findtext("{jabber:client}body", "").startswith("039")
                assert len(rows) < 40
        finally:
            await close_all(clients)
