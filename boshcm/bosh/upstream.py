"""The XMPP side of a BOSH session.

On-board, a BOSH session *is* a client session of the embedded server: the same ClientSession core and the
same adapter (xmpp/session_adapter.py) as TCP and WebSocket, with no loopback hop and no second serialisation.
Off-board, the link is a TCP stream to any XMPP server (see OffboardLink).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Protocol

from boshcm.clock import Clock
from boshcm.cluster import Address
from boshcm.errors import BoshCondition
from boshcm.stanza import NS_STREAM, NS_TLS, Element, element, qname
from boshcm.xml.parser import StanzaReceived, StreamClosed, StreamOpened, StreamParseError, StreamParser
from boshcm.xml.writer import STREAM_CLOSE, serialize, stream_header
from boshcm.xmpp.client_session import (
    ClientSession,
    CloseStream,
    ElementReceived,
    StreamEnded,
    StreamStarted,
    Transport,
    TransportClosed,
    stream_error,
)
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.session_adapter import SessionAdapter

log = logging.getLogger(__name__)

# Each step of the upstream's stream opening and STARTTLS (the TCP connect has its own, shorter, timeout).
NEGOTIATION_TIMEOUT_SECONDS = 10.0


class UpstreamListener(Protocol):
    """Who hears from an upstream XMPP stream: a BOSH session or a WebSocket relay."""

    def upstream_opened(self, stream_id: str, domain: str) -> None: ...
    def upstream_stanzas(self, stanzas: tuple[Element, ...]) -> None: ...
    def upstream_closed(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> None: ...


class Link(Protocol):
    """The XMPP side of one BOSH session or off-board WebSocket: the embedded server's session core
    (`OnboardLink`), or a TCP stream to an upstream server (`OffboardLink`)."""

    def open(self) -> None: ...
    def forward(self, stanzas: tuple[Element, ...]) -> None: ...
    def restart(self) -> None: ...
    def close(self, *, by_client: bool = False) -> None: ...


class OnboardLink:
    """A BOSH session bound straight to the client-session core: the transport of one SessionAdapter.

    The elements of one perform go to the BOSH session as one batch (`end_batch`), so they share a response.
    """

    def __init__(self, listener: UpstreamListener, *, to: str, lang: str | None, version: str | None, secure: bool,
                 remote: str, hub: Hub, clock: Clock, new_session: Callable[[Transport], ClientSession],
                 key_pool: Executor | None = None) -> None:
        self._listener = listener
        session = new_session(Transport(secure=secure, can_starttls=False, remote_address=remote, web=True,
                                        advertises_stream_management=False))
        self._adapter = SessionAdapter(session, self, hub=hub, clock=clock, key_pool=key_pool)
        self._start = StreamStarted(to=to, version=version or "1.0", lang=lang)
        self._outgoing: list[Element] = []

    # --- orders from the BOSH session (Link) ------------------------------------------------------

    def open(self) -> None:
        self._adapter.handle(self._start)

    def forward(self, stanzas: tuple[Element, ...]) -> None:
        for stanza in stanzas:
            self._adapter.handle(ElementReceived(element=stanza))

    def restart(self) -> None:
        self._adapter.handle(self._start)

    def close(self, *, by_client: bool = False) -> None:
        # The client's terminate is a clean end of the stream; inactivity or an error is a lost transport,
        # which a resumable session (XEP-0198) survives: it is detached rather than ended.
        self._adapter.handle(StreamEnded() if by_client else TransportClosed())
        self._adapter.close()

    # --- SessionTransport -------------------------------------------------------------------------

    def write_open(self, attrs: dict[str, str]) -> None:
        self._listener.upstream_opened(attrs["id"], attrs["from"])

    def write_element(self, element: Element) -> None:
        self._outgoing.append(element)

    def write_close(self, close: CloseStream) -> None:
        self.end_batch()
        if close.condition is None:
            self._listener.upstream_closed(None)
        else:
            # XEP-0206 §6: stream errors travel inside a remote-stream-error terminate.
            self._listener.upstream_closed(BoshCondition.REMOTE_STREAM_ERROR, (stream_error(close),))

    def start_tls(self) -> None:
        pass  # XEP-0206: TLS is HTTPS's job

    def expect_restart(self) -> None:
        pass  # XEP-0206 §5: a restart is the client's xmpp:restart request

    def end_batch(self) -> None:
        if self._outgoing:
            outgoing, self._outgoing = tuple(self._outgoing), []
            self._listener.upstream_stanzas(outgoing)


class OffboardLink:
    """A BOSH session relayed over its own TCP stream to an external XMPP server (like Punjab).

    boshcm does STARTTLS towards the server itself; everything after that — SASL, the restart, binding,
    stanzas — is the client's, passed through in both directions (XEP-0206 §2).
    """

    def __init__(self, listener: UpstreamListener, *, to: str, lang: str | None, servers: Sequence[Address],
                 starttls_required: bool, tls_context: ssl.SSLContext, tasks: set[asyncio.Task[None]],
                 max_stanza_bytes: int, max_depth: int, connect_timeout_seconds: float = 10.0,
                 report: Callable[[Address, bool], None] = lambda server, ok: None) -> None:
        self._listener = listener
        self._servers = tuple(servers)   # tried in this order, each once, until one gives a stream
        self._report = report
        self._host, self._port = self._servers[0]
        self._domain = to
        self._lang = lang or "en"
        self._starttls_required = starttls_required
        self._tls_context = tls_context
        self._tasks = tasks
        self._parser = StreamParser(max_stanza_bytes=max_stanza_bytes, max_depth=max_depth)
        self._connect_timeout_seconds = connect_timeout_seconds
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: list[bytes] = []   # client payloads that arrive before the upstream is ready
        self._ready = False
        self._closed = False
        self._opened: StreamOpened | None = None

    # --- orders from the BOSH session -------------------------------------------------------------

    def open(self) -> None:
        task = asyncio.get_running_loop().create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forward(self, stanzas: tuple[Element, ...]) -> None:
        for stanza in stanzas:
            self._write_or_queue(serialize(stanza))

    def restart(self) -> None:
        # XEP-0206 §5: after SASL success the client asks for a restart; the server expects a new header.
        self._parser.reset()
        self._write_or_queue(self._header())

    def close(self, *, by_client: bool = False) -> None:
        """The client's end is a clean `</stream:stream>`; a lost session (inactivity, a node stopping) drops
        the TCP connection without it, so the server keeps a XEP-0198 stream resumable (a clean close ends it)."""
        if self._writer is not None and not self._closed:
            if by_client:
                self._writer.write(STREAM_CLOSE)
                self._writer.close()
            else:
                self._writer.transport.abort()
        self._closed = True

    # --- the TCP side -----------------------------------------------------------------------------

    def _header(self) -> bytes:
        return stream_header(attrs={"to": self._domain, "version": "1.0", "xml:lang": self._lang})

    def _write_or_queue(self, data: bytes) -> None:
        if self._ready and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)
        elif not self._ready:
            self._outbox.append(data)

    async def _connect(self) -> tuple[asyncio.StreamReader, Element]:
        """The first server that gives a stream, in order; each failure is reported (and skipped for a while)."""
        for index, (host, port) in enumerate(self._servers):
            self._host, self._port = host, port
            self._parser.reset()
            self._opened = None
            try:
                reader, self._writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                              self._connect_timeout_seconds)
                features = await self._negotiate_tls(reader)
            except (OSError, TimeoutError, ssl.SSLError, _UpstreamFailure) as error:
                log.info("upstream %s:%d failed: %s", host, port, error)
                self._report((host, port), False)
                if self._writer is not None:
                    self._writer.transport.abort()
                    self._writer = None
                if index == len(self._servers) - 1 or self._closed:
                    raise
                continue
            self._report((host, port), True)
            return reader, features
        raise _UpstreamFailure("no upstream server")

    async def _run(self) -> None:
        try:
            reader, features = await self._connect()
            writer = self._writer
            assert writer is not None
            if self._closed:
                return
            self._ready = True
            self._listener.upstream_stanzas((features,))
            for data in self._outbox:
                writer.write(data)
            self._outbox.clear()
            await self._relay(reader)
        except (OSError, TimeoutError, ssl.SSLError, _UpstreamFailure) as error:
            log.info("upstream %s:%d failed: %s", self._host, self._port, error)
            self._listener.upstream_closed(BoshCondition.REMOTE_CONNECTION_FAILED)
        finally:
            if self._writer is not None and not self._writer.is_closing():
                # Never a clean `</stream:stream>` here: the task ends because the node stops or the link failed.
                self._writer.transport.abort()

    async def _negotiate_tls(self, reader: asyncio.StreamReader) -> Element:
        """Open the stream, do STARTTLS when offered, and return the features the client should see."""
        assert self._writer is not None
        self._writer.write(self._header())
        features = await self._next_features(reader, announce=False)
        starttls = features.find(qname(NS_TLS, "starttls"))
        if starttls is None:
            if self._starttls_required:
                raise _UpstreamFailure("server does not offer STARTTLS")
            self._announce_pending()
            return features
        self._writer.write(serialize(element(NS_TLS, "starttls")))
        proceed = await self._next_element(reader)
        if proceed.tag != qname(NS_TLS, "proceed"):
            raise _UpstreamFailure("STARTTLS refused")
        await self._writer.start_tls(self._tls_context, server_hostname=self._domain)
        self._parser.reset()
        self._writer.write(self._header())
        return await self._next_features(reader, announce=True)

    async def _next_features(self, reader: asyncio.StreamReader, *, announce: bool) -> Element:
        self._opened = None
        received = await self._next_element(reader)
        if received.tag != qname(NS_STREAM, "features"):
            raise _UpstreamFailure(f"expected stream features, got {received.tag!r}")
        if announce:
            self._announce_pending()
        return received

    def _announce_pending(self) -> None:
        if self._opened is not None:
            self._listener.upstream_opened(self._opened.attrs.get("id", ""),
                                           self._opened.attrs.get("from", self._domain))

    async def _next_element(self, reader: asyncio.StreamReader) -> Element:
        while True:
            data = await asyncio.wait_for(reader.read(65_536), NEGOTIATION_TIMEOUT_SECONDS)
            if not data:
                raise _UpstreamFailure("server closed the connection during negotiation")
            for parsed in self._parser.feed(data):
                match parsed:
                    case StreamOpened():
                        self._opened = parsed
                    case StanzaReceived(element=received):
                        return received
                    case StreamClosed() | StreamParseError():
                        raise _UpstreamFailure(f"stream ended during negotiation: {parsed}")

    async def _relay(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65_536):
            stanzas: list[Element] = []
            for parsed in self._parser.feed(data):
                match parsed:
                    case StreamOpened(attrs=attrs):
                        # A restarted stream (after SASL): WebSocket clients see a fresh <open/>.
                        self._listener.upstream_opened(attrs.get("id", ""), attrs.get("from", self._domain))
                    case StanzaReceived(element=received) if received.tag == qname(NS_STREAM, "error"):
                        self._flush(stanzas)
                        self._listener.upstream_closed(BoshCondition.REMOTE_STREAM_ERROR, (received,))
                        return
                    case StanzaReceived(element=received):
                        stanzas.append(received)
                    case StreamClosed():
                        self._flush(stanzas)
                        self._listener.upstream_closed(None)
                        return
                    case StreamParseError(text=text):
                        raise _UpstreamFailure(f"server sent bad XML: {text}")
            self._flush(stanzas)
        if not self._closed:
            raise _UpstreamFailure("server dropped the connection")

    def _flush(self, stanzas: list[Element]) -> None:
        if stanzas:
            self._listener.upstream_stanzas(tuple(stanzas))
            stanzas.clear()


class _UpstreamFailure(Exception):
    pass


def upstream_tls_context(*, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
