"""Churn benchmark: XEP-0198 clients on c2s, BOSH and WebSocket whose connections die at random, boshcm vs ejabberd.

    .venv/bin/python -m tests.perf.bench_churn [--clients 10] [--minutes 1] [--kill-every 0.5] [--only boshcm]

`--clients` clients per transport (TCP c2s with STARTTLS, BOSH, WebSocket), each with stream management
(resumable), all in one MUC room, plus a question master that asks a "quiz question" into the room every
`--question-every` seconds. Every client sends numbered one-to-one messages to random other clients and
numbered groupchat messages. All connections go through relays that cut one random TCP connection every
`--kill-every` seconds, mid-stream, both ways (a network that goes away: no goodbye). A client whose
transport died resumes its session (XEP-0198 <resume/>) on its own transport or, every other time, on another
one, and resends what the server had not acknowledged. After `--minutes` the killing and sending stop, every
client resumes and is acknowledged, and each receiver counts, for every stanza it should have had:
delivered once, duplicated (more than once) or lost (never). A correct server loses and duplicates nothing.

The clients are written here on raw sockets and aiohttp, not slixmpp: one session has to move between
TCP, BOSH and WebSocket. Both servers run as their own processes, started fresh: boshcm (`boshcm serve`)
and Debian's ejabberd 23.01 (tests/ejabberd.py; its mod_stream_mgmt works on all three transports).
Prosody is not compared: Debian's Prosody 0.12 has no XEP-0198 module (mod_smacks is a community module).
Run on demand, never in the test command.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import random
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from lxml import etree

from tests.ejabberd import EjabberdNode, register_in_band
from tests.interop.prosody import free_port
from tests.perf.bench_bosh import wait_for_port

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SM = "urn:xmpp:sm:3"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_MUC = "http://jabber.org/protocol/muc"
TRANSPORTS = ("c2s", "bosh", "websocket")
STANZAS = {"message", "presence", "iq"}
ROOM_LOCAL = "churn"
PASSWORD = "churn-secret"
Element = etree._Element
VERBOSE = False  # --verbose: print why each transport ended
DROP_UNACKED = False  # --control-drop-unacked: a broken client, to show that the count sees what it loses


_background: set[asyncio.Task[None]] = set()


def in_background(closing: Coroutine[Any, Any, None]) -> None:
    """Closing a dead connection: nobody waits for it, but the task is kept until it ends."""
    task = asyncio.ensure_future(closing)
    _background.add(task)
    task.add_done_callback(_closed)


def _closed(task: asyncio.Task[None]) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed close of a dead connection is expected


class TransportDied(Exception):
    """The connection under a client went away (or the server closed the stream)."""


# --------------------------------------------------------------------------- the network that goes away


class ChaosRelay:
    """Forwards TCP byte for byte; `kill_one()` aborts one random live connection, both sides at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.kills = 0
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, server_writer)
        self._pairs.append(pair)
        pumps = [asyncio.create_task(self._pump(client_reader, server_writer)),
                 asyncio.create_task(self._pump(server_reader, client_writer))]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for writer in pair:
            writer.close()
        with contextlib.suppress(ValueError):
            self._pairs.remove(pair)
        self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65_536):
                writer.write(data)
                await writer.drain()

    def kill_one(self) -> None:
        if not self._pairs:
            return
        pair = self._pairs.pop(random.randrange(len(self._pairs)))
        for writer in pair:
            writer.transport.abort()
        self.kills += 1

    async def stop(self) -> None:
        for pair in self._pairs:
            for writer in pair:
                writer.transport.abort()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --------------------------------------------------------------------------- three transports, one interface


class Transport(Protocol):
    name: str

    async def open(self, username: str) -> None:
        """Connect, authenticate (SASL PLAIN) and restart: ready for <bind/> or <resume/>."""

    def send(self, xml: str) -> None: ...
    async def receive(self) -> Element: ...
    def abort(self) -> None: ...


