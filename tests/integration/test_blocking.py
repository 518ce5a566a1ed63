"""XEP-0191 blocking on the embedded server with real slixmpp clients (xep_0191), persisted across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID as SlixJID
from slixmpp.exceptions import IqError

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.servers import running_server


async def blocking_client(server: Server, clients: list[XmppClient], jid: str, password: str) -> XmppClient:
    client = XmppClient(jid, password, port=server.c2s.port, ca_cert=server.config.data_path / SELF_SIGNED_CERT,
                        plugins=("xep_0191",))
    clients.append(client)
    await client.connect()
    client.xmpp.send_presence()
    return client


async def test_block_push_bounce_and_unblock(server: Server, clients: list[XmppClient]) -> None:
    alice = await blocking_client(server, clients, "alice@localhost/desk", "alice-secret")
    alice_phone = await blocking_client(server, clients, "alice@localhost/phone", "alice-secret")
    bob = await blocking_client(server, clients, "bob@localhost/laptop", "bob-secret")
    pushes: asyncio.Queue[Any] = asyncio.Queue()
    alice_phone.xmpp.add_event_handler("blocked", pushes.put_nowait)
    assert await alice_phone.xmpp.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT_SECONDS) == set()

    await alice.xmpp.plugin["xep_0191"].block(SlixJID("bob@localhost"), timeout=TIMEOUT_SECONDS)
    push = await asyncio.wait_for(pushes.get(), TIMEOUT_SECONDS)  # XEP-0191 §3.3: the phone hears of it
    assert [str(item["jid"]) for item in push["block"]] == ["bob@localhost"]

    errors: asyncio.Queue[Any] = asyncio.Queue()
    bob.xmpp.add_event_handler("message_error", errors.put_nowait)
    bob.xmpp.send_message(mto="alice@localhost/desk", mbody="can you hear me?", mtype="chat")
    bounced = await asyncio.wait_for(errors.get(), TIMEOUT_SECONDS)
    assert bounced["error"]["condition"] == "service-unavailable"  # XEP-0191 §3.5
    assert alice.messages.empty()

    alice_errors: asyncio.Queue[Any] = asyncio.Queue()
    alice.xmpp.add_event_handler("message_error", alice_errors.put_nowait)
    alice.xmpp.send_message(mto="bob@localhost", mbody="hello?", mtype="chat")
    refused = await asyncio.wait_for(alice_errors.get(), TIMEOUT_SECONDS)
    assert refused["error"]["condition"] == "not-acceptable"  # XEP-0191 §3.6
    assert refused.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None

    await alice.xmpp.plugin["xep_0191"].unblock(SlixJID("bob@localhost"), timeout=TIMEOUT_SECONDS)
    bob.xmpp.send_message(mto="alice@localhost/desk", mbody="now?", mtype="chat")
    assert (await alice.next_message())["body"] == "now?"


async def test_bad_block_requests_get_errors_and_the_session_carries_on(server: Server,
                                                                        clients: list[XmppClient]) -> None:
    alice = await blocking_client(server, clients, "alice@localhost/desk", "alice-secret")
    with pytest.raises(IqError) as empty:
        await alice.xmpp.plugin["xep_0191"].block([], timeout=TIMEOUT_SECONDS)
    assert empty.value.condition == "bad-request"
    await alice.xmpp.plugin["xep_0199"].ping("localhost", timeout=TIMEOUT_SECONDS)


async def test_the_blocklist_survives_a_restart(tmp_path: Path) -> None:
    clients: list[XmppClient] = []
    try:
        async with running_server(tmp_path) as server:
            alice = await blocking_client(server, clients, "alice@localhost/desk", "alice-secret")
            await alice.xmpp.plugin["xep_0191"].block(SlixJID("spam@example.org"), timeout=TIMEOUT_SECONDS)
            await alice.close()
        async with running_server(tmp_path, accounts={}) as server:  # the same data directory, accounts and all
            alice = await blocking_client(server, clients, "alice@localhost/desk", "alice-secret")
            blocked = await alice.xmpp.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT_SECONDS)
            assert blocked == {SlixJID("spam@example.org")}
            await alice.close()
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
