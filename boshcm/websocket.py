"""XMPP over WebSocket (RFC 7395): the aiohttp adapter around ClientSession.

Framing only: one element per text frame, `<open/>`/`<close/>` in the framing namespace instead of the
stream header. The session core is the same one TCP clients use.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from boshcm.clock import Clock
from boshcm.errors import BoshCondition, RemoteProtocolError, StreamErrorCondition
from boshcm.stanza import NS_FRAMING, Element, element, local_name, namespace_of, stream_error_element
from boshcm.xml.parser import parse_document
from boshcm.xml.writer import serialize
from boshcm.xmpp.hub import Hub, HubSeat
from boshcm.xmpp.stream import (
    Bound,
    ClientSession,
    CloseStream,
    ElementReceived,
    ExpectRestart,
    OpenStream,
    PeerError,
    Replaced,
    SendElement,
    SessionAction,
    Shutdown,
    StartTls,
    StreamEnded,
    StreamStarted,
    Transport,
    TransportClosed,
)

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

SUBPROTOCOL: Final = "xmpp"
# INTEROP.md: Strophe recognises the server's close only in exactly this form.
CLOSE_FRAME: Final = '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'
CLOSE_TIMEOUT_SECONDS: Final = 2.0


def is_secure_request(request: web.Request) -> bool:
    """TLS, or loopback (browsers treat http://localhost as a secure origin, INTEROP.md)."""
    if request.secure:
        return True
    with contextlib.suppress(ValueError, TypeError):
        return ipaddress.ip_address(request.remote or "").is_loopback
    return False


class _FrameWriter:
    """One writer task per socket: frames are queued synchronously (sinks must not block) and sent in order."""

    def __init__(self, ws: web.WebSocketResponse, peer: str) -> None:
        self._ws, self._peer = ws, peer
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()

    def _send(self, frame: str) -> None:
        self._outgoing.put_nowait(frame)

    def _end_writes(self) -> None:
        self._outgoing.put_nowait(None)

    async def _write_loop(self) -> None:
        while (frame := await self._outgoing.get()) is not None:
            wire_log.debug("%s WS SEND %r", self._peer, frame)
            try:
                await self._ws.send_str(frame)
            except ConnectionError:
                return
        if not self._ws.closed:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(self._ws.close(code=WSCloseCode.OK), CLOSE_TIMEOUT_SECONDS)


class WebSocketConnection(_FrameWriter):
    def __init__(self, ws: web.WebSocketResponse, session: ClientSession, *, hub: Hub, clock: Clock,
                 max_frame_bytes: int, max_depth: int, peer: str) -> None:
        super().__init__(ws, peer)
        self._session, self._hub, self._clock = session, hub, clock
        self._max_frame_bytes, self._max_depth = max_frame_bytes, max_depth
        self._seat = HubSeat(hub, self)

    # --- SessionSink ------------------------------------------------------------------------------

    def deliver(self, stanza: Element) -> None:
        self._send(serialize(stanza).decode())

    def disconnect(self, condition: StreamErrorCondition) -> None:
        self._perform(self._session.handle(Replaced(condition=condition), self._clock.now()))

    def shutdown(self) -> None:
        self._perform(self._session.handle(Shutdown(), self._clock.now()))

    # --- loops ------------------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self._write_loop())
            try:
                await self._read_loop()
            finally:
                self._end_writes()
            await writer

    async def _read_loop(self) -> None:
        while not self._session.closed:
            deadline = self._session.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock.now())
            try:
                message = await asyncio.wait_for(self._ws.receive(), timeout)
            except TimeoutError:
                self._perform(self._session.handle_timeout(self._clock.now()))
                continue
            if message.type is WSMsgType.TEXT:
                wire_log.debug("%s WS RECV %r", self._peer, message.data)
                self._on_frame(message.data.encode())
            elif message.type is WSMsgType.BINARY:
                # RFC 7395 §3.2: XMPP frames are text.
                self._perform(self._session.handle(PeerError(condition=StreamErrorCondition.BAD_FORMAT,
                                                             text="Binary frames are not XMPP"), self._clock.now()))
            else:  # close, closing, closed, error
                self._perform(self._session.handle(TransportClosed(), self._clock.now()))
                return

    def _on_frame(self, data: bytes) -> None:
        try:
            received = parse_document(data, max_bytes=self._max_frame_bytes, max_depth=self._max_depth)
        except RemoteProtocolError as error:
            self._perform(self._session.handle(PeerError(condition=error.condition, text=error.text),
                                               self._clock.now()))
            return
        now = self._clock.now()
        if namespace_of(received) == NS_FRAMING and local_name(received) == "open":
            self._perform(self._session.handle(StreamStarted(
                to=received.get("to"), from_=received.get("from"), version=received.get("version"),
                lang=received.get("{http://www.w3.org/XML/1998/namespace}lang")), now))
        elif namespace_of(received) == NS_FRAMING and local_name(received) == "close":
            self._perform(self._session.handle(StreamEnded(), now))
        else:
            self._perform(self._session.handle(ElementReceived(element=received), now))

    # --- orders -----------------------------------------------------------------------------------

    def _perform(self, actions: list[SessionAction]) -> None:
        for action in actions:
            match action:
                case OpenStream(attrs=attrs):
                    self._send(serialize(element(NS_FRAMING, "open", attrs)).decode())
                case SendElement(element=sent):
                    self._send(serialize(sent).decode())
                case StartTls() | ExpectRestart():
                    pass  # RFC 7395 §3.4: TLS is the WebSocket's; a restart is just the next <open/>
                case Bound(jid=jid):
                    self._seat.take(jid)
                case CloseStream(condition=condition, text=text):
                    if condition is not None:
                        log.info("ws %s: stream error %s %s", self._peer, condition.value, text)
                        self._send(serialize(stream_error_element(condition, text)).decode())
                    self._send(CLOSE_FRAME)
                    self._end_writes()
                case _:
                    self._hub.perform([action])
        if self._session.closed:
            self._seat.release()

