"""The quiz page steers the bot with <command xmlns='urn:boshcm:quiz:0'/> payloads (docs/quiz.md "Commands from rich
clients"), not with typed "!" lines: a player in the room sees the game the page opened and started, the categories
and the top list reach the page, and no "!quiz"/"!start" line of the page's ever shows in the room."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.tls import SELF_SIGNED_CERT
from quizbot.extension import QuizExtension
from tests.integration.quiz_players import BANK, ROOM, player, right_and_wrong, wait_until
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.interop.browser import chromium

WAIT_MS = TIMEOUT_SECONDS * 1000


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(BANK))
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        "quizbot.questions": [str(path)],
        "quizbot.game.question_seconds": 15.0,  # a margin: the question ends once Dan and Cat have answered
        "quizbot.game.reveal_seconds": 0.5,
        "quizbot.game.get_ready_seconds": 0.0,
        "quizbot.process": "inline"})  # the bot in this process: the test waits for it to enter the room
    started = Server(config)
    started.accounts.add("cat", "cat-secret")
    await started.start()
    extension = started.extension(QuizExtension)
    await wait_until(lambda: extension.client is not None and ROOM in extension.client.entered)
    yield started
    await started.stop()


@pytest.mark.interop
async def test_the_page_starts_a_game_with_command_payloads_and_types_no_commands(
        server: Server, tmp_path: Path) -> None:
    assert server.http is not None
    made: list[XmppClient] = []
    async with chromium(tmp_path) as browser:
        context = await browser.new_context(locale="en-GB")
        page = await context.new_page()
        try:
            cat = await player(server.c2s.port, server.config.data_path / SELF_SIGNED_CERT, made, "cat")
            typed: list[str] = []  # what the page said in the room as text
            cat.client.xmpp.add_event_handler("groupchat_message", lambda m: typed.append(str(m["body"]))
                                              if str(m["from"]) == f"{ROOM}/Dan" else None)
            await page.goto(f"http://127.0.0.1:{server.http.port}/")
            await page.get_by_label("Nickname").fill("Dan")
            await page.get_by_role("button", name="Play as guest").click()
            await page.get_by_role("button", name="Join the public quiz room").click()
            await expect(page.locator("#start-form")).to_be_visible(timeout=WAIT_MS)
            # <command name="categories"/> privately: the bank's category is offered.
            await expect(page.locator("#category option[value=choices]")).to_have_count(1, timeout=WAIT_MS)
            await page.locator("#count").fill("1")
            await page.locator("#category").select_option("choices")
            await page.get_by_role("button", name="Start the game").click()
            # <command name="quiz">live 1 choices en</command>, then <command name="start"/> on the page's own lobby.
            game = await cat.next("game", lambda g: g.get("state") == "running")
            assert (game.get("mode"), game.get("total"), game.get("opener")) == ("live", "1", "Dan")
            await expect(page.locator("#q-text")).not_to_be_empty(timeout=WAIT_MS)
            text = await page.locator("#q-text").text_content()
            right = next(q["answer"] for q in BANK["questions"] if q["question"] == text)
            await page.locator("#choices button", has_text=f") {right}").click()
            cat.say(right_and_wrong(await cat.next("question"))[1])  # Cat plays too: the question ends at once
            # At the end the page asks for the all-time top list (<command name="top">all 10</command>).
            await expect(page.locator("#podium")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#top-list li")).not_to_have_count(0, timeout=WAIT_MS)
            # Nothing the page sent to the room was a typed command ("!quiz live 1 choices en", "!start").
            assert typed == []
        finally:
            for client in made:
                await client.close()
            await context.close()

