"""The off-board link: a BOSH session or a WebSocket relayed over its own TCP stream to an upstream XMPP server.

The protocol is the pure `OffboardNegotiation` (upstream/negotiation.py); this adapter connects, reads, writes
and upgrades the socket to TLS.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence

from boshcm.clock import Clock, SystemClock
from boshcm.cluster import Address
from boshcm.stanza import Element
from boshcm.upstream.link import UpstreamListener
from boshcm.upstream.negotiation import (
    Backlog,
    BytesReceived,
    ClientClosed,
    ClientRestart,
    ClientStanzas,
    Connect,
    Connected,
    ConnectFailed,
    ConnectionLost,
    Hangup,
    OffboardAction,
    OffboardEvent,
    OffboardNegotiation,
    ReportClosed,
    ReportOpened,
    ReportServer,
    ReportStanzas,
    Start,
    StartTls,
    TlsEstablished,
    TlsFailed,
    Write,
)

log = logging.getLogger(__name__)


class OffboardLink:
    """A BOSH session or an off-board WebSocket relayed over its own TCP stream to an external XMPP server
    (like Punjab).

    boshcm does STARTTLS towards the server itself; everything after that — SASL, the restart, binding,
    stanzas — is the client's, passed through in both directions (XEP-0206 §2). The protocol is
    `OffboardNegotiation` (upstream/negotiation.py); this adapter connects, reads, writes and upgrades to TLS.
    """

    def __init__(self, listener: UpstreamListener, *, to: str, lang: str | None, servers: Sequence[Address],
                 starttls_required: bool, tls_context: ssl.SSLContext, tasks: set[asyncio.Task[None]],
                 max_stanza_bytes: int, max_depth: int, max_backlog_bytes: int = 1_048_576,
                 connect_timeout_seconds: float = 10.0,
                 report: Callable[[Address, bool], None] = lambda server, ok: None, clock: Clock | None = None) -> None:
        self._listener = listener
        self._machine = OffboardNegotiation(to=to, lang=lang, servers=servers, starttls_required=starttls_required,
                                            max_stanza_bytes=max_stanza_bytes, max_depth=max_depth,
                                            max_backlog_bytes=max_backlog_bytes,
                                            connect_timeout_seconds=connect_timeout_seconds)
        self._report = report
        self._tls_context = tls_context
        self._tasks = tasks
        self._clock: Clock = clock or SystemClock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: Connect | StartTls | None = None   # the one order that takes a wait

    # --- orders from the BOSH session or the WebSocket relay (Link) -------------------------------

    def open(self) -> None:
        task = asyncio.get_running_loop().create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forward(self, stanzas: tuple[Element, ...]) -> None:
        self._handle(ClientStanzas(stanzas=stanzas))

    def restart(self) -> None:
        self._handle(ClientRestart())

    def close(self, *, by_client: bool = False) -> None:
        """The client's end is a clean `</stream:stream>`; a lost session (inactivity, a node stopping) drops
        the TCP connection without it, so the server keeps a XEP-0198 stream resumable (a clean close ends it)."""
        self._handle(ClientClosed(clean=by_client))

    # --- the TCP side -----------------------------------------------------------------------------

    def _handle(self, event: OffboardEvent) -> None:
        self._perform(self._machine.handle(event, self._clock.now()))
        writer = self._writer
        # What the server's TCP stack has not taken yet of what the client sent: the machine bounds it.
        if (isinstance(event, ClientStanzas | ClientRestart) and writer is not None and not writer.is_closing()
                and (backlog := writer.transport.get_write_buffer_size())):
            self._perform(self._machine.handle(Backlog(size_bytes=backlog), self._clock.now()))

    def _perform(self, actions: list[OffboardAction]) -> None:
        for action in actions:
            match action:
                case Connect() | StartTls():
                    self._pending = action
                case Write(data=data):
                    if self._writer is not None and not self._writer.is_closing():
                        self._writer.write(data)
                case Hangup(abort=abort):
                    self._hang_up(abort=abort)
                case ReportServer(server=server, ok=ok, reason=reason):
                    if not ok:
                        log.info("upstream %s:%d failed: %s", server[0], server[1], reason)
                    self._report(server, ok)
                case ReportOpened(stream_id=stream_id, domain=domain):
                    self._listener.upstream_opened(stream_id, domain)
                case ReportStanzas(stanzas=stanzas):
                    self._listener.upstream_stanzas(stanzas)
                case ReportClosed(condition=condition, stanzas=stanzas):
                    self._listener.upstream_closed(condition, stanzas)

    def _hang_up(self, *, abort: bool) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None or writer.is_closing():
            return
        if abort:
            writer.transport.abort()
        else:
            writer.close()   # sends what was written (the closing tag) first

    def _timeout(self) -> float | None:
        deadline = self._machine.next_deadline()
        return None if deadline is None else max(0.0, deadline - self._clock.now())

    async def _run(self) -> None:
        try:
            self._handle(Start())
            while not self._machine.closed:
                event = await self._next_event()
                if event is None:
                    self._perform(self._machine.handle_timeout(self._clock.now()))
                else:
                    self._handle(event)
        finally:
            # The task ends because the stream ended, the link failed or the node stops: never a clean close here.
            self._hang_up(abort=True)

    async def _next_event(self) -> OffboardEvent | None:
        """Carry out the pending wait (connect, TLS handshake) or read, and say what happened (None: the
        machine's deadline has come)."""
        pending, self._pending = self._pending, None
        match pending:
            case Connect(server=(host, port)):
                try:
                    self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                                        self._timeout())
                except (OSError, TimeoutError) as error:
                    return ConnectFailed(reason=str(error) or type(error).__name__)
                return Connected()
            case StartTls(server_hostname=hostname):
                assert self._writer is not None
                try:
                    await asyncio.wait_for(self._writer.start_tls(self._tls_context, server_hostname=hostname),
                                           self._timeout())
                except (OSError, TimeoutError, ssl.SSLError) as error:
                    return TlsFailed(reason=str(error) or type(error).__name__)
                return TlsEstablished()
        reader = self._reader
        if reader is None:
            return ConnectionLost(reason="connection closed")
        try:
            data = await asyncio.wait_for(reader.read(65_536), self._timeout())
        except TimeoutError:
            return None
        except OSError as error:
            return ConnectionLost(reason=str(error) or type(error).__name__)
        return BytesReceived(data=data) if data else ConnectionLost()


def upstream_tls_context(*, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