def plain_auth(username: str) -> str:
    token = base64.b64encode(f"\0{username}\0{PASSWORD}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


def check_sasl(element: Element) -> None:
    if element.tag != f"{{{NS_SASL}}}success":
        raise TransportDied(f"SASL: {etree.tostring(element)[:200]!r}")


class C2sTransport:
    """XMPP over TCP with STARTTLS (RFC 6120), parsed with lxml's pull parser."""

    name = "c2s"

    def __init__(self, target: Target) -> None:
        self.target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = etree.XMLPullParser(events=("end",))
        self._ready: collections.deque[Element] = collections.deque()

    def _restart(self) -> None:
        assert self._writer is not None
        self._parser = etree.XMLPullParser(events=("end",), resolve_entities=False, no_network=True)
        self._ready.clear()
        self._writer.write(f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' "
                           f"to='localhost' version='1.0'>".encode())

    async def open(self, username: str) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.target.c2s_relay.port)
        self._restart()
        await self._expect("features")
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        await self._expect("proceed")
        context = ssl.create_default_context(cafile=self.target.cert_path)
        await self._writer.start_tls(context, server_hostname="localhost")
        self._restart()
        await self._expect("features")
        self.send(plain_auth(username))
        check_sasl(await self.receive())
        self._restart()
        await self._expect("features")

    async def _expect(self, local_name: str) -> Element:
        element = await self.receive()
        if etree.QName(element).localname != local_name:
            raise TransportDied(f"expected {local_name}: {etree.tostring(element)[:200]!r}")
        return element

    def send(self, xml: str) -> None:
        assert self._writer is not None
        self._writer.write(xml.encode())

    async def receive(self) -> Element:
        assert self._reader is not None
        while not self._ready:
            for _event, element in self._parser.read_events():
                parent = element.getparent()
                if parent is not None and parent.getparent() is None:  # a child of <stream:stream>
                    self._ready.append(element)
                    parent.remove(element)
            if self._ready:
                break
            try:
                data = await self._reader.read(65_536)
            except (OSError, ssl.SSLError) as exc:
                raise TransportDied(str(exc)) from exc
            if not data:
                raise TransportDied("closed")
            self._parser.feed(data)
        element = self._ready.popleft()
        if element.tag == f"{{{NS_STREAM}}}error":
            raise TransportDied(f"stream error {etree.tostring(element)[:200]!r}")
        return element

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()


class WebSocketTransport:
    """RFC 7395: one element per frame."""

    name = "websocket"

    def __init__(self, target: Target) -> None:
        self.target = target
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._outbound: asyncio.Queue[str] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def _write(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, OSError):
            while True:
                await self._ws.send_str(await self._outbound.get())

    async def open(self, username: str) -> None:
        self._http = aiohttp.ClientSession()
        url = f"ws://127.0.0.1:{self.target.http_relay.port}{self.target.websocket_path}"
        try:
            self._ws = await self._http.ws_connect(url, protocols=("xmpp",), heartbeat=None)
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportDied(str(exc)) from exc
        self._writer = asyncio.create_task(self._write())
        opening = f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>"
        self.send(opening)
        await self.receive()  # <open/>
        await self.receive()  # features
        self.send(plain_auth(username))
        check_sasl(await self.receive())
        self.send(opening)
        await self.receive()
        await self.receive()

    def send(self, xml: str) -> None:
        self._outbound.put_nowait(xml)  # one writer task keeps the frames in order

    async def receive(self) -> Element:
        assert self._ws is not None
        message = await self._ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise TransportDied(f"websocket {message.type.name}")
        element = etree.fromstring(message.data.encode())
        if element.tag in (f"{{{NS_STREAM}}}error", f"{{{NS_FRAMING}}}close"):
            raise TransportDied(f"closed by server {message.data[:200]}")
        return element

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        if self._http is not None:
            in_background(self._http.close())


