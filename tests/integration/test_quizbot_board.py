"""Bounded boards with real slixmpp players on the embedded server (issue 14): with more players than
`board_size`, the room's reveal and scores name only the board, and every player gets its own result and standing
privately from the bot's real JID — the ones the board leaves out too."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from boshcm.app import Server
from quizbot.payload import NS
from tests.integration.quiz_players import (
    BOT,
    QUESTION_SECONDS,
    ROOM,
    Player,
    right_and_wrong,
    running_quiz_server,
    seat,
)
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient

NAMES = ("ann", "ben", "cat", "dan", "eve")


@pytest.fixture
async def board_server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_quiz_server(tmp_path, accounts=NAMES, overrides={
            "quizbot.board_size": 3, "quizbot.game.question_seconds": QUESTION_SECONDS,
            "quizbot.game.reveal_seconds": 0.5}) as server:
        yield server


def hear_bodiless(player: Player) -> None:
    """The bot's private <result/> and <standing/> have no body, and slixmpp's "message" event wants one."""
    player.client.xmpp.register_handler(Callback(
        "standing", MatchXPath(f"{{jabber:client}}message/{{{NS}}}standing"),
        lambda message: None if message["body"] else player.client.messages.put_nowait(message)))


async def the_end(player: Player) -> tuple[etree._Element, etree._Element]:
    """The final <scores/> to the room and the player's final <standing/>, in whichever order they arrive."""
    found: dict[str, etree._Element] = {}
    while len(found) < 2:
        message = etree.fromstring(ElementTree.tostring((await player._message(TIMEOUT_SECONDS)).xml))
        for child in message.iter(f"{{{NS}}}scores", f"{{{NS}}}standing"):
            if child.get("final") == "true":
                found[etree.QName(child).localname] = child
    return found["scores"], found["standing"]


async def test_more_players_than_the_board_each_hear_their_own_result_and_standing(board_server: Server) -> None:
    made: list[XmppClient] = []
    try:
        players = [await seat(board_server, made, name) for name in NAMES]
        for each in players:
            hear_bodiless(each)
        ann = players[0]
        ann.say("!quiz live 1 choices")  # live: everyone in the room plays
        await ann.next("game", lambda g: g.get("state") == "lobby")
        ann.say("!start")
        question = await ann.next("question")
        right, wrong = right_and_wrong(question)
        await asyncio.sleep(0.8)  # past the full points of the first half second: the faster, the more points
        for each in players[:4]:  # four right, one after the other; Eve wrong
            each.say(right)
            await asyncio.sleep(0.3)
        players[4].say(wrong)

        reveal = await players[4].next("reveal", lambda r: r.get("question") == question.get("id"))
        assert reveal.get("scorers") == "4"
        assert [s.get("nick") for s in reveal.findall(f"{{{NS}}}scorer")] == ["Ann", "Ben", "Cat"]
        message = reveal.getparent()
        assert message is not None
        scores = message.find(f"{{{NS}}}scores")
        assert scores is not None and scores.get("players") == "5"
        assert [(p.get("nick"), p.get("rank")) for p in scores] == [("Ann", "1"), ("Ben", "2"), ("Cat", "3")]
        body = message.findtext("{jabber:client}body") or ""
        assert "Cat" in body and "Dan" not in body and "4" in body

        points: dict[str, int] = {}
        for rank, each in enumerate(players, start=1):
            standing = await each.next("standing", lambda s: s.get("final") == "false")
            own = standing.getparent()
            assert own is not None and own.get("type") == "chat" and own.get("from", "").startswith(f"{BOT}/")
            assert own.find("{jabber:client}body") is None
            (result, place) = [child for child in own if etree.QName(child).namespace == NS]
            assert etree.QName(result).localname == "result" and place is standing  # one message, the result first
            assert (result.get("question"), result.get("game")) == (question.get("id"), question.get("game"))
            assert (place.get("rank"), place.get("players")) == (str(rank), "5")
            if each is players[4]:
                assert (result.get("correct"), result.get("points"), result.get("streak")) == ("false", None, "0")
                assert place.get("total") == "0"
            else:
                assert (result.get("correct"), result.get("streak")) == ("true", "1")
                points[each.nick] = int(result.get("points", ""))
                assert place.get("total") == str(points[each.nick])
        assert points["Dan"] > 0  # off the room's board, but told its points

        for rank, each in enumerate(players, start=1):
            ended, final = await the_end(each)
            assert ended.get("players") == "5" and len(ended) == 3  # the room's final board
            assert (final.get("rank"), final.get("players")) == (str(rank), "5")  # and its own place, privately
            alone = final.getparent()
            assert alone is not None and [etree.QName(child).localname for child in alone
                                          if etree.QName(child).namespace == NS] == ["standing"]
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)


async def test_the_bots_round_trip_through_the_room_credits_a_slow_link(board_server: Server) -> None:
    """The bot pings every player through the room at the start (XEP-0199; raw, one handler for all answers) and
    credits half the round trip plus the grace to its answer times: a player whose pongs take a second answers in
    `seconds` about 0.65 s less than it took."""
    made: list[XmppClient] = []
    try:
        ann = await seat(board_server, made, "ann")
        hear_bodiless(ann)
        pinged = asyncio.Event()
        pingers: list[str] = []

        def slow_pong(iq: Any) -> None:
            pingers.append(str(iq["from"]))
            asyncio.get_running_loop().call_later(1.0, lambda: (iq.reply().send(), pinged.set()))

        ann.client.xmpp.remove_handler("Ping")  # slixmpp's XEP-0199 plugin answers at once
        ann.client.xmpp.register_handler(Callback("slow pong", MatchXPath("{jabber:client}iq/{urn:xmpp:ping}ping"),
                                                  slow_pong))
        ann.say("!quiz live 1 choices")
        await ann.next("game", lambda g: g.get("state") == "lobby")
        ann.say("!start")
        question = await ann.next("question")
        asked_at = asyncio.get_running_loop().time()
        await asyncio.wait_for(pinged.wait(), TIMEOUT_SECONDS)
        await asyncio.sleep(0.3)  # the pong has reached the bot
        right, _wrong = right_and_wrong(question)
        ann.say(right)
        took = asyncio.get_running_loop().time() - asked_at
        result = await ann.next("result")
        assert pingers and set(pingers) == {f"{ROOM}/Quizbot"}  # through the room, like the questions
        assert result.get("correct") == "true"
        assert float(result.get("seconds", "")) <= took - 0.4  # credited: 0.5 s of a 1 s round trip, + 0.15 s grace
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
