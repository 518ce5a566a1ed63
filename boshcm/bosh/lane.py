"""The BOSH lane: BOSH's own requests on the public HTTP listener, without aiohttp's machinery per request.

Every connection to the listener starts here. While its requests are `POST`s to the BOSH path with a
Content-Length body within `bosh.max_body_bytes` (or CORS preflights there), the lane frames them, has httptools
(llhttp, the strict parser behind Node.js) parse each head, and gives the bodies to the `BoshEndpoint`; held answers
come back through `render_answer` and `answer_written`. At any other request (the quiz page, a WebSocket upgrade,
an upload, a chunked or oversized body, `Expect: 100-continue`, a head httptools refuses, too long, or ended by bare
line feeds) the connection goes to aiohttp for good, from that request's first byte: aiohttp's own routes, answers
and defences apply to all of it.

Why: the server CPU of one BOSH round trip is 58-69 us through aiohttp and about 15 us through a bare protocol
(tests/perf/bench_http_lane.py), and a message to a 500-member room is 500 round trips (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from boshcm.bosh.http import BoshEndpoint, BoshPost, HeldRequest, ImmediateAnswer, http_response, terminate_answer
from boshcm.errors import BoshCondition
from boshcm.web import Cors, TrustedProxies, is_secure

log = logging.getLogger(__name__)

# A head longer than aiohttp's longest accepted line is handed to aiohttp, which applies its own limits.
MAX_HEAD_BYTES = 8190
_METHODS = (b"POST ", b"OPTIONS ")
_PREFLIGHT_CONTENT_TYPE = "text/plain; charset=utf-8"

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class BoshLane:
    """The listener's protocol factory (`with_fallback`) and what its connections share."""

    def __init__(self, *, endpoint: BoshEndpoint, paths: Collection[str], cors: Cors, proxies: TrustedProxies,
                 idle_timeout_seconds: float, body_read_timeout_seconds: float, max_body_bytes: int) -> None:
        self.endpoint = endpoint
        self.paths = frozenset(path.encode() for path in paths)
        self.cors = cors
        self.proxies = proxies
        self.idle_timeout_seconds = idle_timeout_seconds
        self.body_read_timeout_seconds = body_read_timeout_seconds
        self.max_body_bytes = max_body_bytes
        self.connections: set[LaneConnection] = set()
        self._fallback: ProtocolFactory | None = None
        self.handed_over = 0   # connections given to aiohttp: read by the tests

    def with_fallback(self, fallback: ProtocolFactory) -> ProtocolFactory:
        """The protocol factory for the listener; `fallback` (aiohttp's web.Server) takes what the lane does not."""
        self._fallback = fallback
        return self._connect

    def _connect(self) -> LaneConnection:
        return LaneConnection(self)

    def fallback(self) -> asyncio.BaseProtocol:
        assert self._fallback is not None
        self.handed_over += 1
        return self._fallback()

    def close_connections(self) -> None:
        for connection in list(self.connections):
            connection.close()


class _Head:
    """httptools' callbacks for one request head."""

    __slots__ = ("headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))


@dataclass(frozen=True, slots=True)
class LaneRequest:
    """A request head the lane serves: its body is the `body_length` bytes after `head_length`."""
    preflight: bool                           # OPTIONS (answered at once), else a POST with a body
    head_length: int
    body_length: int
    version: tuple[int, int]
    keep_alive: bool
    headers: list[tuple[bytes, bytes]]        # names in lower case
    fields: dict[bytes, bytes]                # the same, each name once
    raw: bytes                                # the head itself, up to and with its blank line

    @property
    def length(self) -> int:
        """Head and body: where the next request starts in the buffer."""
        return self.head_length + self.body_length


class HandOver:
    """The request is not the lane's: aiohttp takes the connection from its first byte."""


class NeedMore:
    """The head is not complete yet."""


HAND_OVER, NEED_MORE = HandOver(), NeedMore()


def read_head(buffer: bytes | bytearray, paths: frozenset[bytes], max_body_bytes: int
              ) -> LaneRequest | HandOver | NeedMore:
    """What the lane does with the request that starts `buffer`: serve it, hand the connection over, or wait for
    more bytes. Pure: the lane's whole HTTP framing decision (tests/unit/test_bosh_lane.py)."""
    if not any(buffer.startswith(method[:len(buffer)]) for method in _METHODS):
        return HAND_OVER
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
    if end < 0:
        # Too long, or lines ended by bare LFs: aiohttp's rules (and answers).
        return HAND_OVER if len(buffer) >= MAX_HEAD_BYTES or b"\n\n" in buffer else NEED_MORE
    head = _Head()
    parser = httptools.HttpRequestParser(head)
    raw = bytes(buffer[:end + 4])
    try:
        parser.feed_data(raw)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):   # the second is not a kind of the first
        return HAND_OVER   # aiohttp answers 400, or serves what llhttp would not (an upgrade)
    method = parser.get_method()
    version = parser.get_http_version()
    fields = dict(head.headers)
    if len(fields) != len(head.headers) or version not in ("1.1", "1.0") \
            or head.url.partition(b"?")[0] not in paths \
            or b"transfer-encoding" in fields or b"expect" in fields or b"upgrade" in fields:
        return HAND_OVER   # repeated fields and the rest: aiohttp's rules
    length = fields.get(b"content-length")
    if method == b"POST":   # a body of a known length, not too long
        served = length is not None and length.isdigit() and int(length) <= max_body_bytes
    else:                   # OPTIONS: a preflight, without a body
        served = length in (None, b"0")
    if not served:
        return HAND_OVER
    return LaneRequest(preflight=method == b"OPTIONS", head_length=end + 4, body_length=int(length or 0),
                       version=(1, 1) if version == "1.1" else (1, 0), keep_alive=parser.should_keep_alive(),
                       headers=head.headers, fields=fields, raw=raw)


