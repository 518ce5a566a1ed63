"""Issue 17: the remembered guest of the quiz page (docs/quiz.md, "Guests who come back") in headless Chromium.

- Over BOSH: a page whose WebSocket does not get through (Playwright closes every WebSocket the page opens) still
  registers its guest account (XEP-0077 over a BOSH session of its own, before any login) and plays as it, on a
  BOSH page and on a WebSocket page that falls back to BOSH — not as an anonymous guest.
- "Log out and forget me": the account is removed on the server (XEP-0077 §3.2 <remove/>), the browser forgets
  it, and the next "Play as guest" registers a new one."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, WebSocketRoute, expect

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.jid import JID
from quizbot.extension import QuizExtension
from tests.integration.quiz_players import BANK, ROOM, wait_until
from tests.integration.xmpp_client import TIMEOUT_SECONDS

WAIT_MS = TIMEOUT_SECONDS * 1000

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def start_server(tmp_path: Path, transport: str) -> Server:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    server = Server(load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        "http.quiz_page_transport": transport, "quizbot.questions": [str(bank)], "quizbot.process": "inline"}))
    await server.start()
    await wait_until(lambda: ROOM in server.extension(QuizExtension).client.entered)  # type: ignore[union-attr]
    return server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Server]]:
    """One server per page transport for the module (started together): each test registers guests of its own."""
    transports = ("bosh", "websocket")
    started = await asyncio.gather(*(start_server(tmp_path_factory.mktemp(name), name) for name in transports))
    yield dict(zip(transports, started, strict=True))
    await asyncio.gather(*(made.stop() for made in started))


@pytest_asyncio.fixture(loop_scope="module")
async def server(servers: dict[str, Server]) -> Server:
    """The WebSocket page's server (after the first test, which leaves no WebSocket behind)."""
    return servers["websocket"]


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(locale="en-GB")
    yield made
    await made.close()


def url_of(server: Server) -> str:
    assert server.http is not None
    return f"http://127.0.0.1:{server.http.port}/"


async def play_as_guest(page: Page, nick: str = "Gus") -> None:
    await page.get_by_label("Nickname").fill(nick)
    await page.get_by_role("button", name="Play as guest").click()
    await expect(page.locator("#home")).to_be_visible(timeout=WAIT_MS)


async def remembered(page: Page) -> Any:
    return await page.evaluate("JSON.parse(localStorage.getItem('quiz-guest'))")


async def session_jid(page: Page) -> JID:
    return JID.parse(await page.evaluate("JSON.parse(localStorage.getItem('quiz-sm')).jid"))


async def no_websocket(route: WebSocketRoute) -> None:
    await route.close()  # never connected to the server: to the page, a WebSocket that closes at once


@pytest.mark.interop
async def test_a_guest_registers_over_bosh_when_websocket_does_not_get_through(
        servers: dict[str, Server], browser: Browser) -> None:
    """On a BOSH page and on a WebSocket page, at the same time (a server and a browser context each)."""
    async def scenario(transport: str) -> None:
        server = servers[transport]
        context = await browser.new_context(locale="en-GB")
        try:
            await context.route_web_socket(re.compile(".*"), no_websocket)
            page = await context.new_page()
            await page.goto(url_of(server))
            await play_as_guest(page)
            guest = await remembered(page)
            assert guest is not None, "the guest played anonymously"
            node = JID.parse(guest["jid"]).local
            assert node is not None and server.accounts.exists(node)
            jid = await session_jid(page)
            assert jid.bare == JID.parse(guest["jid"]).bare
            assert server.router.is_bound(jid)
            assert server.bosh is not None
            await wait_until(lambda: len(server.bosh.registry) == 1)  # type: ignore[union-attr]  # registration's ended
            assert server.websocket is not None and not server.websocket.connections
        except BaseException as failure:
            failure.add_note(f"on the {transport} page")
            raise
        finally:
            await context.close()

    async with asyncio.TaskGroup() as group:
        for transport in servers:
            group.create_task(scenario(transport))


@pytest.mark.interop
async def test_forget_me_removes_the_guest_account_and_the_next_guest_is_a_new_one(
        server: Server, context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto(url_of(server))
    forget = page.get_by_role("button", name="Log out and forget me")
    await expect(forget).to_be_hidden()  # nobody to forget before a login
    await play_as_guest(page)
    first = await remembered(page)
    node = JID.parse(first["jid"]).local
    assert node is not None and server.accounts.exists(node)

    await page.locator("#language").select_option("de")
    await expect(page.get_by_role("button", name="Abmelden und vergessen")).to_be_visible()
    await page.locator("#language").select_option("en")
    await forget.click()
    await expect(page.locator("#login")).to_be_visible(timeout=WAIT_MS)
    await wait_until(lambda: not server.accounts.exists(node))
    assert await remembered(page) is None
    assert await page.evaluate("localStorage.getItem('quiz-sm')") is None
    await expect(forget).to_be_hidden()

    await play_as_guest(page)
    second = await remembered(page)
    assert second is not None and second["jid"] != first["jid"]
    new_node = JID.parse(second["jid"]).local
    assert new_node is not None and server.accounts.exists(new_node)
    assert (await session_jid(page)).bare == JID.parse(second["jid"]).bare
