"""The aiohttp adapter for BOSH: request bodies in, held responses out, one timer for all sessions.

Protocol rules live in bosh/session.py; the XMPP side lives behind a link (upstream/link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

from aiohttp import HttpVersion11, web

from boshcm.address_slots import AddressSlots, Slot
from boshcm.bosh.body import DEFAULT_CONTENT_TYPE, BadRequest, build_terminate, parse_request
from boshcm.bosh.registry import SessionRegistry, new_sid
from boshcm.bosh.session import (
    AddressCheck,
    Authenticated,
    BoshAction,
    BoshEvent,
    BoshLimits,
    BoshSession,
    CloseUpstream,
    ForwardToServer,
    OpenUpstream,
    RequestAborted,
    RequestArrived,
    Respond,
    ResponseUndelivered,
    RestartUpstream,
    ServerClosed,
    ServerStanzas,
    SessionEnded,
    UpstreamOpened,
)
from boshcm.clock import Clock
from boshcm.cluster import node_of, sid_factory
from boshcm.errors import BoshCondition, RemoteProtocolError
from boshcm.stanza import Element
from boshcm.upstream.link import Link
from boshcm.web import Cors, is_secure_request
from boshcm.xml.parser import parse_document
from boshcm.xml.writer import serialize

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

CONTENT_TYPE = DEFAULT_CONTENT_TYPE
# A held request's future outlives 'wait' only by this much: a safety net, never the protocol's timer.
RESPONSE_GRACE_SECONDS = 10.0


LinkFactory = Callable[["BoshConnection", OpenUpstream, str], Link]


@dataclass(slots=True)
class HeldRequest:
    """A BOSH request waiting for its answer: enough to write that answer once the session has made it."""
    connection: BoshConnection
    request: web.Request
    cors_headers: dict[str, str]
    written: asyncio.Future[bool]   # True once the answer is on the transport, False if it could not be


class WrittenAnswer(web.StreamResponse):
    """What the handler gives aiohttp for an answer already on the transport (`BoshEndpoint.resolve`): nothing
    more to write, and whether the connection stays open."""

    def __init__(self, *, keep_alive: bool) -> None:
        super().__init__(status=200)
        self._stays_open = keep_alive

    @property
    def keep_alive(self) -> bool:
        return self._stays_open and super().keep_alive is not False   # False after force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _HttpDate:
    """The Date header, formatted once per second (RFC 9110 §6.6.1)."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._text = second, formatdate(second, usegmt=True)
        return self._text


http_date = _HttpDate()


@dataclass(frozen=True, slots=True, kw_only=True)
class Forwarded:
    """A request another node passed on, signed (boshcm/cluster.py): the client's address is trusted."""

    sid: str
    client: str
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerAnswer:
    body: bytes
    content_type: str


class Forwarder(Protocol):
    """Passes a request to the node that owns its session (bosh/nodes.py)."""

    def knows(self, node: str) -> bool: ...

    async def forward(self, node: str, *, sid: str, body: bytes, client: str,
                      origin: str | None) -> OwnerAnswer | None: ...


