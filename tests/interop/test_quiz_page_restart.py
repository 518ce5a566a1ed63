"""The quiz page through server restarts mid-question (issue 17): headless Chromium, two guests on the page — Ann,
who created the room with "Create a game for friends", and Ben, who came by the share link — and the bot, inline.
The embedded server is stopped and started again (same data directory, same ports) while a question is open,
several times in a row. After each restart, with no reload:

- both pages come back by themselves ("Connected.", each player listed once in the room);
- each guest is the same account as before (a remembered guest, registered on the first visit: not a new
  anonymous JID), so Ann still owns her room and both keep their points;
- no page ever shows a reveal for a question it did not show (a MutationObserver checks every reveal drawn
  against the question on the card).

At the end Ann, still the owner, starts a new game. The suite runs 3 restarts; `QUIZ_RESTARTS=10` runs the
issue's ten (`QUIZ_RESTARTS=10 pytest tests/interop/test_quiz_page_restart.py`). Timers are shortened as in
test_quiz_page_resume.py (`window.quizTiming`), except that a page waits 1.5 s before its first attempt to reconnect:
the restarted server is listening by then (an attempt refused while it is down is abandoned only after the page's
attempt timeout, 6.5 s here). Every question ends when both have answered (20 s is only a bound; the one open at a
restart is void), and a reveal lasts 0.3 s.

A second, shorter test restarts a server that grants no resumption (acks only) under a page on BOSH: the page must
log in again by itself rather than wait on a session the restart ended."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.jid import JID
from quizbot.extension import QuizExtension
from tests.integration.quiz_players import wait_until
from tests.integration.xmpp_client import TIMEOUT_SECONDS
from tests.interop.browser import chromium
from tests.interop.prosody import free_port

RESTARTS = int(os.environ.get("QUIZ_RESTARTS", "3"))
WAIT_MS = TIMEOUT_SECONDS * 1000
TIMING = "window.quizTiming = { pingSeconds: 1, timeoutSeconds: 1.5, retrySeconds: 1.5, maxRetrySeconds: 1.5 };"
# Every reveal the page draws, with the question on the card at that moment.
REVEAL_WATCH = """
window.quizReveals = [];
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("reveal");
  new MutationObserver(() => {
    if (box.hidden || !box.firstChild) return;
    window.quizReveals.push({ question: document.getElementById("q-text").textContent,
                              answer: box.firstChild.textContent });
  }).observe(box, { childList: true, attributes: true });
});
"""
# A bank long enough for ten restarts in one game: each restart voids the open question.
BANK = {"language": "en", "questions": [
    {"id": f"double-{n}", "category": "doubles", "kind": "choice", "question": f"What is twice {n}?",
     "answer": str(2 * n), "wrong": [str(2 * n + 1), str(2 * n + 3), str(2 * n - 1)],
     "source": "https://en.wikipedia.org/wiki/Multiplication"}
    for n in range(2, 40)
]}
ANSWERS = {q["question"]: q["answer"] for q in BANK["questions"]}  # type: ignore[index]


def config_overrides(tmp_path: Path, http_port: int = 0, c2s_port: int = 0) -> dict[str, Any]:
    return {"server.data_dir": str(tmp_path / "data"), "c2s.listen": f"127.0.0.1:{c2s_port}",
            "http.listen": f"127.0.0.1:{http_port}", "http.quiz_page_transport": "websocket",
            "quizbot.questions": [str(tmp_path / "bank.json")], "quizbot.game.question_seconds": 20.0,
            "quizbot.game.reveal_seconds": 0.3, "quizbot.game.unanswered_limit": 100,
            "quizbot.game.get_ready_seconds": 0.0, "quizbot.process": "inline"}


async def start(overrides: dict[str, Any]) -> Server:
    server = Server(load_config(None, overrides))
    await server.start()
    return server


async def restart(server: Server, tmp_path: Path, extra: dict[str, Any] | None = None) -> Server:
    """Stop the server and start it again on the same data directory and the same ports (and the same `extra`
    overrides)."""
    assert server.http is not None
    ports = {"http_port": server.http.port, "c2s_port": server.c2s.port}
    await server.stop()
    return await start({**config_overrides(tmp_path, **ports), **(extra or {})})


async def bot_in(server: Server, room: str) -> None:
    await wait_until(lambda: room in server.extension(QuizExtension).client.entered)  # type: ignore[union-attr]


async def own_jid(page: Page) -> str:
    return str(await page.evaluate("JSON.parse(localStorage.getItem('quiz-sm')).jid"))


async def shown_question(page: Page) -> str:
    await expect(page.locator("#question")).to_be_visible(timeout=WAIT_MS)
    return await page.locator("#q-text").inner_text()


async def answer_right(page: Page) -> None:
    """Answers the question on the card; the page says it was received — or, when this answer was the last and
    the short reveal has come and gone already, it drew the reveal of this question (the ✓ goes with the card)."""
    question = await page.locator("#q-text").inner_text()
    await page.locator("#choices button").filter(has_text=re.compile(rf"\) {ANSWERS[question]}$")).click()
    await page.wait_for_function(
        "question => document.getElementById('received').textContent.includes('✓')"
        " || window.quizReveals.some(reveal => reveal.question === question)", arg=question, timeout=WAIT_MS)


async def fresh_question_on_both(pages: list[Page], seen: set[str]) -> str:
    """Wait until both pages show the same question, one not seen before; return its text."""
    async def question_text(page: Page) -> str:
        return await page.locator("#q-text").inner_text() if await page.locator("#question").is_visible() else ""

    for _ in range(int(TIMEOUT_SECONDS * 40)):
        texts = {await question_text(page) for page in pages}
        if len(texts) == 1 and (text := texts.pop()) and text not in seen:
            return text
        await pages[0].wait_for_timeout(100)
    raise AssertionError(f"no fresh question on both pages; seen {sorted(seen)}")


async def check_board(page: Page, nicks: set[str]) -> None:
    """Each player listed once in the room."""
    for nick in nicks:
        await expect(page.locator(f"#occupants li[data-nick='{nick}']")).to_have_count(1, timeout=WAIT_MS)
    listed = page.locator("#occupants li")
    try:
        await expect(listed).to_have_count(len(nicks), timeout=WAIT_MS)
    except AssertionError:
        raise AssertionError(f"listed: {await listed.all_inner_texts()}") from None


async def scores_of(page: Page) -> list[tuple[str, int]]:
    return [(await li.get_attribute("data-nick") or "", int(await li.get_attribute("data-points") or "0"))
            for li in await page.locator("#scores li").all()]


async def board_after(page: Page, before: dict[str, int]) -> list[tuple[str, int]]:
    """The board once this question's scores are on it (the previous board is shown until the reveal comes)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_SECONDS
    while True:
        board = await scores_of(page)
        if all(score > before.get(nick, 0) for nick, score in board) \
                or asyncio.get_running_loop().time() > deadline:
            return board
        await asyncio.sleep(0.1)


