"""c2s over TCP: the asyncio adapter around StreamParser and ClientSession.

Read, feed, perform, drain, time out — nothing else. Protocol decisions live in xmpp/stream.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from boshcm.address_slots import AddressSlots, Slot
from boshcm.clock import Clock
from boshcm.errors import StreamErrorCondition
from boshcm.stanza import Element
from boshcm.xml.parser import StanzaReceived, StreamClosed, StreamOpened, StreamParseError, StreamParser
from boshcm.xml.writer import STREAM_CLOSE, serialize, stream_header
from boshcm.xmpp.hub import Hub, HubSeat
from boshcm.xmpp.stream import (
    Bound,
    ClientSession,
    CloseStream,
    Detach,
    ElementReceived,
    ExpectRestart,
    OpenStream,
    PeerError,
    Replaced,
    SendElement,
    SessionAction,
    SessionEvent,
    Shutdown,
    StanzaForClient,
    StartTls,
    StreamEnded,
    TlsEstablished,
    Transport,
    TransportClosed,
    stream_error,
    stream_started_from_header,
)

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

READ_CHUNK_BYTES = 65_536
# A client that stops reading must not grow our memory without bound.
MAX_WRITE_BUFFER_BYTES = 4 * 1024 * 1024

SessionFactory = Callable[[Transport], ClientSession]
# authenticated -> a parser with the limits for that stage (much smaller before authentication)
ParserFactory = Callable[[bool], StreamParser]


class C2sConnection:
    """One TCP client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hub: Hub, clock: Clock,
                 new_session: SessionFactory, new_parser: ParserFactory, tls_context: ssl.SSLContext | None,
                 unauthenticated: AddressSlots) -> None:
        self._reader, self._writer = reader, writer
        self._hub, self._clock = hub, clock
        self._parser_factory = new_parser
        self._parser = new_parser(False)
        self._tls_context = tls_context
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._address = str(peer[0]) if isinstance(peer, tuple) else ""
        self._session = new_session(Transport(secure=False, can_starttls=tls_context is not None,
                                              remote_address=self._address))
        self._unauthenticated = unauthenticated
        self._slot: Slot | None = None
        self._closing = False
        self._tls_requested = False
        self._restart_pending = False
        self._seat = HubSeat(hub, self)

    # --- SessionSink (called by the hub, synchronously) -------------------------------------------

    def deliver(self, stanza: Element) -> None:
        # Through the session: with stream management the stanza is counted and kept until acknowledged.
        self._perform(self._session.handle(StanzaForClient(stanza=stanza), self._clock.now()))

    def disconnect(self, condition: StreamErrorCondition) -> None:
        self._perform(self._session.handle(Replaced(condition=condition), self._clock.now()))

    def shutdown(self) -> None:
        self._perform(self._session.handle(Shutdown(), self._clock.now()))

    # --- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        log.debug("c2s connection from %s", self._peer)
        self._slot = self._unauthenticated.take(self._address)
        if self._slot is None:
            self._perform(self._session.handle(PeerError(
                condition=StreamErrorCondition.POLICY_VIOLATION,
                text="Too many unauthenticated connections from your address"), self._clock.now()))
        try:
            while not self._closing:
                data = await self._read()
                if data is None:
                    self._perform(self._session.handle_timeout(self._clock.now()))
                    continue
                if not data:
                    self._perform(self._session.handle(TransportClosed(), self._clock.now()))
                    break
                wire_log.debug("%s RECV %r", self._peer, data)
                self._feed(data)
                if self._tls_requested:
                    await self._start_tls()
                await self._drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("c2s connection %s lost: %s", self._peer, exc)
            self._perform(self._session.handle(TransportClosed(), self._clock.now()))
        finally:
            if self._slot is not None:
                self._slot.release()
            await self._close_transport()

    async def _read(self) -> bytes | None:
        """Bytes, b'' at EOF, or None when the session's deadline passed first."""
        deadline = self._session.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - self._clock.now())
        try:
            return await asyncio.wait_for(self._reader.read(READ_CHUNK_BYTES), timeout)
        except TimeoutError:
            return None

    def _feed(self, data: bytes) -> None:
        # A restart ordered before these bytes (after STARTTLS) is already in place: they belong to the new stream.
        self._restart_pending = False
        for parsed in self._parser.feed(data):
            event = _session_event(parsed)
            self._perform(self._session.handle(event, self._clock.now()))
            if self._restart_pending or self._tls_requested or self._closing:
                # Whatever followed belongs to a stream that no longer exists (RFC 6120 §4.3.3).
                self._restart_pending = False
                return

    async def _start_tls(self) -> None:
        assert self._tls_context is not None
        self._tls_requested = False
        await self._drain()
        await self._writer.start_tls(self._tls_context)
        self._parser = self._parser_factory(False)
        self._perform(self._session.handle(TlsEstablished(), self._clock.now()))

    # --- performing orders ------------------------------------------------------------------------

    def _perform(self, actions: list[SessionAction]) -> None:
        for action in actions:
            match action:
                case OpenStream(attrs=attrs):
                    self._write(stream_header(attrs=attrs))
                case SendElement(element=element):
                    self._write(serialize(element))
                case StartTls():
                    self._tls_requested = True
                case ExpectRestart():
                    self._parser = self._parser_factory(self._session.authenticated)
                    self._restart_pending = True
                case Bound(jid=jid):
                    self._seat.take(jid)
                case Detach():
                    self._seat.park(self._session)
                case CloseStream(condition=condition, text=text):
                    if condition is not None:
                        log.info("c2s %s: stream error %s %s", self._peer, condition.value, text)
                        self._write(serialize(stream_error(action)))
                    self._write(STREAM_CLOSE)
                    # Closing flushes what is buffered, and wakes the read loop wherever it waits.
                    self._writer.close()
                case _:
                    self._hub.perform([action])
        if self._slot is not None and (self._session.authenticated or self._session.closed):
            self._slot.release()
        if self._session.closed and not self._closing:
            self._closing = True
            self._seat.release()

    def _write(self, data: bytes) -> None:
        if self._writer.is_closing():
            return
        wire_log.debug("%s SEND %r", self._peer, data)
        self._writer.write(data)
        if self._writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES and not self._session.closed:
            self._perform(self._session.handle(PeerError(condition=StreamErrorCondition.RESOURCE_CONSTRAINT,
                                                         text="Client is not reading"), self._clock.now()))

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def _close_transport(self) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            if not self._writer.is_closing():
                await asyncio.wait_for(self._writer.drain(), 5)
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 5)


