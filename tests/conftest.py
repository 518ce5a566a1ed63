"""Shared fixtures: the embedded server on loopback with ephemeral ports, and real slixmpp clients.

The server and slixmpp are imported only by the fixtures that use them, so that a unit test of a pure machine
does not load the whole application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from boshcm.app import Server
    from tests.integration.xmpp_client import XmppClient


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    from tests.servers import running_server

    async with running_server(tmp_path, {"c2s.max_stanza_bytes": 65_536}) as running:
        yield running


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[list[XmppClient]]:
    """Clients made by tests register here and are disconnected afterwards."""
    made: list[XmppClient] = []
    yield made
    await asyncio.gather(*(client.close() for client in made), return_exceptions=True)


# Longest first: with `-n` and `--dist loadfile` a file runs whole on one worker, and a browser or cluster file
# started last keeps the run waiting while the other workers idle. The heavy folders go first, the many small unit
# files fill in at the end. Deterministic, as xdist needs every worker to collect the same order.
_HEAVY_FIRST = ("interop", "packaging", "property", "security", "integration", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def folder_rank(item: pytest.Item) -> int:
        parts = item.path.relative_to(Path(__file__).parent).parts
        return _HEAVY_FIRST.index(parts[0]) if parts and parts[0] in _HEAVY_FIRST else len(_HEAVY_FIRST)

    items.sort(key=folder_rank)  # stable: files and tests keep their order within a folder
