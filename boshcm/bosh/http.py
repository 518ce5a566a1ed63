"""The aiohttp adapter for BOSH: request bodies in, held responses out, one timer for all sessions.

Protocol rules live in bosh/session.py; the XMPP side lives behind a link (upstream/link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol

from aiohttp import web

from boshcm.address_slots import AddressSlots, Slot
from boshcm.bosh.body import DEFAULT_CONTENT_TYPE, BadRequest, build_terminate, parse_poll, parse_request
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
from boshcm.xml.parser import DEFAULT_MAX_ATTRIBUTES, parse_document
from boshcm.xml.writer import serialize

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

CONTENT_TYPE = DEFAULT_CONTENT_TYPE
# A held request's future outlives 'wait' only by this much: a safety net, never the protocol's timer.
RESPONSE_GRACE_SECONDS = 10.0


LinkFactory = Callable[["BoshConnection", OpenUpstream, str], Link]


class AnswerWriter(Protocol):
    """Where a held request's answer goes: the HTTP connection it came on (aiohttp's, or the BOSH lane's). An
    answer is rendered, written, then finished, each step for every answer of a turn before the next step."""

    def render_answer(self, data: bytes, content_type: str,
                      cors_headers: dict[str, str]) -> tuple[asyncio.WriteTransport, bytes] | None:
        """The answer's whole HTTP response and the transport to write it on; None when the client has gone."""
        ...

    def answer_written(self) -> None:
        """After the write: the request is done (its connection reads the next one, or closes)."""
        ...


@dataclass(slots=True, eq=False)
class HeldRequest:
    """A BOSH request waiting for its answer: enough to write that answer once the session has made it."""
    request_id: int
    connection: BoshConnection
    writer: AnswerWriter
    cors_headers: dict[str, str]
    expires_at: float        # the safety net's deadline (the session's own answers at 'wait', well before)
    finished: bool = False   # answered on the wire, or its client went away


@dataclass(frozen=True, slots=True, kw_only=True)
class BoshPost:
    """One BOSH request as an HTTP adapter read it: the aiohttp route or the BOSH lane (bosh/lane.py)."""
    data: bytes
    origin: str | None
    address: str            # the client's: behind trusted proxies, or as the node that passed it on saw it
    secure: bool            # TLS, or loopback (is_secure_request)
    own_origin: str         # scheme://host of this request: a page boshcm served itself may always use it
    cors_headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class ImmediateAnswer:
    """An answer made at once, not held: a terminate condition, a refusal, or the owner node's answer."""
    body: bytes
    content_type: str = CONTENT_TYPE
    status: int = 200


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


