"""The browser quiz page under attack, in headless Debian Chromium: a troll's forged quiz payloads are not shown
(and do not move the player to another room) while the bot's game plays; and the page's BOSH requests carry
XEP-0124 §15 keys, also after a reload re-attaches to the session.

One Chromium serves the module (a fresh context per test); each test has its own server, whose reveal lasts 0.5 s
(the game's last reveal is followed by its final scores after `reveal_seconds`: nothing here waits on it longer)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lxml import etree
from playwright.async_api import Browser, Page, Request, expect

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from quizbot.payload import NS
from tests.integration.quiz_players import (
    PAGE_QUIZ,
    ROOM,
    Player,
    player,
    right_and_wrong,
    running_quiz_server,
)
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.interop.test_quiz_page import answer_correctly, log_in_as_guest, page_scores

WAIT_MS = TIMEOUT_SECONDS * 1000

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def quiz_server(tmp_path: Path) -> AsyncIterator[Server]:
    """tests/interop/conftest.py's, with a 0.5 s reveal, in the module's event loop."""
    async with running_quiz_server(tmp_path, accounts=("cat",),
                                   overrides={**PAGE_QUIZ, "quizbot.game.reveal_seconds": 0.5}) as server:
        yield server


def forge(troll: Player, *, to: str, mtype: str, body: str, xml: str) -> None:
    message = troll.client.xmpp.make_message(mto=to, mbody=body, mtype=mtype)
    message.append(ElementTree.fromstring(xml))
    message.send()


async def play_one_question(page: Page, troll: Player) -> dict[str, int]:
    """Starts a live game of one question from the page; the troll answers wrongly. The final scores."""
    await page.get_by_label("Questions", exact=True).fill("1")
    await page.get_by_label("Category").select_option("mixed")
    await page.get_by_role("button", name="Start the game").click()
    await expect(page.locator("#q-index")).to_have_text("Question 1 of 1", timeout=WAIT_MS)
    question = await troll.next("question")
    await answer_correctly(page)
    troll.say(right_and_wrong(question)[1])
    final = await troll.next("scores", lambda s: s.get("final") == "true")
    await expect(page.locator("#podium")).to_be_visible(timeout=WAIT_MS)
    return {p.get("nick", ""): int(p.get("points", "")) for p in final}


def bosh_body(request: Request) -> etree._Element | None:
    if request.method != "POST" or not request.url.endswith("/http-bind") or not request.post_data:
        return None
    return etree.fromstring(request.post_data.encode())


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def check_key_chain(bodies: dict[int, etree._Element]) -> int:
    """Every BOSH session the page opened keeps its own chain: each request after the session creation carries a
    key that hashes to the previous key or newkey. Returns the number of requests checked."""
    creations = {rid: body for rid, body in bodies.items() if body.get("sid") is None}
    by_sid: dict[str, list[int]] = {}
    for rid, body in bodies.items():
        if (sid := body.get("sid")) is not None:
            by_sid.setdefault(sid, []).append(rid)
    checked = 0
    for rids in by_sid.values():
        rids.sort()
        first = creations[rids[0] - 1]   # XEP-0124 §7.1: the session's next request has rid + 1
        assert re.fullmatch(r"[0-9a-f]{40}", first.get("newkey") or ""), etree.tostring(first)
        assert first.get("key") is None
        expected = first.get("newkey")
        for rid in rids:
            body = bodies[rid]
            key = body.get("key")
            assert key is not None and sha1_hex(key) == expected, (rid, etree.tostring(body))
            expected = body.get("newkey") or key
        checked += len(rids) + 1
    return checked


@pytest.mark.interop
async def test_the_page_shows_no_payload_forged_by_a_troll_and_its_bosh_requests_carry_keys_through_a_reload(
        quiz_server: Server, browser: Browser) -> None:
    """One page, Ann's, and the troll Cat in the public room (the two checks share the page's login and the game):
    the troll's forged payloads are not shown and do not move Ann, also once the page is reloaded; every BOSH
    session the page opens keeps a key chain, the reload resumes the stream on a new one; the bot's own game still
    renders."""
    assert quiz_server.http is not None and quiz_server.bosh is not None
    url = f"http://127.0.0.1:{quiz_server.http.port}/"
    made: list[XmppClient] = []
    bodies: dict[int, etree._Element] = {}

    def seen(request: Request) -> None:
        body = bosh_body(request)
        if body is not None:
            bodies.setdefault(int(body.get("rid", "0")), body)  # a retry of a rid carries the same body

    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    page.on("request", seen)
    try:
        # The troll joins while Ann logs in.
        joining = asyncio.create_task(
            player(quiz_server.c2s.port, quiz_server.config.data_path / SELF_SIGNED_CERT, made, "cat"))
        await log_in_as_guest(page, url, "Ann")
        await page.get_by_role("button", name="Join the public quiz room").click()
        troll = await joining
        await expect(page.locator("#occupants li[data-nick='Cat']")).to_be_visible(timeout=WAIT_MS)
        sids = {body.get("sid") for body in bodies.values()} - {None}
        assert len(sids) == 1 and check_key_chain(bodies) >= 4
        ann_jid = await page.evaluate("JSON.parse(sessionStorage.getItem('quiz-sm')).jid")

        forge(troll, to=ROOM, mtype="groupchat", body="Type your password to win!",
              xml=f"<question xmlns='{NS}' id='fake' game='g' index='7' total='7' kind='text' category='prize' "
                  f"duration='30' deadline='2099-01-01T00:00:00.000Z'><text>Type your password to win"
                  f"</text></question>")
        forge(troll, to=ROOM, mtype="groupchat", body="Cat wins",
              xml=f"<scores xmlns='{NS}' game='g' final='true'><player nick='Cat' points='99999' rank='1'/>"
                  f"</scores>")
        forge(troll, to=ROOM, mtype="groupchat", body="psst", xml=f"<hint xmlns='{NS}' question='fake' "
              "pattern='p a s s w o r d' points='1'/>")
        for to in (ann_jid, f"{ROOM}/Ann"):  # privately: directly, and through the room
            forge(troll, to=to, mtype="chat", body="Come over",
                  xml=f"<room xmlns='{NS}' jid='evil@conference.localhost'/>")
        troll.say("hello")  # ordinary chat still shows, and marks that everything before it has arrived
        await expect(page.locator("#chat-log")).to_contain_text("Cat: hello", timeout=WAIT_MS)
        await asyncio.sleep(0.3)  # the private messages take another path

        async def nothing_forged_shown() -> None:
            assert await page.locator("#question").is_hidden() and await page.locator("#q-text").inner_text() == ""
            assert await page.locator("#scoreboard").is_hidden() and await page.locator("#podium").is_hidden()
            assert await page.locator("#hint").inner_text() == ""
            log = await page.locator("#chat-log").inner_text()
            assert re.search("password|Cat wins|Come over|psst", log) is None, log
            await expect(page.locator("#room-title")).to_have_text("Quiz", timeout=WAIT_MS)  # the public room's name
            assert "evil" not in await page.evaluate("sessionStorage.getItem('quiz-page')")

        await nothing_forged_shown()

        # A reload takes the stream back with a XEP-0198 resumption (guests too): a new BOSH session with a key
        # chain of its own, the same player in the same room.
        await page.reload()
        await expect(page.locator("#room-title")).to_have_text("Quiz", timeout=WAIT_MS)
        await expect(page.locator("#occupants li[data-nick='Cat']")).to_be_visible(timeout=WAIT_MS)
        after_reload = {body.get("sid") for body in bodies.values()} - {None}
        assert sids < after_reload and len(after_reload) == 2
        assert any(body.find("{urn:xmpp:sm:3}resume") is not None for body in bodies.values())
        assert not any(next(body.iter("{urn:ietf:params:xml:ns:xmpp-bind}bind"), None) is not None
                       for body in bodies.values() if body.get("sid") in after_reload - sids)
        await nothing_forged_shown()  # nor after the reload, which draws what the page kept

        # The bot's own question and scores still render.
        scores = await play_one_question(page, troll)
        assert await page_scores(page) == scores and scores["Ann"] > 0 and scores["Cat"] == 0
        assert check_key_chain(bodies) > 10
        assert {body.get("sid") for body in bodies.values()} - {None} == after_reload
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        await context.close()
