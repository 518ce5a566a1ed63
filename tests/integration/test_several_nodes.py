"""Several off-board boshcm nodes behind a round-robin front (docs/scaling.md), in front of one XMPP server.

The upstream is the embedded server (on-board, c2s with STARTTLS); the nodes are off-board boshcm servers with
a [cluster] section. A client whose requests alternate between the nodes' public ports is what a plain
round-robin load balancer does to it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.cluster import (
    HEADER_CLIENT,
    HEADER_FROM,
    HEADER_SID,
    HEADER_SIGNATURE,
    HEADER_TIME,
    Hop,
    sign,
)
from tests.integration.bosh_client import BoshClient
from tests.integration.nodes import (
    SECRET,
    bosh_url,
    free_port,
    internal_url,
    node_process,
    start_nodes,
    write_secret,
    ws_url,
)
from tests.servers import running_server

SM = "urn:xmpp:sm:3"
HTTPBIND = "http://jabber.org/protocol/httpbind"
ORIGIN = "https://quiz.example"
OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "upstream") as server:
        yield server


def address(server: Server) -> str:
    return f"127.0.0.1:{server.c2s.port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class RoundRobinBosh(BoshClient):
    """A BOSH client behind a round-robin load balancer: each request goes to the next node."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str]) -> None:
        super().__init__(http, urls[0])
        self.urls = urls
        self.turn = 0

    async def post(self, data: bytes) -> etree._Element:
        self.url = self.urls[self.turn % len(self.urls)]
        self.turn += 1
        return await super().post(data)


