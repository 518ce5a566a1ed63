"""A minimal BOSH client for tests: raw <body/> requests over aiohttp, so every byte is visible."""

from __future__ import annotations

import asyncio
import base64
import random
from typing import Any

import aiohttp
from lxml import etree

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
Element = etree._Element


class BoshClient:
    def __init__(
        self, http: aiohttp.ClientSession, url: str, *, domain: str = "localhost", wait: int = 5, hold: int = 1
    ) -> None:
        self.http, self.url, self.domain, self.wait, self.hold = http, url, domain, wait, hold
        self.rid = random.randint(1_000_000, 2**32) + 2**31  # docs/protocol.md: rids beyond 2^31
        self.sid: str | None = None
        self.jid: str | None = None
        self.received: asyncio.Queue[Element] = asyncio.Queue()
        self._poller: asyncio.Task[None] | None = None

    def body(self, payload: str = "", **attrs: str) -> bytes:
        self.rid += 1
        base = {"rid": str(self.rid), **({"sid": self.sid} if self.sid else {}), **attrs}
        rendered = " ".join(f"{key}='{value}'" for key, value in base.items())
        return (f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' {rendered}>{payload}</body>").encode()

    async def post(self, data: bytes) -> Element:
        async with self.http.post(self.url, data=data, headers={"Content-Type": "text/xml; charset=utf-8"}) as reply:
            assert reply.status == 200, reply.status
            return etree.fromstring(await reply.read())

    async def post_raw(self, data: bytes) -> bytes:
        async with self.http.post(self.url, data=data) as reply:
            return await reply.read()

    async def create(self) -> Element:
        response = await self.post(
            self.body(
                to=self.domain,
                wait=str(self.wait),
                hold=str(self.hold),
                ver="1.11",
                **{"xml:lang": "en", "xmpp:version": "1.0"},
            )
        )
        self.sid = response.get("sid")
        return response

    async def login(self, username: str, password: str, resource: str = "web") -> None:
        created = await self.create()
        assert created.find("{http://etherx.jabber.org/streams}features") is not None, etree.tostring(created)
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        answer = await self.post(
            self.body(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        )
        assert answer.find("{urn:ietf:params:xml:ns:xmpp-sasl}success") is not None, etree.tostring(answer)
        restarted = await self.post(self.body(**{"to": self.domain, "xmpp:restart": "true"}))
        assert restarted.find(".//{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None, etree.tostring(restarted)
        bound = await self.post(
            self.body(
                f"<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                f"<resource>{resource}</resource></bind></iq>"
            )
        )
        self.jid = bound.findtext(".//{urn:ietf:params:xml:ns:xmpp-bind}jid")
        assert self.jid, etree.tostring(bound)

    def start_polling(self) -> None:
        """Keep one request held, like a real client; payloads land in `received`."""
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            response = await self.post(self.body())
            for child in response:
                self.received.put_nowait(child)
            if response.get("type") == "terminate":
                return

    async def send(self, payload: str) -> Element:
        response = await self.post(self.body(payload))
        for child in response:
            self.received.put_nowait(child)
        return response

    async def next(self, local_name: str, **attrs: Any) -> Element:
        while True:
            stanza = await asyncio.wait_for(self.received.get(), 10)
            if etree.QName(stanza).localname == local_name and all(stanza.get(k) == v for k, v in attrs.items()):
                return stanza

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
