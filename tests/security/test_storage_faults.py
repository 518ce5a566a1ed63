"""Storage faults and guests meet the offline store, through the real server and real slixmpp clients.

A full disk is made with SQLite's `PRAGMA max_page_count` on the server's own connection: SQLite then reports
SQLITE_FULL exactly as it does when the disk is full. A store that cannot be written (a read-only file system)
is made with `PRAGMA query_only`, which fails every write with SQLITE_READONLY.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from boshcm.app import Server
from tests.integration.test_c2s import logged_in, make_client
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.servers import make_server

BIG = "x" * 20_000  # needs new pages, so it cannot fit in a full database


async def error_reply(client: XmppClient) -> Any:
    while True:
        message = await client.next_message(with_body=False)
        if message["type"] == "error":
            return message


async def still_connected(client: XmppClient) -> None:
    assert await client.xmpp.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT_SECONDS) >= 0
    assert not client.disconnected.is_set()


async def bodies_at_login(server: Server, clients: list[XmppClient], count: int) -> list[str]:
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    bodies = [str((await bob.next_message())["body"]) for _ in range(count)]
    await still_connected(bob)
    await bob.close()
    return bodies


async def test_disk_full_bounces_resource_constraint_wait_keeps_the_sender_online_and_loses_nothing(
        server: Server, clients: list[XmppClient]) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    alice.xmpp.send_message(mto="bob@localhost", mbody="stored before", mtype="chat")
    await still_connected(alice)  # the message is stored by the time the ping is answered

    db = server.store.connection
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")
    alice.xmpp.send_message(mto="bob@localhost", mbody=BIG, mtype="chat")
    bounced = await error_reply(alice)
    assert bounced["error"]["condition"] == "resource-constraint" and bounced["error"]["type"] == "wait"
    await still_connected(alice)

    # The recipient logs in while the disk is full and gets what was accepted before.
    assert await bodies_at_login(server, clients, 1) == ["stored before"]

    db.execute("PRAGMA max_page_count = 1073741823")  # space returns
    alice.xmpp.send_message(mto="bob@localhost", mbody="stored after", mtype="chat")
    await still_connected(alice)
    assert await bodies_at_login(server, clients, 1) == ["stored after"]


async def test_recipient_logs_in_and_gets_offline_messages_when_the_store_cannot_be_written(
        server: Server, clients: list[XmppClient]) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    for text in ("one", "two"):
        alice.xmpp.send_message(mto="bob@localhost", mbody=text, mtype="chat")
    await still_connected(alice)
    server.store.connection.execute("PRAGMA query_only = ON")
    assert await bodies_at_login(server, clients, 2) == ["one", "two"]
    server.store.connection.execute("PRAGMA query_only = OFF")
    # Deleting them failed, so they come again (at-least-once), then never more.
    assert await bodies_at_login(server, clients, 2) == ["one", "two"]
    assert [message.stanza for message in server.store.offline_messages("bob")] == []


async def started(tmp_path: Path, **options: object) -> Server:
    running = make_server(tmp_path, {"http.enabled": False, **options})
    await running.start()
    return running


async def test_guests_cannot_leave_offline_messages_so_they_cannot_fill_a_users_store(tmp_path: Path) -> None:
    server = await started(tmp_path, **{"c2s.anonymous": True})
    made: list[XmppClient] = []
    try:
        guest = make_client(server, made, "localhost", "", mechanism="ANONYMOUS")
        await guest.connect()
        for number in range(5):
            guest.xmpp.send_message(mto="bob@localhost", mbody=f"spam {number}", mtype="chat")
        for _ in range(5):
            bounced = await error_reply(guest)
            assert bounced["error"]["condition"] == "service-unavailable"
        # Real users' messages are still stored.
        alice = await logged_in(server, made, "alice@localhost/desk", "alice-secret")
        alice.xmpp.send_message(mto="bob@localhost", mbody="from alice", mtype="chat")
        await still_connected(alice)
        assert await bodies_at_login(server, made, 1) == ["from alice"]
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        await server.stop()


async def test_each_recipient_has_an_offline_quota(tmp_path: Path) -> None:
    server = await started(tmp_path, **{"server.max_offline_messages": 3})
    made: list[XmppClient] = []
    try:
        alice = await logged_in(server, made, "alice@localhost/desk", "alice-secret")
        for number in range(4):
            alice.xmpp.send_message(mto="bob@localhost", mbody=f"from alice {number}", mtype="chat")
        bounced = await error_reply(alice)
        assert bounced["error"]["condition"] == "service-unavailable" and bounced["body"] == "from alice 3"
        assert await bodies_at_login(server, made, 3) == ["from alice 0", "from alice 1", "from alice 2"]
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        await server.stop()
