"""Debian's ejabberd 23.01: the reference the churn benchmark compares with, and the cluster behind several
boshcm nodes (issues 13 and 15, docs/scaling.md). One two-node cluster serves the whole module (a start costs
seconds).

As a reference: the harness in tests/ejabberd.py gives a working two-node cluster, and ejabberd does what
tests/perf/bench_churn.py measures boshcm against: XEP-0198 resumption after the network goes away, with what was
sent meanwhile arriving exactly once.

Behind two off-board boshcm nodes: XEP-0198 is end to end between the client and ejabberd (`mod_stream_mgmt`):
when a boshcm node drains, its clients hear `system-shutdown`, the node drops its TCP links to ejabberd without
`</stream:stream>`, and the clients resume their streams at ejabberd through the other boshcm node, losing nothing.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from slixmpp import JID

from tests.ejabberd import EjabberdNode, cluster_members, ejabberd_cluster
from tests.integration.bosh_client import BoshClient
from tests.integration.nodes import bosh_url, start_nodes, ws_url
from tests.integration.relay import Relay
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient, trusting_only

pytestmark = pytest.mark.interop

ACCOUNTS = {"alice": "alice-secret", "bob": "bob-secret"}
SM = "urn:xmpp:sm:3"
OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"


@pytest.fixture(scope="module")
def ejabberd_pair() -> Iterator[tuple[EjabberdNode, ...]]:
    with ejabberd_cluster(ACCOUNTS) as nodes:
        yield nodes


def upstreams(pair: tuple[EjabberdNode, ...]) -> list[str]:
    return [f"127.0.0.1:{node.c2s_port}" for node in pair]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def plain(username: str, password: str) -> str:
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    return f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"


async def bob_on(node: EjabberdNode) -> XmppClient:
    bob = XmppClient("bob@localhost/desk", "bob-secret", port=node.c2s_port, ca_cert=node.cert_path,
                     ssl_context=trusting_only(node.cert_path))
    await bob.connect()
    return bob


async def test_bosh_clients_resume_at_ejabberd_through_the_other_node_after_a_drain(
        ejabberd_pair: tuple[EjabberdNode, ...], tmp_path: Path, http: aiohttp.ClientSession) -> None:
    bob = await bob_on(ejabberd_pair[1])
    try:
        async with start_nodes(tmp_path, ("a", "b"), upstreams=upstreams(ejabberd_pair)) as nodes:
            a, b = nodes["a"], nodes["b"]
            alice = BoshClient(http, bosh_url(a))
            await alice.login("alice", "alice-secret")
            answer = await alice.post(alice.body(f"<enable xmlns='{SM}' resume='true'/>"))
            enabled = answer.find(f"{{{SM}}}enabled")
            if enabled is None:   # ejabberd may answer in the next response
                answer = await alice.post(alice.body())
                enabled = answer.find(f"{{{SM}}}enabled")
            assert enabled is not None and enabled.get("resume") == "true", etree.tostring(answer)
            previd = enabled.get("id")
            alice.url = bosh_url(b)   # round robin: the next request reaches the other node
            bob.xmpp.send_message(mto="alice@localhost/web", mbody="before", mtype="chat")
            for _ in range(5):   # ejabberd may first answer the request empty (its own pace, not the message's)
                first = await alice.post(alice.body())
                if first.find("{jabber:client}message") is not None:
                    break
            assert first.findtext("{jabber:client}message/{jabber:client}body") == "before", etree.tostring(first)
            handled = 1
            alice.url = bosh_url(a)
            for _ in range(5):   # a request node a holds when it drains (ejabberd may first answer one, e.g. <r/>)
                held = asyncio.create_task(alice.post(alice.body()))
                await asyncio.sleep(0.2)
                if not held.done():
                    break
                assert held.result().find("{jabber:client}message") is None, etree.tostring(held.result())
            await a.drain()
            ended = await asyncio.wait_for(held, 5)
            assert (ended.get("type"), ended.get("condition")) == ("terminate", "system-shutdown")
            for turn in range(3):
                bob.xmpp.send_message(mto="alice@localhost/web", mbody=f"away {turn}", mtype="chat")
            await asyncio.sleep(0.5)
            again = BoshClient(http, bosh_url(b))
            await again.create()
            await again.post(again.body(plain("alice", "alice-secret")))
            await again.post(again.body(**{"to": "localhost", "xmpp:restart": "true"}))
            resumed = await again.post(again.body(f"<resume xmlns='{SM}' previd='{previd}' h='{handled}'/>"))
            assert resumed.find(f"{{{SM}}}resumed") is not None, etree.tostring(resumed)
            bodies = [m.findtext("{jabber:client}body") for m in resumed.iter("{jabber:client}message")]
            while len(bodies) < 3:
                more = await again.post(again.body())
                bodies += [m.findtext("{jabber:client}body") for m in more.iter("{jabber:client}message")]
            assert bodies == ["away 0", "away 1", "away 2"]   # each once, in order, nothing lost
    finally:
        await bob.close()


async def test_websocket_clients_resume_at_ejabberd_through_the_other_node_after_a_drain(
        ejabberd_pair: tuple[EjabberdNode, ...], tmp_path: Path, http: aiohttp.ClientSession) -> None:
    bob = await bob_on(ejabberd_pair[0])
    try:
        async with start_nodes(tmp_path, ("a", "b"), upstreams=upstreams(ejabberd_pair)) as nodes:
            a, b = nodes["a"], nodes["b"]
            async with http.ws_connect(ws_url(a), protocols=("xmpp",)) as ws:
                await ws_login(ws)
                await ws.send_str(f"<enable xmlns='{SM}' resume='true'/>")
                enabled = await next_named(ws, "enabled")
                previd = enabled.get("id")
                await a.drain()
                error = await next_named(ws, "error")
                assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}system-shutdown") is not None
            bob.xmpp.send_message(mto="alice@localhost/ws", mbody="while moving", mtype="chat")
            await asyncio.sleep(0.5)
            async with http.ws_connect(ws_url(b), protocols=("xmpp",)) as ws:
                await ws_login(ws, bind=False)
                await ws.send_str(f"<resume xmlns='{SM}' previd='{previd}' h='0'/>")
                await next_named(ws, "resumed")
                message = await next_named(ws, "message")
                assert message.findtext("{jabber:client}body") == "while moving"
    finally:
        await bob.close()


async def next_named(ws: aiohttp.ClientWebSocketResponse, local_name: str) -> etree._Element:
    while True:
        frame = await ws.receive(timeout=10)
        assert frame.type is aiohttp.WSMsgType.TEXT, frame
        element = etree.fromstring(frame.data.encode())
        if etree.QName(element).localname == local_name:
            return element


async def ws_login(ws: aiohttp.ClientWebSocketResponse, *, bind: bool = True) -> None:
    await ws.send_str(OPEN)
    await next_named(ws, "features")
    await ws.send_str(plain("alice", "alice-secret"))
    await next_named(ws, "success")
    await ws.send_str(OPEN)
    await next_named(ws, "features")
    if bind:
        await ws.send_str("<iq xmlns='jabber:client' type='set' id='b'><bind "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ws</resource></bind></iq>")
        await next_named(ws, "iq")


# --- ejabberd as the reference ---------------------------------------------------------------------------------

def client(node: EjabberdNode, jid: str, password: str, *, port: int | None = None,
           plugins: tuple[str, ...] = ()) -> XmppClient:
    return XmppClient(jid, password, port=port or node.c2s_port, ca_cert=node.cert_path, plugins=plugins,
                      ssl_context=trusting_only(node.cert_path))


def bodies(queue: asyncio.Queue[Any]) -> list[str]:
    found = []
    while not queue.empty():
        message = queue.get_nowait()
        if message["body"]:
            found.append(message["body"])
    return found


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(TIMEOUT_SECONDS / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_ejabberd_resumes_a_dropped_slixmpp_stream_and_delivers_each_message_once(
        ejabberd_pair: tuple[EjabberdNode, ...]) -> None:
    ejabberd = ejabberd_pair[0]
    relay = Relay("127.0.0.1", ejabberd.c2s_port)
    await relay.start()
    alice = client(ejabberd, "alice@localhost/desk", "alice-secret", port=relay.port, plugins=("xep_0198",))
    bob = client(ejabberd, "bob@localhost/phone", "bob-secret")
    try:
        resumed = asyncio.Event()
        alice.xmpp.add_event_handler("session_resumed", lambda _event: resumed.set())
        sm = alice.xmpp.plugin["xep_0198"]
        sm.window = 1
        await alice.connect()
        await eventually(lambda: bool(sm.sm_id), "<enabled/>")
        await bob.connect()
        bob.xmpp.send_message(mto=JID("alice@localhost/desk"), mbody="before", mtype="chat")
        assert (await alice.next_message())["body"] == "before"

        relay.drop()
        await asyncio.wait_for(alice.disconnected.wait(), TIMEOUT_SECONDS)
        for body in ("while away 1", "while away 2"):
            bob.xmpp.send_message(mto=JID("alice@localhost/desk"), mbody=body, mtype="chat")
        await asyncio.sleep(0.2)

        alice.disconnected.clear()
        alice.xmpp.connect(host="127.0.0.1", port=relay.port)
        await asyncio.wait_for(resumed.wait(), TIMEOUT_SECONDS)
        bob.xmpp.send_message(mto=JID("alice@localhost/desk"), mbody="after", mtype="chat")
        got = [(await alice.next_message())["body"] for _ in range(3)]
        assert got == ["while away 1", "while away 2", "after"]
        await asyncio.sleep(0.2)
        assert bodies(alice.messages) == []  # "before" was acknowledged: not sent again
    finally:
        await asyncio.gather(alice.close(), bob.close(), return_exceptions=True)
        await relay.stop()


async def test_an_account_registered_on_one_cluster_node_logs_in_on_the_other_and_messages_cross(
        ejabberd_pair: tuple[EjabberdNode, ...]) -> None:
    seed, other = ejabberd_pair
    assert cluster_members(other) == {seed.name, other.name}
    alice = client(other, "alice@localhost/b", "alice-secret")  # registered on the seed only
    bob = client(seed, "bob@localhost/a", "bob-secret")
    try:
        await alice.connect()
        await bob.connect()
        bob.xmpp.send_message(mto=JID("alice@localhost/b"), mbody="from node a", mtype="chat")
        assert (await alice.next_message())["body"] == "from node a"
        alice.xmpp.send_message(mto=JID("bob@localhost/a"), mbody="from node b", mtype="chat")
        assert (await bob.next_message())["body"] == "from node b"
    finally:
        await asyncio.gather(alice.close(), bob.close(), return_exceptions=True)