class BoshTransport:
    """XEP-0124/0206 with hold=1: one request held, a second one when there is something to send. Responses are
    handled strictly in rid order; a request that fails ends the transport (the session resumes elsewhere)."""

    name = "bosh"

    def __init__(self, target: Target) -> None:
        self.target = target
        self._http: aiohttp.ClientSession | None = None
        self.rid = random.randint(1_000_000, 2**32) + 2**31
        self.sid = ""
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._inbound: asyncio.Queue[Element | None] = asyncio.Queue()
        self._loop_task: asyncio.Task[None] | None = None
        self._death = "BOSH loop ended"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.target.http_relay.port}{self.target.bosh_path}"

    def _body(self, payload: str = "", **attrs: str) -> bytes:
        self.rid += 1
        base = {"rid": str(self.rid), **({"sid": self.sid} if self.sid else {}), **attrs}
        rendered = " ".join(f"{key}='{value}'" for key, value in base.items())
        return f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' {rendered}>{payload}</body>".encode()

    async def _post(self, data: bytes) -> Element:
        assert self._http is not None
        try:
            async with self._http.post(self.url, data=data,
                                       headers={"Content-Type": "text/xml; charset=utf-8"}) as reply:
                if reply.status != 200:
                    raise TransportDied(f"HTTP {reply.status}")
                body = etree.fromstring(await reply.read())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportDied(str(exc)) from exc
        if body.get("type") == "terminate":
            raise TransportDied(f"terminate {body.get('condition')}")
        return body

    async def open(self, username: str) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=40))
        created = await self._post(self._body(to="localhost", wait="20", hold="1", ver="1.11",
                                              **{"xmpp:version": "1.0"}))
        self.sid = created.get("sid") or ""
        if created.find(f"{{{NS_STREAM}}}features") is None:
            await self._post(self._body())
        success = await self._post(self._body(plain_auth(username)))
        if len(success) == 0:
            success = await self._post(self._body())
        check_sasl(success[0])
        restarted = await self._post(self._body(**{"to": "localhost", "xmpp:restart": "true"}))
        if restarted.find(f"{{{NS_STREAM}}}features") is None:
            await self._post(self._body())
        self._loop_task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        in_flight: collections.deque[asyncio.Task[Element]] = collections.deque()
        waker: asyncio.Task[bool] | None = None
        try:
            while True:
                if not in_flight or (self._pending and len(in_flight) < 2):
                    payload, self._pending = "".join(self._pending), []
                    in_flight.append(asyncio.create_task(self._post(self._body(payload))))
                self._wake.clear()
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait([*in_flight, waker], return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                for task in in_flight:   # any request lost: the transport is gone, whatever is still held
                    if task.done() and task.exception() is not None:
                        raise TransportDied(str(task.exception()))
                while in_flight and in_flight[0].done():   # responses in rid order only
                    for child in in_flight.popleft().result():
                        self._inbound.put_nowait(child)
        except TransportDied as exc:
            self._death = str(exc)
        finally:
            for task in in_flight:
                task.cancel()
            if waker is not None:
                waker.cancel()
            self._inbound.put_nowait(None)

    def send(self, xml: str) -> None:
        self._pending.append(xml)
        self._wake.set()

    async def receive(self) -> Element:
        if self._loop_task is None:
            raise TransportDied("not open")
        element = await self._inbound.get()
        if element is None:
            self._inbound.put_nowait(None)
            raise TransportDied(self._death)
        return element

    def abort(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        if self._http is not None:
            in_background(self._http.close())


# --------------------------------------------------------------------------- the XEP-0198 client


@dataclass
class Tally:
    sent: dict[str, set[str]] = field(default_factory=dict)   # token -> who should receive it
    received: dict[str, collections.Counter[str]] = field(default_factory=dict)  # receiver -> token -> times
    # receiver -> token -> (connection number, transport, h, XEP-0203 delay or not) of each arrival: where a
    # duplicate came from
    arrivals: dict[str, dict[str, list[tuple[int, str, int, str]]]] = field(default_factory=dict)


class ChurnClient:
    """One account, one resource, one resumable session that hops between transports."""

    def __init__(self, index: int, home: str, target: Target, tally: Tally, room: str,
                 transports: tuple[str, ...] = TRANSPORTS) -> None:
        self.username = f"churn{index}" if index >= 0 else "quizmaster"
        self.jid = f"{self.username}@localhost/churn"
        self.home = home
        self.others = [name for name in transports if name != home] or [home]
        self.target = target
        self.tally = tally
        self.room = room
        self.tally.received[self.jid] = collections.Counter()
        self.handled = 0                                   # XEP-0198 h of what we received
        self.acked = 0                                     # the server's last h
        self.unacked: collections.deque[str] = collections.deque()
        self.sm_id: str | None = None
        self.transport: Transport | None = None
        self.connected = asyncio.Event()
        self.joined = asyncio.Event()
        self.stopping = False
        self.resumes = collections.Counter[str]()
        self.resume_failures = 0
        self.join_sent = False
        self.connections = 0
        self.resend_after_failure: list[str] = []

    def send_stanza(self, xml: str) -> None:
        """Counted by XEP-0198 and kept until acknowledged; written now if connected, else on resumption."""
        self.unacked.append(xml)
        if self.transport is not None and self.connected.is_set():
            self.transport.send(xml)
            if len(self.unacked) % 5 == 0:
                self.transport.send(f"<r xmlns='{NS_SM}'/>")

    def _choose_transport(self, first: bool) -> Transport:
        # Every other reconnection goes to another transport than this client's own.
        name = self.home if first or random.random() < 0.5 else random.choice(self.others)
        kinds: dict[str, Callable[[Target], Transport]] = {"c2s": C2sTransport, "bosh": BoshTransport,
                                                           "websocket": WebSocketTransport}
        return kinds[name](self.target)

    async def run(self) -> None:
        first = True
        while True:  # until cancelled at the end of the run
            transport = self._choose_transport(first)
            try:
                async with asyncio.timeout(30):
                    await transport.open(self.username)
                    await (self._resume(transport) if self.sm_id else self._start(transport))
                first = False
                self.transport = transport
                self.connections += 1
                self.connected.set()
                if not self.join_sent:
                    self._join()
                for xml in self.resend_after_failure:
                    self.send_stanza(xml)
                self.resend_after_failure = []
                await self._read(transport)
            except (TransportDied, TimeoutError, OSError, ssl.SSLError, etree.XMLSyntaxError) as exc:
                if VERBOSE:
                    print(f"    {self.username} on {transport.name}: {type(exc).__name__} {exc}", file=sys.stderr)
            finally:
                self.connected.clear()
                self.transport = None
                transport.abort()
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def _start(self, transport: Transport) -> None:
        transport.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'>"
                       "<resource>churn</resource></bind></iq>")
        bound = await transport.receive()
        if bound.get("type") != "result":
            raise TransportDied(f"bind: {etree.tostring(bound)[:200]!r}")
        transport.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = await transport.receive()
        if enabled.tag != f"{{{NS_SM}}}enabled":
            raise TransportDied(f"enable: {etree.tostring(enabled)[:200]!r}")
        self.sm_id = enabled.get("id")
        self.handled = self.acked = 0

    async def _resume(self, transport: Transport) -> None:
        transport.send(f"<resume xmlns='{NS_SM}' previd='{self.sm_id}' h='{self.handled}'/>")
        answer = await transport.receive()
        if answer.tag == f"{{{NS_SM}}}failed":
            # The session is gone (should not happen within the resumption timeout): a new one, whose
            # stanzas are not ours to count as lost or duplicated by SM; count the failure itself.
            self.resume_failures += 1
            self.joined.clear()
            self.join_sent = False
            # Sent before but never acknowledged: send again in the new session (may duplicate: XEP-0198
            # cannot tell what the lost session handled).
            self.resend_after_failure, self.unacked = list(self.unacked), collections.deque()
            await self._start(transport)
            return
        if answer.tag != f"{{{NS_SM}}}resumed":
            raise TransportDied(f"resume: {etree.tostring(answer)[:200]!r}")
        self.resumes[transport.name] += 1
        if VERBOSE:
            print(f"    {self.username} resumed on {transport.name} (connection {self.connections + 1}): we handled "
                  f"{self.handled}, server handled {answer.get('h')} of our {self.acked + len(self.unacked)}",
                  file=sys.stderr)
        self._acknowledged(int(answer.get("h") or 0))
        # XEP-0198 §5: resend what the server has not handled, in order, then ask where we are.
        if DROP_UNACKED:
            self.acked = int(answer.get("h") or 0)
            self.unacked.clear()
        for xml in self.unacked:
            transport.send(xml)
        transport.send(f"<r xmlns='{NS_SM}'/>")

    def _join(self) -> None:
        self.join_sent = True
        self.send_stanza(f"<presence xmlns='{NS_CLIENT}'/>")
        self.send_stanza(f"<presence xmlns='{NS_CLIENT}' to='{self.room}/{self.username}'>"
                         f"<x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>")

    def _acknowledged(self, h: int) -> None:
        # h counts modulo 2^32 (XEP-0198 §4); this run never wraps.
        while self.acked < h and self.unacked:
            self.unacked.popleft()
            self.acked += 1

    async def _read(self, transport: Transport) -> None:
        while True:
            element = await transport.receive()
            qname = etree.QName(element)
            if qname.namespace == NS_SM:
                if qname.localname == "r":
                    transport.send(f"<a xmlns='{NS_SM}' h='{self.handled}'/>")
                elif qname.localname == "a":
                    self._acknowledged(int(element.get("h") or 0))
                continue
            if qname.localname not in STANZAS:
                continue
            self.handled += 1
            self._on_stanza(element, qname.localname)

    def _on_stanza(self, element: Element, kind: str) -> None:
        if kind == "message" and element.get("type") != "error":  # a bounce carries the body back
            body = element.findtext(f"{{{NS_CLIENT}}}body")
            if body and body.startswith(("dm|", "muc|", "quiz|")):
                self.tally.received[self.jid][body] += 1
                delayed = "delayed" if element.find("{urn:xmpp:delay}delay") is not None else "live"
                where = (self.connections, self.transport.name if self.transport else "?", self.handled, delayed)
                self.tally.arrivals.setdefault(self.jid, {}).setdefault(body, []).append(where)
        elif kind == "presence" and element.get("from") == f"{self.room}/{self.username}":
            if element.find(".//{http://jabber.org/protocol/muc#user}status[@code='110']") is not None:
                self.joined.set()
        elif kind == "iq" and element.get("type") in ("get", "set"):
            # XEP-0199 pings and anything else: answer, as a client must.
            self.send_stanza(f"<iq xmlns='{NS_CLIENT}' type='error' id='{element.get('id')}' "
                             f"to='{element.get('from')}'><error type='cancel'><service-unavailable "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")

    async def settle(self) -> None:
        """Wait until connected and everything sent is acknowledged."""
        while True:
            await self.connected.wait()
            if not self.unacked:
                return
            if self.transport is not None:
                self.transport.send(f"<r xmlns='{NS_SM}'/>")
            await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- the two servers


class Target:
    name: str
    c2s_port: int
    http_port: int
    cert_path: Path
    bosh_path = "/http-bind"
    websocket_path: str
    c2s_relay: ChaosRelay
    http_relay: ChaosRelay

    async def start(self, usernames: list[str]) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class BoshcmTarget(Target):
    name = "boshcm"
    websocket_path = "/xmpp-websocket"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, usernames: list[str]) -> None:
        from boshcm.app import open_accounts
        from boshcm.config import load_config

        data = self.directory / "data"
        accounts = open_accounts(load_config(None, {"server.data_dir": str(data)}))
        for username in usernames:
            accounts.add(username, PASSWORD)
        accounts.close()
        self.c2s_port, self.http_port = free_port(), free_port()
        self.cert_path = data / "tls" / "cert.pem"
        config = self.directory / "churn.toml"
        # All simulated clients come from 127.0.0.1: lift the per-address caps (as bench_bosh does).
        config.write_text("[c2s]\nmax_unauthenticated_per_address = 1000000\n"
                          "[http]\nmax_websockets_per_address = 1000000\n")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "boshcm", "serve", "--config", str(config), "--data-dir", str(data), "--c2s",
            f"127.0.0.1:{self.c2s_port}", "--http", f"127.0.0.1:{self.http_port}", "--log-level", "warning",
            "--no-quizbot")
        await wait_for_port(self.c2s_port)
        await wait_for_port(self.http_port)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