async def check_reveals(page: Page) -> None:
    reveals = await page.evaluate("window.quizReveals")
    for reveal in reveals:
        assert ANSWERS[reveal["question"]] in reveal["answer"], f"a reveal for a question not shown: {reveal}"


@pytest.mark.interop
async def test_page_recovers_from_server_restarts_mid_question(tmp_path: Path) -> None:
    (tmp_path / "bank.json").write_text(json.dumps(BANK))
    # Fixed ports below 32768 (free_port): a restart binds them again, and a port from the ephemeral range could
    # meanwhile be taken by an outgoing connection.
    server = await start(config_overrides(tmp_path, http_port=free_port(), c2s_port=free_port()))
    try:
        await bot_in(server, "quiz@conference.localhost")
        assert server.http is not None
        url = f"http://127.0.0.1:{server.http.port}/"
        async with chromium(tmp_path / "chromium") as browser:
            pages: list[Page] = []
            for _ in range(2):
                context = await browser.new_context(locale="en-GB")
                page = await context.new_page()
                await page.add_init_script(TIMING + REVEAL_WATCH)
                pages.append(page)
            ann, ben = pages
            await ann.goto(url)
            await ann.get_by_label("Nickname").fill("Ann")
            await ann.get_by_role("button", name="Play as guest").click()
            await ann.get_by_role("button", name="Create a game for friends").click()
            await expect(ann.locator("#share-link")).to_have_value(re.compile("room="), timeout=WAIT_MS)
            link = await ann.locator("#share-link").input_value()
            room = link.split("room=")[1].replace("%40", "@")
            await ben.goto(link)
            await ben.get_by_label("Nickname").fill("Ben")
            await ben.get_by_role("button", name="Play as guest").click()
            await check_board(ann, {"Ann", "Ben"})
            jids = {"Ann": JID.parse(await own_jid(ann)).bare, "Ben": JID.parse(await own_jid(ben)).bare}

            await ann.get_by_label("Questions", exact=True).fill(str(2 * RESTARTS + 1))
            await ann.get_by_label("Category").select_option("doubles")
            await ann.get_by_role("button", name="Start the game").click()
            seen = {await fresh_question_on_both(pages, set())}
            for page in pages:
                await answer_right(page)  # points to keep
            points = dict(await scores_of(ann))
            assert points["Ann"] > 0 and points["Ben"] > 0

            for attempt in range(RESTARTS):
                seen.add(await fresh_question_on_both(pages, seen))  # a question is open: now the restart
                server = await restart(server, tmp_path)
                for page in pages:
                    # Logged in again on the new server, by itself, and in the room once.
                    jid = JID.parse(await own_jid(page))
                    await wait_until(lambda: server.router.is_bound(jid))  # noqa: B023
                    await expect(page.locator("body")).to_have_attribute("data-connection", "up", timeout=WAIT_MS)
                    await check_board(page, {"Ann", "Ben"})
                for nick, page in zip(("Ann", "Ben"), pages, strict=True):
                    assert JID.parse(await own_jid(page)).bare == jids[nick], f"{nick} is someone else now"
                muc_room = server.muc.room(JID.parse(room)) if server.muc is not None else None
                assert muc_room is not None
                assert muc_room.affiliation(jids["Ann"]).value == "owner", f"restart {attempt + 1}"
                # The game goes on: a fresh question, answered by both; their points were kept.
                question = await fresh_question_on_both(pages, seen)
                seen.add(question)
                for page in pages:
                    await answer_right(page)
                await expect(ann.locator("#scores li")).to_have_count(2, timeout=WAIT_MS)
                board = await board_after(ann, points)
                assert sorted(nick for nick, _ in board) == ["Ann", "Ben"], board
                for nick, score in board:
                    assert score > points[nick], (attempt, nick, score, points)
                points = dict(board)
                for page in pages:
                    await check_reveals(page)

            # Still the owner: Ann stops nothing, waits for the end and starts a new game.
            await expect(ann.locator("#start-form")).to_be_visible(timeout=WAIT_MS * 3)
            await ann.get_by_role("button", name="Start the game").click()
            await expect(ann.locator("#q-index")).to_have_text(re.compile("Question 1 of"), timeout=WAIT_MS)
            for page in pages:
                await check_reveals(page)
    finally:
        await server.stop()


