"""The aiohttp adapter for BOSH: request bodies in, held responses out, one timer for all sessions.

Protocol rules live in bosh/session.py; the XMPP side lives behind a link (bosh/upstream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from boshcm.bosh.body import BadRequest, build_terminate, parse_request
from boshcm.bosh.registry import SessionRegistry
from boshcm.bosh.session import (
    AddressCheck,
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
    RestartUpstream,
    ServerClosed,
    ServerStanzas,
    SessionEnded,
    UpstreamOpened,
)
from boshcm.clock import Clock
from boshcm.errors import BoshCondition, RemoteProtocolError
from boshcm.stanza import Element
from boshcm.web import Cors
from boshcm.websocket import is_secure_request
from boshcm.xml.parser import parse_document
from boshcm.xml.writer import serialize

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

CONTENT_TYPE = "text/xml; charset=utf-8"
# A held request's future outlives 'wait' only by this much: a safety net, never the protocol's timer.
RESPONSE_GRACE_SECONDS = 10.0


class Link(Protocol):
    """The XMPP side of one BOSH session: the embedded server's session core, or a TCP stream upstream."""

    def open(self) -> None: ...
    def forward(self, stanzas: tuple[Element, ...]) -> None: ...
    def restart(self) -> None: ...
    def close(self) -> None: ...


LinkFactory = Callable[["BoshConnection", OpenUpstream, str], Link]


class BoshConnection:
    """One BOSH session with its link and the futures of its held HTTP requests."""

    def __init__(self, endpoint: BoshEndpoint, session: BoshSession, remote: str, secure: bool) -> None:
        self.endpoint = endpoint
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
        for action in actions:
            match action:
                case Respond(request_id=request_id, data=data):
                    self.endpoint.resolve(request_id, data)
                case OpenUpstream():
                    self.link = self.endpoint.link_factory(self, action, self.remote)
                    self.link.open()
                case ForwardToServer(stanzas=stanzas):
                    if self.link is not None:
                        self.link.forward(stanzas)
                case RestartUpstream():
                    if self.link is not None:
                        self.link.restart()
                case CloseUpstream():
                    if self.link is not None:
                        self.link.close()
                case SessionEnded(condition=condition):
                    log.debug("bosh session %s ended (%s)", self.session.sid, condition)
                    self.endpoint.registry.remove(self.session.sid)
        self.endpoint.reschedule(self)


class BoshEndpoint:
    def __init__(self, *, clock: Clock, cors: Cors, limits: BoshLimits, link_factory: LinkFactory,
                 max_body_bytes: int, max_depth: int, max_sessions: int = 100_000,
                 check_address: AddressCheck = lambda to, route: None) -> None:
        self._check_address = check_address
        self.clock = clock
        self.cors = cors
        self.limits = limits
        self.link_factory = link_factory
        self.registry: SessionRegistry[BoshConnection] = SessionRegistry(max_sessions=max_sessions)
        self._max_body_bytes = max_body_bytes
        self._max_depth = max_depth
        self._request_ids = itertools.count(1)
        self._futures: dict[int, asyncio.Future[bytes]] = {}
        self._wakeup = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def stop(self) -> None:
        for connection in self.registry.values():
            connection.event(ServerClosed(condition=BoshCondition.SYSTEM_SHUTDOWN))
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    # --- HTTP -------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = self.cors.headers(request)
        if request.content_length is not None and request.content_length > self._max_body_bytes:
            return self._terminate_response(BoshCondition.POLICY_VIOLATION, headers)
        data = await request.content.read(self._max_body_bytes + 1)
        if len(data) > self._max_body_bytes:
            return self._terminate_response(BoshCondition.POLICY_VIOLATION, headers)
        wire_log.debug("%s BOSH RECV %r", request.remote, data)
        try:
            body = parse_request(parse_document(data, max_bytes=self._max_body_bytes, max_depth=self._max_depth))
        except (RemoteProtocolError, BadRequest) as error:
            log.debug("bad BOSH request from %s: %s", request.remote, error)
            return self._terminate_response(BoshCondition.BAD_REQUEST, headers)
        request_id = next(self._request_ids)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        arrived = RequestArrived(request_id=request_id, body=body)
        if body.sid is None:
            if self.registry.full:
                self._futures.pop(request_id)
                return self._terminate_response(BoshCondition.SYSTEM_SHUTDOWN, headers)
            connection = BoshConnection(self, BoshSession(
                sid=self.registry.new_sid(), first=arrived, now=self.clock.now(), limits=self.limits,
                serialize=serialize, check_address=self._check_address), request.remote or "",
                is_secure_request(request))
            self.registry.add(connection.session.sid, connection)
            connection.perform(connection.session.start(self.clock.now()))
        elif (found := self.registry.get(body.sid)) is None:
            self._futures.pop(request_id)
            return self._terminate_response(BoshCondition.ITEM_NOT_FOUND, headers)
        else:
            connection = found
            connection.event(arrived)
        try:
            payload = await asyncio.wait_for(asyncio.shield(future), self.limits.max_wait_seconds
                                             + RESPONSE_GRACE_SECONDS)
        except TimeoutError:
            payload = serialize(build_terminate(BoshCondition.INTERNAL_SERVER_ERROR))
        except asyncio.CancelledError:
            # The client went away while we held its request.
            if not future.done():
                connection.event(RequestAborted(request_id=request_id))
            raise
        finally:
            self._futures.pop(request_id, None)
        wire_log.debug("%s BOSH SEND %r", request.remote, payload)
        return web.Response(body=payload, content_type="text/xml", charset="utf-8", headers=headers)

    def _terminate_response(self, condition: BoshCondition, headers: dict[str, str]) -> web.Response:
        return web.Response(body=serialize(build_terminate(condition)), content_type="text/xml", charset="utf-8",
                            headers=headers)

    def resolve(self, request_id: int, data: bytes) -> None:
        future = self._futures.get(request_id)
        if future is not None and not future.done():
            future.set_result(data)

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

