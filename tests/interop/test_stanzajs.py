"""StanzaJS 12 (npm `stanza`) in headless Chromium over boshcm's BOSH endpoint (on-board)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from boshcm.app import Server
from tests.integration.test_c2s import logged_in
from tests.integration.xmpp_client import XmppClient
from tests.interop.browser import NODE_MODULES, chromium, page_server

STANZA_BUNDLE = NODE_MODULES / ".bundles" / "stanza.js"

STANZA_SCRIPT = """
async ([url, jid, password, peer]) => {
  const client = window.XMPP.createClient({ jid, password, resource: "stanzajs",
                                            transports: { websocket: false, bosh: url } });
  const seen = { messages: [] };
  const started = new Promise((resolve, reject) => {
    client.on("session:started", resolve);
    client.on("auth:failed", () => reject(new Error("auth failed")));
  });
  const reply = new Promise((resolve) => client.on("chat", (message) => {
    seen.messages.push(message.body); resolve();
  }));
  client.connect();
  await started;
  seen.jid = client.jid;
  client.sendPresence({ to: peer + "/phone" });
  client.sendMessage({ to: peer, type: "chat", body: "hello from StanzaJS" });
  await reply;
  const ended = new Promise((resolve) => client.on("disconnected", resolve));
  client.disconnect();
  await ended;
  return seen;
}
"""


@pytest.mark.interop
async def test_stanzajs_logs_in_over_bosh_and_chats_with_a_tcp_user(
    server: Server, clients: list[XmppClient], tmp_path: Path
) -> None:
    assert server.http is not None
    assert STANZA_BUNDLE.exists(), "StanzaJS bundle missing: scripts/test.sh runs npm run build:test-clients"
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")

    async def answer_when_asked() -> None:
        message = await bob.next_message()
        assert message["body"] == "hello from StanzaJS"
        bob.xmpp.send_message(mto=message["from"], mbody="hello back", mtype="chat")

    async def bundle(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STANZA_BUNDLE)

    async with chromium(tmp_path) as browser, page_server([web.get("/stanza.js", bundle)]) as origin:
        page = await browser.new_page()
        await page.goto(origin)
        await page.add_script_tag(url=f"{origin}/stanza.js")
        responder = asyncio.create_task(answer_when_asked())
        seen = await page.evaluate(
            STANZA_SCRIPT,
            [f"http://127.0.0.1:{server.http.port}/http-bind", "alice@localhost", "alice-secret", "bob@localhost"],
        )
        await responder
    assert seen["jid"] == "alice@localhost/stanzajs"
    assert seen["messages"] == ["hello back"]
    gone = await bob.presence_from("alice@localhost", "unavailable")
    assert str(gone["from"]) == "alice@localhost/stanzajs"