def _session_event(parsed: StreamOpened | StanzaReceived | StreamClosed | StreamParseError) -> SessionEvent:
    match parsed:
        case StreamOpened(tag=tag, attrs=attrs, default_ns=default_ns):
            return stream_started_from_header(tag, attrs, default_ns)
        case StanzaReceived(element=element):
            return ElementReceived(element=element)
        case StreamClosed():
            return StreamEnded()
        case StreamParseError(condition=condition, text=text):
            return PeerError(condition=condition, text=text)
    raise AssertionError(f"unknown parser event {parsed!r}")


class C2sServer:
    """The TCP listener: accepts connections and keeps every one of them in a TaskGroup-like set."""

    def __init__(self, *, host: str, port: int, connection_factory: Callable[
            [asyncio.StreamReader, asyncio.StreamWriter], C2sConnection]) -> None:
        self._host, self._port = host, port
        self._factory = connection_factory
        self._server: asyncio.Server | None = None
        self._connections: set[C2sConnection] = set()
        self.connection_count = self._connections.__len__  # boshcm/metrics.py
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        log.info("c2s listening on %s:%d", self._host, self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = self._factory(reader, writer)
        self._connections.add(connection)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await connection.run()
        except Exception:
            # A bug must not pass silently, and must cost no more than this one connection.
            log.exception("c2s connection failed")
        finally:
            self._connections.discard(connection)
            self._tasks.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.shutdown()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
