"""The browser quiz page in headless Debian Chromium: two browser players (guests over BOSH) and one slixmpp
player play a whole live game of three questions with the bot; one browser player goes offline for 2.5 s and
later reloads the page.

One Chromium for the module (each test opens its own contexts); a server per test (a short reveal: the game page's
reveals are seen by an observer in the page, not by polling).

Screenshots of the lobby, a question and the podium go to test-output/screenshots/; docs/quiz.md shows copies
(`for n in lobby question podium; do cp test-output/screenshots/$n.png docs/images/quiz-$n.png; done`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route, WebSocketRoute, expect

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.quiz_players import ANSWERS, BANK, PAGE_QUIZ, Player, player, running_quiz_server
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCREENSHOTS = Path(__file__).parents[2] / "test-output" / "screenshots"
# A WebSocket that does not get through: the page is in over BOSH well before the 15 s wait for a silent one.
FALLBACK_MS = 5000
TEXT_ANSWERS = {q["question"]: q["answer"] for q in BANK["questions"]}  # type: ignore[index]
# Notes each question ("Question 2 of 3") for which the page showed the reveal (visible as Playwright means it: a
# non-empty box, not visibility:hidden), so that a short reveal cannot slip between two polls of a busy test.
NOTE_REVEALS = """
window.revealsSeen = [];
new MutationObserver(() => {
  const reveal = document.getElementById("reveal");
  const index = document.getElementById("q-index")?.textContent || "";
  if (!reveal || window.revealsSeen.includes(index)) return;
  const box = reveal.getBoundingClientRect();
  if (box.width > 0 && box.height > 0 && getComputedStyle(reveal).visibility !== "hidden") {
    window.revealsSeen.push(index);
  }
}).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
"""


@pytest_asyncio.fixture(loop_scope="module")
async def quiz_server(tmp_path: Path) -> AsyncIterator[Server]:
    """tests/interop/conftest.py's, with a 0.5 s reveal, in the module's event loop."""
    async with running_quiz_server(tmp_path, accounts=("cat",),
                                   overrides={**PAGE_QUIZ, "quizbot.game.reveal_seconds": 0.5}) as server:
        yield server


async def log_in_as_guest(page: Page, url: str, nick: str) -> None:
    await page.goto(url)
    await page.get_by_label("Nickname").fill(nick)
    await page.get_by_role("button", name="Play as guest").click()


async def answer_correctly(page: Page, *, keyboard: bool = False) -> None:
    """Reads the question card like a player and answers it through the page's controls."""
    text = await page.locator("#q-text").inner_text()
    answer = TEXT_ANSWERS[text]
    choices = page.locator("#choices button")
    if await choices.count():
        right = choices.filter(has_text=f") {answer}")
        if keyboard:
            await page.keyboard.press((await right.get_attribute("data-key") or "").lower())
        else:
            await right.click()
    else:
        await page.locator("#answer").fill(answer)  # labelled "Your answer" / "Deine Antwort"
        await page.locator("#answer").press("Enter")
    await expect(page.locator("#received")).to_have_text(re.compile("✓"), timeout=TIMEOUT_SECONDS * 1000)


async def page_scores(page: Page) -> dict[str, int]:
    items = page.locator("#podium-list li")
    return {await li.get_attribute("data-nick") or "": int(await li.get_attribute("data-points") or "0")
            for li in await items.all()}


