"""A stolen BOSH session ticket (sid, rid) is worth nothing: with XEP-0124 §15 keys, and without them.

The three takeovers: re-sending the held rid (to get the victim's held slot), replaying a cached rid (to get
the victim's last response), and sending the next rid (to become the session). Each is refused for the
attacker's request alone: the victim's session goes on undisturbed. Real sockets, the server in-process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from tests.security.bosh_attack import PING, Client, bodies, body, chat
from tests.security.transports import rss_kib
from tests.servers import running_server

GOOD = "http://quiz.example"
EVIL = "http://evil.example"


def refused(answer: etree._Element) -> bool:
    return answer.get("type") == "terminate" and answer.get("condition") == "item-not-found"


class Attacker:
    """Knows the victim's sid and rids (and the key of an earlier request) but not its next key."""

    def __init__(self, victim: Client, *, use_keys: bool) -> None:
        self.victim = victim
        self.use_keys = use_keys

    async def post(self, rid: int) -> etree._Element:
        attrs = {"key": "0" * 40} if self.use_keys else {}
        # Without keys the attacker comes from another page (Origin), with keys from the victim's own page.
        origin = GOOD if self.use_keys else EVIL
        return await self.victim.post(body(rid, self.victim.sid, **attrs), origin=origin)


@pytest.fixture(params=[True, False], ids=["keys", "no-keys"])
def use_keys(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_resending_the_held_rid_does_not_take_the_victims_held_slot(tmp_path: Path, use_keys: bool) -> None:
    async with running_server(tmp_path, {"http.cors_origins": [GOOD]}) as server, \
            aiohttp.ClientSession() as http:
        victim, bob = Client(http, server, origin=GOOD, use_keys=use_keys), Client(http, server)
        await victim.login("alice", "alice-secret")
        await bob.login("bob", "bob-secret")
        before = rss_kib()
        held = asyncio.create_task(victim.send())
        await asyncio.sleep(0.2)
        answer = await Attacker(victim, use_keys=use_keys).post(victim.rid)
        assert refused(answer), etree.tostring(answer)
        await bob.send(chat("alice@localhost/web", "for alice only") + PING)
        assert bodies(await held) == ["for alice only"]
        print(f"\nheld-rid takeover: RSS grew {rss_kib() - before} KiB")
        assert rss_kib() - before < 20_000


async def test_replaying_a_cached_rid_does_not_return_the_victims_response(tmp_path: Path, use_keys: bool) -> None:
    async with running_server(tmp_path, {"http.cors_origins": [GOOD]}) as server, \
            aiohttp.ClientSession() as http:
        victim = Client(http, server, origin=GOOD, use_keys=use_keys)
        await victim.login("alice", "alice-secret")
        before = rss_kib()
        request = victim.next_body(chat("alice@localhost/web", "secret note"))
        first = await victim.post(request)
        assert bodies(first) == ["secret note"]
        answer = await Attacker(victim, use_keys=use_keys).post(victim.rid)
        assert refused(answer) and b"secret note" not in etree.tostring(answer)
        # XEP-0124 §14.3: the victim itself repeating that request (same key) gets the same response.
        assert etree.tostring(await victim.post(request)) == etree.tostring(first)
        print(f"\ncached-rid replay: RSS grew {rss_kib() - before} KiB")
        assert rss_kib() - before < 20_000


async def test_the_next_rid_without_the_key_or_from_another_origin_does_not_take_over(
        tmp_path: Path, use_keys: bool) -> None:
    async with running_server(tmp_path, {"http.cors_origins": [GOOD]}) as server, \
            aiohttp.ClientSession() as http:
        victim = Client(http, server, origin=GOOD, use_keys=use_keys)
        await victim.login("alice", "alice-secret")
        before = rss_kib()
        attacker = Attacker(victim, use_keys=use_keys)
        for _ in range(3):
            assert refused(await attacker.post(victim.rid + 1))
        assert refused(await attacker.post(victim.rid + 2))  # early rids too
        pong = await victim.send("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                                 "<ping xmlns='urn:xmpp:ping'/></iq>")
        assert pong.find("{jabber:client}iq").get("type") == "result"  # type: ignore[union-attr]
        print(f"\nnext-rid takeover: RSS grew {rss_kib() - before} KiB")
        assert rss_kib() - before < 20_000


async def test_a_request_without_the_origin_the_session_was_created_with_is_refused(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        victim = Client(http, server, origin=GOOD)
        await victim.login("alice", "alice-secret")
        async with http.post(victim.url, data=body(victim.rid + 1, victim.sid)) as reply:  # no Origin at all
            assert refused(etree.fromstring(await reply.read()))
        pong = await victim.send("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                                 "<ping xmlns='urn:xmpp:ping'/></iq>")
        assert pong.find("{jabber:client}iq").get("type") == "result"  # type: ignore[union-attr]


async def test_a_legitimate_client_retrying_its_held_rid_still_works(tmp_path: Path, use_keys: bool) -> None:
    async with running_server(tmp_path, {"http.cors_origins": [GOOD]}) as server, \
            aiohttp.ClientSession() as http:
        victim, bob = Client(http, server, origin=GOOD, use_keys=use_keys), Client(http, server)
        await victim.login("alice", "alice-secret")
        await bob.login("bob", "bob-secret")
        request = victim.next_body()
        first = asyncio.create_task(victim.post(request))
        await asyncio.sleep(0.2)
        retry = asyncio.create_task(victim.post(request))  # Strophe after ~1.1 x wait: same rid, same key
        stale = await first
        assert stale.get("type") == "error" and len(stale) == 0  # XEP-0124 §14.3: recoverable binding error
        await bob.send(chat("alice@localhost/web", "to the retry") + PING)
        assert bodies(await retry) == ["to the retry"]


async def test_session_creation_from_an_origin_not_allowed_is_refused(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"http.cors_origins": [GOOD]}) as server, \
            aiohttp.ClientSession() as http:
        evil = await Client(http, server, origin=EVIL).create()
        assert evil.get("type") == "terminate" and evil.get("condition") == "policy-violation"
        assert server.bosh is not None and len(server.bosh.registry) == 0
        assert (await Client(http, server, origin=GOOD).create()).get("sid")
        assert (await Client(http, server).create()).get("sid")  # not a browser: no Origin, no CORS