class LaneConnection(asyncio.Protocol):
    """One HTTP connection while the lane has it: one request at a time, in the order they came."""

    def __init__(self, lane: BoshLane) -> None:
        self._lane = lane
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._buffer = bytearray()
        self._loop = asyncio.get_running_loop()
        # The head's (idle) timeout or the body's: one timer, moved only when a deadline comes earlier.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._awaiting_body = False  # what the deadline waits for: a body (else a request head)
        self._peer_secure = False
        # The request being read or answered (at the start of the buffer), once its head is in.
        self._head: LaneRequest | None = None
        self._last_served: LaneRequest | None = None   # the head of the last request served, to compare the next to
        self._busy = False                                # a request was given to the endpoint, not answered yet
        self._held: HeldRequest | None = None
        self._forwarding: asyncio.Task[ImmediateAnswer] | None = None
        self._advancing = False
        # Flow control: no reading while the client does not read its answers, or while requests pipelined behind
        # an unanswered one pass the bound.
        self._writing_paused = False
        self._reading_paused = False

    # --- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)   # uvloop's is not a subclass of it
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) else ""
        self._peer_secure = is_secure("http", self._peer)   # TLS ends in front of boshcm (docs/operations.md)
        self._lane.connections.add(self)
        self._set_deadline(self._lane.idle_timeout_seconds, awaiting_body=False)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._advance()   # nothing while a request is being answered: what is pipelined behind it waits
        self._flow()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._advance()
        self._flow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lane.connections.discard(self)
        self._cancel_timer()
        self._transport = None
        if self._held is not None:
            self._lane.endpoint.abandon(self._held)
            self._held = None
        if self._forwarding is not None:
            self._forwarding.cancel()
        if self._busy:
            self._busy = False
            self._lane.endpoint.request_finished()

    # --- AnswerWriter (held answers, written by BoshEndpoint._write_answers) ------------------------------

    def render_answer(self, data: bytes, content_type: str,
                      cors_headers: dict[str, str]) -> tuple[asyncio.WriteTransport, bytes] | None:
        transport, head = self._transport, self._head
        if transport is None or transport.is_closing() or head is None:
            return None
        self._held = None
        return transport, http_response(head.version, data, content_type, cors_headers,
                                        keep_alive=self._lane.endpoint.keeps_alive(head.keep_alive))

    def answer_written(self) -> None:
        assert self._head is not None
        self._finish_request(self._lane.endpoint.keeps_alive(self._head.keep_alive))

    # --- requests ------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _advance(self) -> None:
        """Read requests from the buffer while none is being answered (an immediate answer reads the next)."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while not self._busy and not self._writing_paused and self._transport is not None and self._buffer:
                if self._head is None:
                    if not self._read_head():
                        return
                    if self._head is None:
                        continue   # answered at once (a preflight)
                if len(self._buffer) < self._head.length:
                    return   # the body is still coming, under the body timer
                self._dispatch()
        finally:
            self._advancing = False

    def _read_head(self) -> bool:
        """True once a request the lane serves has its head read; hands the connection over at any other."""
        last = self._last_served
        if last is not None and self._buffer.startswith(last.raw):
            # A client polls with the same head every time (the body's length too, while its rid keeps its
            # digits): the same bytes get read_head's same answer, kept from the last request.
            verdict: LaneRequest | HandOver | NeedMore = last
        else:
            verdict = read_head(self._buffer, self._lane.paths, self._lane.max_body_bytes)
            if isinstance(verdict, LaneRequest):
                self._last_served = verdict
        if isinstance(verdict, HandOver):
            self._hand_over()
            return False
        if isinstance(verdict, NeedMore):
            return False
        self._deadline = None
        self._head = verdict
        if verdict.preflight:
            self._preflight(verdict.fields)   # answered at once
            return True
        if len(self._buffer) < verdict.length:
            self._set_deadline(self._lane.body_read_timeout_seconds, awaiting_body=True)
        return True

    def _post_from(self, head: LaneRequest, data: bytes) -> BoshPost:
        origin_field = head.fields.get(b"origin")
        origin = None if origin_field is None else origin_field.decode("latin-1")
        address, scheme, secure = self._peer, "http", self._peer_secure
        if self._lane.proxies.configured:
            client, forwarded_scheme = self._lane.proxies.client(self._peer, CIMultiDictProxy(CIMultiDict(
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers)))
            address, scheme = client or address, forwarded_scheme or scheme
            secure = is_secure(scheme, address)
        host = head.fields.get(b"host", b"").decode("latin-1")
        return BoshPost(data=data, origin=origin, address=address, secure=secure, own_origin=f"{scheme}://{host}",
                        cors_headers=self._lane.cors.headers_for(origin))

    def _preflight(self, fields: dict[bytes, bytes]) -> None:
        origin = fields.get(b"origin")
        headers = self._lane.cors.preflight_headers(None if origin is None else origin.decode("latin-1"))
        self._busy = True
        self._lane.endpoint.request_started()
        self._answer(b"", _PREFLIGHT_CONTENT_TYPE, headers)

    def _dispatch(self) -> None:
        """The whole request is in: give it to the endpoint."""
        head = self._head
        assert head is not None
        self._deadline = None
        post = self._post_from(head, bytes(self._buffer[head.head_length:head.length]))
        self._busy = True
        self._lane.endpoint.request_started()
        outcome = self._lane.endpoint.receive(post, self)
        if isinstance(outcome, HeldRequest):
            self._held = outcome
        elif isinstance(outcome, ImmediateAnswer):
            self._answer(outcome.body, outcome.content_type, post.cors_headers, status=outcome.status)
        else:
            self._forwarding = asyncio.ensure_future(outcome)
            self._forwarding.add_done_callback(lambda task: self._forwarded(task, post.cors_headers))

    def _forwarded(self, task: asyncio.Task[ImmediateAnswer], cors_headers: dict[str, str]) -> None:
        self._forwarding = None
        if task.cancelled() or self._transport is None:
            return
        if (error := task.exception()) is not None:
            log.warning("passing a BOSH request on failed: %r", error)
            answer = terminate_answer(BoshCondition.INTERNAL_SERVER_ERROR)
        else:
            answer = task.result()
        self._answer(answer.body, answer.content_type, cors_headers, status=answer.status)

    def _answer(self, body: bytes, content_type: str, headers: dict[str, str], status: int = 200) -> None:
        """Write the current request's answer at once (not held), then go on."""
        assert self._transport is not None and self._head is not None
        keep_alive = self._lane.endpoint.keeps_alive(self._head.keep_alive)
        self._transport.write(http_response(self._head.version, body, content_type, headers, keep_alive=keep_alive,
                                            status=status))
        self._finish_request(keep_alive)

    def _finish_request(self, keep_alive: bool) -> None:
        """The current request's answer is written: read the next request, or close."""
        transport, head = self._transport, self._head
        if transport is None or head is None:
            return   # lost meanwhile: connection_lost has done the rest
        del self._buffer[:head.length]
        self._head = None
        self._busy = False
        self._lane.endpoint.request_finished()
        if not keep_alive:
            transport.close()
            return
        self._set_deadline(self._lane.idle_timeout_seconds, awaiting_body=False)
        if self._buffer:
            self._advance()
        self._flow()

    def _flow(self) -> None:
        transport = self._transport
        if transport is None:
            return
        pause = self._writing_paused or len(self._buffer) > MAX_HEAD_BYTES + self._lane.max_body_bytes
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _hand_over(self) -> None:
        """aiohttp takes the connection for good, from the first byte of the request in the buffer."""
        transport = self._transport
        assert transport is not None and not self._busy
        self._cancel_timer()
        self._lane.connections.discard(self)
        self._transport = None
        data, self._buffer = bytes(self._buffer), bytearray()
        handler = self._lane.fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        if data:
            cast(asyncio.Protocol, handler).data_received(data)

    # --- timers --------------------------------------------------------------------------------------

    # Two timer operations per request cost more than the lane's parsing: a deadline is a float, and the one
    # timer, when it fires early, is set again for the deadline of the moment.

    def _set_deadline(self, seconds: float, *, awaiting_body: bool) -> None:
        # A flag, not a bound method kept on self: that would be a reference cycle outliving the connection.
        deadline = self._deadline = self._loop.time() + seconds
        self._awaiting_body = awaiting_body
        if self._timer is not None and self._timer.when() > deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
            return
        self._deadline = None
        if self._awaiting_body:
            self._body_too_slow()
        else:
            self._idle_too_long()

    def _idle_too_long(self) -> None:
        """No whole request head within http.idle_timeout_seconds: idle keep-alive, or a slowloris."""
        self.close()

    def _body_too_slow(self) -> None:
        """A body not complete within bosh.body_read_timeout_seconds: policy-violation, then close at once."""
        transport, head = self._transport, self._head
        if transport is None or head is None:
            return
        post = self._post_from(head, b"")
        log.debug("BOSH request body from %s not complete in %ss", post.address, self._lane.body_read_timeout_seconds)
        answer = terminate_answer(BoshCondition.POLICY_VIOLATION)
        transport.write(http_response(head.version, answer.body, answer.content_type, post.cors_headers,
                                      keep_alive=False))
        transport.close()
