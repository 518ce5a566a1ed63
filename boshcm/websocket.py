"""XMPP over WebSocket (RFC 7395): the aiohttp adapter around ClientSession.

Framing only: one element per text frame, `<open/>`/`<close/>` in the framing namespace instead of the
stream header. The session core is the same one TCP clients use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Final

from aiohttp import WSCloseCode, WSMsgType, web

from boshcm.address_slots import AddressSlots, Slot
from boshcm.clock import Clock
from boshcm.errors import RemoteProtocolError, StreamErrorCondition
from boshcm.stanza import NS_FRAMING, Element, element, local_name, namespace_of
from boshcm.upstream.websocket_relay import RelayFactory, WebSocketRelay
from boshcm.web import Cors, is_secure_request
from boshcm.ws_frames import CLOSE_FRAME, FrameWriter, wire_log
from boshcm.xml.parser import parse_document
from boshcm.xml.writer import serialize, serialize_to
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

SUBPROTOCOL: Final = "xmpp"


FrameLimit = Callable[[bool], int]  # authenticated -> largest frame accepted


class WebSocketConnection(FrameWriter):
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
        writer = self._start_writing()
        try:
            await self._read_loop()
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client's TCP connection goes without a close frame
            # (handler_cancellation, boshcm/web.py), and a failed writer cancels it too: a lost transport, which
            # a resumable session survives.
            writer.cancel()
            if not self._session.closed:
                self._adapter.handle(TransportClosed())
            raise
        except BaseException:
            writer.cancel()
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
        self._send(serialize_to(element, self._session.jid).decode())

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
