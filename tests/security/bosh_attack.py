"""Tools for the BOSH attack tests: a server with chosen limits, raw HTTP over a socket, RSS figures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass

import aiohttp
from lxml import etree

from boshcm.app import Server

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
Element = etree._Element


def bosh_url(server: Server) -> str:
    assert server.http is not None
    return f"http://127.0.0.1:{server.http.port}/http-bind"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def xml(self) -> Element:
        return etree.fromstring(self.body)


class RawRequest:
    """One HTTP/1.1 POST over a plain socket, its body written in pieces with pauses in between."""

    def __init__(self, server: Server, *, origin: str | None = None) -> None:
        assert server.http is not None
        self.port = server.http.port
        self.origin = origin
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, body: bytes, *, pieces: int = 1, pause_seconds: float = 0.0,
                   content_length: int | None = None, via_aiohttp: bool = False) -> None:
        """`via_aiohttp`: a GET of the endpoint's page first, on the same connection, so that the BOSH lane hands
        the connection to aiohttp and aiohttp's route serves the POST (bosh/lane.py); `response` then reads the
        page's response first."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        if via_aiohttp:
            self.writer.write(f"GET /http-bind HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        head = ["POST /http-bind HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                "Content-Type: text/xml; charset=utf-8",
                f"Content-Length: {len(body) if content_length is None else content_length}",
                "Connection: close"]
        if self.origin is not None:
            head.append(f"Origin: {self.origin}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        step = -(-len(body) // pieces)
        for index, start in enumerate(range(0, len(body), step)):
            if index:
                await asyncio.sleep(pause_seconds)
            self.writer.write(body[start:start + step])
            await self.writer.drain()

    async def response(self, timeout: float = 10.0) -> RawResponse:
        assert self.reader is not None
        raw = await asyncio.wait_for(self.reader.read(), timeout)
        self.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:])}
        return RawResponse(status=int(lines[0].split()[1]), headers=headers, body=body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def body(rid: int, sid: str | None = None, payload: str = "", **attrs: str) -> bytes:
    base = {"rid": str(rid), **({"sid": sid} if sid else {}), **attrs}
    rendered = " ".join(f"{key}='{value}'" for key, value in base.items())
    return f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' {rendered}>{payload}</body>".encode()


def chat(to: str, text: str) -> str:
    return f"<message xmlns='jabber:client' to='{to}' type='chat'><body>{text}</body></message>"


# Sent along with stanzas that get no answer, so the request returns at once instead of after 'wait'.
PING = "<iq xmlns='jabber:client' type='get' id='ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"


def bodies(response: Element) -> list[str]:
    return [child.findtext("{jabber:client}body") or "" for child in response]


def keys(count: int, seed: str = "secret") -> list[str]:
    """A XEP-0124 §15 key sequence in the order a client uses it: K(n), K(n-1), ... with K(i-1)=sha1(K(i))."""
    chain = [seed]
    for _ in range(count):
        chain.append(hashlib.sha1(chain[-1].encode()).hexdigest())
    return list(reversed(chain))


class Client:
    """A BOSH client over aiohttp that can send an Origin and use XEP-0124 §15 keys."""

    def __init__(self, http: aiohttp.ClientSession, server: Server, *, origin: str | None = None,
                 use_keys: bool = False, wait: int = 5, hold: int = 1) -> None:
        self.http, self.url, self.origin = http, bosh_url(server), origin
        self.rid = 4_000_000_000
        self.sid: str | None = None
        self.wait, self.hold = wait, hold
        self._keys = keys(50) if use_keys else []
        self.last_key: str | None = None

    def next_body(self, payload: str = "", **attrs: str) -> bytes:
        self.rid += 1
        if self._keys:
            self.last_key = self._keys.pop(0)
            attrs = {("newkey" if self.sid is None else "key"): self.last_key, **attrs}
        return body(self.rid, self.sid, payload, **attrs)

    async def post(self, data: bytes, *, origin: str | None = None) -> Element:
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if (origin := origin or self.origin) is not None:
            headers["Origin"] = origin
        async with self.http.post(self.url, data=data, headers=headers) as reply:
            assert reply.status == 200, reply.status
            return etree.fromstring(await reply.read())

    async def send(self, payload: str = "", **attrs: str) -> Element:
        return await self.post(self.next_body(payload, **attrs))

    async def create(self, **attrs: str) -> Element:
        created = await self.send(to="localhost", wait=str(self.wait), hold=str(self.hold), ver="1.11",
                                  **{"xmpp:version": "1.0"}, **attrs)
        self.sid = created.get("sid")
        return created

    async def login(self, username: str, password: str, resource: str = "web") -> None:
        created = await self.create()
        assert created.get("sid"), etree.tostring(created)
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        answer = await self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        assert answer.find("{urn:ietf:params:xml:ns:xmpp-sasl}success") is not None, etree.tostring(answer)
        await self.send(**{"to": "localhost", "xmpp:restart": "true"})
        bound = await self.send(f"<iq xmlns='jabber:client' type='set' id='bind'>"
                                f"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource>"
                                f"</bind></iq>")
        assert bound.findtext(".//{urn:ietf:params:xml:ns:xmpp-bind}jid"), etree.tostring(bound)
