"""A private Prosody (Debian's package) for interop tests: the off-board peer and the reference server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

from boshcm.tls import ensure_self_signed

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
PROSODYCTL = shutil.which("prosodyctl") or "/usr/bin/prosodyctl"

CONFIG = """\
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{}}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
http_ports = {{ {http_port} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{}}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "version", "posix", "bosh", "websocket",
                    "offline", "time", "uptime"{modules} }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
consider_bosh_secure = true
consider_websocket_secure = true
ssl = {{ certificate = "{cert}", key = "{key}" }}
{http_default_host}VirtualHost "{domain}"
Component "conference.{domain}" "muc"
    restrict_room_creation = false
{components}"""

# XEP-0363 upload component (mod_http_file_share). Prosody routes HTTP by the Host header: requests to
# 127.0.0.1 (not a host of its own) go to `http_default_host`, and `http_external_url` makes the slot URLs point
# there.
UPLOAD_DEFAULT_HOST = 'http_default_host = "upload.{domain}"\n'
UPLOAD_COMPONENT = """\
Component "upload.{domain}" "http_file_share"
    http_external_url = "http://127.0.0.1:{http_port}/"
"""


def free_port() -> int:
    """A free port below 32768: Linux hands out 32768-60999 to outgoing connections, so a port from there (what
    binding port 0 gives) may be taken by a client before the server binds it (docs/protocol.md)."""
    while True:
        port = random.randint(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Prosody:
    """`modules`: more modules for `modules_enabled` (e.g. "pep"); `upload`: an `upload.<domain>` component."""

    def __init__(self, directory: Path, domain: str = "localhost", *, modules: tuple[str, ...] = (),
                 upload: bool = False) -> None:
        self.directory = directory
        self.domain = domain
        self.c2s_port = free_port()
        self.http_port = free_port()
        self.config_path = directory / "prosody.cfg.lua"
        self.cert_path, key_path = ensure_self_signed(directory, domain)
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(CONFIG.format(
            dir=directory, c2s_port=self.c2s_port, http_port=self.http_port, cert=self.cert_path, key=key_path,
            domain=domain, modules="".join(f', "{name}"' for name in modules),
            http_default_host=UPLOAD_DEFAULT_HOST.format(domain=domain) if upload else "",
            components=UPLOAD_COMPONENT.format(domain=domain, http_port=self.http_port) if upload else ""))
        self._process: asyncio.subprocess.Process | None = None

    @property
    def bosh_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/http-bind"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/xmpp-websocket"

    def register(self, username: str, password: str) -> None:
        subprocess.run([PROSODYCTL, "--config", str(self.config_path), "register", username, self.domain,
                        password], check=True, capture_output=True, timeout=30)

    async def start(self) -> None:
        env = dict(os.environ, HOME=str(self.directory))
        self._process = await asyncio.create_subprocess_exec(
            PROSODY, "-F", "--config", str(self.config_path), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, env=env)
        # Both listeners: Prosody opens c2s and HTTP (BOSH, WebSocket) one after the other, and on a loaded machine
        # a test that waited for c2s alone could find HTTP not yet listening.
        waiting = [self.c2s_port, self.http_port]
        for _attempt in range(100):
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", waiting[0])
                writer.close()
                waiting.pop(0)
                if not waiting:
                    return
                continue
            if self._process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        raise RuntimeError(f"prosody did not start; see {self.directory / 'prosody.log'}")

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
