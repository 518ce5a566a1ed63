"""Several off-board boshcm nodes for tests (docs/scaling.md), reusable by other tests and benchmarks.

`start_nodes` starts in-process nodes with the given ids in front of the given upstream XMPP servers, each with
its public HTTP listener on an ephemeral port and its internal listener on a free port below 32768 (the nodes
must know each other's internal URLs before they start). `node_process` starts one node as a `boshcm serve`
subprocess, for tests that send it real signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from boshcm.app import Server
from boshcm.config import load_config

SECRET = "test-cluster-secret-0123456789"


def free_port() -> int:
    """A free port below 32768 (docs/protocol.md: the ephemeral range may be taken by a client)."""
    while True:
        port = random.randint(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def write_secret(directory: Path, secret: str = SECRET) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cluster.secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


def node_overrides(tmp_path: Path, node: str, *, upstreams: Sequence[str], internal_ports: Mapping[str, int],
                   secret_file: Path, extra: Mapping[str, object] = {}) -> dict[str, object]:
    """The dotted configuration keys of one node (what a [cluster] section would say)."""
    return {"quizbot.enabled": False, "server.data_dir": str(tmp_path / f"node-{node}"),
            "http.listen": "127.0.0.1:0", "c2s.listen": "127.0.0.1:0",
            "upstream.server": list(upstreams), "upstream.verify_tls": False,
            "cluster.node": node, "cluster.listen": f"127.0.0.1:{internal_ports[node]}",
            "cluster.nodes": [f"{name}=http://127.0.0.1:{port}" for name, port in internal_ports.items()],
            "cluster.secret_file": str(secret_file), "cluster.drain_timeout_seconds": 2.0, **extra}


@contextlib.asynccontextmanager
async def start_nodes(tmp_path: Path, ids: Sequence[str], *, upstreams: Sequence[str],
                      extra: Mapping[str, object] = {}) -> AsyncIterator[dict[str, Server]]:
    """In-process nodes `ids` in front of `upstreams` ("HOST:PORT"); stopped (drained) on exit."""
    internal_ports = {node: free_port() for node in ids}
    secret_file = write_secret(tmp_path / "cluster")
    nodes: dict[str, Server] = {}
    try:
        for node in ids:
            config = load_config(None, node_overrides(tmp_path, node, upstreams=upstreams,
                                                      internal_ports=internal_ports, secret_file=secret_file,
                                                      extra=extra))
            nodes[node] = Server(config)
            await nodes[node].start()
        yield nodes
    finally:
        for server in nodes.values():
            await server.stop()


def bosh_url(server: Server) -> str:
    assert server.http is not None
    return f"http://127.0.0.1:{server.http.port}/http-bind"


def ws_url(server: Server) -> str:
    assert server.http is not None
    return f"ws://127.0.0.1:{server.http.port}/xmpp-websocket"


def internal_url(server: Server) -> str:
    assert server.internal_http is not None
    return f"http://127.0.0.1:{server.internal_http.port}/internal/bosh"


@contextlib.asynccontextmanager
async def node_process(tmp_path: Path, node: str, *, upstreams: Sequence[str], internal_ports: Mapping[str, int],
                       http_port: int, secret_file: Path,
                       extra: Mapping[str, object] = {}) -> AsyncIterator[asyncio.subprocess.Process]:
    """One node as `boshcm serve` in a subprocess, listening publicly on `http_port`; killed on exit."""
    overrides = node_overrides(tmp_path, node, upstreams=upstreams, internal_ports=internal_ports,
                               secret_file=secret_file, extra={"http.listen": f"127.0.0.1:{http_port}", **extra})
    overrides.pop("quizbot.enabled")
    config = tmp_path / f"node-{node}.toml"
    config.write_text(_toml(overrides))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "boshcm", "serve", "--config", str(config), "--no-quizbot",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        await wait_for_port(http_port)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def _toml(overrides: Mapping[str, object]) -> str:
    sections: dict[str, list[str]] = {}
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        sections.setdefault(section, []).append(f"{key} = {_value(value)}")
    return "".join(f"[{section}]\n" + "\n".join(lines) + "\n\n" for section, lines in sections.items())


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return str(value)


async def wait_for_port(port: int, timeout_seconds: float = 15.0) -> None:
    """Until something accepts connections on 127.0.0.1:`port` (a node started); OSError after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