class WebSocketEndpoint:
    """The aiohttp handler for the WebSocket path."""

    def __init__(self, *, hub: Hub, clock: Clock, new_session: Callable[[Transport], ClientSession],
                 max_frame_bytes: int, max_depth: int, relay: RelayFactory | None = None) -> None:
        self._hub, self._clock, self._new_session = hub, clock, new_session
        self._relay = relay
        self._max_frame_bytes, self._max_depth = max_frame_bytes, max_depth
        self.connections: set[WebSocketConnection] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=2 * self._max_frame_bytes,
                                 heartbeat=30)
        await ws.prepare(request)
        if ws.ws_protocol != SUBPROTOCOL:
            # RFC 7395 §3.1: without the xmpp subprotocol there is no XMPP session to speak of.
            await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=b"xmpp subprotocol required")
            return ws
        if self._relay is not None:
            await WebSocketRelay(ws, new_link=self._relay, max_frame_bytes=self._max_frame_bytes,
                                 max_depth=self._max_depth, peer=request.remote or "?").run()
            return ws
        session = self._new_session(Transport(secure=is_secure_request(request), can_starttls=False, web=True,
                                              remote_address=request.remote or ""))
        connection = WebSocketConnection(ws, session, hub=self._hub, clock=self._clock,
                                         max_frame_bytes=self._max_frame_bytes, max_depth=self._max_depth,
                                         peer=request.remote or "?")
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
        return ws


class UpstreamLink(Protocol):
    def open(self) -> None: ...
    def forward(self, stanzas: tuple[Element, ...]) -> None: ...
    def restart(self) -> None: ...
    def close(self) -> None: ...


# (listener, to, lang) -> a link to the upstream server, not yet opened
RelayFactory = Callable[[Any, str, "str | None"], UpstreamLink]


class WebSocketRelay(_FrameWriter):
    """Off-board: one WebSocket relayed to an upstream XMPP server over TCP (the framing is translated)."""

    def __init__(self, ws: web.WebSocketResponse, *, new_link: RelayFactory, max_frame_bytes: int,
                 max_depth: int, peer: str) -> None:
        super().__init__(ws, peer)
        self._new_link = new_link
        self._max_frame_bytes, self._max_depth = max_frame_bytes, max_depth
        self._link: UpstreamLink | None = None
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
                if self._link is not None and not self._done:
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
                self._link.close()
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

    def _fail(self, error: Element) -> None:
        self._send(serialize(error).decode())
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._send(CLOSE_FRAME)
            self._end_writes()
