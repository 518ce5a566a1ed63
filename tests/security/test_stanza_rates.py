"""Per-session stanza rates over real sockets on every transport: beyond the burst a stanza gets
`policy-violation` (type wait, "rate limit"); a session that keeps flooding is closed with the stream error
`policy-violation`; another user's session is untouched throughout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree

from boshcm.app import Server
from tests.security.transports import NS_STREAMS, TRANSPORTS, RawClient, connected, stream_error
from tests.servers import running_server

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
BURST = 5
FLOOD_REFUSALS = 10


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    # A rate so low that nothing refills during a test: the burst is exactly what gets through.
    async with running_server(tmp_path, {"c2s.stanza_rate_per_second": 0.001, "c2s.stanza_burst": BURST,
                                         "c2s.stanza_flood_refusals": FLOOD_REFUSALS}) as running:
        yield running


def ping(number: int) -> bytes:
    return (f"<iq xmlns='jabber:client' type='get' to='localhost' id='p{number}'>"
            f"<ping xmlns='urn:xmpp:ping'/></iq>").encode()


async def send_all(client: RawClient, stanzas: list[bytes]) -> None:
    """A BOSH client sends them in one <body/>; WebSocket needs one frame per element (RFC 7395 §3.3.3)."""
    if client.transport == "bosh":
        await client.send_raw(b"".join(stanzas))
        return
    for stanza in stanzas:
        await client.send_raw(stanza)


async def replies(client: RawClient, count: int) -> list[etree._Element]:
    got: list[etree._Element] = []
    while len(got) < count:
        received = await client.next_element()
        assert received is not None, "stream ended"
        if etree.QName(received).localname == "iq":
            got.append(received)
    return got


@contextlib.asynccontextmanager
async def bystander(server: Server) -> AsyncIterator[RawClient]:
    async with connected("c2s", server, login=("bob", "bob-secret")) as bob:
        yield bob
        await bob.send_raw(ping(99))  # bob's own bucket is untouched by alice's flood
        (answer,) = await replies(bob, 1)
        assert answer.get("type") == "result" and answer.get("id") == "p99"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stanzas_beyond_the_burst_get_policy_violation_wait(server: Server, transport: str) -> None:
    async with bystander(server), connected(transport, server, login=("alice", "alice-secret")) as alice:
        await send_all(alice, [ping(number) for number in range(BURST + 3)])
        answers = await replies(alice, BURST + 3)
        assert [answer.get("type") for answer in answers] == ["result"] * BURST + ["error"] * 3
        for refused in answers[BURST:]:
            error = refused.find("{jabber:client}error")
            assert error is not None and error.get("type") == "wait"
            assert error.find(f"{{{NS_STANZAS}}}policy-violation") is not None
            assert error.findtext(f"{{{NS_STANZAS}}}text") == "rate limit"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_session_that_keeps_flooding_is_closed_with_policy_violation(server: Server,
                                                                             transport: str) -> None:
    async with bystander(server), connected(transport, server, login=("alice", "alice-secret")) as alice:
        await send_all(alice, [f"<message xmlns='jabber:client' to='bob@localhost' id='m{number}'><body>{number}"
                               f"</body></message>".encode() for number in range(BURST + FLOOD_REFUSALS + 1)])
        while (received := await alice.next_element()) is not None and stream_error(received) is None:
            pass
        assert received is not None, "closed without a stream error"
        # XEP-0206 §6: on BOSH the stream error travels inside a remote-stream-error terminate.
        assert stream_error(received) == ("remote-stream-error" if transport == "bosh" else "policy-violation")
        assert received.find(f".//{{{NS_STREAMS}}}policy-violation") is not None
