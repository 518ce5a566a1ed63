"""XEP-0077 in-band registration over real sockets: slixmpp's xep_0077 plugin over c2s (STARTTLS), and the raw
WebSocket client, including the per-address limit behind a trusted proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.security.transports import WebSocketRawClient
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
