"""Raw clients for the three transports, so one hostile-input test runs against c2s, BOSH and WebSocket.

Each speaks just enough XMPP to reach a stage (connected, or logged in and bound) and then sends whatever
bytes the attack needs, and reports every element the server sends back until the stream ends. They parse
what they receive with a strict namespace-aware parser: a server that relays broken XML fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp
from lxml import etree

from boshcm.app import Server
from tests.integration.bosh_client import BoshClient

TIMEOUT_SECONDS = 10.0
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
TRANSPORTS = ("c2s", "bosh", "websocket")
Element = etree._Element


class RawClient(Protocol):
    transport: str

    async def connect(self) -> None: ...
    async def login(self, username: str, password: str) -> str: ...
    async def send_raw(self, data: bytes) -> None: ...
    async def next_element(self) -> Element | None: ...
    async def close(self) -> None: ...


def rss_kib() -> int:
    """Resident memory of this process (the server runs in-process in these tests)."""
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stream_error(element: Element | None) -> str | None:
    """The condition of a stream error element (TCP/WebSocket) or of a BOSH terminate body."""
    if element is None:
        return None
    if element.tag == f"{{{NS_STREAM}}}error":
        for child in element:
            if child.tag.startswith(f"{{{NS_STREAMS}}}") and child.tag != f"{{{NS_STREAMS}}}text":
                return etree.QName(child).localname
    if element.get("type") == "terminate":
        return element.get("condition") or "terminate"
    return None


async def until_stream_error(client: RawClient) -> str | None:
    """Read until the stream ends; the stream error condition seen, if any."""
    async with asyncio.timeout(TIMEOUT_SECONDS):
        while (received := await client.next_element()) is not None:
            if (condition := stream_error(received)) is not None:
                return condition
    return None


class C2sRawClient:
    """XMPP over TCP with STARTTLS, read with lxml's pull parser."""

    transport = "c2s"

    def __init__(self, server: Server) -> None:
        self._port = server.c2s.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._queue: list[Element] = []
        self._parser = etree.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._ended = False

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        await self.open_stream()

    async def open_stream(self) -> None:
        self._parser = etree.XMLPullParser(events=("start", "end"))
        self._depth = 0
        await self.send_raw(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                            b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")

    async def features(self) -> Element:
        features = await self.next_element()
        assert features is not None and features.tag == f"{{{NS_STREAM}}}features", features
        return features

    async def starttls(self) -> None:
        features = await self.features()
        assert features.find(f"{{{NS_TLS}}}starttls") is not None
        await self.send_raw(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        proceed = await self.next_element()
        assert proceed is not None and proceed.tag == f"{{{NS_TLS}}}proceed"
        assert self._writer is not None
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        await self._writer.start_tls(context)
        await self.open_stream()

    async def login(self, username: str, password: str) -> str:
        if self._reader is None:
            await self.connect()
        await self.starttls()
        return await _authenticate_and_bind(self, username, password)

    async def send_raw(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def next_element(self) -> Element | None:
        assert self._reader is not None
        while not self._queue:
            if self._ended:
                return None
            try:
                data = await asyncio.wait_for(self._reader.read(65_536), TIMEOUT_SECONDS)
            except (ConnectionError, ssl.SSLError):
                data = b""
            if not data:
                self._ended = True
                return None
            self._parser.feed(data)  # strict: raises on anything not namespace-well-formed
            for action, node in self._parser.read_events():
                if action == "start":
                    self._depth += 1
                    continue
                self._depth -= 1
                if self._depth == 1:
                    self._queue.append(node)
                elif self._depth == 0:
                    self._ended = True
        return self._queue.pop(0)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 2)

    def reset(self) -> None:
        assert self._writer is not None
        reset_connection(self._writer.transport)


class WebSocketRawClient:
    """RFC 7395: one element per text frame."""

    transport = "websocket"

    def __init__(self, server: Server, *, headers: dict[str, str] | None = None) -> None:
        assert server.http is not None
        self._url = f"ws://127.0.0.1:{server.http.port}/xmpp-websocket"
        self._headers = headers or {}
        self._http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> None:
        self._http = aiohttp.ClientSession()
        self.ws = await self._http.ws_connect(self._url, protocols=("xmpp",), headers=self._headers)
        await self.open_stream()

    async def open_stream(self) -> None:
        await self.send_raw(f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>".encode())
        opened = await self.next_element()
        assert opened is not None and opened.tag == f"{{{NS_FRAMING}}}open", opened

    async def features(self) -> Element:
        features = await self.next_element()
        assert features is not None and features.tag == f"{{{NS_STREAM}}}features", features
        return features

    async def login(self, username: str, password: str) -> str:
        if self.ws is None:
            await self.connect()
        return await _authenticate_and_bind(self, username, password)

    async def send_raw(self, data: bytes) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionError):
            await self.ws.send_str(data.decode("utf-8", errors="surrogateescape"))

    async def next_element(self) -> Element | None:
        assert self.ws is not None
        message = await self.ws.receive(timeout=TIMEOUT_SECONDS)
        if message.type is not aiohttp.WSMsgType.TEXT:
            return None
        received = etree.fromstring(message.data.encode())  # strict
        if received.tag == f"{{{NS_FRAMING}}}close":
            return None
        return received

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._http is not None:
            await self._http.close()

    def reset(self) -> None:
        assert self.ws is not None and self.ws._conn is not None
        reset_connection(self.ws._conn.transport)


class BoshRawClient:
    """XEP-0124/0206 with one request at a time; stanzas of every response are queued in order."""

    transport = "bosh"

    def __init__(self, server: Server) -> None:
        assert server.http is not None
        self._url = f"http://127.0.0.1:{server.http.port}/http-bind"
        self._http: aiohttp.ClientSession | None = None
        self.bosh: BoshClient | None = None
        self._queue: list[Element] = []
        self._ended = False

    async def connect(self) -> None:
        self._http = aiohttp.ClientSession()
        self.bosh = BoshClient(self._http, self._url, wait=1)
        self._take(await self.bosh.create())

    async def login(self, username: str, password: str) -> str:
        self._http = aiohttp.ClientSession()
        self.bosh = BoshClient(self._http, self._url, wait=1)
        await self.bosh.login(username, password)
        assert self.bosh.jid is not None
        return self.bosh.jid

    def _take(self, body: Element) -> None:
        if body.get("type") == "terminate":
            self._queue.append(body)
            self._ended = True
            return
        self._queue.extend(body)

    async def send_raw(self, data: bytes) -> None:
        """`data` goes inside one <body/> of this session."""
        assert self.bosh is not None and self._http is not None
        raw = self.bosh.body("").replace(b"></body>", b">" + data + b"</body>")
        async with self._http.post(self._url, data=raw) as reply:
            self._take(etree.fromstring(await reply.read()))  # strict

    async def next_element(self) -> Element | None:
        assert self.bosh is not None
        while not self._queue:
            if self._ended:
                return None
            self._take(await self.bosh.post(self.bosh.body()))
        return self._queue.pop(0)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


async def _authenticate_and_bind(client: C2sRawClient | WebSocketRawClient, username: str, password: str) -> str:
    """SASL PLAIN on a stream whose features are next, the restart, then a generated resource."""
    await client.features()
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    await client.send_raw(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>".encode())
    success = await client.next_element()
    assert success is not None and success.tag == f"{{{NS_SASL}}}success", success
    await client.open_stream()
    await client.features()
    return await _bind(client)


async def _bind(client: C2sRawClient | WebSocketRawClient) -> str:
    await client.send_raw(f"<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='{NS_BIND}'/></iq>".encode())
    bound = await client.next_element()
    assert bound is not None
    jid = bound.findtext(f".//{{{NS_BIND}}}jid")
    assert jid, etree.tostring(bound)
    return jid


def reset_connection(transport: asyncio.WriteTransport | None) -> None:
    """Gone as a phone's network drops it: a TCP reset (SO_LINGER 0, then close), no close frame, no FIN."""
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def raw_client(transport: str, server: Server) -> RawClient:
    match transport:
        case "c2s":
            return C2sRawClient(server)
        case "bosh":
            return BoshRawClient(server)
        case "websocket":
            return WebSocketRawClient(server)
    raise AssertionError(transport)


@contextlib.asynccontextmanager
async def connected(transport: str, server: Server, *, login: tuple[str, str] | None = None
                    ) -> AsyncIterator[RawClient]:
    client = raw_client(transport, server)
    try:
        if login is None:
            await client.connect()
        else:
            await client.login(*login)
        yield client
    finally:
        await client.close()