class BoshConnection:
    """One BOSH session with its link and the futures of its held HTTP requests."""

    def __init__(self, endpoint: BoshEndpoint, session: BoshSession, remote: str, secure: bool,
                 unauthenticated: Slot) -> None:
        self.endpoint = endpoint
        self.unauthenticated = unauthenticated  # given back once the session has logged in, or ends
        self.session = session
        self.remote = remote
        self.secure = secure
        self.link: Link | None = None

    # --- UpstreamListener ---------------------------------------------------------------------------

    def upstream_opened(self, stream_id: str, domain: str) -> None:
        self.event(UpstreamOpened(stream_id=stream_id, domain=domain))

    def upstream_stanzas(self, stanzas: tuple[Element, ...]) -> None:
        self.event(ServerStanzas(stanzas=stanzas))

    def upstream_closed(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> None:
        self.event(ServerClosed(condition=condition, stanzas=stanzas))

    def event(self, event: BoshEvent) -> None:
        """Called by the link (and the endpoint) with facts for the session machine."""
        self.perform(self.session.handle(event, self.endpoint.clock.now()))

    def perform(self, actions: list[BoshAction]) -> None:
        undelivered: list[int] = []
        for action in actions:
            match action:
                case Respond(request_id=request_id, data=data):
                    if not self.endpoint.resolve(request_id, data):
                        undelivered.append(request_id)
                case OpenUpstream():
                    self.link = self.endpoint.link_factory(self, action, self.remote)
                    self.link.open()
                case ForwardToServer(stanzas=stanzas):
                    if self.link is not None:
                        self.link.forward(stanzas)
                case RestartUpstream():
                    if self.link is not None:
                        self.link.restart()
                case CloseUpstream(by_client=by_client):
                    if self.link is not None:
                        self.link.close(by_client=by_client)
                case Authenticated():
                    self.unauthenticated.release()
                case SessionEnded(condition=condition):
                    log.debug("bosh session %s ended (%s)", self.session.sid, condition)
                    self.endpoint.registry.remove(self.session.sid)
                    self.unauthenticated.release()
        self.endpoint.reschedule(self)
        for request_id in undelivered:
            # Its client went away before the answer was made: what it carried goes into the next request.
            self.event(ResponseUndelivered(request_id=request_id))


class BoshEndpoint:
    def __init__(self, *, clock: Clock, cors: Cors, limits: BoshLimits, link_factory: LinkFactory,
                 max_body_bytes: int, max_depth: int, max_sessions: int = 100_000,
                 unauthenticated: AddressSlots | None = None, body_read_timeout_seconds: float = 10.0,
                 check_address: AddressCheck = lambda to, route: None, node: str = "",
                 forwarder: Forwarder | None = None) -> None:
        self._check_address = check_address
        self.clock = clock
        self.cors = cors
        self.limits = limits
        self.link_factory = link_factory
        # Several nodes (docs/scaling.md): a sid names the node that owns it, so no node needs a shared table.
        self.node = node
        self._forwarder = forwarder
        self.registry: SessionRegistry[BoshConnection] = SessionRegistry(
            max_sessions=max_sessions, sid_factory=sid_factory(node) if node else new_sid)
        self.draining = False       # stopping: no new sessions, every answer closes its connection
        self._in_flight = 0         # HTTP requests being handled, read while draining
        self._idle = asyncio.Event()
        self._idle.set()
        # Sessions not logged in yet, per client address (shared with c2s and WebSocket): a stranger's quota.
        self.unauthenticated = AddressSlots(per_address=8) if unauthenticated is None else unauthenticated
        self._max_body_bytes = max_body_bytes
        self._body_read_timeout_seconds = body_read_timeout_seconds
        self._max_depth = max_depth
        self._request_ids = itertools.count(1)
        self._held: dict[int, HeldRequest] = {}
        self._answers: list[tuple[int, HeldRequest, bytes]] = []   # made this turn, written by _write_answers
        self.held_requests = self._held.__len__  # held HTTP requests, read by boshcm/metrics.py
        self._wakeup = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    def end_sessions(self) -> None:
        """Draining: no new sessions; each session answers its held requests with what is pending and a
        `system-shutdown` terminate (clients reconnect on it), and its XMPP link is dropped, not closed, so
        that a XEP-0198 stream stays resumable at the XMPP server."""
        self.draining = True
        for connection in self.registry.values():
            connection.event(ServerClosed(condition=BoshCondition.SYSTEM_SHUTDOWN))
            if connection.link is not None:
                connection.link.close(by_client=False)

    async def wait_idle(self, timeout_seconds: float) -> bool:
        """Until no HTTP request is being handled (answers written), at most `timeout_seconds`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for connection in self.registry.values():
            connection.event(ServerClosed(condition=BoshCondition.SYSTEM_SHUTDOWN))
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    # --- HTTP -------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        with self._counted():
            response = await self._handle(request, None)
            if self.draining:
                response.force_close()  # the client's next request opens a connection, to another node
            return response

    async def handle_forwarded(self, request: web.Request, forwarded: Forwarded) -> web.StreamResponse:
        """A request passed on by another node, its signature checked (bosh/nodes.py)."""
        with self._counted():
            return await self._handle(request, forwarded)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Requests being handled, so that draining knows when every answer is written."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _handle(self, request: web.Request, forwarded: Forwarded | None) -> web.StreamResponse:
        headers = self.cors.headers(request)
        origin = request.headers.get("Origin")
        # The client's: behind trusted proxies (web.TrustedProxies), or as the node that passed it on saw it.
        address = (request.remote or "") if forwarded is None else forwarded.client
        if forwarded is not None:
            data: bytes | None = forwarded.body  # read (within the same limits) and signed by the internal listener
        elif request.content_length is not None and request.content_length > self._max_body_bytes:
            return self._too_large(headers)
        else:
            try:
                data = await self.read_body(request)
            except TimeoutError:
                log.debug("BOSH request body from %s not complete in %ss", address, self._body_read_timeout_seconds)
                return await self._refuse_unread(request, headers)
        if data is None or len(data) > self._max_body_bytes:
            return self._too_large(headers)
        wire_log.debug("%s BOSH RECV %r", address, data)
        try:
            body = parse_request(parse_document(data, max_bytes=self._max_body_bytes, max_depth=self._max_depth))
        except (RemoteProtocolError, BadRequest) as error:
            log.debug("bad BOSH request from %s: %s", address, error)
            return self._terminate_response(BoshCondition.BAD_REQUEST, headers)
        if forwarded is not None and body.sid != forwarded.sid:
            return web.Response(status=403, text="sid does not match the signed sid")
        if body.sid is not None and self.node and (owner := node_of(body.sid)) != self.node:
            # Before any session lookup: another node's session is passed on (one hop at most), never served here.
            if owner is None or forwarded is not None or self._forwarder is None or not self._forwarder.knows(owner):
                return self._terminate_response(BoshCondition.ITEM_NOT_FOUND, headers)
            answer = await self._forwarder.forward(owner, sid=body.sid, body=data, client=address, origin=origin)
            if answer is None:
                # The owner is gone (or unreachable): so is the session. XEP-0198 clients reconnect and resume.
                return self._terminate_response(BoshCondition.ITEM_NOT_FOUND, headers)
            return web.Response(body=answer.body, headers={**headers, "Content-Type": answer.content_type})
        arrived = RequestArrived(request_id=next(self._request_ids), body=body, origin=origin, size_bytes=len(data))
        request_id = arrived.request_id
        if body.sid is None:
            connection = self._create(arrived, request, address)
            if isinstance(connection, BoshCondition):
                return self._terminate_response(connection, headers)
        elif (found := self.registry.get(body.sid)) is None:
            return self._terminate_response(BoshCondition.ITEM_NOT_FOUND, headers)
        else:
            connection = found
        loop = asyncio.get_running_loop()
        written: asyncio.Future[bool] = loop.create_future()
        self._held[request_id] = HeldRequest(connection, request, headers, written)
        # The safety net only (the session's own deadline answers at 'wait').
        safety = loop.call_later(self.limits.max_wait_seconds + RESPONSE_GRACE_SECONDS, self._expire, request_id)
        try:
            if body.sid is None:
                connection.perform(connection.session.start(self.clock.now()))
            else:
                connection.event(arrived)
            await written
        except asyncio.CancelledError:
            # The client went away (aiohttp handler_cancellation): before its answer was made, or after (then
            # nobody may have read it, or it was not written at all).
            answered = request_id not in self._held
            connection.event(ResponseUndelivered(request_id=request_id) if answered
                             else RequestAborted(request_id=request_id))
            raise
        finally:
            safety.cancel()
            self._held.pop(request_id, None)
        return WrittenAnswer(keep_alive=self._keeps_alive(request))

    def _keeps_alive(self, request: web.BaseRequest) -> bool:
        # Draining: the client's next request opens a connection, to another node.
        return request.keep_alive and not self.draining

    def _create(self, arrived: RequestArrived, request: web.Request, address: str) -> BoshConnection | BoshCondition:
        """A session-creation request: check who may create one, then make the session."""
        if not self.cors.allows(request):
            log.debug("BOSH session refused for origin %r from %s", arrived.origin, address)
            return BoshCondition.POLICY_VIOLATION  # a page on an origin http.cors_origins does not allow
        if self.draining:
            return BoshCondition.SYSTEM_SHUTDOWN  # stopping: the client retries, through another node
        if self.registry.full:
            return BoshCondition.SYSTEM_SHUTDOWN
        if (slot := self.unauthenticated.take(address)) is None:
            log.debug("BOSH session refused: %s has too many unauthenticated sessions", address)
            return BoshCondition.POLICY_VIOLATION
        sid = self.registry.new_sid()
        session = BoshSession(sid=sid, first=arrived, now=self.clock.now(), limits=self.limits, serialize=serialize,
                              check_address=self._check_address)
        connection = BoshConnection(self, session, address, is_secure_request(request), slot)
        self.registry.add(sid, connection)
        return connection

    async def read_body(self, request: web.Request) -> bytes | None:
        """The whole body (it may arrive in many TCP segments), or None beyond max_body_bytes."""
        if request.content.is_eof():
            # Usual for BOSH: the body came with the head and is complete, so no timer is needed to read it.
            whole = request.content.read_nowait()
            return None if len(whole) > self._max_body_bytes else whole
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self._body_read_timeout_seconds):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > self._max_body_bytes:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    def _terminate_response(self, condition: BoshCondition, headers: dict[str, str]) -> web.Response:
        return web.Response(body=serialize(build_terminate(condition)), content_type="text/xml", charset="utf-8",
                            headers=headers)

    def _too_large(self, headers: dict[str, str]) -> web.Response:
        """policy-violation; aiohttp reads and drops the rest of the body (briefly), then closes."""
        response = self._terminate_response(BoshCondition.POLICY_VIOLATION, headers)
        response.force_close()
        return response

    async def _refuse_unread(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        """policy-violation for a body too slow, then close at once: a stalled client gets no more time."""
        response = self._terminate_response(BoshCondition.POLICY_VIOLATION, headers)
        response.force_close()
        with contextlib.suppress(ConnectionResetError):
            await response.prepare(request)
            await response.write_eof()
        if request.protocol is not None:
            request.protocol.force_close()  # the transport still sends what was written, then closes
        return response

    def resolve(self, request_id: int, data: bytes) -> bool:
        """Queue the answer to its held request; False when its client went away (the request was cancelled), so
        that the session keeps what the answer carried."""
        held = self._held.pop(request_id, None)
        if held is None:
            return True   # answered already (a repeat, the safety net), or its handler has finished
        if held.written.done():
            return False  # cancelled: its client went away
        if not self._answers:
            asyncio.get_running_loop().call_soon(self._write_answers)
        self._answers.append((request_id, held, data))
        return True

    def _write_answers(self) -> None:
        """Every answer queued in the turn before, back to back: the held requests a fan-out answers leave within
        a few milliseconds of each other (the routing and the session machines ran before the first is written),
        each a raw HTTP response (in the request's HTTP version), without aiohttp's response machinery per answer."""
        answers, self._answers = self._answers, []
        for request_id, held, data in answers:
            if held.written.done():
                continue  # cancelled meanwhile: the handler told the session (ResponseUndelivered)
            request = held.request
            transport = request.transport
            if transport is None or transport.is_closing():
                held.written.set_result(False)
                held.connection.event(ResponseUndelivered(request_id=request_id))
                continue
            version = request.version
            lines = [f"HTTP/{version.major}.{version.minor} 200 OK",
                     f"Content-Type: {held.connection.session.content_type}", f"Content-Length: {len(data)}",
                     f"Date: {http_date()}"]
            lines.extend(f"{name}: {value}" for name, value in held.cors_headers.items())
            if not self._keeps_alive(request):
                lines.append("Connection: close")
            elif version < HttpVersion11:
                lines.append("Connection: keep-alive")
            transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
            held.written.set_result(True)
            wire_log.debug("%s BOSH SEND %r", request.remote, data)

    def _expire(self, request_id: int) -> None:
        """A held request outlived 'wait' by the grace period: the session never answered it (a bug)."""
        log.warning("held BOSH request %d was never answered in time", request_id)
        self.resolve(request_id, serialize(build_terminate(BoshCondition.INTERNAL_SERVER_ERROR)))

    # --- time -------------------------------------------------------------------------------------

    def reschedule(self, connection: BoshConnection) -> None:
        before = self.registry.next_deadline()
        self.registry.schedule(connection.session.sid, connection.session.next_deadline())
        after = self.registry.next_deadline()
        if after is not None and (before is None or after < before):
            self._wakeup.set()

    async def _run_timer(self) -> None:
        while True:
            deadline = self.registry.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            now = self.clock.now()
            for sid in self.registry.due(now):
                if (connection := self.registry.get(sid)) is not None:
                    connection.perform(connection.session.handle_timeout(now))