@pytest.mark.interop
async def test_page_on_bosh_without_resumption_logs_in_again_after_a_restart(tmp_path: Path) -> None:
    """The server grants acks only (`stream_management.resume_seconds = 0`) and the page is on BOSH: nothing to
    resume, so the page leaves a silent session to Strophe's own retries — and once Strophe has given it up (the
    restart ended it), logs in again as the same guest, binds and rejoins the room by itself. It used to stay on
    "reconnecting" for good: Strophe reports DISCONNECTED before it clears `connected`, so the session it had given
    up still looked like one it was retrying."""
    (tmp_path / "bank.json").write_text(json.dumps(BANK))
    extra = {"http.quiz_page_transport": "bosh", "stream_management.resume_seconds": 0.0}
    server = await start({**config_overrides(tmp_path, http_port=free_port(), c2s_port=free_port()), **extra})
    try:
        await bot_in(server, "quiz@conference.localhost")
        assert server.http is not None
        async with chromium(tmp_path / "chromium") as browser:
            context = await browser.new_context(locale="en-GB")
            page = await context.new_page()
            # No pings (the default 20 s of silence): the idle page keeps one request at the server, the one the
            # restart ends. A second one in flight, retried by Strophe, could get an answer of its own after Strophe
            # had cleared `connected` — and hide the hang.
            await page.add_init_script("window.quizTiming = { timeoutSeconds: 1.5, retrySeconds: 1.5 };")
            bosh_bodies: list[str] = []
            page.on("request", lambda r: bosh_bodies.append(r.post_data or "")
                    if r.url.endswith("/http-bind") else None)
            await page.goto(f"http://127.0.0.1:{server.http.port}/")
            await page.get_by_label("Nickname").fill("Ann")
            await page.get_by_role("button", name="Play as guest").click()
            await page.get_by_role("button", name="Join the public quiz room").click()
            await check_board(page, {"Ann"})
            jid = JID.parse(await own_jid(page))
            await page.wait_for_timeout(500)  # the page's requests after joining are answered

            server = await restart(server, tmp_path, extra)

            def binds() -> int:
                return sum("<bind" in body for body in bosh_bodies)

            try:
                await wait_until(lambda: binds() == 2)  # logged in again (the login had bound once)
            except AssertionError:
                raise AssertionError("the page did not log in again after the restart") from None
            new_jid = JID.parse(await own_jid(page))
            assert new_jid.bare == jid.bare  # the remembered guest

            def rejoined() -> bool:
                room = server.muc.room(JID.parse("quiz@conference.localhost")) if server.muc is not None else None
                return room is not None and room.has_session(new_jid)

            await wait_until(rejoined)
            await expect(page.locator("body")).to_have_attribute("data-connection", "up", timeout=WAIT_MS)
            await expect(page.locator("#connection")).to_have_text("Connected.", timeout=WAIT_MS)
            await check_board(page, {"Ann"})  # listed once
            assert not any("<resume" in body for body in bosh_bodies), "nothing to resume"
            assert binds() == 2
    finally:
        await server.stop()
