"""Strophe.js 5 in headless Chromium against boshcm's BOSH and WebSocket endpoints (on-board)."""

from __future__ import annotations

from pathlib import Path

import pytest

from boshcm.app import Server
from tests.integration.test_c2s import logged_in
from tests.integration.xmpp_client import XmppClient
from tests.interop.browser import chromium, page_server

# Connects, sends a chat message, waits for a reply, then disconnects; resolves with what it saw.
STROPHE_SCRIPT = """
async ([url, jid, password, peer]) => {
  const { Strophe, $msg, $pres } = window;
  const conn = new Strophe.Connection(url);
  const seen = { statuses: [], messages: [] };
  await new Promise((resolve, reject) => {
    conn.connect(jid, password, (status) => {
      seen.statuses.push(status);
      if (status === Strophe.Status.CONNECTED) resolve();
      const failed = [Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL];
      if (failed.includes(status)) reject(new Error("status " + status));
    });
  });
  seen.jid = conn.jid;
  seen.mechanism = conn._sasl_mechanism && conn._sasl_mechanism.mechname;
  const reply = new Promise((resolve) => conn.addHandler((m) => {
    seen.messages.push(Strophe.getText(m.getElementsByTagName("body")[0]));
    resolve(); return true;
  }, null, "message", "chat"));
  conn.send($pres({ to: peer + "/phone" }));
  conn.send($msg({ to: peer, type: "chat" }).c("body").t("hello from Strophe"));
  await reply;
  await new Promise((resolve) => { conn.addHandler(() => true); conn.disconnect("bye"); setTimeout(resolve, 500); });
  return seen;
}
"""


@pytest.mark.interop
@pytest.mark.parametrize("transport", ["bosh", "websocket"])
async def test_strophe_logs_in_with_scram_and_chats_with_a_tcp_user(
        server: Server, clients: list[XmppClient], tmp_path: Path, transport: str) -> None:
    assert server.http is not None
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    url = (f"http://127.0.0.1:{server.http.port}/http-bind" if transport == "bosh"
           else f"ws://127.0.0.1:{server.http.port}/xmpp-websocket")

    async def answer_when_asked() -> None:
        message = await bob.next_message()
        assert message["body"] == "hello from Strophe"
        bob.xmpp.send_message(mto=message["from"], mbody="hello back", mtype="chat")

    async with chromium(tmp_path) as browser, page_server() as origin:
        page = await browser.new_page()
        await page.goto(origin)  # a different origin from the endpoint: CORS is exercised
        import asyncio

        responder = asyncio.create_task(answer_when_asked())
        seen = await page.evaluate(STROPHE_SCRIPT, [url, "alice@localhost/browser", "alice-secret", "bob@localhost"])
        await responder
    assert seen["jid"] == "alice@localhost/browser"
    assert seen["mechanism"] == "SCRAM-SHA-256"  # http://127.0.0.1 is a secure origin: WebCrypto works
    assert seen["messages"] == ["hello back"]
    gone = await bob.presence_from("alice@localhost", "unavailable")
    assert str(gone["from"]) == "alice@localhost/browser"