def http_response(version: tuple[int, int], body: bytes, content_type: str, headers: dict[str, str], *,
                  keep_alive: bool, status: int = 200) -> bytes:
    """A whole HTTP/1.x response, head and body, as the BOSH answers are written: in the request's version,
    with the connection's persistence said where that version's default differs."""
    lines = [f"HTTP/{version[0]}.{version[1]} {status} {HTTPStatus(status).phrase}",
             f"Content-Type: {content_type}", f"Content-Length: {len(body)}", f"Date: {http_date()}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if not keep_alive:
        lines.append("Connection: close")
    elif version < (1, 1):
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def terminate_answer(condition: BoshCondition) -> ImmediateAnswer:
    return ImmediateAnswer(serialize(build_terminate(condition)))


def _response(answer: ImmediateAnswer, cors_headers: dict[str, str]) -> web.Response:
    return web.Response(status=answer.status, body=answer.body,
                        headers={**cors_headers, "Content-Type": answer.content_type})


class _AiohttpAnswerWriter:
    """A held request's answer on an aiohttp connection: raw, on its transport, without aiohttp's response
    machinery; the handler then returns a `WrittenAnswer`."""

    def __init__(self, endpoint: BoshEndpoint, request: web.Request) -> None:
        self._endpoint = endpoint
        self._request = request
        self.written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def render_answer(self, data: bytes, content_type: str,
                      cors_headers: dict[str, str]) -> tuple[asyncio.WriteTransport, bytes] | None:
        if self.written.done():
            return None  # cancelled: its client went away
        request = self._request
        transport = request.transport
        if transport is None or transport.is_closing():
            self.written.set_result(False)
            return None
        return transport, http_response((request.version.major, request.version.minor), data, content_type,
                                        cors_headers, keep_alive=self._endpoint.keeps_alive(request.keep_alive))

    def answer_written(self) -> None:
        self.written.set_result(True)


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

    def upstream_stanzas(self, stanzas: tuple[Element | bytes, ...]) -> None:
        self.event(ServerStanzas(stanzas=stanzas))

    def upstream_closed(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> None:
        self.event(ServerClosed(condition=condition, stanzas=stanzas))

    def event(self, event: BoshEvent) -> None:
        """Called by the link (and the endpoint) with facts for the session machine."""
        self.perform(self.session.handle(event, self.endpoint.clock.now()))

    def perform(self, actions: list[BoshAction]) -> None:
        undelivered: list[int] = []
        ended = False
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
                    ended = True
        if ended:
            # The link calls this connection back: letting go of it frees an ended session by reference counting.
            self.link = None
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
        self._answers: list[tuple[HeldRequest, bytes]] = []   # made this turn, written by _write_answers
        self.held_requests = self._held.__len__  # held HTTP requests, read by boshcm/metrics.py
        self._wakeup = asyncio.Event()
        self._timer_at: float | None = None   # the deadline the timer waits for
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
            link = connection.link  # taken first: a connection lets go of its link when its session ends
            connection.event(ServerClosed(condition=BoshCondition.SYSTEM_SHUTDOWN))
            if link is not None:
                link.close(by_client=False)

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

    # --- requests (both HTTP adapters) --------------------------------------------------------------

    def request_started(self) -> None:
        """Requests being handled, so that draining knows when every answer is written."""
        self._in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    def keeps_alive(self, client_keeps_alive: bool) -> bool:
        # Draining: the client's next request opens a connection, to another node.
        return client_keeps_alive and not self.draining

    def receive(self, post: BoshPost, writer: AnswerWriter, forwarded: Forwarded | None = None
                ) -> HeldRequest | ImmediateAnswer | Awaitable[ImmediateAnswer]:
        """A whole request body: held until the session answers it (through `writer`), answered at once, or (a
        session of another node) passed on to its owner, whose answer is awaited."""
        data = post.data
        wire_log.debug("%s BOSH RECV %r", post.address, data)
        try:
            # A plain poll by one regular expression (bosh/body.py); everything else, and anything too long to be
            # read at all, by the lexer and lxml, whose errors these are.
            body = (parse_poll(data, max_attributes=DEFAULT_MAX_ATTRIBUTES) if len(data) <= self._max_body_bytes
                    else None) or parse_request(parse_document(data, max_bytes=self._max_body_bytes,
                                                               max_depth=self._max_depth))
        except (RemoteProtocolError, BadRequest) as error:
            log.debug("bad BOSH request from %s: %s", post.address, error)
            return terminate_answer(BoshCondition.BAD_REQUEST)
        if forwarded is not None and body.sid != forwarded.sid:
            return ImmediateAnswer(b"sid does not match the signed sid", "text/plain; charset=utf-8", status=403)
        if body.sid is not None and self.node and (owner := node_of(body.sid)) != self.node:
            # Before any session lookup: another node's session is passed on (one hop at most), never served here.
            if owner is None or forwarded is not None or self._forwarder is None or not self._forwarder.knows(owner):
                return terminate_answer(BoshCondition.ITEM_NOT_FOUND)
            return self._forward(self._forwarder, owner, body.sid, post)
        arrived = RequestArrived(request_id=next(self._request_ids), body=body, origin=post.origin,
                                 size_bytes=len(data))
        if body.sid is None:
            created = self._create(arrived, post)
            if isinstance(created, BoshCondition):
                return terminate_answer(created)
            connection = created
        elif (found := self.registry.get(body.sid)) is None:
            return terminate_answer(BoshCondition.ITEM_NOT_FOUND)
        else:
            connection = found
        # The safety net only (the session's own deadline answers at 'wait'): a deadline checked by the endpoint's
        # one timer, not a timer of its own made and cancelled for every request.
        held = HeldRequest(arrived.request_id, connection, writer, post.cors_headers,
                           expires_at=self.clock.now() + self.limits.max_wait_seconds + RESPONSE_GRACE_SECONDS)
        self._held[held.request_id] = held
        self._wake_timer_for(held.expires_at)
        if body.sid is None:
            connection.perform(connection.session.start(self.clock.now()))
        else:
            connection.event(arrived)
        return held

    async def _forward(self, forwarder: Forwarder, owner: str, sid: str, post: BoshPost) -> ImmediateAnswer:
        answer = await forwarder.forward(owner, sid=sid, body=post.data, client=post.address, origin=post.origin)
        if answer is None:
            # The owner is gone (or unreachable): so is the session. XEP-0198 clients reconnect and resume.
            return terminate_answer(BoshCondition.ITEM_NOT_FOUND)
        return ImmediateAnswer(answer.body, answer.content_type)

    def abandon(self, held: HeldRequest) -> None:
        """The client of a held request went away: before its answer was made, or after (then nobody may have
        read it, or it was not written at all). Either way the session keeps what it would have carried."""
        if held.finished:
            return
        self._finish(held)
        answered = self._held.pop(held.request_id, None) is None
        held.connection.event(ResponseUndelivered(request_id=held.request_id) if answered
                              else RequestAborted(request_id=held.request_id))

    def _finish(self, held: HeldRequest) -> None:
        held.finished = True

    def _create(self, arrived: RequestArrived, post: BoshPost) -> BoshConnection | BoshCondition:
        """A session-creation request: check who may create one, then make the session."""
        if not self.cors.allows_origin(post.origin, post.own_origin):
            log.debug("BOSH session refused for origin %r from %s", arrived.origin, post.address)
            return BoshCondition.POLICY_VIOLATION  # a page on an origin http.cors_origins does not allow
        if self.draining:
            return BoshCondition.SYSTEM_SHUTDOWN  # stopping: the client retries, through another node
        if self.registry.full:
            return BoshCondition.SYSTEM_SHUTDOWN
        if (slot := self.unauthenticated.take(post.address)) is None:
            log.debug("BOSH session refused: %s has too many unauthenticated sessions", post.address)
            return BoshCondition.POLICY_VIOLATION
        sid = self.registry.new_sid()
        session = BoshSession(sid=sid, first=arrived, now=self.clock.now(), limits=self.limits, serialize=serialize,
                              check_address=self._check_address)
        connection = BoshConnection(self, session, post.address, post.secure, slot)
        self.registry.add(sid, connection)
        return connection

    def resolve(self, request_id: int, data: bytes) -> bool:
        """Queue the answer to its held request; False when its client went away, so that the session keeps
        what the answer carried."""
        held = self._held.pop(request_id, None)
        if held is None:
            return True   # answered already (a repeat, the safety net), or its client is gone and the session knows
        if not self._answers:
            asyncio.get_running_loop().call_soon(self._write_answers)
        self._answers.append((held, data))
        return True

    def _write_answers(self) -> None:
        """Every answer queued in the turn before, back to back: the held requests a fan-out answers leave within
        a few milliseconds of each other. The routing and the session machines ran before, and each answer's raw
        HTTP response is rendered before the first is written and its request finished after the last, so that
        between the first recipient and the last there are only the writes."""
        answers, self._answers = self._answers, []
        rendered: list[tuple[HeldRequest, bytes, asyncio.WriteTransport, bytes]] = []
        for held, data in answers:
            if held.finished:
                continue  # its client went away meanwhile: the session has been told
            self._finish(held)
            response = held.writer.render_answer(data, held.connection.session.content_type, held.cors_headers)
            if response is None:
                held.connection.event(ResponseUndelivered(request_id=held.request_id))
            else:
                rendered.append((held, data, *response))
        for _, _, transport, response_bytes in rendered:
            transport.write(response_bytes)
        for held, data, _, _ in rendered:
            held.writer.answer_written()
            wire_log.debug("%s BOSH SEND %r", held.connection.remote, data)

    def _expire_overdue(self, now: float) -> None:
        """Held requests that outlived 'wait' by the grace period: their sessions never answered them (a bug).
        Every request gets the same extra time, so the oldest held request is the first to expire."""
        while (oldest := self._oldest_held()) is not None:
            if oldest.expires_at > now:
                return
            log.warning("held BOSH request %d was never answered in time", oldest.request_id)
            self.resolve(oldest.request_id, serialize(build_terminate(BoshCondition.INTERNAL_SERVER_ERROR)))

    # --- the aiohttp adapter ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp route: BOSH requests on connections the BOSH lane handed over (bosh/lane.py)."""
        response = await self._handle_counted(request, None)
        if self.draining:
            response.force_close()  # the client's next request opens a connection, to another node
        return response

    async def handle_forwarded(self, request: web.Request, forwarded: Forwarded) -> web.StreamResponse:
        """A request passed on by another node, its signature checked (bosh/nodes.py)."""
        return await self._handle_counted(request, forwarded)

    async def _handle_counted(self, request: web.Request, forwarded: Forwarded | None) -> web.StreamResponse:
        self.request_started()
        try:
            return await self._handle(request, forwarded)
        finally:
            self.request_finished()

    async def _handle(self, request: web.Request, forwarded: Forwarded | None) -> web.StreamResponse:
        headers = self.cors.headers(request)
        if forwarded is not None:
            data: bytes | None = forwarded.body  # read (within the same limits) and signed by the internal listener
        elif request.content_length is not None and request.content_length > self._max_body_bytes:
            return self._too_large(headers)
        else:
            try:
                data = await self.read_body(request)
            except TimeoutError:
                log.debug("BOSH request body from %s not complete in %ss", request.remote,
                          self._body_read_timeout_seconds)
                return await self._refuse_unread(request, headers)
        if data is None or len(data) > self._max_body_bytes:
            return self._too_large(headers)
        post = BoshPost(data=data, origin=request.headers.get("Origin"),
                        address=(request.remote or "") if forwarded is None else forwarded.client,
                        secure=is_secure_request(request), own_origin=f"{request.scheme}://{request.host}",
                        cors_headers=headers)
        writer = _AiohttpAnswerWriter(self, request)
        outcome = self.receive(post, writer, forwarded)
        if isinstance(outcome, ImmediateAnswer):
            return _response(outcome, headers)
        if not isinstance(outcome, HeldRequest):
            return _response(await outcome, headers)
        try:
            await writer.written
        except asyncio.CancelledError:
            # The client went away (aiohttp handler_cancellation).
            self.abandon(outcome)
            raise
        return WrittenAnswer(keep_alive=self.keeps_alive(request.keep_alive))

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

    def _too_large(self, headers: dict[str, str]) -> web.Response:
        """policy-violation; aiohttp reads and drops the rest of the body (briefly), then closes."""
        response = _response(terminate_answer(BoshCondition.POLICY_VIOLATION), headers)
        response.force_close()
        return response

    async def _refuse_unread(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        """policy-violation for a body too slow, then close at once: a stalled client gets no more time."""
        response = _response(terminate_answer(BoshCondition.POLICY_VIOLATION), headers)
        response.force_close()
        with contextlib.suppress(ConnectionResetError):
            await response.prepare(request)
            await response.write_eof()
        if request.protocol is not None:
            request.protocol.force_close()  # the transport still sends what was written, then closes
        return response

    # --- time -------------------------------------------------------------------------------------

    def reschedule(self, connection: BoshConnection) -> None:
        deadline = connection.session.next_deadline()
        self.registry.schedule(connection.session.sid, deadline)
        if deadline is not None:
            self._wake_timer_for(deadline)

    def _wake_timer_for(self, deadline: float) -> None:
        # Only for a deadline before the one the timer waits for (once per turn, not per session).
        if self._timer_at is None or deadline < self._timer_at:
            self._timer_at = deadline
            self._wakeup.set()

    def _oldest_held(self) -> HeldRequest | None:
        # Held requests in the order they came (dicts keep it), which is also the order their safety nets expire.
        return next(iter(self._held.values()), None)

    def _next_deadline(self) -> float | None:
        """The earliest of the sessions' deadlines and the oldest held request's safety net."""
        deadline, oldest = self.registry.next_deadline(), self._oldest_held()
        if oldest is None or (deadline is not None and deadline <= oldest.expires_at):
            return deadline
        return oldest.expires_at

    async def _run_timer(self) -> None:
        while True:
            deadline = self._timer_at = self._next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            now = self.clock.now()
            for sid in self.registry.due(now):
                if (connection := self.registry.get(sid)) is not None:
                    connection.perform(connection.session.handle_timeout(now))
            self._expire_overdue(now)