@pytest.mark.interop
async def test_two_browsers_and_a_slixmpp_player_play_a_game(quiz_server: Server, browser: Browser) -> None:
    assert quiz_server.http is not None
    url = f"http://127.0.0.1:{quiz_server.http.port}/"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    made: list[XmppClient] = []
    ann_context = await browser.new_context(locale="en-GB", viewport={"width": 390, "height": 844})
    ben_context = await browser.new_context(locale="de-DE")
    await ann_context.add_init_script(NOTE_REVEALS)
    ann, ben = await ann_context.new_page(), await ben_context.new_page()
    try:
        await log_in_as_guest(ann, url, "Ann")
        await ann.get_by_role("button", name="Create a game for friends").click()
        share = ann.get_by_label("Share link")
        await wait_for_value(ann, "#share-link")
        link = await share.input_value()
        room = link.split("room=")[1].replace("%40", "@")

        # The share link brings Ben (a German browser) into Ann's room.
        await ben.goto(link)
        await expect(ben.locator("html")).to_have_attribute("lang", "de")
        await ben.get_by_label("Spitzname").fill("Ben")
        await ben.get_by_role("button", name="Als Gast spielen").click()
        await expect(ben.locator("#room-title")).to_have_text("Ann's quiz")  # readable, not the address
        cat: Player = await player(quiz_server.c2s.port, quiz_server.config.data_path / SELF_SIGNED_CERT, made,
                                   "cat", join=False)
        await cat.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Cat", maxstanzas=0,
                                                               timeout=TIMEOUT_SECONDS)
        for nick in ("Ann", "Ben", "Cat"):
            await expect(ann.locator(f"#occupants li[data-nick='{nick}']")).to_be_visible()
        await expect(ann.locator("#occupants li")).to_have_count(3)  # the bot is not listed as a player
        await ben.get_by_label("Nachricht").fill("Viel Glück!")
        await ben.get_by_label("Nachricht").press("Enter")
        await expect(ann.locator("#chat-log")).to_contain_text("Ben: Viel Glück!")
        await ann.screenshot(path=str(SCREENSHOTS / "lobby.png"), full_page=True)

        # Ann owns the room and starts a live game of three questions.
        await ann.get_by_label("Questions", exact=True).fill("3")
        await ann.get_by_label("Category").select_option("mixed")
        await ann.get_by_role("button", name="Start the game").click()
        for index in (1, 2, 3):
            await expect(ann.locator("#q-index")).to_have_text(f"Question {index} of 3",
                                                                timeout=TIMEOUT_SECONDS * 2000)
            await expect(ben.locator("#q-index")).to_have_text(f"Frage {index} von 3",
                                                                timeout=TIMEOUT_SECONDS * 2000)
            if index == 1:
                await ann.screenshot(path=str(SCREENSHOTS / "question.png"), full_page=True)
            await answer_correctly(ann, keyboard=True)
            if index == 2:
                # Ben's network drops for 2.5 s: longer than the page's first retry (1 s), which finds it still
                # down and backs off; then it comes back, and the bot keeps him and his points.
                await ben_context.set_offline(True)
                await asyncio.sleep(2.5)
                await ben_context.set_offline(False)
            if index == 3:
                # Ben reloads the page: it re-attaches to the same BOSH session (same JID, same player),
                # rejoins the room and gets the open question again from the bot.
                await ben.reload()
                await expect(ben.locator("#q-index")).to_have_text("Frage 3 von 3",
                                                                   timeout=TIMEOUT_SECONDS * 1000)
                await expect(ben.locator("#occupants li")).to_have_count(3)
                await expect(ben.locator("#scores li")).to_have_count(3)
            await answer_correctly(ben)
            question_id = await current_question_id(cat)
            wrong = "Lyon" if question_id == "m-text" else "6" if question_id == "m-number" else "Bach"
            cat.client.xmpp.send_message(mto=room, mbody=wrong, mtype="groupchat")
            await ann.wait_for_function("index => window.revealsSeen.includes(index)",
                                        arg=f"Question {index} of 3", timeout=TIMEOUT_SECONDS * 1000)
        final = await cat.next("scores", lambda s: s.get("final") == "true")
        bot_scores = {p.get("nick"): int(p.get("points", "")) for p in final}
        await expect(ann.locator("#podium")).to_be_visible(timeout=TIMEOUT_SECONDS * 1000)
        await expect(ben.locator("#podium")).to_be_visible(timeout=TIMEOUT_SECONDS * 1000)
        assert await page_scores(ann) == bot_scores == await page_scores(ben)
        assert bot_scores["Cat"] == 0 and bot_scores["Ann"] > 0 and bot_scores["Ben"] >= 3 * 500
        await expect(ann.locator("#top-list li")).to_have_count(2, timeout=TIMEOUT_SECONDS * 1000)
        await ann.screenshot(path=str(SCREENSHOTS / "podium.png"), full_page=True)
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        await ann_context.close()
        await ben_context.close()


async def wait_for_value(page: Page, selector: str) -> None:
    await page.wait_for_function(f"document.querySelector('{selector}').value !== ''",
                                 timeout=TIMEOUT_SECONDS * 1000)


async def current_question_id(cat: Player) -> str:
    question = await cat.next("question")
    question_id = question.get("id", "")
    assert question_id in ANSWERS
    return question_id


async def account_server(tmp_path: Path, transport: str, **overrides: object) -> Server:
    """A started server without the bot, its page on `transport`, with the account cat@localhost."""
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        "http.quiz_page_transport": transport, "quizbot.enabled": False, **overrides})
    server = Server(config)
    server.accounts.add("cat", "cat-secret")
    await server.start()
    return server


