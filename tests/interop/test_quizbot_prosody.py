"""The standalone quiz bot against Debian's Prosody and its MUC (issue 17: "the bot, as players and admins meet it,
both on boshcm and on Prosody"): the same scenarios as tests/integration/test_quizbot.py, run through another
server's rooms — a live game, private messages through the room, answers and commands as payloads without a body,
the room's answer counts.

One Prosody and one bot serve the whole file; tests do not meet: each plays in a room of its own (the bot is in all of
them from the start) with accounts of its own (the bot limits commands per account)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytest_asyncio

from quizbot.client import Connection, QuizBotClient
from quizbot.config import QuizBotConfig
from quizbot.game import GameSettings
from quizbot.runner import build_client
from tests.integration.quiz_players import BANK, QUESTION_SECONDS, Player, play_live_game, player, wait_until
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
from tests.integration.xmpp_client import XmppClient, trusting_only
from tests.interop.prosody import Prosody

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOMS = [f"prosody-{n}@conference.localhost" for n in range(1, 6)]  # one for each test
NAMES = ("ann", "ben", "cat")


@pytest.fixture(scope="module")
def prosody_for_quiz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    """Prosody with the bot's account and each test's players' (ann1, ben1, cat1, ann2, ...), not started. Each
    account is a prosodyctl run of its own: the players' run side by side (the bot's first, which makes the data
    directories)."""
    server = Prosody(tmp_path_factory.mktemp("prosody"))
    server.register("quiz", "quiz-secret")
    players = [f"{name}{serial}" for serial in range(1, len(ROOMS) + 1) for name in NAMES]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda account: server.register(account, f"{account}-secret"), players))
    yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(prosody_for_quiz: Prosody, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[QuizBotClient]:
    """Prosody running, and the bot (`quizbot run`'s client) in each of ROOMS there."""
    prosody = prosody_for_quiz
    tmp_path = tmp_path_factory.mktemp("bot")
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    config = QuizBotConfig(rooms=ROOMS, questions=[str(bank)],
                           game=GameSettings(question_seconds=QUESTION_SECONDS, reveal_seconds=0.2,
                                             get_ready_seconds=0))
    client, store = build_client(config, Connection(jid="quiz@localhost/bot", password="quiz-secret",
                                                    server=("127.0.0.1", prosody.c2s_port), ca_file=prosody.cert_path),
                                 rooms=ROOMS, muc_domain="conference.localhost", store_path=tmp_path / "quiz.sqlite")
    try:
        await prosody.start()
        client.start()
        await wait_until(lambda: set(ROOMS) <= client.entered)  # the bot created and configured the rooms on Prosody
        yield client
    finally:
        await client.stop()
        store.close()
        await prosody.stop()


_rooms = iter(ROOMS)
_serial = itertools.count(1)


@pytest_asyncio.fixture(loop_scope="module")
async def trio(bot: QuizBotClient, prosody_for_quiz: Prosody) -> AsyncIterator[tuple[Player, Player, Player]]:
    """Three slixmpp players, on accounts of their own, in a room of their own where the bot is."""
    prosody, room, serial = prosody_for_quiz, next(_rooms), next(_serial)
    made: list[XmppClient] = []
    tls = trusting_only(prosody.cert_path)
    try:
        players = [await player(prosody.c2s_port, prosody.cert_path, made, name, room=room, account=f"{name}{serial}",
                                ssl_context=tls) for name in NAMES]
        yield players[0], players[1], players[2]
    finally:
        await asyncio.gather(*(c.close() for c in made), return_exceptions=True)


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
