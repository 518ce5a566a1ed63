"""The standalone quiz bot against Debian's Prosody and its MUC (issue 17: "the bot, as players and admins meet it,
both on boshcm and on Prosody"): the same scenarios as tests/integration/test_quizbot.py, run through another
server's rooms — a live game, private messages through the room, answers and commands as payloads without a body,
the room's answer counts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from quizbot.client import Connection
from quizbot.config import QuizBotConfig
from quizbot.game import GameSettings
from quizbot.runner import build_client
from tests.integration.quiz_players import BANK, QUESTION_SECONDS, ROOM, Player, play_live_game, player, wait_until
from tests.integration.test_quizbot import (
    test_an_answer_payload_without_a_body_counts as an_answer_payload_without_a_body_counts,
)
from tests.integration.test_quizbot import (
    test_command_payloads_without_a_body_steer_the_game as command_payloads_without_a_body_steer_the_game,
)
from tests.integration.test_quizbot import (
    test_private_messages_through_the_room_are_answers_and_commands as private_messages_through_the_room,
)
from tests.integration.test_quizbot import (
    test_the_room_hears_how_many_have_answered as the_room_hears_how_many_have_answered,
)
from tests.integration.xmpp_client import XmppClient
from tests.interop.prosody import Prosody


@pytest.fixture
async def trio(prosody: Prosody, tmp_path: Path) -> AsyncIterator[tuple[Player, Player, Player]]:
    """The bot (`quizbot run`'s client) in its room on Prosody, and three slixmpp players there."""
    for name in ("quiz", "ann", "ben", "cat"):
        prosody.register(name, f"{name}-secret")
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    config = QuizBotConfig(rooms=[ROOM], questions=[str(bank)],
                           game=GameSettings(question_seconds=QUESTION_SECONDS, reveal_seconds=0.5))
    client, store = build_client(config, Connection(jid="quiz@localhost/bot", password="quiz-secret",
                                                    server=("127.0.0.1", prosody.c2s_port), ca_file=prosody.cert_path),
                                 rooms=[ROOM], muc_domain="conference.localhost", store_path=tmp_path / "quiz.sqlite")
    client.start()
    made: list[XmppClient] = []
    try:
        await wait_until(lambda: ROOM in client.entered)  # the bot created and configured the room on Prosody
        players = [await player(prosody.c2s_port, prosody.cert_path, made, name) for name in ("ann", "ben", "cat")]
        yield players[0], players[1], players[2]
    finally:
        await asyncio.gather(*(c.close() for c in made), return_exceptions=True)
        await client.stop()
        store.close()


async def test_live_game_on_prosody_muc(trio: tuple[Player, Player, Player]) -> None:
    await play_live_game(*trio)


async def test_private_messages_through_prosodys_room_are_answers_and_commands(
        trio: tuple[Player, Player, Player]) -> None:
    await private_messages_through_the_room(trio)


async def test_an_answer_payload_without_a_body_counts_on_prosody(trio: tuple[Player, Player, Player]) -> None:
    await an_answer_payload_without_a_body_counts(trio)


async def test_command_payloads_steer_the_game_on_prosody(trio: tuple[Player, Player, Player]) -> None:
    await command_payloads_without_a_body_steer_the_game(trio)


async def test_prosodys_room_hears_how_many_have_answered(trio: tuple[Player, Player, Player]) -> None:
    await the_room_hears_how_many_have_answered(trio)
