"""XMPP over WebSocket (RFC 7395): the aiohttp adapter around ClientSession.

Framing only: one element per text frame, `<open/>`/`<close/>` in the framing namespace instead of the
stream header. The session core is the same one TCP clients use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from boshcm.address_slots import AddressSlots, Slot
from boshcm.bosh.upstream import Link
from boshcm.clock import Clock
from boshcm.errors import BoshCondition, RemoteProtocolError, StreamErrorCondition
from boshcm.stanza import NS_FRAMING, Element, element, local_name, namespace_of, stream_error_element
from boshcm.web import Cors, is_secure_request
from boshcm.xml.parser import parse_document
from boshcm.xml.writer import serialize
from boshcm.xmpp.client_session import (
    ClientSession,
    CloseStream,
    ElementReceived,
    PeerError,
    StreamEnded,
    StreamStarted,
    Transport,
    TransportClosed,
    stream_error,
)
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.session_adapter import SessionAdapter

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

SUBPROTOCOL: Final = "xmpp"
# INTEROP.md: Strophe recognises the server's close only in exactly this form.
CLOSE_FRAME: Final = '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'
CLOSE_TIMEOUT_SECONDS: Final = 2.0
# A client that stops reading must not grow our memory without bound (as for TCP in xmpp/c2s.py).
MAX_QUEUED_BYTES: Final = 4 * 1024 * 1024


class _FrameWriter:
    """One writer task per socket: frames are queued synchronously (sinks must not block) and sent in order.

    The queue is bounded in bytes: past `MAX_QUEUED_BYTES` the frames not yet sent are dropped, the subclass
    is told (`_overflowed`) so it can end the stream, and a socket that does not take even that is aborted.
    """

    def __init__(self, ws: web.WebSocketResponse, peer: str, transport: asyncio.Transport | None,
                 max_queued_bytes: int = MAX_QUEUED_BYTES) -> None:
        self._ws, self._peer = ws, peer
        self._transport = transport
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._max_queued_bytes = max_queued_bytes
        self._overflow = False

    def _send(self, frame: str) -> None:
        self._outgoing.put_nowait(frame)
        self._queued_bytes += len(frame)
        if self._queued_bytes > self._max_queued_bytes and not self._overflow:
            self._overflow = True
            while not self._outgoing.empty():
                self._outgoing.get_nowait()
            self._queued_bytes = 0
            if self._transport is not None:
                # The last frames get a short chance; a client that reads nothing is cut off.
                asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_SECONDS, self._transport.abort)
            self._overflowed()

    def _overflowed(self) -> None:
        """The client is not keeping up; end the stream."""

    def _end_writes(self) -> None:
        self._outgoing.put_nowait(None)

    async def _write_loop(self) -> None:
        while (frame := await self._outgoing.get()) is not None:
            self._queued_bytes -= len(frame)
            wire_log.debug("%s WS SEND %r", self._peer, frame)
            try:
                await self._ws.send_str(frame)
            except ConnectionError:
                return
        if not self._ws.closed:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(self._ws.close(code=WSCloseCode.OK), CLOSE_TIMEOUT_SECONDS)


FrameLimit = Callable[[bool], int]  # authenticated -> largest frame accepted


class WebSocketConnection(_FrameWriter):
    """One on-board WebSocket: the transport of one SessionAdapter."""

    def __init__(self, ws: web.WebSocketResponse, session: ClientSession, *, hub: Hub, clock: Clock,
                 max_frame_bytes: FrameLimit, max_depth: int, peer: str,
                 transport: asyncio.Transport | None, unauthenticated: Slot, key_pool: Executor | None = None) -> None:
        super().__init__(ws, peer, transport)
        self._session = session
        self._adapter = SessionAdapter(session, self, hub=hub, clock=clock, key_pool=key_pool,
                                       unauthenticated=unauthenticated)
        self._max_frame_bytes, self._max_depth = max_frame_bytes, max_depth

    def _overflowed(self) -> None:
        self._adapter.handle(PeerError(condition=StreamErrorCondition.RESOURCE_CONSTRAINT,
                                       text="Client is not reading"))

    def shutdown(self) -> None:
        self._adapter.shutdown()

    # --- loops ------------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self._write_loop())
            try:
                await self._read_loop()
            except asyncio.CancelledError:
                # aiohttp cancels the handler when the client's TCP connection goes without a close frame
                # (handler_cancellation, boshcm/web.py): a lost transport, which a resumable session survives.
                if not self._session.closed:
                    self._adapter.handle(TransportClosed())
                raise
            finally:
                self._adapter.close()
                self._end_writes()
            await writer

    async def _read_loop(self) -> None:
        while not self._session.closed:
            try:
                message = await asyncio.wait_for(self._ws.receive(), self._adapter.seconds_to_deadline())
            except TimeoutError:
                self._adapter.handle_timeout()
                continue
            if message.type is WSMsgType.TEXT:
                wire_log.debug("%s WS RECV %r", self._peer, message.data)
                self._on_frame(message.data.encode())
            elif message.type is WSMsgType.BINARY:
                # RFC 7395 §3.2: XMPP frames are text.
                self._adapter.handle(PeerError(condition=StreamErrorCondition.BAD_FORMAT,
                                               text="Binary frames are not XMPP"))
            else:  # close, closing, closed, error
                self._adapter.handle(TransportClosed())
                return

    def _on_frame(self, data: bytes) -> None:
        try:
            received = parse_document(data, max_bytes=self._max_frame_bytes(self._session.authenticated),
                                      max_depth=self._max_depth)
        except RemoteProtocolError as error:
            self._adapter.handle(PeerError(condition=error.condition, text=error.text))
            return
        if namespace_of(received) == NS_FRAMING and local_name(received) == "open":
            self._adapter.handle(StreamStarted(
                to=received.get("to"), from_=received.get("from"), version=received.get("version"),
                lang=received.get("{http://www.w3.org/XML/1998/namespace}lang")))
        elif namespace_of(received) == NS_FRAMING and local_name(received) == "close":
            self._adapter.handle(StreamEnded())
        else:
            self._adapter.handle(ElementReceived(element=received))

    # --- SessionTransport -------------------------------------------------------------------------

    def write_open(self, attrs: dict[str, str]) -> None:
        self._send(serialize(element(NS_FRAMING, "open", attrs)).decode())

    def write_element(self, element: Element) -> None:
        self._send(serialize(element).decode())

    def write_close(self, close: CloseStream) -> None:
        if close.condition is not None:
            log.info("ws %s: stream error %s %s", self._peer, close.condition.value, close.text)
            self._send(serialize(stream_error(close)).decode())
        self._send(CLOSE_FRAME)
        self._end_writes()

    def start_tls(self) -> None:
        pass  # RFC 7395 §3.4: TLS is the WebSocket's

    def expect_restart(self) -> None:
        pass  # RFC 7395 §3.4: a restart is just the client's next <open/>

    def end_batch(self) -> None:
        pass  # one frame per element, queued as they come


class WebSocketEndpoint:
    """The aiohttp handler for the WebSocket path."""

    def __init__(self, *, hub: Hub, clock: Clock, new_session: Callable[[Transport], ClientSession],
                 max_frame_bytes: FrameLimit, max_depth: int, cors: Cors, per_address: AddressSlots,
                 unauthenticated: AddressSlots, relay: RelayFactory | None = None,
                 key_pool: Executor | None = None) -> None:
        self._hub, self._clock, self._new_session = hub, clock, new_session
        self._key_pool = key_pool
        self._relay = relay
        self._max_frame_bytes, self._max_depth = max_frame_bytes, max_depth
        self._cors = cors
        self._per_address, self._unauthenticated = per_address, unauthenticated
        self.connections: set[WebSocketConnection] = set()
        self.relays: set[WebSocketRelay] = set()   # off-board
        self.draining = False

    def end_sessions(self) -> None:
        """Draining: no new WebSockets; each one ends with a `system-shutdown` stream error and `<close/>`."""
        self.draining = True
        for relay in list(self.relays):
            relay.shutdown()
        for connection in list(self.connections):
            connection.shutdown()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._cors.allows(request):
            # Browsers send Origin on every WebSocket upgrade; a page the operator did not allow gets nothing.
            return web.Response(status=403, text="Origin not allowed")
        if self.draining:
            response = web.Response(status=503, text="Shutting down")
            response.force_close()
            return response
        address = request.remote or ""
        if (slot := self._per_address.take(address)) is None:
            return web.Response(status=429, text="Too many WebSocket connections from your address")
        try:
            return await self._serve(request, address)
        finally:
            slot.release()

    async def _serve(self, request: web.Request, address: str) -> web.StreamResponse:
        slot = None
        if self._relay is None and (slot := self._unauthenticated.take(address)) is None:
            return web.Response(status=429, text="Too many unauthenticated connections from your address")
        try:
            ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=2 * self._max_frame_bytes(True),
                                       heartbeat=30)
            await ws.prepare(request)
            if ws.ws_protocol != SUBPROTOCOL:
                # RFC 7395 §3.1: without the xmpp subprotocol there is no XMPP session to speak of.
                await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=b"xmpp subprotocol required")
                return ws
            if self._relay is not None:
                relay = WebSocketRelay(ws, new_link=self._relay, max_frame_bytes=self._max_frame_bytes(True),
                                       max_depth=self._max_depth, peer=address, transport=request.transport)
                self.relays.add(relay)
                try:
                    await relay.run()
                finally:
                    self.relays.discard(relay)
                return ws
            assert slot is not None
            session = self._new_session(Transport(secure=is_secure_request(request), can_starttls=False,
                                                  web=True, remote_address=address))
            connection = WebSocketConnection(ws, session, hub=self._hub, clock=self._clock,
                                             max_frame_bytes=self._max_frame_bytes, max_depth=self._max_depth,
                                             peer=address, transport=request.transport, unauthenticated=slot,
                                             key_pool=self._key_pool)
            self.connections.add(connection)
            try:
                await connection.run()
            finally:
                self.connections.discard(connection)
            return ws
        finally:
            if slot is not None:
                slot.release()


# (listener, to, lang) -> a link to the upstream server, not yet opened
RelayFactory = Callable[[Any, str, "str | None"], Link]


class WebSocketRelay(_FrameWriter):
    """Off-board: one WebSocket relayed to an upstream XMPP server over TCP (the framing is translated)."""

    def __init__(self, ws: web.WebSocketResponse, *, new_link: RelayFactory, max_frame_bytes: int,
                 max_depth: int, peer: str, transport: asyncio.Transport | None) -> None:
        super().__init__(ws, peer, transport)
        self._new_link = new_link
        self._max_frame_bytes, self._max_depth = max_frame_bytes, max_depth
        self._link: Link | None = None
        self._done = False

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self._write_loop())
            try:
                async for message in self._ws:
                    if message.type is not WSMsgType.TEXT or self._done:
                        break
                    self._on_frame(message.data.encode())
            finally:
                if self._link is not None:
                    # Lost, not closed (or already closed, which makes this a no-op): no `</stream:stream>`, so a
                    # XEP-0198 stream stays resumable.
                    self._link.close()
                self._end_writes()
            await writer

    def _on_frame(self, data: bytes) -> None:
        try:
            received = parse_document(data, max_bytes=self._max_frame_bytes, max_depth=self._max_depth)
        except RemoteProtocolError as error:
            self._fail(stream_error_element(error.condition, error.text))
            return
        if namespace_of(received) == NS_FRAMING and local_name(received) == "open":
            if self._link is None:
                self._link = self._new_link(self, received.get("to") or "",
                                            received.get("{http://www.w3.org/XML/1998/namespace}lang"))
                self._link.open()
            else:
                self._link.restart()  # RFC 7395 §3.7: the client's new <open/> after SASL
        elif namespace_of(received) == NS_FRAMING and local_name(received) == "close":
            if self._link is not None:
                self._link.close(by_client=True)
            self._finish()
        elif self._link is not None:
            self._link.forward((received,))

    # --- UpstreamListener -------------------------------------------------------------------------

    def upstream_opened(self, stream_id: str, domain: str) -> None:
        attrs = {"from": domain, "id": stream_id, "version": "1.0", "{http://www.w3.org/XML/1998/namespace}lang": "en"}
        self._send(serialize(element(NS_FRAMING, "open", attrs)).decode())

    def upstream_stanzas(self, stanzas: tuple[Element, ...]) -> None:
        for stanza in stanzas:
            self._send(serialize(stanza).decode())

    def upstream_closed(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> None:
        if condition is BoshCondition.REMOTE_STREAM_ERROR and stanzas:
            self._fail(stanzas[0])
        elif condition is not None:
            self._fail(stream_error_element(StreamErrorCondition.REMOTE_CONNECTION_FAILED))
        else:
            self._finish()

    def shutdown(self) -> None:
        """The node stops: the client hears `system-shutdown` and reconnects (through another node); the
        upstream link is dropped without `</stream:stream>`, so its XEP-0198 stream can be resumed there."""
        if self._done:
            return
        if self._link is not None:
            self._link.close(by_client=False)
        self._fail(stream_error_element(StreamErrorCondition.SYSTEM_SHUTDOWN))

    def _fail(self, error: Element) -> None:
        self._send(serialize(error).decode())
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._send(CLOSE_FRAME)
            self._end_writes()
