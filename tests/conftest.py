"""Shared fixtures: the embedded server on loopback with ephemeral ports, and real slixmpp clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boshcm.app import Server
from boshcm.config import load_config
from tests.integration.xmpp_client import XmppClient


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    config = load_config(None, {"quizbot.enabled": False,
                                "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0",
                                "http.listen": "127.0.0.1:0", "c2s.max_stanza_bytes": 65_536})
    running = Server(config)
    running.accounts.add("alice", "alice-secret")
    running.accounts.add("bob", "bob-secret")
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[list[XmppClient]]:
    """Clients made by tests register here and are disconnected afterwards."""
    made: list[XmppClient] = []
    yield made
    await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
