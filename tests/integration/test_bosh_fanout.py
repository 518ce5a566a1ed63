"""Fan-out over BOSH (issue 14): one stanza delivered to many held requests is written in one event-loop turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.xmpp.router import Deliver
from tests.integration.bosh_client import BoshClient
from tests.integration.test_bosh import bosh_url

SESSIONS = 6


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def eventually(check: object, what: str) -> None:
    assert callable(check)
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_held_requests_of_one_fan_out_are_all_answered_in_the_next_loop_turn(
        server: Server, http: aiohttp.ClientSession) -> None:
    endpoint = server.bosh
    assert endpoint is not None
    clients = [BoshClient(http, bosh_url(server)) for _ in range(SESSIONS)]
    for index, client in enumerate(clients):
        await client.login("alice", "alice-secret", resource=f"r{index}")
    held = [asyncio.create_task(client.post(client.body())) for client in clients]
    await eventually(lambda: endpoint.held_requests() == SESSIONS, "every session holding a request")

    stanza = etree.fromstring("<message xmlns='jabber:client' type='groupchat' from='room@conference.localhost/x'>"
                              "<body>to all</body></message>")
    seen: list[int] = []
    # One fan-out (as a room's reflection through the hub), then one callback queued behind it: by the time that
    # callback runs, every held request must have been answered, not still travelling through futures.
    server.hub.perform([Deliver(to=JID.parse(str(client.jid)), stanza=stanza) for client in clients])
    asyncio.get_running_loop().call_soon(lambda: seen.append(endpoint.held_requests()))
    answers = await asyncio.gather(*held)
    assert seen == [0]
    assert all(answer.findtext("{jabber:client}message/{jabber:client}body") == "to all" for answer in answers)
    for client in clients:
        await client.close()
