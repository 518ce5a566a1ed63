"""A real Strophe.js retrying a held rid keeps its session, now that held rids and origins are checked.

Between Chromium and boshcm sits a small HTTP relay that delays one empty request (a poll) on its way to the
server. Strophe gives up on it after ~wait and sends the same rid again (docs/protocol.md) while boshcm still holds
the first copy: boshcm must take the retry (same Origin, same rid) and answer the first copy with the
recoverable `type='error'` body, and Strophe must carry on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from boshcm.app import Server
from tests.integration.test_c2s import logged_in
from tests.integration.xmpp_client import XmppClient
from tests.interop.browser import chromium, page_server

DELAY_SECONDS = 2.0
# Strophe retries a request after floor(1.1 x wait) = 4 s; boshcm holds the first copy from 2 s until 2 + 4 s: the
# retry comes 2 s after the first copy reached boshcm and 2 s before boshcm would have answered it (1.5 s each way
# with a wait of 3 were too little for a browser whose timers ran late on a loaded machine).
WAIT = 4

SCRIPT = """
async ([url, jid, password, wait]) => {
  const { Strophe } = window;
  const conn = new Strophe.Connection(url);
  window.seen = { messages: [], statuses: [] };
  window.conn = conn;
  await new Promise((resolve, reject) => {
    conn.connect(jid, password, (status) => {
      window.seen.statuses.push(status);
      if (status === Strophe.Status.CONNECTED) resolve();
      if ([Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL, Strophe.Status.DISCONNECTED].includes(status)) {
        reject(new Error("status " + status));
      }
    }, wait);
  });
  conn.addHandler((m) => {
    window.seen.messages.push(Strophe.getText(m.getElementsByTagName("body")[0])); return true;
  }, null, "message", "chat");
  return conn.jid;
}
"""


class Relay:
    """Forwards BOSH requests to boshcm; delays the first empty one once `armed`, and records every answer."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.armed = False
        self.delayed_rid: str | None = None
        self.answers: list[tuple[str, bytes]] = []  # (rid, response body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        data = await request.read()
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() in ("origin", "content-type", "access-control-request-method",
                                       "access-control-request-headers")}
        rid = ""
        if request.method == "POST":
            body = etree.fromstring(data)
            rid = body.get("rid") or ""
            if self.armed and len(body) == 0 and body.get("type") is None:
                self.armed, self.delayed_rid = False, rid
                await asyncio.sleep(DELAY_SECONDS)
        async with aiohttp.ClientSession() as http, \
                http.request(request.method, self.target, data=data, headers=headers) as reply:
            answer = await reply.read()
            self.answers.append((rid, answer))
            passed = {name: value for name, value in reply.headers.items()
                      if name.lower().startswith("access-control-") or name.lower() == "content-type"}
            return web.Response(body=answer, status=reply.status, headers=passed)


@asynccontextmanager
async def relay_to(target: str) -> AsyncIterator[tuple[Relay, str]]:
    relay = Relay(target)
    app = web.Application()
    app.router.add_route("*", "/http-bind", relay.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield relay, f"http://127.0.0.1:{port}/http-bind"
    finally:
        await runner.cleanup()


@pytest.mark.interop
async def test_strophe_retrying_a_held_rid_keeps_its_session(
        server: Server, clients: list[XmppClient], tmp_path: Path) -> None:
    assert server.http is not None
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    async with relay_to(f"http://127.0.0.1:{server.http.port}/http-bind") as (relay, url), \
            chromium(tmp_path) as browser, page_server() as origin:
        page = await browser.new_page()
        await page.goto(origin)
        jid = await page.evaluate(SCRIPT, [url, "alice@localhost/browser", "alice-secret", WAIT])
        assert jid == "alice@localhost/browser"
        relay.armed = True

        def copies() -> list[bytes]:
            return [answer for rid, answer in relay.answers if rid == relay.delayed_rid]

        for _ in range(100):  # until boshcm has answered the first copy: when the retry came (or at its wait's end)
            await asyncio.sleep(0.1)
            if copies():
                break
        # Now, not after the retry's own wait: the message is what boshcm answers the retry with.
        bob.xmpp.send_message(mto="alice@localhost/browser", mbody="still there?", mtype="chat")
        for _ in range(100):  # until Strophe has retried the delayed rid and boshcm has answered both copies
            if len(copies()) >= 2:
                break
            await asyncio.sleep(0.1)
        assert relay.delayed_rid is not None
        answered = [etree.fromstring(answer) for answer in copies()]
        assert len(answered) >= 2, "Strophe did not retry the delayed request"
        # XEP-0124 §14.3: the first copy, still held when the retry came, gets the recoverable error.
        assert [copy.get("type") for copy in answered].count("error") == 1
        for _ in range(50):
            if await page.evaluate("window.seen.messages.length"):
                break
            await asyncio.sleep(0.1)
        assert await page.evaluate("window.seen.messages") == ["still there?"]
        assert await page.evaluate("window.conn.connected")
        await page.evaluate("window.conn.disconnect('bye')")