async def raw(http: aiohttp.ClientSession, url: str, data: bytes, *, origin: str | None = ORIGIN,
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    sent = {"Content-Type": "text/xml; charset=utf-8", **({"Origin": origin} if origin else {}), **(headers or {})}
    async with http.post(url, data=data, headers=sent) as reply:
        return reply.status, await reply.read()


def terminate_condition(data: bytes) -> str | None:
    body = etree.fromstring(data)
    return body.get("condition") if body.get("type") == "terminate" else None


async def eventually(condition: Callable[[], bool], what: str, timeout_seconds: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def plain(username: str, password: str) -> str:
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    return f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"


async def test_a_session_works_whichever_node_each_request_reaches(upstream: Server, tmp_path: Path,
                                                                   http: aiohttp.ClientSession) -> None:
    async with start_nodes(tmp_path, ("a", "b"), upstreams=[address(upstream)]) as nodes:
        urls = [bosh_url(nodes["a"]), bosh_url(nodes["b"])]
        alice = RoundRobinBosh(http, urls)
        bob = RoundRobinBosh(http, urls[::-1])
        await alice.login("alice", "alice-secret")
        await bob.login("bob", "bob-secret", resource="phone")
        assert alice.sid is not None and alice.sid.startswith("a.")    # the sid names the node that owns it
        assert bob.sid is not None and bob.sid.startswith("b.")
        alice.start_polling()   # held requests too reach either node
        bob.start_polling()
        try:
            for turn in range(4):
                await bob.send(f"<message xmlns='jabber:client' to='alice@localhost/web' type='chat'>"
                               f"<body>ping {turn}</body></message>")
                assert (await alice.next("message")).findtext("{jabber:client}body") == f"ping {turn}"
                await alice.send(f"<message xmlns='jabber:client' to='bob@localhost/phone' type='chat'>"
                                 f"<body>pong {turn}</body></message>")
                assert (await bob.next("message")).findtext("{jabber:client}body") == f"pong {turn}"
        finally:
            await alice.close()
            await bob.close()
        # A sid naming a node that is not in the cluster is unknown, whichever node it reaches.
        for url in urls:
            _status, data = await raw(http, url, alice.body(sid="zz.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            assert terminate_condition(data) == "item-not-found"
        # The owner cannot be reached (its machine is gone, say): the session is gone for the client too.
        assert nodes["a"].internal_http is not None
        await nodes["a"].internal_http.stop()
        _status, data = await raw(http, urls[1], alice.body(), origin=None)
        assert terminate_condition(data) == "item-not-found"


def key_chain(length: int) -> list[str]:
    """XEP-0124 §15: K(n-1) = hex(SHA-1(K(n))); the client uses them from the end."""
    keys = [os.urandom(16).hex()]
    for _ in range(length):
        keys.append(hashlib.sha1(keys[-1].encode()).hexdigest())
    return keys


async def test_keys_rids_and_origin_are_still_checked_on_a_passed_on_request(upstream: Server, tmp_path: Path,
                                                                              http: aiohttp.ClientSession) -> None:
    async with start_nodes(tmp_path, ("a", "b"), upstreams=[address(upstream)]) as nodes:
        on_a, on_b = bosh_url(nodes["a"]), bosh_url(nodes["b"])
        keys = key_chain(10)
        client = BoshClient(http, on_a)
        _status, data = await raw(http, on_a, client.body(to="localhost", wait="5", hold="1", ver="1.11",
                                                          newkey=keys.pop(), **{"xmpp:version": "1.0"}))
        client.sid = etree.fromstring(data).get("sid")
        assert client.sid is not None and client.sid.startswith("a.")
        auth = plain("alice", "alice-secret")
        right_key = keys.pop()
        wrong_key = hashlib.sha1(b"guess").hexdigest()
        # Through node b: a wrong key, or the right key from another page, is refused alone.
        _status, data = await raw(http, on_b, client.body(auth, key=wrong_key))
        assert terminate_condition(data) == "item-not-found"
        client.rid -= 1
        _status, data = await raw(http, on_b, client.body(auth, key=right_key), origin="https://evil.example")
        assert terminate_condition(data) == "item-not-found"
        client.rid -= 1
        # The session was not touched: the right request goes through, still via node b.
        _status, first = await raw(http, on_b, client.body(auth, key=right_key))
        assert etree.fromstring(first).find("{urn:ietf:params:xml:ns:xmpp-sasl}success") is not None
        # XEP-0124 §14.3 across nodes: the same rid again (now via node a) gets the same bytes back.
        client.rid -= 1
        _status, again = await raw(http, on_a, client.body(auth, key=right_key))
        assert again == first
        # A rid far beyond the window, via node b: refused alone (keys are in use).
        client.rid += 50
        _status, data = await raw(http, on_b, client.body(key=keys[-1]))
        assert terminate_condition(data) == "item-not-found"
        owner = nodes["a"].bosh
        assert owner is not None and len(owner.registry) == 1   # the session lives on


async def test_a_forged_internal_request_is_refused_and_does_not_touch_the_session(
        upstream: Server, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with start_nodes(tmp_path, ("a", "b"), upstreams=[address(upstream)]) as nodes:
        client = BoshClient(http, bosh_url(nodes["a"]))
        await client.create()
        assert client.sid is not None
        terminate = client.body(type="terminate")   # what an attacker inside the network would like to send
        client.rid -= 1
        url = internal_url(nodes["a"])

        def signed(*, secret: bytes = SECRET.encode(), timestamp: int | None = None, from_node: str = "b",
                   sid: str = client.sid or "", body: bytes = terminate) -> dict[str, str]:
            hop = Hop(timestamp=int(time.time()) if timestamp is None else timestamp, from_node=from_node,
                      to_node="a", sid=sid, client="192.0.2.66", origin=ORIGIN, body=body)
            return {HEADER_FROM: from_node, HEADER_TIME: str(hop.timestamp), HEADER_SID: sid,
                    HEADER_CLIENT: hop.client, HEADER_SIGNATURE: sign(secret, hop)}

        forgeries = {
            "unsigned": {},
            "wrong secret": signed(secret=b"not-the-cluster-secret-at-all"),
            "stale": signed(timestamp=int(time.time()) - 120),
            "unknown node": signed(from_node="mallory"),
            "tampered body": {**signed(body=client.body("<presence xmlns='jabber:client'/>"))},
        }
        for what, headers in forgeries.items():
            status, _data = await raw(http, url, terminate, headers=headers)
            assert status == 403, what
        # The public listener knows nothing of the internal route.
        status, _data = await raw(http, bosh_url(nodes["a"]).replace("/http-bind", "/internal/bosh"), terminate,
                                  headers=signed())
        assert status in (404, 405)
        # The session was not touched: its next request, with the rid the forgeries used, works via node b.
        client.rid -= 1
        auth = await BoshClient.post(_at(client, bosh_url(nodes["b"])), client.body(plain("alice", "alice-secret")))
        assert auth.find("{urn:ietf:params:xml:ns:xmpp-sasl}success") is not None
        # A correctly signed request goes through, but only for a session of this node (one hop at most).
        other = BoshClient(http, bosh_url(nodes["b"]))
        await other.create()
        assert other.sid is not None and other.sid.startswith("b.")
        body = other.body()
        status, _data = await raw(http, url, body, headers=signed(sid=other.sid, body=body))
        assert status == 403


def _at(client: BoshClient, url: str) -> BoshClient:
    client.url = url
    return client


async def test_new_sessions_skip_an_upstream_server_that_is_down(upstream: Server, tmp_path: Path,
                                                                 http: aiohttp.ClientSession) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with running_server(tmp_path / "node", {"upstream.server": [dead, address(upstream)],
                                                  "upstream.verify_tls": False}, accounts={}) as node:
        for _ in range(3):
            client = BoshClient(http, bosh_url(node))
            created = await client.create()
            assert created.get("type") != "terminate", etree.tostring(created)
            assert created.find("{http://etherx.jabber.org/streams}features") is not None
        assert node.upstreams.is_down(("127.0.0.1", int(dead.rpartition(":")[2])), node.clock.now())
        # WebSockets take the same way.
        async with http.ws_connect(ws_url(node), protocols=("xmpp",)) as ws:
            await ws.send_str(OPEN)
            assert etree.fromstring((await ws.receive(timeout=5)).data).get("from") == "localhost"


async def bosh_login_with_sm(client: BoshClient) -> str:
    """Log in and enable XEP-0198 with resumption (end to end with the XMPP server); returns the SM id."""
    await client.login("alice", "alice-secret")
    answer = await client.post(client.body(f"<enable xmlns='{SM}' resume='true'/>"))
    enabled = answer.find(f"{{{SM}}}enabled")
    assert enabled is not None and enabled.get("resume") == "true", etree.tostring(answer)
    return enabled.get("id") or ""


async def ws_login(ws: aiohttp.ClientWebSocketResponse, username: str, password: str) -> None:
    async def frame() -> etree._Element:
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return etree.fromstring(message.data.encode())
    await ws.send_str(OPEN)
    await frame()
    await frame()
    await ws.send_str(plain(username, password))
    assert etree.QName(await frame()).localname == "success"
    await ws.send_str(OPEN)
    await frame()
    await frame()
    await ws.send_str("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                      "<resource>ws</resource></bind></iq>")
    await frame()


async def test_draining_ends_sessions_with_system_shutdown_and_the_client_resumes_through_another_node(
        upstream: Server, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with start_nodes(tmp_path, ("a", "b"), upstreams=[address(upstream)]) as nodes:
        a, b = nodes["a"], nodes["b"]
        url_a = bosh_url(a)
        alice = BoshClient(http, url_a)
        previd = await bosh_login_with_sm(alice)
        async with http.ws_connect(ws_url(a), protocols=("xmpp",)) as ws:
            await ws_login(ws, "bob", "bob-secret")
            held = asyncio.create_task(alice.post(alice.body()))
            await eventually(lambda: a.bosh is not None and a.bosh.held_requests() == 1, "a held request")

            await a.drain()

            # The held request is answered: a terminate clients reconnect on.
            answer = await asyncio.wait_for(held, 5)
            assert (answer.get("type"), answer.get("condition")) == ("terminate", "system-shutdown")
            # The WebSocket: a system-shutdown stream error, then <close/>.
            error = etree.fromstring((await ws.receive(timeout=5)).data)
            assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}system-shutdown") is not None
            closing = await ws.receive(timeout=5)
            assert closing.data == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'
        # A round-robin front now gets connection-refused from this node and tries another.
        with pytest.raises(aiohttp.ClientConnectorError):
            await raw(http, url_a, alice.body(to="localhost", wait="5", hold="1"))
        # The link to the XMPP server was dropped, not closed: alice's stream waits there for a resumption.
        await eventually(lambda: upstream.resumptions.detached_count == 1, "alice's stream to be resumable")

        # bob comes back through node b and writes to alice while she is away.
        bob = BoshClient(http, bosh_url(b))
        await bob.login("bob", "bob-secret", resource="again")
        # (its request is held for 'wait' once the message is sent: not waited for)
        before = upstream.router.received
        sending = asyncio.create_task(bob.send("<message xmlns='jabber:client' to='alice@localhost/web' "
                                               "type='chat'><body>while you were away</body></message>"))
        await eventually(lambda: upstream.router.received > before, "bob's message")
        # alice reconnects through node b and resumes: nothing is lost.
        again = BoshClient(http, bosh_url(b))
        created = await again.create()
        assert created.get("sid", "").startswith("b.")
        await again.post(again.body(plain("alice", "alice-secret")))
        await again.post(again.body(**{"to": "localhost", "xmpp:restart": "true"}))
        resumed = await again.post(again.body(f"<resume xmlns='{SM}' previd='{previd}' h='0'/>"))
        assert resumed.find(f"{{{SM}}}resumed") is not None, etree.tostring(resumed)
        assert resumed.findtext("{jabber:client}message/{jabber:client}body") == "while you were away"
        sending.cancel()


async def test_sigterm_drains_a_node_process(upstream: Server, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    port, internal = free_port(), {"a": free_port(), "b": free_port()}
    secret_file = write_secret(tmp_path / "cluster")
    async with node_process(tmp_path, "a", upstreams=[address(upstream)], internal_ports=internal, http_port=port,
                            secret_file=secret_file) as process:
        alice = BoshClient(http, f"http://127.0.0.1:{port}/http-bind")
        await bosh_login_with_sm(alice)
        assert alice.sid is not None and alice.sid.startswith("a.")
        held = asyncio.create_task(alice.post(alice.body()))
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        answer = await asyncio.wait_for(held, 5)
        assert (answer.get("type"), answer.get("condition")) == ("terminate", "system-shutdown")
        assert await asyncio.wait_for(process.wait(), 10) == 0
        await eventually(lambda: upstream.resumptions.detached_count == 1, "alice's stream to be resumable")


async def test_a_held_request_given_up_at_one_node_is_given_up_at_its_owner(upstream: Server, tmp_path: Path,
                                                                           http: aiohttp.ClientSession) -> None:
    async with start_nodes(tmp_path, ("a", "b"), upstreams=[address(upstream)]) as nodes:
        owner = nodes["a"].bosh
        assert owner is not None
        alice = BoshClient(http, bosh_url(nodes["a"]))
        await alice.login("alice", "alice-secret")
        alice.url = bosh_url(nodes["b"])
        held = asyncio.create_task(alice.post(alice.body()))
        await eventually(lambda: owner.held_requests() == 1, "the passed-on request to be held at its owner")
        held.cancel()   # the browser goes away: node b's connection to node a closes, a notices
        await eventually(lambda: owner.held_requests() == 0, "the owner to let the request go")
        # The session goes on, through either node.
        answer = await alice.send("<message xmlns='jabber:client' to='alice@localhost/web'><body>me</body></message>")
        assert answer.get("type") != "terminate"


async def test_an_embedded_server_drains_the_same_way(server: Server, http: aiohttp.ClientSession) -> None:
    url = bosh_url(server)
    alice = BoshClient(http, url)
    await alice.login("alice", "alice-secret")
    assert server.http is not None
    # A connection opened before the drain (a keep-alive connection of a proxy, say) stays open meanwhile.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http.port)
    async with http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
        await ws_login(ws, "bob", "bob-secret")
        held = asyncio.create_task(alice.post(alice.body()))
        await eventually(lambda: server.bosh is not None and server.bosh.held_requests() == 1, "a held request")
        await server.drain()
        answer = await asyncio.wait_for(held, 5)
        assert (answer.get("type"), answer.get("condition")) == ("terminate", "system-shutdown")
        error = etree.fromstring((await ws.receive(timeout=5)).data)
        assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}system-shutdown") is not None
    with pytest.raises(aiohttp.ClientConnectorError):
        await raw(http, url, alice.body(to="localhost", wait="5", hold="1"))
    # A new session asked for on the connection that was already open: refused, and the connection closed.
    create = (f"<body xmlns='{HTTPBIND}' rid='1' to='localhost' wait='5' hold='1'/>").encode()
    writer.write(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
                 + f"Content-Length: {len(create)}\r\n\r\n".encode() + create)
    reply = await asyncio.wait_for(reader.read(), 5)   # to EOF: the server closes the connection
    writer.close()
    head, _, answer = reply.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert terminate_condition(answer) == "system-shutdown"
