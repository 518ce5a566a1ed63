"""The embedded server over real TCP on loopback, exercised by real slixmpp clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient


def make_client(server: Server, clients: list[XmppClient], jid: str, password: str,
                **options: object) -> XmppClient:
    client = XmppClient(jid, password, port=server.c2s.port,
                        ca_cert=server.config.data_path / SELF_SIGNED_CERT, **options)  # type: ignore[arg-type]
    clients.append(client)
    return client


async def logged_in(server: Server, clients: list[XmppClient], jid: str, password: str) -> XmppClient:
    client = make_client(server, clients, jid, password)
    await client.connect()
    client.xmpp.send_presence()
    return client


async def test_two_users_log_in_with_starttls_and_scram_and_chat(server: Server,
                                                                 clients: list[XmppClient]) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")

    assert alice.xmpp.transport.get_extra_info("ssl_object") is not None
    assert alice.xmpp.plugin["feature_mechanisms"].mech.name == "SCRAM-SHA-256"
    assert str(alice.xmpp.boundjid) == "alice@localhost/desk"

    alice.xmpp.send_message(mto="bob@localhost", mbody="Hallo Bob, ready for the quiz?", mtype="chat")
    received = await bob.next_message()
    assert received["body"] == "Hallo Bob, ready for the quiz?"
    assert str(received["from"]) == "alice@localhost/desk"

    bob.xmpp.send_message(mto="alice@localhost/desk", mbody="Ja! ✓", mtype="chat")
    reply = await alice.next_message()
    assert reply["body"] == "Ja! ✓"
    assert str(reply["from"]) == "bob@localhost/phone"


async def test_mutual_subscription_shows_each_others_presence(server: Server,
                                                              clients: list[XmppClient]) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    # slixmpp auto-authorizes and auto-subscribes back by default: the full dance runs through the server.
    alice.xmpp.send_presence_subscription(pto="bob@localhost")
    await bob.presence_from("alice@localhost", "subscribe")
    await alice.presence_from("bob@localhost", "subscribed")
    seen_by_alice = await alice.presence_from("bob@localhost", "available")
    assert str(seen_by_alice["from"]) == "bob@localhost/phone"

    await bob.presence_from("alice@localhost", "available")
    roster = await alice.xmpp.get_roster()
    (item,) = roster["roster"]["items"].values()
    assert item["subscription"] == "both"
    bob.xmpp.send_presence(pstatus="thinking", pshow="away")
    update = await alice.presence_from("bob@localhost")
    while update["status"] != "thinking":
        update = await alice.presence_from("bob@localhost")
    assert update["show"] == "away"

    await bob.close()
    gone = await alice.presence_from("bob@localhost", "unavailable")
    assert str(gone["from"]) == "bob@localhost/phone"


async def test_client_pings_the_server(server: Server, clients: list[XmppClient]) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    round_trip = await alice.xmpp.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT_SECONDS)
    assert round_trip >= 0


async def test_message_to_offline_user_is_delivered_at_next_login(server: Server,
                                                                  clients: list[XmppClient]) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    alice.xmpp.send_message(mto="bob@localhost", mbody="Are you there?", mtype="chat")
    alice.xmpp.send_message(mto="bob@localhost", mbody="Game starts at eight.", mtype="normal")
    await alice.xmpp.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT_SECONDS)  # both were processed

    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    first, second = await bob.next_message(), await bob.next_message()
    assert [first["body"], second["body"]] == ["Are you there?", "Game starts at eight."]
    assert first["delay"]["stamp"] is not None
    assert str(first["from"]).startswith("alice@localhost")


async def test_wrong_password_is_refused(server: Server, clients: list[XmppClient]) -> None:
    intruder = make_client(server, clients, "alice@localhost/x", "not-the-password")
    await intruder.connect(expect_success=False)
    assert intruder.auth_failed.is_set()
    assert not intruder.session_started.is_set()


@pytest.mark.parametrize("bad_input", [
    "<message to='bob@localhost'><body>unclosed</message>",
    "<message to='bob@localhost'><body>" + "x" * 70_000 + "</body></message>",
    "<!DOCTYPE lol [<!ENTITY lol 'lol'>]>",
])
async def test_misbehaving_client_gets_a_stream_error_and_others_carry_on(
        server: Server, clients: list[XmppClient], bad_input: str) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")

    alice.xmpp.send_raw(bad_input)
    await asyncio.wait_for(alice.disconnected.wait(), TIMEOUT_SECONDS)
    assert alice.stream_errors and alice.stream_errors[0] in (
        "not-well-formed", "policy-violation", "restricted-xml")

    carol = await logged_in(server, clients, "alice@localhost/tablet", "alice-secret")
    carol.xmpp.send_message(mto="bob@localhost", mbody="still here", mtype="chat")
    assert (await bob.next_message())["body"] == "still here"
    assert await bob.xmpp.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT_SECONDS) >= 0


async def test_anonymous_guest_chats_while_online_and_disappears_after(tmp_path: Path) -> None:
    config = load_config(None, {"quizbot.enabled": False,
                                "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0",
                                "c2s.anonymous": True, "http.enabled": False})
    server = Server(config)
    server.accounts.add("alice", "alice-secret")
    await server.start()
    made: list[XmppClient] = []
    try:
        guest = make_client(server, made, "localhost", "", mechanism="ANONYMOUS")
        await guest.connect()
        guest.xmpp.send_presence()
        guest_jid = guest.xmpp.boundjid
        assert guest_jid.user.startswith("anon-")
        alice = await logged_in(server, made, "alice@localhost/desk", "alice-secret")
        alice.xmpp.send_message(mto=guest_jid.bare, mbody="welcome, guest", mtype="chat")
        assert (await guest.next_message())["body"] == "welcome, guest"
        await guest.close()
        alice.xmpp.send_message(mto=guest_jid.bare, mbody="still there?", mtype="chat")
        bounced = await alice.next_message(with_body=False)
        assert bounced["type"] == "error" and bounced["error"]["condition"] == "service-unavailable"
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        await server.stop()
