"""The quiz night on a cluster (docs/scaling.md, tests/interop/test_cluster_quiz.py): nginx round robin in front
of `boshcm serve` nodes (subprocesses, so they can be killed), the quiz page served behind the same nginx, and
a small BOSH player with XEP-0198 that resumes its stream at the XMPP server through whichever node it reaches.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web
from lxml import etree

from boshcm.config import load_config
from quizbot.config import EmbeddedQuizbotConfig
from quizbot.page import page_routes
from quizbot.payload import NS
from tests.integration.bosh_client import NS_HTTPBIND, NS_XBOSH
from tests.integration.nodes import _toml, free_port, node_overrides, wait_for_port

SM = "urn:xmpp:sm:3"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
STANZAS = frozenset({"message", "presence", "iq"})


def nginx_conf(directory: Path, *, listen: int, nodes: Sequence[int], page: int) -> str:
    """A round-robin front as docs/scaling.md has it (no ip_hash, no sticky; a failed BOSH request is tried on
    the next node, POST included: a repeated rid is answered from the session's cache), plus a location for the
    page, which off-board nodes do not serve. Host keeps the port, so a page from this front is same-origin for
    boshcm. fail_timeout is 2 s here (10 s in the docs) so that a node restarted seconds after it was killed gets
    requests again within the test."""
    temp = "".join(f" {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                       "scgi"))
    servers = "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;\n" for port in nodes)
    headers = ("proxy_http_version 1.1; proxy_set_header Host $http_host; "
               "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; "
               "proxy_set_header X-Forwarded-Proto $scheme;")
    return (f"worker_processes 1; pid {directory / 'nginx.pid'}; error_log {directory / 'error.log'}; daemon off;\n"
            f"events {{ worker_connections 256; }}\nhttp {{ access_log off;{temp}\n"
            f"upstream boshcm {{\n{servers}    keepalive 64;\n}}\n"
            f"upstream page {{ server 127.0.0.1:{page}; }}\n"
            f"server {{\n  listen 127.0.0.1:{listen};\n"
            f"  location / {{ proxy_pass http://page; {headers} }}\n"
            f"  location ~ ^/(http-bind|bosh)$ {{ proxy_pass http://boshcm; {headers} "
            f"proxy_set_header Connection \"\"; proxy_buffering off; proxy_read_timeout 90s; "
            f"proxy_next_upstream error timeout non_idempotent; }}\n"
            f"  location ~ ^/(xmpp-websocket|ws)$ {{ proxy_pass http://boshcm; {headers} "
            f"proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; "
            f"proxy_read_timeout 1h; }}\n}}\n}}\n")


@contextlib.contextmanager
def nginx(directory: Path, *, nodes: Sequence[int], page: int) -> Iterator[int]:
    """Debian's nginx as the round-robin front; yields its port."""
    directory.mkdir(parents=True, exist_ok=True)
    listen = free_port()
    (directory / "nginx.conf").write_text(nginx_conf(directory, listen=listen, nodes=nodes, page=page))
    process = subprocess.Popen(["nginx", "-c", str(directory / "nginx.conf"), "-p", str(directory)],
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else "nginx ended"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", listen)) == 0:
                    break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield listen
    finally:
        process.terminate()
        process.wait(10)


@contextlib.asynccontextmanager
async def quiz_page(bot: str, room: str) -> AsyncIterator[int]:
    """The quiz page (quizbot/page.py) on a port of its own, told where the cluster's bot and room are. An
    off-board node serves no page (there is no embedded server behind it): a site serves it next to BOSH."""
    local, _, domain = bot.partition("@")
    config = load_config(None, {"server.domain": domain, "muc.domain": room.partition("@")[2],
                                "http.quiz_page_transport": "bosh"})
    app = web.Application()
    app.add_routes(page_routes(config, EmbeddedQuizbotConfig(account=local, room=room.partition("@")[0])))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


class NodeProcess:
    """One `boshcm serve` node as a subprocess (its log in a file), which can be killed and started again on the
    same ports."""

    def __init__(self, tmp_path: Path, node: str, *, upstreams: Sequence[str], internal_ports: Mapping[str, int],
                 secret_file: Path) -> None:
        self.node = node
        self.http_port = free_port()
        overrides = node_overrides(tmp_path, node, upstreams=upstreams, internal_ports=internal_ports,
                                   secret_file=secret_file,
                                   extra={"http.listen": f"127.0.0.1:{self.http_port}",
                                          "http.trusted_proxies": ["127.0.0.1/32"]})
        overrides.pop("quizbot.enabled")
        self.config = tmp_path / f"node-{node}.toml"
        self.config.write_text(_toml(overrides))
        self.log = tmp_path / f"node-{node}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "boshcm", "serve", "--config", str(self.config), "--no-quizbot",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        # Generous: the test starts the nodes while ejabberd starts, and a starved machine is slow to start Python.
        await wait_for_port(self.http_port, timeout_seconds=60.0)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def signal(self, signum: int) -> int:
        """Send the signal and wait for the process to end; its exit status."""
        assert self.process is not None
        self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), 15)

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class SessionLost(Exception):
    """The BOSH session is gone (its node died or drained): log in again and resume."""


