"""XEP-0077 in-band registration over real sockets: slixmpp's xep_0077 plugin over c2s (STARTTLS), and the raw
WebSocket client, including the per-address limit behind a trusted proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lxml import etree

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from boshcm.xmpp.mam.store import Filter as ArchiveFilter
from tests.integration.quiz_players import wait_until
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.security.transports import WebSocketRawClient, until_stream_error
from tests.servers import running_server

NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def slixmpp_client(server: Server, clients: list[XmppClient], jid: str, password: str) -> XmppClient:
    client = XmppClient(jid, password, port=server.c2s.port, ca_cert=server.config.data_path / SELF_SIGNED_CERT,
                        plugins=("xep_0004", "xep_0066", "xep_0077"))
    clients.append(client)
    return client


async def test_slixmpp_registers_over_c2s_then_logs_in_changes_password_and_removes(
        server: Server, clients: list[XmppClient]) -> None:
    client = slixmpp_client(server, clients, "newbie@localhost", "newbie-secret")
    registered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def register(form: Any) -> None:
        # slixmpp's documented pattern (examples/register_account.py): answer the form with our credentials.
        assert form["register"]["username"] is not None
        reply = client.xmpp.Iq()
        reply["type"] = "set"
        reply["register"]["username"] = client.xmpp.boundjid.user
        reply["register"]["password"] = client.xmpp.password
        registered.set_result(await reply.send())

    client.xmpp.add_event_handler("register", register)
    await client.connect()  # the plugin registers before SASL, then slixmpp logs in with the new account
    assert (await asyncio.wait_for(registered, TIMEOUT_SECONDS))["type"] == "result"
    assert server.accounts.verify_password("newbie", "newbie-secret")
    assert str(client.xmpp.boundjid.bare) == "newbie@localhost"

    await client.xmpp.plugin["xep_0077"].change_password("a-new-secret", timeout=TIMEOUT_SECONDS)
    assert server.accounts.verify_password("newbie", "a-new-secret")
    await client.close()

    again = slixmpp_client(server, clients, "newbie@localhost", "a-new-secret")
    await again.connect()
    await again.xmpp.plugin["xep_0077"].cancel_registration(timeout=TIMEOUT_SECONDS)
    await asyncio.wait_for(again.disconnected.wait(), TIMEOUT_SECONDS)  # XEP-0077 §3.2: the stream ends
    assert not server.accounts.exists("newbie")


async def register_over_websocket(server: Server, username: str, password: str,
                                  headers: dict[str, str] | None = None) -> tuple[str, str | None, str | None]:
    """(iq type, error condition, error type) of one registration on a fresh WebSocket stream."""
    client = WebSocketRawClient(server, headers=headers)
    await client.connect()
    try:
        features = await client.features()
        assert features.find(f"{{{NS_REGISTER_FEATURE}}}register") is not None
        await client.send_raw(f"<iq xmlns='jabber:client' type='set' id='reg'><query xmlns='{NS_REGISTER}'>"
                              f"<username>{username}</username><password>{password}</password></query></iq>"
                              .encode())
        reply = await client.next_element()
        assert reply is not None and reply.get("id") == "reg"
        error = reply.find("{jabber:client}error")
        if error is None:
            return reply.get("type", ""), None, None
        condition = next(child.tag.split("}")[1] for child in error if child.tag.startswith(f"{{{NS_STANZAS}}}")
                         and not child.tag.endswith("}text"))
        return reply.get("type", ""), condition, error.get("type")
    finally:
        await client.close()


async def test_websocket_registration_then_login_and_conflict_for_a_taken_name(server: Server) -> None:
    assert await register_over_websocket(server, "wanda", "websocket-pass") == ("result", None, None)
    client = WebSocketRawClient(server)
    try:
        jid = await client.login("wanda", "websocket-pass")
        assert jid.startswith("wanda@localhost/")
    finally:
        await client.close()
    assert await register_over_websocket(server, "Alice", "whatever-123") == ("error", "conflict", "cancel")
    assert (await register_over_websocket(server, "no@good", "whatever-123"))[1] == "not-acceptable"


async def test_per_address_limit_counts_the_forwarded_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    overrides = {"http.trusted_proxies": ["127.0.0.1/32"], "registration.per_address_per_hour": 2}
    async with running_server(tmp_path, overrides) as server:
        first = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        second = {"X-Forwarded-For": "203.0.113.10", "X-Forwarded-Proto": "https"}
        assert (await register_over_websocket(server, "one", "password-1", first))[0] == "result"
        assert (await register_over_websocket(server, "two", "password-2", first))[0] == "result"
        assert await register_over_websocket(server, "three", "password-3", first) == (
            "error", "policy-violation", "wait")
        assert (await register_over_websocket(server, "three", "password-3", second))[0] == "result"
        assert not server.accounts.exists("four")


async def test_disabled_registration_is_not_offered(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"registration.enabled": False}) as server:
        client = WebSocketRawClient(server)
        await client.connect()
        try:
            features = await client.features()
            assert features.find(f"{{{NS_REGISTER_FEATURE}}}register") is None
        finally:
            await client.close()


async def test_removing_an_account_in_band_deletes_what_it_kept(server: Server) -> None:
    """XEP-0077 §3.2 (and the page's "log out and forget me"): roster, vCard, private storage, blocklist, PEP and
    the message archive go with the account; the same name registered again starts empty."""
    alice = WebSocketRawClient(server)
    await alice.login("alice", "alice-secret")
    setups = [
        "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query>",
        "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>",
        "<query xmlns='jabber:iq:private'><notes xmlns='urn:example:notes'>secret</notes></query>",
        "<block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block>",
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='http://jabber.org/protocol/nick'>"
        "<item id='current'><nick xmlns='http://jabber.org/protocol/nick'>Al</nick></item></publish></pubsub>",
    ]
    for index, payload in enumerate(setups):
        await alice.send_raw(f"<iq xmlns='jabber:client' type='set' id='s{index}'>{payload}</iq>".encode())
    await alice.send_raw(b"<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hi</body></message>")
    answered = 0
    async with asyncio.timeout(TIMEOUT_SECONDS):
        while answered < len(setups):
            received = await alice.next_element()
            assert received is not None
            if received.get("id", "").startswith("s"):
                assert received.get("type") == "result", etree.tostring(received)
                answered += 1
    assert server.vcard_store is not None and server.private_store is not None
    assert server.blocklists is not None and server.pep_store is not None and server.archive_store is not None
    assert server.vcard_store.vcard("alice") is not None  # the setups were stored: the deletions below mean something

    await alice.send_raw(b"<iq xmlns='jabber:client' type='set' id='rm'>"
                         b"<query xmlns='jabber:iq:register'><remove/></query></iq>")
    async with asyncio.timeout(TIMEOUT_SECONDS):
        while (received := await alice.next_element()) is not None:
            pass  # the result, then the stream ends (XEP-0077 §3.2)
    await alice.close()
    await wait_until(lambda: server.vcard_store.vcard("alice") is None)  # type: ignore[union-attr]
    assert server.store.roster_items("alice") == []
    assert server.private_store.fragment("alice", "{urn:example:notes}notes") is None
    assert server.blocklists.blocklist("alice") == []
    assert server.pep_store.items("alice", "http://jabber.org/protocol/nick") == []
    assert server.archive_store.count("alice@localhost", ArchiveFilter()) == 0

    server.accounts.add("alice", "a-new-secret")
    again = WebSocketRawClient(server)
    await again.login("alice", "a-new-secret")
    await again.send_raw(b"<iq xmlns='jabber:client' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
    roster = await again.next_element()
    assert roster is not None and len(roster[0]) == 0, etree.tostring(roster)
    await again.close()


async def test_the_other_sessions_of_a_removed_account_end_with_not_authorized(server: Server) -> None:
    phone, desk = WebSocketRawClient(server), WebSocketRawClient(server)
    await phone.login("alice", "alice-secret")
    await desk.login("alice", "alice-secret")
    await phone.send_raw(b"<iq xmlns='jabber:client' type='set' id='rm'>"
                         b"<query xmlns='jabber:iq:register'><remove/></query></iq>")
    assert await until_stream_error(desk) == "not-authorized"
    await phone.close()
    await desk.close()
