"""BOSH under load and on real networks: whole bodies, vanished clients, bounded queues and responses, caps.

Each test runs the server in this process over real sockets and prints the process's RSS growth.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from lxml import etree

from boshcm.app import Server
from tests.security.bosh_attack import PING, Client, RawRequest, bodies, body, chat
from tests.security.transports import rss_kib
from tests.servers import running_server

MIB = 1024


def report_rss(attack: str, before_kib: int, bound_kib: int) -> None:
    grown = rss_kib() - before_kib
    print(f"\n{attack}: server RSS grew {grown} KiB (bound {bound_kib} KiB)")
    assert grown < bound_kib


async def test_a_2_kib_body_written_in_three_pieces_300_ms_apart_is_read_whole(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        alice = Client(http, server)
        await alice.login("alice", "alice-secret")
        before = rss_kib()
        text = "x" * 2000
        alice.rid += 1
        request = RawRequest(server)
        await request.send(body(alice.rid, alice.sid, chat("alice@localhost/web", text)), pieces=3,
                           pause_seconds=0.3)
        answer = (await request.response()).xml()
        assert answer.get("type") is None, etree.tostring(answer)
        assert bodies(answer) == [text]  # the message reached the server and came back to its sender
        report_rss("body in three pieces", before, 20 * MIB)


async def test_a_body_that_stops_half_way_is_refused_after_the_read_timeout(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"bosh.body_read_timeout_seconds": 0.5}) as server, \
            aiohttp.ClientSession() as http:
        alice = Client(http, server)
        await alice.login("alice", "alice-secret")
        before = rss_kib()
        stalled = RawRequest(server)
        data = body(alice.rid + 1, alice.sid, chat("bob@localhost", "y" * 2000))
        started = asyncio.get_running_loop().time()
        await stalled.send(data[:100], content_length=len(data))
        answer = (await stalled.response(timeout=5)).xml()
        assert answer.get("type") == "terminate" and answer.get("condition") == "policy-violation"
        assert asyncio.get_running_loop().time() - started < 3
        # Only that request was refused: the session it named goes on.
        pong = await alice.send("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                                "<ping xmlns='urn:xmpp:ping'/></iq>")
        assert pong.find("{jabber:client}iq").get("type") == "result"  # type: ignore[union-attr]
        report_rss("stalled body", before, 20 * MIB)


async def _held_then_vanished(server: Server, alice: Client) -> int:
    """Alice's next request is held, then its TCP connection closes; returns that request's rid."""
    held = RawRequest(server)
    alice.rid += 1
    await held.send(body(alice.rid, alice.sid))
    await asyncio.sleep(0.2)  # held by now
    held.close()
    await asyncio.sleep(0.2)  # and noticed gone
    return alice.rid


async def test_stanzas_for_a_client_whose_held_request_vanished_arrive_in_its_next_request(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        alice, bob = Client(http, server), Client(http, server)
        await alice.login("alice", "alice-secret")
        await bob.login("bob", "bob-secret")
        await _held_then_vanished(server, alice)
        await bob.send(chat("alice@localhost/web", "after the drop") + PING)
        answer = await alice.send()
        assert bodies(answer) == ["after the drop"]


async def test_a_client_retrying_the_rid_of_its_vanished_held_request_keeps_its_session(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        alice, bob = Client(http, server), Client(http, server)
        await alice.login("alice", "alice-secret")
        await bob.login("bob", "bob-secret")
        rid = await _held_then_vanished(server, alice)
        await bob.send(chat("alice@localhost/web", "after the drop") + PING)
        # Strophe resends the same rid on a new connection after a failed request (docs/protocol.md).
        answer = await alice.post(body(rid, alice.sid))
        assert answer.get("type") is None, etree.tostring(answer)
        assert bodies(answer) == ["after the drop"]


async def test_stanzas_resolved_into_a_request_whose_connection_just_closed_go_in_the_next_one(
        tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        alice = Client(http, server)
        await alice.login("alice", "alice-secret")
        assert server.bosh is not None and server.http is not None and alice.sid is not None
        connection = server.bosh.registry.get(alice.sid)
        assert connection is not None
        # aiohttp's route, whose handler learns of the close a turn after its transport does (the BOSH lane
        # learns at once: connection_lost abandons the held request).
        web_server = server.http._runner.server
        held = RawRequest(server)
        alice.rid += 1
        await held.send(body(alice.rid, alice.sid), via_aiohttp=True)
        await asyncio.sleep(0.2)
        (handler,) = [h for h in web_server.connections if h.transport is not None and
                      h.transport.get_extra_info("peername")[1] == held.writer.get_extra_info("sockname")[1]]  # type: ignore[union-attr]
        held.close()
        while handler.transport is not None:  # the server has just seen the close; the handler is not cancelled yet
            await asyncio.sleep(0)
        message = etree.fromstring("<message xmlns='jabber:client' from='bob@localhost/x' "
                                   "to='alice@localhost/web'><body>raced</body></message>")
        connection.upstream_stanzas((message,))
        answer = await alice.send()
        assert bodies(answer) == ["raced"]


async def test_a_client_that_stops_polling_is_ended_with_policy_violation_when_its_queue_is_full(
        tmp_path: Path) -> None:
    async with running_server(tmp_path, {"bosh.max_pending_bytes": 65_536}) as server, \
            aiohttp.ClientSession() as http:
        alice, bob, bystander = Client(http, server), Client(http, server), Client(http, server)
        await alice.login("alice", "alice-secret")
        await bob.login("bob", "bob-secret")
        await bystander.login("alice", "alice-secret", resource="other")
        before = rss_kib()
        for _ in range(4):  # 4 x 40 x 12 KiB, nearly 2 MiB, towards a client that does not ask: 30 x its queue
            await bob.send("".join(chat("alice@localhost/web", "z" * 12_288) for _ in range(40)) + PING)
        answer = await alice.send()
        assert answer.get("type") == "terminate" and answer.get("condition") == "policy-violation"
        assert server.bosh is not None and alice.sid is not None and server.bosh.registry.get(alice.sid) is None
        # Another session of the same user is not touched (the flooder itself is, by the bounces it gets back).
        pong = await bystander.send(PING)
        assert pong.find("{jabber:client}iq").get("type") == "result"  # type: ignore[union-attr]
        report_rss("flood towards a client that stopped reading", before, 20 * MIB)


async def test_a_response_never_exceeds_max_response_bytes_and_the_rest_comes_next(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"bosh.max_response_bytes": 16_384}) as server, \
            aiohttp.ClientSession() as http:
        alice, bob = Client(http, server), Client(http, server)
        await alice.login("alice", "alice-secret")
        await bob.login("bob", "bob-secret")
        texts = [f"{index:02d}" + "w" * 5_000 for index in range(10)] + ["big" + "B" * 30_000]
        await bob.send("".join(chat("alice@localhost/web", text) for text in texts) + PING)
        received: list[str] = []
        sizes: list[int] = []
        while len(received) < len(texts):
            alice.rid += 1
            request = RawRequest(server)
            await request.send(body(alice.rid, alice.sid))
            response = await request.response()
            sizes.append(len(response.body))
            received += bodies(response.xml())
        assert received == texts
        assert all(size <= 16_384 for size in sizes[:-1]) and len(sizes) >= 4
        assert sizes[-1] > 30_000  # a stanza larger than the limit still goes, alone


async def test_unauthenticated_sessions_per_address_are_capped(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"c2s.max_unauthenticated_per_address": 3}) as server, \
            aiohttp.ClientSession() as http:
        before = rss_kib()
        alice = Client(http, server)
        await alice.login("alice", "alice-secret")  # authenticated: does not count
        for _ in range(3):
            created = await Client(http, server).create()
            assert created.get("sid")
        refused = await Client(http, server).create()
        assert refused.get("type") == "terminate" and refused.get("condition") == "policy-violation"
        assert server.bosh is not None and len(server.bosh.registry) == 4
        pong = await alice.send("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                                "<ping xmlns='urn:xmpp:ping'/></iq>")
        assert pong.find("{jabber:client}iq").get("type") == "result"  # type: ignore[union-attr]
        report_rss("unauthenticated BOSH sessions", before, 20 * MIB)


async def test_a_content_attribute_with_line_breaks_is_bad_request_and_splits_no_response(tmp_path: Path) -> None:
    """XEP-0124 §7.1 'content' becomes every response's Content-Type. XML character references can put CR and LF
    into it; written as a header they would end the header block early (response splitting, and a desynchronised
    keep-alive connection behind a reverse proxy). The session is refused with bad-request instead."""
    async with running_server(tmp_path) as server:
        request = RawRequest(server)
        await request.send(body(1000, to="localhost", wait="5", hold="1", ver="1.11",
                                content="text/xml&#13;&#10;&#13;&#10;;a=b"))
        answer = await request.response()
        assert answer.status == 200 and answer.headers["content-type"] == "text/xml; charset=utf-8"
        assert int(answer.headers["content-length"]) == len(answer.body)   # one header block, the whole answer
        refused = etree.fromstring(answer.body)
        assert refused.get("type") == "terminate" and refused.get("condition") == "bad-request"