async def fill_account_login(page: Page, url: str) -> None:
    """The page at `url`, its account login filled in for cat@localhost (not sent)."""
    await page.goto(url)
    await page.get_by_text("Log in with an account").click()
    await page.get_by_label("Address (name@server)").fill("cat@localhost")
    await page.get_by_label("Password").fill("cat-secret")


@pytest.mark.interop
async def test_account_login_over_websocket_and_fallback_to_bosh(tmp_path: Path, browser: Browser) -> None:
    server = await account_server(tmp_path, "websocket")
    assert server.http is not None and server.websocket is not None and server.bosh is not None
    url = f"http://127.0.0.1:{server.http.port}/"
    contexts = [await browser.new_context(locale="en-US") for _ in range(2)]
    try:
        page = await contexts[0].new_page()
        await page.goto(url)
        await page.get_by_label("Language").select_option("de")  # the switch, remembered for next time
        await expect(page.get_by_role("button", name="Als Gast spielen")).to_be_visible()
        await page.reload()
        await expect(page.get_by_role("button", name="Als Gast spielen")).to_be_visible()
        await page.get_by_label("Sprache").select_option("en")
        await page.get_by_text("Log in with an account").click()
        await page.get_by_label("Address (name@server)").fill("cat@localhost")
        await page.get_by_label("Password").fill("cat-secret")
        await page.get_by_role("button", name="Log in", exact=True).click()
        await expect(page.get_by_role("button", name="Join the public quiz room")).to_be_visible()
        assert len(server.websocket.connections) == 1  # configured: WebSocket

        # A network where WebSocket cannot get through: the page falls back to BOSH.
        blocked = await contexts[1].new_page()
        await blocked.add_init_script(
            "window.WebSocket = class extends WebSocket { constructor(u, p) { super('ws://127.0.0.1:9/', p); } }")
        await fill_account_login(blocked, url)
        await blocked.get_by_role("button", name="Log in", exact=True).click()
        await expect(blocked.get_by_role("button", name="Join the public quiz room")).to_be_visible()
        assert len(server.websocket.connections) == 1 and len(server.bosh.registry) == 1
    finally:
        for context in contexts:
            await context.close()
        await server.stop()


@pytest.mark.interop
async def test_websocket_refused_or_closed_before_the_stream_falls_back_to_bosh_at_once(
        tmp_path: Path, browser: Browser) -> None:
    """The server's per-address WebSocket cap refuses the page's upgrade (HTTP 429), and for another page a proxy
    accepts it and closes it with a code (1013, try again later) before the stream opens: both log in over BOSH
    within seconds (the second used to wait timeoutSeconds + 5, 15 s: Strophe says nothing about such a close)."""
    server = await account_server(tmp_path, "websocket", **{"http.max_websockets_per_address": 1})
    assert server.http is not None and server.websocket is not None and server.bosh is not None
    url = f"http://127.0.0.1:{server.http.port}/"
    contexts = [await browser.new_context(locale="en-US") for _ in range(2)]
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}xmpp-websocket", protocols=("xmpp",)):
            capped, closed = [await context.new_page() for context in contexts]
            refusals: list[str] = []
            capped.on("console", lambda m: refusals.append(m.text) if "429" in m.text else None)

            async def close_before_the_stream(ws: WebSocketRoute) -> None:
                await ws.close(code=1013, reason="try again later")

            await closed.route_web_socket(re.compile(r"/xmpp-websocket$"), close_before_the_stream)
            for page in (capped, closed):
                await fill_account_login(page, url)
            started = asyncio.get_running_loop().time()
            for page in (capped, closed):
                await page.get_by_role("button", name="Log in", exact=True).click()
            for page in (capped, closed):
                await expect(page.get_by_role("button", name="Join the public quiz room")).to_be_visible(
                    timeout=FALLBACK_MS)
            assert asyncio.get_running_loop().time() - started < FALLBACK_MS / 1000
            assert refusals, "the server refused the first page's WebSocket"
            assert len(server.bosh.registry) == 2
    finally:
        for context in contexts:
            await context.close()
        await server.stop()


def refuse_with(status: int) -> Callable[[Route], Awaitable[None]]:
    """A route handler: every request answered with that HTTP status."""
    async def refuse(route: Route) -> None:
        await route.fulfill(status=status, body="")
    return refuse


