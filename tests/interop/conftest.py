"""Shared servers for the interop tests: a private Prosody with the alice and bob accounts (for the tests
that compare with it or relay to it), and boshcm with the quiz bot and a small bank (for the page)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from boshcm.app import Server
from tests.integration.quiz_players import PAGE_QUIZ, running_quiz_server
from tests.interop.browser import chromium
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
    async with running_quiz_server(tmp_path, accounts=("cat",),
                                   overrides={**PAGE_QUIZ, "quizbot.game.reveal_seconds": 2.0}) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    """One Chromium for a page test file (in the file's event loop); each test makes its own context."""
    async with chromium(tmp_path_factory.mktemp("chromium")) as launched:
        yield launched
