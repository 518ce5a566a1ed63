"""What a loop turn has for one TCP client leaves in one write: one TLS record and one system call, not one each.

The quiz bot is one c2s client that thousands of players' answers reach within a second or two (docs/performance.md,
issue 14, eighth pass); each answer is its own event on the server, so only the end of the loop turn can join them.
"""

from __future__ import annotations

import asyncio

from lxml import etree

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.xmpp.c2s import C2sConnection
from tests.security.transports import C2sRawClient

MESSAGES = 30


def message(number: int, to: JID) -> etree._Element:
    return etree.fromstring(f"<message xmlns='jabber:client' type='chat' to='{to}' id='m{number}'>"
                            f"<body>answer {number}</body></message>")


async def test_stanzas_for_one_client_in_one_loop_turn_leave_in_one_write(server: Server) -> None:
    alice, bob = C2sRawClient(server), C2sRawClient(server)
    try:
        alice_jid = JID.parse(await alice.login("alice", "alice-secret"))
        bob_jid = JID.parse(await bob.login("bob", "bob-secret"))
        connection: C2sConnection = next(c for c in server.c2s._connections if c._session.jid == alice_jid)
        writes: list[bytes] = []
        write = connection._writer.write

        def counted(data: bytes) -> None:
            writes.append(data)
            write(data)

        connection._writer.write = counted  # type: ignore[method-assign]
        # As many of bob's messages as separate events in one loop turn, as players' answers reach the bot.
        for number in range(MESSAGES):
            server.hub.perform(server.router.handle_stanza(bob_jid, message(number, alice_jid), server.clock.now()))
        async with asyncio.timeout(10):
            received = [await alice.next_element() for _ in range(MESSAGES)]
        assert [stanza.get("id") if stanza is not None else None for stanza in received] == \
            [f"m{number}" for number in range(MESSAGES)]
        assert len(writes) == 1, f"{len(writes)} writes for {MESSAGES} stanzas of one loop turn"
    finally:
        await alice.close()
        await bob.close()