class EjabberdTarget(Target):
    name = "ejabberd"
    websocket_path = "/ws"

    def __init__(self, _directory: Path) -> None:
        self.node: EjabberdNode | None = None

    async def start(self, usernames: list[str]) -> None:
        self.node = EjabberdNode()
        self.node.start()
        await asyncio.to_thread(self.node.wait_started)
        await register_in_band(self.node, dict.fromkeys(usernames, PASSWORD))
        self.c2s_port, self.http_port, self.cert_path = self.node.c2s_port, self.node.http_port, self.node.cert_path

    async def stop(self) -> None:
        if self.node is not None:
            await asyncio.to_thread(self.node.stop)
            self.node.remove()


# --------------------------------------------------------------------------- the run


@dataclass
class Figures:
    clients: int = 0
    kills: int = 0
    resumes: int = 0
    resumes_on_another_transport: int = 0
    resume_failures: int = 0
    one_to_one_sent: int = 0
    groupchat_sent: int = 0
    quiz_questions_sent: int = 0
    expected: int = 0
    delivered: int = 0
    duplicated: int = 0
    lost: int = 0
    lost_samples: list[str] = field(default_factory=list)
    duplicated_samples: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running(target: Target, usernames: list[str]) -> AsyncIterator[None]:
    await target.start(usernames)
    target.c2s_relay, target.http_relay = ChaosRelay(target.c2s_port), ChaosRelay(target.http_port)
    try:
        await target.c2s_relay.start()
        await target.http_relay.start()
        yield
    finally:
        await target.c2s_relay.stop()
        await target.http_relay.stop()
        await target.stop()


