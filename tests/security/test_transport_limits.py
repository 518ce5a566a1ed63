"""Hostile input on c2s, BOSH and WebSocket alike: broken namespaces, oversized elements, pre-login limits.

Each attack ends only the attacker's stream with a clear condition, and a session that was already there
keeps working: bob, logged in over c2s, parses everything he receives strictly and still gets alice's next
message afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from boshcm.app import Server
from tests.security.transports import (
    TRANSPORTS,
    C2sRawClient,
    RawClient,
    connected,
    rss_kib,
    until_stream_error,
)

# Conditions per transport for "this XML is not namespace-well-formed" (RFC 6120 §11, XEP-0124 §17.2).
NOT_WELL_FORMED = {"c2s": "not-well-formed", "websocket": "not-well-formed", "bosh": "bad-request"}

BROKEN_NAMESPACES = [
    pytest.param(b"<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hi</body><foo:bar/>"
                 b"</message>", id="undeclared-element-prefix"),
    pytest.param(b"<message xmlns='jabber:client' to='bob@localhost' type='chat' z:b='2'><body>hi</body>"
                 b"</message>", id="undeclared-attribute-prefix"),
    pytest.param(b"<message xmlns='jabber:client' xmlns:p='' to='bob@localhost' type='chat'><body>hi</body>"
                 b"</message>", id="prefix-bound-to-empty"),
    pytest.param(b"<p:message xmlns:p='' to='bob@localhost' type='chat'><body>hi</body></p:message>",
                 id="element-in-empty-prefix"),
]


@pytest.fixture
async def bob(server: Server) -> AsyncIterator[C2sRawClient]:
    """A bystander who must not be hurt: logged in over c2s, reading strictly."""
    client = C2sRawClient(server)
    await client.login("bob", "bob-secret")
    await client.send_raw(b"<presence xmlns='jabber:client'/>")
    yield client
    await client.close()


async def bob_still_receives(bob: C2sRawClient, server: Server) -> None:
    async with connected("c2s", server, login=("alice", "alice-secret")) as alice:
        await alice.send_raw(b"<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                             b"<body>still here?</body></message>")
        while True:
            received = await bob.next_element()
            assert received is not None, "bob's stream ended"
            if received.findtext("{jabber:client}body") == "still here?":
                return
            # Anything else bob gets (his own presence) must not be the attacker's broken message.
            assert received.findtext("{jabber:client}body") != "hi", "the broken stanza was relayed"


@pytest.mark.parametrize("stanza", BROKEN_NAMESPACES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_namespace_errors_end_only_the_senders_stream(server: Server, bob: C2sRawClient, transport: str,
                                                            stanza: bytes) -> None:
    async with connected(transport, server, login=("alice", "alice-secret")) as alice:
        await alice.send_raw(stanza)
        assert await until_stream_error(alice) == NOT_WELL_FORMED[transport]
    await bob_still_receives(bob, server)


@pytest.mark.parametrize("transport", ["c2s", "websocket"])
async def test_namespace_errors_before_authentication_are_stream_errors(server: Server, transport: str) -> None:
    async with connected(transport, server) as stranger:
        if isinstance(stranger, C2sRawClient):
            await stranger.starttls()
        await stranger.send_raw(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' x:mechanism='PLAIN'>AGE=</auth>")
        assert await until_stream_error(stranger) == "not-well-formed"


async def test_a_bosh_session_request_with_an_undeclared_prefix_is_a_bad_request(server: Server) -> None:
    async with connected("bosh", server) as stranger:
        await stranger.send_raw(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' x:mechanism='PLAIN'>AGE=</auth>")
        assert await until_stream_error(stranger) == "bad-request"


async def _send_in_pieces(client: RawClient, head: bytes, filler: bytes, total_bytes: int) -> None:
    """Write `head` and then `filler` over and over up to `total_bytes`, the way a flood arrives; the attacker
    never holds the whole thing (the server runs in this process: its RSS is what the test measures)."""
    with contextlib.suppress(ConnectionError):
        await client.send_raw(head)
        for _ in range(total_bytes // len(filler)):
            await client.send_raw(filler)


async def test_a_huge_attribute_counts_toward_the_stanza_limit_on_c2s(server: Server, bob: C2sRawClient) -> None:
    async with connected("c2s", server, login=("alice", "alice-secret")) as alice:
        before = rss_kib()
        sender = asyncio.create_task(_send_in_pieces(alice, b"<message xmlns='jabber:client' to='bob@localhost' a='",
                                                     b"x" * 65_536, 2_097_152))
        assert await until_stream_error(alice) == "policy-violation"
        sender.cancel()
    grown = rss_kib() - before
    print(f"RSS growth under a 2 MiB attribute (limit 64 KiB): {grown} KiB")
    assert grown < 2_048  # less than the attack itself: it was never buffered whole
    await bob_still_receives(bob, server)


async def test_a_huge_attribute_is_refused_on_websocket(server: Server) -> None:
    async with connected("websocket", server, login=("alice", "alice-secret")) as alice:
        # Larger than the element limit (64 KiB here), smaller than what aiohttp refuses by itself.
        await alice.send_raw(b"<message xmlns='jabber:client' to='bob@localhost' a='" + b"x" * 100_000 + b"'/>")
        assert await until_stream_error(alice) == "policy-violation"


async def test_a_huge_attribute_is_refused_on_bosh(server: Server) -> None:
    """On BOSH the whole body is the unit that is counted (`bosh.max_body_bytes`), start tags included."""
    async with connected("bosh", server, login=("alice", "alice-secret")) as alice:
        huge = server.config.bosh.max_body_bytes + 1
        await alice.send_raw(b"<message xmlns='jabber:client' to='bob@localhost' a='" + b"x" * huge + b"'/>")
        assert await until_stream_error(alice) == "policy-violation"


async def test_text_between_stanzas_counts_too(server: Server) -> None:
    async with connected("c2s", server, login=("alice", "alice-secret")) as alice:
        sender = asyncio.create_task(_send_in_pieces(alice, b" ", b" " * 65_536, 1_048_576))
        assert await until_stream_error(alice) == "policy-violation"
        sender.cancel()


@pytest.mark.parametrize("transport", ["c2s", "websocket", "bosh"])
async def test_before_login_an_element_may_only_be_a_few_kib(server: Server, transport: str) -> None:
    limit = server.config.c2s.max_stanza_bytes_before_auth
    async with connected(transport, server) as stranger:
        if isinstance(stranger, C2sRawClient):
            await stranger.starttls()
        padding = b"A" * (limit + 1024)
        await stranger.send_raw(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + padding
                                + b"</auth>")
        assert await until_stream_error(stranger) == "policy-violation"


async def test_before_login_a_small_element_still_passes(server: Server) -> None:
    """The pre-login limit leaves room for every real SASL exchange: a login with a 1 KiB password."""
    server.accounts.add("carol", "p" * 1024)
    async with connected("c2s", server, login=("carol", "p" * 1024)) as carol:
        assert carol is not None
