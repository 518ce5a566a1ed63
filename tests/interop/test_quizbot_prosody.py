"""The standalone quiz bot against Debian's Prosody and its MUC: the same live game as on the embedded server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from quizbot.client import Connection
from quizbot.config import QuizBotConfig
from quizbot.game import GameSettings
from quizbot.runner import build_client
from tests.integration.quiz_players import BANK, QUESTION_SECONDS, ROOM, play_live_game, player, wait_until
from tests.integration.xmpp_client import XmppClient
from tests.interop.prosody import Prosody


async def test_live_game_on_prosody_muc(prosody: Prosody, tmp_path: Path) -> None:
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
        trio = [await player(prosody.c2s_port, prosody.cert_path, made, name) for name in ("ann", "ben", "cat")]
        await play_live_game(*trio)
    finally:
        await asyncio.gather(*(c.close() for c in made), return_exceptions=True)
        await client.stop()
        store.close()
