"""A thin test wrapper around a real slixmpp client that records what it receives."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import slixmpp

TIMEOUT_SECONDS = 10.0


def trusting_only(ca_cert: Path) -> ssl.SSLContext:
    """A client context that trusts the test server's certificate alone (hostname and chain still checked);
    one may serve many clients."""
    return ssl.create_default_context(cafile=str(ca_cert))


class XmppClient:
    def __init__(self, jid: str, password: str, *, port: int, ca_cert: Path, plugins: tuple[str, ...] = (),
                 mechanism: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        # Without `ssl_context`, one that trusts `ca_cert` alone: slixmpp's own default loads the system's CA store
        # (tens of milliseconds of CPU a client), which no test server's certificate is in.
        self.xmpp = slixmpp.ClientXMPP(jid, password, sasl_mech=mechanism,
                                       ssl_context=ssl_context or trusting_only(ca_cert))
        self.xmpp.enable_direct_tls = False  # the c2s port speaks STARTTLS
        self.xmpp.ca_certs = ca_cert
        for plugin in ("xep_0030", "xep_0199", "xep_0203", *plugins):
            self.xmpp.register_plugin(plugin)
        self.port = port
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self.session_started = asyncio.Event()
        self.auth_failed = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.stream_errors: list[str] = []
        self.xmpp.add_event_handler("session_start", self._on_session_start)
        self.xmpp.add_event_handler("failed_all_auth", lambda _event: self.auth_failed.set())
        self.xmpp.add_event_handler("message", self.messages.put_nowait)
        self.xmpp.add_event_handler("presence", self.presences.put_nowait)
        # slixmpp's MUC plugin keeps room presences out of the roster's "presence" event.
        self.xmpp.add_event_handler("groupchat_presence", self.presences.put_nowait)
        self.xmpp.add_event_handler("disconnected", lambda _event: self.disconnected.set())
        self.xmpp.add_event_handler("stream_error", lambda error: self.stream_errors.append(error["condition"]))

    async def _on_session_start(self, _event: Any) -> None:
        self.session_started.set()

    async def connect(self, *, expect_success: bool = True) -> None:
        self.xmpp.connect(host="127.0.0.1", port=self.port)
        started = asyncio.ensure_future(self.session_started.wait())
        failed = asyncio.ensure_future(self.auth_failed.wait())
        done, pending = await asyncio.wait({started, failed}, timeout=TIMEOUT_SECONDS,
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if expect_success:
            assert started in done, "session did not start"

    async def next_message(self, *, with_body: bool = True) -> Any:
        while True:
            message = await asyncio.wait_for(self.messages.get(), TIMEOUT_SECONDS)
            if message["body"] or not with_body:
                return message

    async def presence_from(self, bare_jid: str, ptype: str | None = None) -> Any:
        while True:
            presence = await asyncio.wait_for(self.presences.get(), TIMEOUT_SECONDS)
            if presence["from"].bare == bare_jid and (ptype is None or presence["type"] == ptype):
                return presence

    async def close(self) -> None:
        if self.xmpp.is_connected():
            self.xmpp.disconnect()
            await asyncio.wait_for(self.disconnected.wait(), TIMEOUT_SECONDS)
