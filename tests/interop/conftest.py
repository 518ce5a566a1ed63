"""A private Prosody with the alice and bob accounts, for the tests that compare with it or relay to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.interop.prosody import Prosody


@pytest.fixture
async def prosody(tmp_path: Path) -> AsyncIterator[Prosody]:
    server = Prosody(tmp_path / "prosody")
    server.register("alice", "alice-secret")
    server.register("bob", "bob-secret")
    await server.start()
    yield server
    await server.stop()