@pytest.mark.interop
async def test_a_login_whose_bosh_requests_fail_says_so_and_can_be_tried_again(
        tmp_path: Path, browser: Browser) -> None:
    """A BOSH page whose requests are answered 404 (a wrong address): the login form says "Could not connect." at
    once, and the same button then logs in. It used to say "Connecting…" for good: Strophe reports such a failure as
    DISCONNECTED without CONNFAIL. (Requests that are refused or never answered fail after timeoutSeconds + 5, where
    Strophe's own retries take some 100 s to give up: tests/js/connection.test.mjs, with mock timers.)"""
    server = await account_server(tmp_path, "bosh")
    assert server.http is not None and server.bosh is not None
    url = f"http://127.0.0.1:{server.http.port}/"
    context = await browser.new_context(locale="en-US")
    await context.add_init_script("window.quizTiming = { timeoutSeconds: 1 };")
    try:
        page = await context.new_page()
        await page.route("**/http-bind", refuse_with(404))
        await fill_account_login(page, url)
        await page.get_by_role("button", name="Log in", exact=True).click()
        await expect(page.locator("#login-status")).to_have_text("Could not connect.", timeout=FALLBACK_MS + 5000)
        assert not len(server.bosh.registry)
        await page.unroute("**/http-bind")
        await page.get_by_role("button", name="Log in", exact=True).click()
        await expect(page.get_by_role("button", name="Join the public quiz room")).to_be_visible()
        assert len(server.bosh.registry) == 1
    finally:
        await context.close()
        await server.stop()


TRICKY = next(q for q in BANK["questions"] if q["id"] == "x-markup")  # type: ignore[index]
CHAT = "<script>document.title='pwned'</script> Tom's &amp; Jerry's <b>chat</b>"


@pytest.mark.interop
async def test_text_is_shown_as_written_and_equal_scores_share_a_rank(quiz_server: Server, browser: Browser) -> None:
    assert quiz_server.http is not None
    url = f"http://127.0.0.1:{quiz_server.http.port}/"
    made: list[XmppClient] = []
    context = await browser.new_context(locale="en-GB")
    ann = await context.new_page()
    try:
        await log_in_as_guest(ann, url, "Ann")
        await ann.get_by_role("button", name="Create a game for friends").click()
        await wait_for_value(ann, "#share-link")
        room = (await ann.get_by_label("Share link").input_value()).split("room=")[1].replace("%40", "@")
        cat = await player(quiz_server.c2s.port, quiz_server.config.data_path / SELF_SIGNED_CERT, made, "cat",
                           join=False)
        await cat.client.xmpp.plugin["xep_0045"].join_muc_wait(room, "Cat", maxstanzas=0,
                                                               timeout=TIMEOUT_SECONDS)
        await expect(ann.locator("#occupants li")).to_have_count(2)
        cat.client.xmpp.send_message(mto=room, mbody=CHAT, mtype="groupchat")
        line = ann.locator("#chat-log li", has_text="pwned")
        await expect(line).to_have_text(f"Cat: {CHAT}")  # once, literally: not markup, not entities
        await expect(line).to_have_count(1)
        assert await ann.locator("#chat-log script, #chat-log b").count() == 0

        await ann.get_by_label("Questions", exact=True).fill("1")
        await ann.get_by_label("Category").select_option("tricky")
        await ann.get_by_role("button", name="Start the game").click()
        await expect(ann.locator("#q-text")).to_have_text(str(TRICKY["question"]),
                                                          timeout=TIMEOUT_SECONDS * 1000)
        choices = ann.locator("#choices button")
        shown = {text.split(") ", 1)[1] for text in await choices.all_text_contents()}
        assert shown == {TRICKY["answer"], *TRICKY["wrong"]}  # type: ignore[misc]
        assert await ann.locator("#question b, #question i, #question script").count() == 0

        # Both answer wrongly: equal points, so both are first on the board (1, 1), as the bot ranks them.
        wrong = choices.filter(has_text="A &amp; B")
        cat.client.xmpp.send_message(mto=room, mbody=await wrong.get_attribute("data-key") or "",
                                     mtype="groupchat")
        await wrong.click()
        final = await cat.next("scores", lambda s: s.get("final") == "true")
        assert [p.get("rank") for p in final] == ["1", "1"]
        await expect(ann.locator("#podium")).to_be_visible(timeout=TIMEOUT_SECONDS * 1000)
        ranks = await ann.locator("#podium-list li").evaluate_all("items => items.map((li) => li.value)")
        assert ranks == [1, 1]
        assert await ann.title() != "pwned"
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        await context.close()
