"""Two off-board boshcm nodes in front of a two-node ejabberd cluster (issue 15, docs/scaling.md).

XEP-0198 is end to end between the client and ejabberd (`mod_stream_mgmt`): when a boshcm node drains, its
clients hear `system-shutdown`, the node drops its TCP links to ejabberd without `</stream:stream>`, and the
clients resume their streams at ejabberd through the other boshcm node, losing nothing.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from tests.ejabberd import EjabberdNode, ejabberd_cluster
from tests.integration.bosh_client import BoshClient
from tests.integration.nodes import bosh_url, start_nodes, ws_url
from tests.integration.xmpp_client import XmppClient

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
    bob = XmppClient("bob@localhost/desk", "bob-secret", port=node.c2s_port, ca_cert=node.cert_path)
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
            first = await alice.post(alice.body())
            assert first.findtext("{jabber:client}message/{jabber:client}body") == "before", etree.tostring(first)
            handled = 1
            alice.url = bosh_url(a)
            held = asyncio.create_task(alice.post(alice.body()))
            await asyncio.sleep(0.2)
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