class SmPlayer:
    """What a quiz player with XEP-0198 counts, whatever its transport: every stanza it handles (h), the ones it
    sent until acknowledged (resent after <resumed h/> for what the server never got), and the quiz payloads from
    the bot's occupant (`payloads`)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, name: str, *, room: str, bot_nick: str,
                 domain: str = "localhost") -> None:
        self.http, self.url, self.name, self.domain = http, url, name, domain
        self.room, self.bot_nick, self.nick = room, bot_nick, name.title()
        self.resumed = 0
        self.losses: list[str] = []     # why each session ended
        self.payloads: list[etree._Element] = []
        self.arrived = asyncio.Event()  # set on every payload
        self._h = 0
        self._previd: str | None = None
        self._acked = 0                 # the server's last h for our stanzas
        self._unacked: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._up = asyncio.Event()
        self._pings = 0
        self.wire: list[str] = []       # what went out and came in, for a failure's story

    def send(self, stanza: str) -> None:
        raise NotImplementedError

    def say(self, text: str) -> None:
        self.send(f"<message xmlns='jabber:client' to='{self.room}' type='groupchat'><body>{text}</body></message>")

    def join(self) -> None:
        self.send("<presence xmlns='jabber:client'/>")
        self.send(f"<presence xmlns='jabber:client' to='{self.room}/{self.nick}'><x xmlns='{NS_MUC}'>"
                  f"<history maxstanzas='0'/></x></presence>")

    async def synced(self) -> None:
        """Until the server has acknowledged a ping sent now: the stream is live, resumed first if its node went
        away (the ping is resent after `<resumed/>` like anything the server had not acknowledged)."""
        self._pings += 1
        self.send(f"<iq xmlns='jabber:client' type='get' id='sync-{self._pings}' to='{self.domain}'>"
                  f"<ping xmlns='urn:xmpp:ping'/></iq>")
        acknowledged = self._acked + len(self._unacked)
        async with asyncio.timeout(30):
            while self._acked < acknowledged:
                self.check()
                await asyncio.sleep(0.05)

    def _enabled(self, enabled: etree._Element) -> None:
        assert enabled.get("resume") in ("true", "1"), etree.tostring(enabled)
        self._previd = enabled.get("id")

    def _resume_element(self) -> str:
        return f"<resume xmlns='{SM}' previd='{self._previd}' h='{self._h}'/>"

    def _resumed(self, resumed: etree._Element) -> list[str]:
        """<resumed h/>: what to send again."""
        self.resumed += 1
        self._acknowledged(int(resumed.get("h", "0")))
        again, self._unacked = self._unacked, []
        return again

    def _acknowledged(self, h: int) -> None:
        count = h - self._acked
        assert 0 <= count <= len(self._unacked), f"{self.name}: ack {h} after {self._acked}"
        del self._unacked[:count]
        self._acked = h

    def _element(self, element: etree._Element) -> bool:
        """A top-level element from the server; True when it is an <r/> to answer."""
        name = etree.QName(element).localname
        if etree.QName(element).namespace == SM:
            if name == "a":
                self._acknowledged(int(element.get("h", "0")))
            return name == "r"
        if name not in STANZAS:
            return False
        self._h += 1
        if name == "message" and element.get("from") == f"{self.room}/{self.bot_nick}":
            for payload in element:
                if etree.QName(payload).namespace == NS:
                    self.payloads.append(payload)
                    self.arrived.set()
        return False

    async def next(self, name: str, after: int = 0, **attrs: str) -> etree._Element:
        """The first payload `name` (with these attributes) at or after position `after` in `payloads`."""
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            self.check()
            for payload in self.payloads[after:]:
                if etree.QName(payload).localname == name and all(payload.get(k) == v for k, v in attrs.items()):
                    return payload
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.5)
        raise AssertionError(f"{self.name}: no {name} {attrs} (h {self._h}, resumed {self.resumed}, up "
                             f"{self._up.is_set()}, unacked {len(self._unacked)}, losses {self.losses}, got "
                             f"{[(etree.QName(p).localname, dict(p.attrib)) for p in self.payloads][-4:]})")

    def check(self) -> None:
        """Raise what ended the player's own tasks (a refused resumption), if anything did."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"{self.name} (losses {self.losses})") from task.exception()

    def seen(self, name: str, key: str) -> Counter[str]:
        """How often each payload `name` arrived, by attribute `key` (a question's id, a reveal's question)."""
        return Counter(p.get(key, "") for p in self.payloads if etree.QName(p).localname == name)

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class SmBoshPlayer(SmPlayer):
    """A quiz player over BOSH with XEP-0198, as a browser client would be: one request held, answers sent on a
    second; when its node goes away it starts a new BOSH session through the front and sends <resume/>."""

    def __init__(self, http: aiohttp.ClientSession, url: str, name: str, *, room: str, bot_nick: str,
                 domain: str = "localhost") -> None:
        super().__init__(http, url, name, room=room, bot_nick=bot_nick, domain=domain)
        self.sids: list[str] = []       # every BOSH session used, in order (its owner node is the sid's prefix)
        self._sid: str | None = None
        self._rid = 0
        self._outbox: list[str] = []
        self._ack_wanted = False
        self._sending = 0
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()

    # --- BOSH ---------------------------------------------------------------------------------------------------

    def _body(self, payload: str = "", **attrs: str) -> bytes:
        self._rid += 1
        base = {"rid": str(self._rid), **({"sid": self._sid} if self._sid else {}), **attrs}
        rendered = " ".join(f"{key}='{value}'" for key, value in base.items())
        return f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' {rendered}>{payload}</body>".encode()

    async def _post(self, data: bytes) -> etree._Element:
        try:
            async with self.http.post(self.url, data=data,
                                      headers={"Content-Type": "text/xml; charset=utf-8"}) as reply:
                if reply.status != 200:
                    raise SessionLost(f"HTTP {reply.status}")
                body = etree.fromstring(await reply.read())
        except (aiohttp.ClientError, OSError, etree.XMLSyntaxError) as error:
            raise SessionLost(repr(error)) from error
        if body.get("type") == "terminate":
            raise SessionLost(f"terminate {body.get('condition')}")
        return body

    async def _create(self, node: str | None) -> etree._Element:
        """A new BOSH session; with `node`, one owned by that node (round robin: try again until it is). A session
        on the wrong node is ended only afterwards: one request per try, so that the front's alternation cannot
        send every try to the same node."""
        strays: list[tuple[str, int]] = []
        try:
            for _ in range(20):
                self._sid, self._rid = None, random.randint(1_000_000, 2**31)
                created = await self._post(self._body(to=self.domain, wait="10", hold="1", ver="1.11",
                                                      **{"xml:lang": "en", "xmpp:version": "1.0"}))
                self._sid = created.get("sid")
                assert self._sid is not None, etree.tostring(created)
                if node is None or self._sid.startswith(f"{node}."):
                    self.sids.append(self._sid)
                    return created
                strays.append((self._sid, self._rid))
            raise AssertionError(f"no BOSH session on node {node} in 20 tries")
        finally:
            for sid, rid in strays:
                with contextlib.suppress(SessionLost):
                    await self._post(f"<body xmlns='{NS_HTTPBIND}' rid='{rid + 1}' sid='{sid}' type='terminate'/>"
                                     .encode())

    async def _authenticate(self, node: str | None) -> None:
        created = await self._create(node)
        while created.find("{http://etherx.jabber.org/streams}features") is None:
            created = await self._post(self._body())
        token = base64.b64encode(f"\0{self.name}\0{self.name}-secret".encode()).decode()
        answer = await self._post(self._body(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"))
        assert answer.find(f"{{{NS_SASL}}}success") is not None, etree.tostring(answer)
        restarted = await self._post(self._body(**{"to": self.domain, "xmpp:restart": "true"}))
        while restarted.find(f".//{{{NS_BIND}}}bind") is None:
            restarted = await self._post(self._body())

    async def _until(self, first: etree._Element, local_name: str) -> etree._Element:
        """The element `local_name` in this answer or the next ones; stanzas on the way are handled."""
        answer = first
        while True:
            found = answer.find(f"{{{SM}}}{local_name}")
            self._handle(answer)
            if found is not None:
                return found
            answer = await self._post(self._body())

    # --- XEP-0198 -----------------------------------------------------------------------------------------------

    async def start(self, node: str) -> None:
        """Log in on a session owned by `node`, enable stream management, join the room."""
        await self._authenticate(node)
        bound = await self._post(self._body(
            f"<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>quiz</resource>"
            f"</bind></iq>"))
        assert bound.find(f".//{{{NS_BIND}}}jid") is not None, etree.tostring(bound)
        self._enabled(await self._until(await self._post(self._body(f"<enable xmlns='{SM}' resume='true'/>")),
                                        "enabled"))
        self._up.set()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._send_loop())]
        self.join()

    def send(self, stanza: str) -> None:
        """Send a stanza (kept until acknowledged, resent after a resumption if the server never got it)."""
        self._unacked.append(stanza)
        self._outbox.append(stanza)
        self._wake.set()

    async def _send_loop(self) -> None:
        """One request at a time besides the held one (hold=1 allows two): what is waiting goes in one body."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._up.wait()
            if not self._outbox and not self._ack_wanted:
                continue
            payload, self._outbox = "".join(self._outbox), []
            if payload:
                payload += f"<r xmlns='{SM}'/>"
            if self._ack_wanted:
                self._ack_wanted = False
                payload += f"<a xmlns='{SM}' h='{self._h}'/>"  # h as it is when the answer goes out
            self._sending += 1
            try:
                await self._request(self._body(payload))
            finally:
                self._sending -= 1

    async def _request(self, data: bytes) -> None:
        try:
            self._handle(await self._post(data))
        except SessionLost as lost:
            self.losses.append(str(lost))
            self._lost.set()

    async def _run(self) -> None:
        while True:
            if not self._lost.is_set():
                await self._request(self._body())
            if self._lost.is_set():
                await self._resume()

    async def _resume(self) -> None:
        """The session is gone: wait for what was still in flight on it, then a new session and <resume/>."""
        self._up.clear()
        async with asyncio.timeout(15):
            while self._sending:
                await asyncio.sleep(0.02)
        self._lost.clear()
        while True:
            try:
                await self._authenticate(None)
                answer = await self._post(self._body(self._resume_element()))
                failed = answer.find(f"{{{SM}}}failed")
                assert failed is None, f"{self.name}: resumption refused: {etree.tostring(answer)!r}"
                resumed = await self._until(answer, "resumed")
                break
            except SessionLost:
                await asyncio.sleep(0.2)  # the front may still send us to the node that went away
        again = self._resumed(resumed)
        self._outbox, self._ack_wanted = [], False
        self._up.set()
        for stanza in again:
            self.send(stanza)

    def _handle(self, body: etree._Element) -> None:
        for child in body:
            if self._element(child):
                self._ack_wanted = True
                self._wake.set()

    async def close(self) -> None:
        await self._stop_tasks()
        if self._sid is not None:
            with contextlib.suppress(SessionLost):
                await asyncio.wait_for(self._post(self._body(type="terminate")), 5)


OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{domain}' version='1.0'/>"


class SmWebSocketPlayer(SmPlayer):
    """A quiz player over WebSocket (RFC 7395) with XEP-0198: the socket stays on the node it reached; when that
    node goes away (a `system-shutdown` stream error, or the socket just drops) it opens a new one through the
    front and sends <resume/>. `connections` counts the sockets it used."""

    def __init__(self, http: aiohttp.ClientSession, url: str, name: str, *, room: str, bot_nick: str,
                 domain: str = "localhost") -> None:
        super().__init__(http, url, name, room=room, bot_nick=bot_nick, domain=domain)
        self.connections = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self._generation = 0  # one per socket: what was queued for an earlier one is never written to a later one

    async def _receive(self, timeout: float | None = 15) -> etree._Element:
        assert self._ws is not None
        try:
            frame = await self._ws.receive(timeout=timeout)
        except TimeoutError as error:
            raise SessionLost("no answer") from error
        self.wire.append(f"{time.monotonic():.3f} < {frame.type.name} {frame.data}")
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise SessionLost(f"websocket {frame.type.name}")
        element = etree.fromstring(frame.data.encode())
        if etree.QName(element).localname in ("close", "error"):
            raise SessionLost(etree.tostring(element).decode())
        return element

    async def _expect(self, local_name: str) -> etree._Element:
        """The next element `local_name`; stanzas and acks on the way are handled."""
        while True:
            element = await self._receive()
            if etree.QName(element).localname == local_name:
                return element
            if self._element(element):
                await self._write(f"<a xmlns='{SM}' h='{self._h}'/>")

    async def _write(self, text: str) -> None:
        assert self._ws is not None
        self.wire.append(f"{time.monotonic():.3f} > {text}")
        try:
            await self._ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError) as error:
            raise SessionLost(repr(error)) from error

    async def _authenticate(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        try:
            self._ws = await self.http.ws_connect(self.url, protocols=("xmpp",))
        except (aiohttp.ClientError, OSError) as error:
            raise SessionLost(repr(error)) from error
        self.connections += 1
        await self._write(OPEN.format(domain=self.domain))
        await self._expect("features")
        token = base64.b64encode(f"\0{self.name}\0{self.name}-secret".encode()).decode()
        await self._write(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        await self._expect("success")
        await self._write(OPEN.format(domain=self.domain))
        await self._expect("features")

    async def start(self) -> None:
        await self._authenticate()
        await self._write(f"<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='{NS_BIND}'>"
                          f"<resource>quiz</resource></bind></iq>")
        await self._expect("iq")
        await self._write(f"<enable xmlns='{SM}' resume='true'/>")
        self._enabled(await self._expect("enabled"))
        self._up.set()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._send_loop())]
        self.join()

    def send(self, stanza: str) -> None:
        self._unacked.append(stanza)
        self._queue.put_nowait((self._generation, stanza))  # RFC 7395 §3.3.3: one element per message
        self._queue.put_nowait((self._generation, f"<r xmlns='{SM}'/>"))

    async def _send_loop(self) -> None:
        while True:
            generation, text = await self._queue.get()
            await self._up.wait()
            if generation != self._generation:
                continue  # queued for a socket that is gone: _resume sends again what the server did not get
            with contextlib.suppress(SessionLost):  # the reader notices too, and resumes
                await self._write(text)

    async def _run(self) -> None:
        while True:
            try:
                while True:
                    if self._element(await self._receive(timeout=None)):
                        self._queue.put_nowait((self._generation, f"<a xmlns='{SM}' h='{self._h}'/>"))
            except (SessionLost, etree.XMLSyntaxError) as lost:
                self.losses.append(repr(lost))
            await self._resume()

    async def _resume(self) -> None:
        self._up.clear()
        while True:
            try:
                await self._authenticate()
                await self._write(self._resume_element())
                while True:
                    element = await self._receive()
                    name = etree.QName(element).localname
                    assert name != "failed", f"{self.name}: resumption refused: {etree.tostring(element)!r}"
                    if name == "resumed":
                        break
                    self._element(element)
                break
            except SessionLost:
                await asyncio.sleep(0.2)  # the front may still send us to the node that went away
        again = self._resumed(element)
        self._generation += 1
        self._up.set()
        for stanza in again:
            self.send(stanza)

    async def close(self) -> None:
        await self._stop_tasks()
        if self._ws is not None:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._ws.close()


async def stop_process(process: asyncio.subprocess.Process, signum: int = signal.SIGTERM) -> None:
    if process.returncode is None:
        process.send_signal(signum)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
