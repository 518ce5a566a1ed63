"""The embedded server for tests: on loopback with ephemeral ports, with whatever options a test needs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from boshcm.app import Server
from boshcm.config import load_config

ACCOUNTS = {"alice": "alice-secret", "bob": "bob-secret"}


def make_server(tmp_path: Path, overrides: Mapping[str, object] = {},
                accounts: Mapping[str, str] = ACCOUNTS) -> Server:
    """A server (not started) without the quiz bot; `overrides` are dotted configuration keys."""
    config = load_config(None, {"quizbot.enabled": False, "server.data_dir": str(tmp_path / "data"),
                                "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0", **overrides})
    server = Server(config)
    for name, password in accounts.items():
        server.accounts.add(name, password)
    return server


@contextlib.asynccontextmanager
async def running_server(tmp_path: Path, overrides: Mapping[str, object] = {},
                         accounts: Mapping[str, str] = ACCOUNTS) -> AsyncIterator[Server]:
    server = make_server(tmp_path, overrides, accounts)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
