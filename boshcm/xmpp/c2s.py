"""c2s over TCP: the asyncio transport around StreamParser, for the one session adapter.

Read, feed, write, drain, time out — nothing else. Protocol decisions live in xmpp/client_session.py; performing the
session's orders (hub seat, key derivation) in xmpp/session_adapter.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Iterator
from concurrent.futures import Executor

from boshcm.address_slots import AddressSlots
from boshcm.clock import Clock
from boshcm.errors import StreamErrorCondition
from boshcm.listeners import LISTEN_BACKLOG
from boshcm.stanza import Element
from boshcm.xml.parser import StanzaReceived, StreamClosed, StreamOpened, StreamParseError, StreamParser
from boshcm.xml.writer import STREAM_CLOSE, serialize, serialize_to, stream_header
from boshcm.xmpp.client_session import (
    ClientSession,
    CloseStream,
    ElementReceived,
    PeerError,
    SessionEvent,
    StreamEnded,
    TlsEstablished,
    Transport,
    TransportClosed,
    stream_error,
    stream_started_from_header,
)
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.session_adapter import SessionAdapter

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

READ_CHUNK_BYTES = 65_536
# A client that stops reading must not grow our memory without bound.
MAX_WRITE_BUFFER_BYTES = 4 * 1024 * 1024

SessionFactory = Callable[[Transport], ClientSession]
# authenticated -> a parser with the limits for that stage (much smaller before authentication)
ParserFactory = Callable[[bool], StreamParser]


class C2sConnection:
    """One TCP client connection: the transport of one SessionAdapter."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hub: Hub, clock: Clock,
                 new_session: SessionFactory, new_parser: ParserFactory, tls_context: ssl.SSLContext | None,
                 unauthenticated: AddressSlots, key_pool: Executor | None = None) -> None:
        self._reader, self._writer = reader, writer
        self._parser_factory = new_parser
        self._parser = new_parser(False)
        self._tls_context = tls_context
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._address = str(peer[0]) if isinstance(peer, tuple) else ""
        self._session = new_session(Transport(secure=False, can_starttls=tls_context is not None,
                                              remote_address=self._address))
        self._adapter = SessionAdapter(self._session, self, hub=hub, clock=clock, key_pool=key_pool)
        self._unauthenticated = unauthenticated
        self._tls_requested = False
        self._restart_pending = False
        # What this loop turn wrote, written to the socket as one at the end of the turn (`_flush`); None between
        # turns, not an empty list kept per connection for the cyclic collector to walk.
        self._unwritten: list[bytes] | None = None

    def shutdown(self) -> None:
        self._adapter.shutdown()

    # --- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        log.debug("c2s connection from %s", self._peer)
        self._adapter.unauthenticated = self._unauthenticated.take(self._address)
        if self._adapter.unauthenticated is None:
            self._adapter.handle(PeerError(condition=StreamErrorCondition.POLICY_VIOLATION,
                                           text="Too many unauthenticated connections from your address"))
        try:
            while not self._session.closed:
                data = await self._read()
                if data is None:
                    self._adapter.handle_timeout()
                    continue
                if not data:
                    self._adapter.handle(TransportClosed())
                    break
                wire_log.debug("%s RECV %r", self._peer, data)
                self._feed(data)
                if self._tls_requested:
                    await self._start_tls()
                await self._drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("c2s connection %s lost: %s", self._peer, exc)
            exc.__traceback__ = None  # see _peer_gone
            self._adapter.handle(TransportClosed())
        finally:
            self._adapter.close()
            await self._close_transport()

    async def _read(self) -> bytes | None:
        """Bytes, b'' at EOF, or None when the session's deadline passed first."""
        try:
            return await asyncio.wait_for(self._reader.read(READ_CHUNK_BYTES), self._adapter.seconds_to_deadline())
        except TimeoutError:
            return None

    def _feed(self, data: bytes) -> None:
        # A restart ordered before these bytes (after STARTTLS) is already in place: they belong to the new stream.
        self._restart_pending = False
        for parsed in self._parser.feed(data):
            self._adapter.handle(_session_event(parsed))
            if self._restart_pending or self._tls_requested or self._session.closed:
                # Whatever followed belongs to a stream that no longer exists (RFC 6120 §4.3.3).
                self._restart_pending = False
                return

    async def _start_tls(self) -> None:
        assert self._tls_context is not None
        self._tls_requested = False
        await self._drain()
        await self._writer.start_tls(self._tls_context)
        self._parser = self._parser_factory(False)
        self._adapter.handle(TlsEstablished())

    # --- SessionTransport -------------------------------------------------------------------------

    def write_open(self, attrs: dict[str, str]) -> None:
        self._write(stream_header(attrs=attrs))

    def write_element(self, element: Element) -> None:
        self._write(serialize_to(element, self._session.jid))

    def write_close(self, close: CloseStream) -> None:
        if close.condition is not None:
            log.info("c2s %s: stream error %s %s", self._peer, close.condition.value, close.text)
            self._write(serialize(stream_error(close)))
        self._write(STREAM_CLOSE)
        self._flush()
        # Closing flushes what is buffered, and wakes the read loop wherever it waits.
        self._writer.close()

    def start_tls(self) -> None:
        self._tls_requested = True

    def expect_restart(self) -> None:
        self._parser = self._parser_factory(self._session.authenticated)
        self._restart_pending = True

    def end_batch(self) -> None:
        pass  # written at the end of the loop turn (`_write`), whatever performs wrote to it

    def _write(self, data: bytes) -> None:
        """Queue `data` for the end of this loop turn. Many sessions' stanzas for one client in a turn (2,000
        players' answers to a quiz bot) then cost one write, one TLS record and one system call, not one each:
        a seventh of the server's CPU in a 2,000-player game's answers went to writing them to the bot one by
        one (docs/performance.md, issue 14, eighth pass)."""
        if self._writer.is_closing():
            return
        wire_log.debug("%s SEND %r", self._peer, data)
        if self._unwritten is None:
            self._unwritten = [data]
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._unwritten.append(data)

    def _flush(self) -> None:
        if self._unwritten is None:
            return  # written already (a close, STARTTLS or the connection's end came first)
        data, self._unwritten = b"".join(self._unwritten), None
        if self._writer.is_closing():
            return
        self._writer.write(data)
        if self._writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES and not self._session.closed:
            self._adapter.handle(PeerError(condition=StreamErrorCondition.RESOURCE_CONSTRAINT,
                                           text="Client is not reading"))

    async def _drain(self) -> None:
        self._flush()
        with _peer_gone(ConnectionError):
            await self._writer.drain()

    async def _close_transport(self) -> None:
        with _peer_gone(ConnectionError, ssl.SSLError, TimeoutError):
            self._flush()
            if not self._writer.is_closing():
                await asyncio.wait_for(self._writer.drain(), 5)
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 5)


@contextlib.contextmanager
def _peer_gone(*kinds: type[BaseException]) -> Iterator[None]:
    """As `contextlib.suppress`, without the traceback: asyncio keeps a lost connection's exception on its stream
    and its closed future, and a traceback through a frame of this connection would hold the connection and its
    session in a reference cycle, left for a full collection, for every client whose connection was reset."""
    try:
        yield
    except kinds as gone:
        gone.__traceback__ = None


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
        self._server = await asyncio.start_server(self._accept, self._host, self._port, backlog=LISTEN_BACKLOG)
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