async def configure_room(master: ChurnClient, room: str) -> None:
    """Accept the instant-room default (XEP-0045 §10.1.2), whichever way the server locked it."""
    master.send_stanza(f"<iq xmlns='{NS_CLIENT}' type='set' id='instant' to='{room}'>"
                       "<query xmlns='http://jabber.org/protocol/muc#owner'>"
                       "<x xmlns='jabber:x:data' type='submit'/></query></iq>")
    await asyncio.sleep(1)


async def measure(target: Target, args: argparse.Namespace) -> Figures:
    room = f"{ROOM_LOCAL}@conference.localhost"
    tally = Tally()
    transports = tuple(args.transports.split(","))
    clients = [ChurnClient(index, transports[index % len(transports)], target, tally, room, transports)
               for index in range(len(transports) * args.clients)]
    master = ChurnClient(-1, transports[0], target, tally, room, transports)
    everyone = [master, *clients]
    async with running(target, [client.username for client in everyone]):
        tasks = [asyncio.create_task(master.run())]
        await asyncio.wait_for(master.joined.wait(), 30)
        await configure_room(master, room)
        tasks += [asyncio.create_task(client.run()) for client in clients]
        await asyncio.wait_for(asyncio.gather(*(client.joined.wait() for client in clients)), 60)
        print(f"  {target.name}: {len(everyone)} clients in the room", file=sys.stderr)
        occupants = {client.jid for client in everyone}
        figures = Figures(clients=len(everyone))

        async def chatter(client: ChurnClient) -> None:
            seq = 0
            while not client.stopping:
                await asyncio.sleep(random.expovariate(args.rate))
                seq += 1
                if random.random() < 0.75:
                    peer = random.choice([other for other in clients if other is not client])
                    token = f"dm|{client.username}|{seq}"
                    tally.sent[token] = {peer.jid}
                    client.send_stanza(f"<message xmlns='{NS_CLIENT}' type='chat' to='{peer.jid}' id='{token}'>"
                                       f"<body>{token}</body></message>")
                    figures.one_to_one_sent += 1
                else:
                    token = f"muc|{client.username}|{seq}"
                    tally.sent[token] = occupants
                    client.send_stanza(f"<message xmlns='{NS_CLIENT}' type='groupchat' to='{room}' id='{token}'>"
                                       f"<body>{token}</body></message>")
                    figures.groupchat_sent += 1

        async def quiz() -> None:
            seq = 0
            while not master.stopping:
                seq += 1
                token = f"quiz|question|{seq}"
                tally.sent[token] = occupants
                master.send_stanza(f"<message xmlns='{NS_CLIENT}' type='groupchat' to='{room}' id='q{seq}'>"
                                   f"<body>{token}</body></message>")
                figures.quiz_questions_sent += 1
                await asyncio.sleep(args.question_every)

        async def killer() -> None:
            relays = [target.c2s_relay, target.http_relay]
            while not master.stopping:
                await asyncio.sleep(random.expovariate(1 / args.kill_every))
                random.choice(relays).kill_one()

        load = [asyncio.create_task(chatter(client)) for client in clients]
        load += [asyncio.create_task(quiz()), asyncio.create_task(killer())]
        await asyncio.sleep(args.minutes * 60)
        for client in everyone:
            client.stopping = True
        await asyncio.gather(*load)
        print(f"  {target.name}: load stopped, settling", file=sys.stderr)
        await asyncio.wait_for(asyncio.gather(*(client.settle() for client in everyone)), 120)
        await asyncio.sleep(args.settle_seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        figures.kills = target.c2s_relay.kills + target.http_relay.kills

    for client in everyone:
        figures.resumes += sum(client.resumes.values())
        figures.resumes_on_another_transport += sum(n for name, n in client.resumes.items() if name != client.home)
        figures.resume_failures += client.resume_failures
    for token, receivers in tally.sent.items():
        for receiver in receivers:
            times = tally.received[receiver][token]
            figures.expected += 1
            if times == 0:
                figures.lost += 1
                figures.lost_samples.append(f"{token} -> {receiver}")
            else:
                figures.delivered += 1
                if times > 1:
                    figures.duplicated += 1
                    figures.duplicated_samples.append(
                        f"{token} -> {receiver} at {tally.arrivals[receiver][token]}")
    return figures


ROWS = [("clients (+ the quiz master)", "clients"), ("connections killed", "kills"),
        ("sessions resumed", "resumes"), ("  of which on another transport", "resumes_on_another_transport"),
        ("resumptions refused", "resume_failures"), ("one-to-one messages sent", "one_to_one_sent"),
        ("groupchat messages sent", "groupchat_sent"), ("quiz questions sent", "quiz_questions_sent"),
        ("deliveries expected", "expected"), ("delivered", "delivered"),
        ("duplicated", "duplicated"), ("lost", "lost")]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10, help="clients per transport")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="comma-separated subset of c2s,bosh,websocket (the question master uses the first)")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=1.0, help="messages per second per client")
    parser.add_argument("--question-every", type=float, default=2.0, help="seconds between quiz questions")
    parser.add_argument("--kill-every", type=float, default=0.5, help="mean seconds between killed connections")
    parser.add_argument("--settle-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--only", choices=["boshcm", "ejabberd"])
    parser.add_argument("--verbose", action="store_true", help="say why each connection ended and each resumption")
    parser.add_argument("--control-drop-unacked", action="store_true",
                        help="control run: clients forget unacknowledged stanzas instead of resending them")
    args = parser.parse_args()
    if not args.transports or not set(args.transports.split(",")) <= set(TRANSPORTS):
        parser.error(f"--transports: a comma-separated subset of {','.join(TRANSPORTS)}")
    global VERBOSE, DROP_UNACKED
    VERBOSE, DROP_UNACKED = args.verbose, args.control_drop_unacked
    random.seed(args.seed)
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory() as directory:
        for kind in (BoshcmTarget, EjabberdTarget):
            target = kind(Path(directory) / kind.name)
            if args.only and target.name != args.only:
                continue
            print(f"measuring {target.name} ...", file=sys.stderr)
            started = time.perf_counter()
            results[target.name] = await measure(target, args)
            print(f"  {target.name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    names = list(results)
    print(f"{'':40}" + "".join(f"{name:>12}" for name in names))
    for label, attribute in ROWS:
        print(f"{label:40}" + "".join(f"{getattr(results[name], attribute):12d}" for name in names))
    for name in names:
        for what, samples in (("lost", results[name].lost_samples), ("duplicated", results[name].duplicated_samples)):
            if samples:
                print(f"{name} {what} (first 10): {samples[:10]}")


if __name__ == "__main__":
    etree.set_default_parser(etree.XMLParser(resolve_entities=False, no_network=True))
    asyncio.run(main())
