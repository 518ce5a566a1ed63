"""Shared servers for the interop tests: a private Prosody with the alice and bob accounts (for the tests
that compare with it or relay to it), and boshcm with the quiz bot and a small bank (for the page)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boshcm.app import Server
from boshcm.config import load_config
from quizbot.extension import QuizExtension
from tests.integration.quiz_players import BANK, wait_until
from tests.interop.prosody import Prosody


@pytest.fixture
async def prosody(tmp_path: Path) -> AsyncIterator[Prosody]:
    server = Prosody(tmp_path / "prosody")
    server.register("alice", "alice-secret")
    server.register("bob", "bob-secret")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def quiz_server(tmp_path: Path) -> AsyncIterator[Server]:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        "quizbot.questions": [str(bank)], "quizbot.game.question_seconds": 15.0,
        "quizbot.game.reveal_seconds": 2.0, "quizbot.process": "inline",
        "http.quiz_page_transport": "bosh"})  # these page tests are BOSH's (keys, re-attach); default: WebSocket
    server = Server(config)
    server.accounts.add("cat", "cat-secret")
    await server.start()
    assert server.extension(QuizExtension).client is not None
    await wait_until(lambda: "quiz@conference.localhost" in server.extension(QuizExtension).client.entered)  # type: ignore[union-attr]
    yield server
    await server.stop()
