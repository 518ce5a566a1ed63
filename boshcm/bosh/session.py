"""One BOSH session (XEP-0124, XEP-0206): the rid window, held requests, wait, inactivity, keys, pause.

Theory of operation. The adapter hands in facts: a request arrived (`RequestArrived`, with the adapter's own
`request_id` for the HTTP exchange it holds open), a request's client went away (`RequestAborted`), an answer
could not be written because its connection was already closing (`ResponseUndelivered`), the XMPP side
produced stanzas (`ServerStanzas`) or ended (`ServerClosed`), and time passed (`handle_timeout`).
Orders come back: answer a held request with these bytes (`Respond`), start/restart/stop the XMPP stream
(`OpenUpstream`, `RestartUpstream`, `CloseUpstream`), pass the client's payloads on (`ForwardToServer`), stop
counting the session as unauthenticated (`Authenticated`), and forget the session (`SessionEnded`).

Requests are processed strictly in rid order (§14.1) within a window of `requests` rids; a request that
arrives early waits for the gap to fill. After processing, a request is *held* until there is something to
send or its `wait` runs out. At most `hold` requests are held; the oldest surplus one is answered at once
(§8). Every answer is cached as bytes under its rid, so a client that lost a response and repeats the rid
gets the same bytes again (§14.3). One deadline (`next_deadline`) covers every held request's wait and the
session's inactivity (§10).

A sid is a bearer ticket, so nothing is given away on the sid alone: every request must come from the
`Origin` the session was created with, and with §15 keys every path (in order, early, a repeated held rid, a
cached rid, a retry after a lost answer) checks the key first. A repeat of rid N must carry the key rid N
carried. A request that fails these checks is refused alone (`item-not-found` for that request), never the
session: whoever learns a sid must not be able to end it either.

Outgoing stanzas are serialised once, on arrival; their byte count bounds the queue (`max_pending_bytes`,
then `policy-violation`) and each response (`max_response_bytes`; a larger stanza goes alone).

This file knows nothing of HTTP, asyncio or XMPP routing.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from lxml import etree

from boshcm.bosh.body import (
    BadRequest,
    RequestBody,
    build_body,
    build_terminate,
    parse_content_type,
    parse_version,
    with_payloads,
)
from boshcm.errors import BoshCondition
from boshcm.stanza import NS_XML, Element, qname

BOSH_VERSION = (1, 11)
SASL_SUCCESS = qname("urn:ietf:params:xml:ns:xmpp-sasl", "success")
_CLOSE_TAG_OVERHEAD = len(b"></body>") - len(b"/>")
# The empty <body/> most responses start from, serialised once per serialiser (not once per response).
_PLAIN_HEADS: dict[Callable[[Element], bytes], bytes] = {}
# (to, route) -> a refusal condition, or None when the session may go there.
AddressCheck = Callable[[str, str | None], BoshCondition | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class BoshLimits:
    max_wait_seconds: float = 60.0
    max_hold: int = 2
    inactivity_seconds: float = 60.0
    polling_seconds: float = 2.0
    max_pause_seconds: float = 120.0
    max_pending_bytes: int = 4_194_304
    max_response_bytes: int = 262_144
    # Until the server has accepted the client's SASL, a request body may be only this large.
    max_body_bytes_before_auth: int = 4_096


# --- events ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class RequestArrived:
    request_id: int
    body: RequestBody
    origin: str | None = None   # the HTTP Origin header: browsers send it, other clients need not
    size_bytes: int = 0         # of the whole request body, as received


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAborted:
    request_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseUndelivered:
    """An answer was produced, but its connection was already closing: the client never saw it."""

    request_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamOpened:
    stream_id: str
    domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStanzas:
    stanzas: tuple[Element | bytes, ...]  # bytes: serialised already (a shared stanza, for this session's JID)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerClosed:
    condition: BoshCondition | None
    stanzas: tuple[Element, ...] = ()


BoshEvent = RequestArrived | RequestAborted | ResponseUndelivered | UpstreamOpened | ServerStanzas | ServerClosed


# --- actions --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Respond:
    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenUpstream:
    to: str
    lang: str | None
    version: str | None
    route: str | None
    secure: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardToServer:
    stanzas: tuple[Element, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartUpstream:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseUpstream:
    """End the XMPP side. `by_client`: the client terminated the session (XEP-0124 §13), a clean end; otherwise
    the session was lost (inactivity, an error), which a resumable XEP-0198 stream survives."""

    by_client: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Authenticated:
    """The server accepted the client's SASL: the session no longer counts as a stranger's."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded:
    condition: BoshCondition | None


BoshAction = (Respond | OpenUpstream | ForwardToServer | RestartUpstream | CloseUpstream | Authenticated
              | SessionEnded)


class _State(Enum):
    CREATING = auto()   # waiting for the upstream stream to open and say something
    ACTIVE = auto()
    ENDED = auto()


@dataclass(slots=True)
class _Held:
    request_id: int
    rid: int
    expires_at: float
    key: str | None


# An answer, kept for §14.3 retransmission and for giving its stanzas back if it never arrived:
# (request_id, data, sent_at, key, carried_stanzas); its stanzas are read back from `data` only if it never arrived
# (rare). A plain tuple, not a class (nor a NamedTuple): Python's cyclic collector stops tracking a plain tuple of
# plain values, and with it the session's cache, so its full collections no longer walk two answers per session.
_Sent = tuple[int, bytes, float, str | None, bool]


class BoshSession:

    # Thousands of idle sessions: no per-instance dict.
    __slots__ = ("_acks", "_cache", "_check_address", "_closing", "_created_request", "_domain", "_early",
                 "_early_until", "_held", "_inactive_since", "_inactivity_seconds", "_key", "_last_empty_poll",
                 "_last_rid", "_limits",
                 "_origin", "_pending", "_pending_bytes", "_report", "_retryable", "_serialize", "_state",
                 "_stream_id", "_upstream_closed", "_uses_keys", "_version", "authenticated", "content_type", "hold",
                 "requests", "sid", "wait")

    def __init__(self, *, sid: str, first: RequestArrived, now: float, limits: BoshLimits,
                 serialize: Callable[[Element], bytes], check_address: AddressCheck = lambda to, route: None) -> None:
        self.sid = sid
        self._check_address = check_address
        self._limits = limits
        self._serialize = serialize
        body = first.body
        try:
            client_wait = body.int_attr("wait")
            client_hold = body.int_attr("hold")
        except BadRequest:
            client_wait = client_hold = None
        self.wait = min(float(client_wait if client_wait is not None else limits.max_wait_seconds),
                        limits.max_wait_seconds)
        self.hold = min(client_hold if client_hold is not None else 1, limits.max_hold)
        self.requests = self.hold + 1
        self.content_type = parse_content_type(None)
        self.authenticated = False
        self._acks = body.get("ack") == "1"
        self._key = body.get("newkey")
        self._uses_keys = self._key is not None
        self._origin = first.origin
        self._version = BOSH_VERSION
        self._state = _State.CREATING
        self._last_rid = body.rid           # highest rid processed in order
        self._early: dict[int, RequestArrived] = {}
        # When each early request stops waiting for its gap: a lost request the client never repeats must not keep
        # the next one unanswered past its 'wait' (it gets a recoverable error, and the client sends both again).
        self._early_until: dict[int, float] = {}
        self._held: list[_Held] = []
        self._cache: dict[int, _Sent] = {}  # insertion order: oldest first
        # rids whose request went away unanswered or whose answer was lost: a retry is held again (rid -> key)
        self._retryable: dict[int, str | None] = {}
        self._report: tuple[int, float] | None = None
        self._pending: list[bytes] = []  # serialised stanzas, oldest first
        self._pending_bytes = 0
        self._closing: ServerClosed | None = None
        self._upstream_closed = False
        self._stream_id = ""
        self._domain = body.get("to") or ""
        self._inactive_since = now
        self._inactivity_seconds = limits.inactivity_seconds
        self._last_empty_poll: float | None = None
        self._created_request: RequestArrived | None = first

    # --- queries ----------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._state is _State.ENDED

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def next_deadline(self) -> float | None:
        if self._state is _State.ENDED:
            return None
        early = min(self._early_until.values(), default=None)
        if self._held:
            held = min(held.expires_at for held in self._held)
            return held if early is None else min(held, early)
        inactive = self._inactive_since + self._inactivity_seconds
        return inactive if early is None else min(inactive, early)

    # --- entry points -----------------------------------------------------------------------------

    def start(self, now: float) -> list[BoshAction]:
        """Process the session-creation request (XEP-0124 §7.1, XEP-0206 §4)."""
        request, self._created_request = self._created_request, None  # not kept: nothing reads it again
        assert request is not None, "started once"
        body = request.body
        if not body.get("to"):
            return self._terminate_now(request.request_id, BoshCondition.IMPROPER_ADDRESSING)
        if self._too_large_for_a_stranger(request):
            return self._terminate_now(request.request_id, BoshCondition.POLICY_VIOLATION, close_upstream=False)
        try:
            self.content_type = parse_content_type(body.get("content"))
            if (ver := body.get("ver")) is not None:
                # XEP-0124 §7.2: the highest version we support that is not above the client's.
                self._version = min(BOSH_VERSION, parse_version(ver))
        except BadRequest:
            return self._terminate_now(request.request_id, BoshCondition.BAD_REQUEST, close_upstream=False)
        if (refusal := self._check_address(body.get("to") or "", body.get("route"))) is not None:
            # XEP-0124 §7.1: only hosts the operator allows; never an open proxy.
            return self._terminate_now(request.request_id, refusal, close_upstream=False)
        self._hold_request(request.request_id, body.rid, now, key=None)
        return [OpenUpstream(to=body.get("to") or "", lang=body.lang, version=body.xmpp_version,
                             route=body.get("route"), secure=body.get("secure") != "false")]

    def handle(self, event: BoshEvent, now: float) -> list[BoshAction]:
        match event:
            case RequestArrived():
                return self._on_request(event, now)
            case RequestAborted(request_id=request_id):
                return self._on_aborted(request_id, now)
            case ResponseUndelivered(request_id=request_id):
                return self._on_undelivered(request_id, now)
            case UpstreamOpened(stream_id=stream_id, domain=domain):
                self._stream_id, self._domain = stream_id, domain or self._domain
                return []
            case ServerStanzas(stanzas=stanzas):
                return self._on_server_stanzas(stanzas, now)
            case ServerClosed():
                self._upstream_closed = True
                if self._state is _State.ENDED or self._closing is not None:
                    return []
                self._closing = event
                return self._flush(now)
        raise AssertionError(f"unknown event {event!r}")

    def handle_timeout(self, now: float) -> list[BoshAction]:
        if self._state is _State.ENDED:
            return []
        actions: list[BoshAction] = []
        for held in [held for held in self._held if held.expires_at <= now]:
            actions += self._answer(held, now, empty=True)
        for rid in [rid for rid, until in self._early_until.items() if until <= now]:
            # XEP-0124 §14.3: the request before it was lost and not sent again within 'wait': §17.1, the client
            # repeats what it has not had answered; the session goes on.
            del self._early_until[rid]
            actions.append(self._recoverable_error(self._early.pop(rid).request_id))
            if not self._held:
                self._inactive_since = now
        if not self._held and now >= self._inactive_since + self._inactivity_seconds:
            # XEP-0124 §10: no request for longer than 'inactivity': the session is gone, nobody to tell.
            actions += self._end(None, close_upstream=True)
        return actions

    # --- requests ---------------------------------------------------------------------------------

    def _on_request(self, event: RequestArrived, now: float) -> list[BoshAction]:
        rid = event.body.rid
        if self._state is _State.ENDED or event.origin != self._origin:
            # Another page (or no browser at all) using this sid: refuse it, leave the session alone.
            return [self._refuse(event.request_id)]
        if rid <= self._last_rid:
            return self._repeat(event, now)
        if rid > self._last_rid + self.requests:
            if self._uses_keys:
                return [self._refuse(event.request_id)]  # its key cannot be checked: never end the session for it
            # XEP-0124 §14.3: beyond the window.
            return self._terminate_now(event.request_id, BoshCondition.ITEM_NOT_FOUND)
        if self._uses_keys and not self._key_reaches(event.body.get("key"), rid - self._last_rid):
            return [self._refuse(event.request_id)]  # XEP-0124 §15, early rids too (checked that many steps on)
        if (replaced := self._early.get(rid)) is not None:
            self._early[rid] = event  # the client retried an early request on a new connection
            self._early_until[rid] = now + self.wait
            return [self._recoverable_error(replaced.request_id)]
        if len(self._held) + len(self._early) >= self.requests:
            # XEP-0124 §11: more simultaneous requests than allowed.
            return self._terminate_now(event.request_id, BoshCondition.POLICY_VIOLATION)
        self._early[rid] = event
        self._early_until[rid] = now + self.wait
        actions: list[BoshAction] = []
        while (ready := self._early.pop(self._last_rid + 1, None)) is not None:
            del self._early_until[self._last_rid + 1]
            if not self._accept_key(ready.body):
                # An early request checked against the key chain before a 'newkey' switched it.
                actions.append(self._refuse(ready.request_id))
                break
            self._last_rid += 1
            actions += self._process(ready, now)
            if self.ended:
                break  # _end answered the requests still waiting
        return actions

    def _repeat(self, event: RequestArrived, now: float) -> list[BoshAction]:
        rid, key = event.body.rid, event.body.get("key")
        for held in self._held:
            if held.rid == rid:
                if not self._same_key(held.key, key):
                    return [self._refuse(event.request_id)]
                # A held rid on a new connection is the client retrying (clients give up after ~1.1 x wait,
                # docs/protocol.md "Interoperability notes"); the new one replaces it.
                # XEP-0124 §14.3: the original request gets a recoverable binding error (§17.1).
                stale, held.request_id = held.request_id, event.request_id
                return [self._recoverable_error(stale)]
        if (sent := self._cache.get(rid)) is not None:
            _request_id, data, _sent_at, sent_key, _carried = sent
            if not self._same_key(sent_key, key):
                return [self._refuse(event.request_id)]
            return [Respond(request_id=event.request_id, data=data)]  # XEP-0124 §14.3, byte for byte
        if rid in self._retryable:
            if not self._same_key(self._retryable[rid], key):
                return [self._refuse(event.request_id)]
            # Its first connection went away unanswered (or its answer was lost): hold the retry instead.
            del self._retryable[rid]
            self._hold_request(event.request_id, rid, now, key=key)
            return self._settle(now)
        if self._uses_keys:
            return [self._refuse(event.request_id)]  # no key to check it against: never end the session for it
        return self._terminate_now(event.request_id, BoshCondition.ITEM_NOT_FOUND)

    def _too_large_for_a_stranger(self, event: RequestArrived) -> bool:
        """Before login a body may be a few KiB, as an element may on c2s and WebSocket."""
        return not self.authenticated and event.size_bytes > self._limits.max_body_bytes_before_auth

    def _process(self, event: RequestArrived, now: float) -> list[BoshAction]:
        body = event.body
        if self._too_large_for_a_stranger(event):
            return self._terminate_now(event.request_id, BoshCondition.POLICY_VIOLATION)
        self._note_client_ack(body, now)
        actions: list[BoshAction] = []
        if body.payloads and self._state is not _State.ENDED and not self._upstream_closed:
            actions.append(ForwardToServer(stanzas=body.payloads))
        if body.is_terminate:
            # XEP-0124 §13: payloads (e.g. unavailable presence) first, then the session ends.
            return actions + self._terminate_now(event.request_id, None, close_upstream=True, by_client=True)
        if body.restart:
            actions.append(RestartUpstream())  # XEP-0206 §5
        if (policy := self._polling_violation(body, now)) is not None:
            return actions + self._terminate_now(event.request_id, policy)
        self._hold_request(event.request_id, body.rid, now, key=body.get("key"))
        if (pause := body.get("pause")) is not None:
            return actions + self._pause(pause, now)
        return actions + self._settle(now)

    def _settle(self, now: float) -> list[BoshAction]:
        """XEP-0124 §8: with more than 'hold' requests held, the oldest is answered at once."""
        actions: list[BoshAction] = []
        while len(self._held) > self.hold and self._state is _State.ACTIVE:
            actions += self._answer(self._held[0], now, empty=not self._pending)
        return actions + self._flush(now)

    def _on_aborted(self, request_id: int, now: float) -> list[BoshAction]:
        for held in self._held:
            if held.request_id == request_id:
                self._held.remove(held)
                self._remember_retryable(held.rid, held.key)
                break
        for rid, early in list(self._early.items()):
            if early.request_id == request_id:
                del self._early[rid]  # never processed: its retry is simply a new early request
                del self._early_until[rid]
        if not self._held:
            self._inactive_since = now
        return []

    def _on_undelivered(self, request_id: int, now: float) -> list[BoshAction]:
        if self._state is not _State.ACTIVE:
            return []
        found = [(rid, data, key, carried_stanzas)
                 for rid, (sent_request_id, data, _sent_at, key, carried_stanzas) in self._cache.items()
                 if sent_request_id == request_id]
        if not found:
            return []  # a repeat of cached bytes, an error answer, or long forgotten: nothing to give back
        ((rid, data, key, carried_stanzas),) = found
        # Nobody read it: its stanzas go first in the next answer, and a retry of its rid is held afresh
        # instead of getting the cached copy (which would deliver them twice).
        del self._cache[rid]
        self._remember_retryable(rid, key)
        if carried_stanzas:
            payloads = [self._serialize(stanza) for stanza in etree.fromstring(data)]
            self._pending[:0] = payloads
            self._pending_bytes += sum(len(payload) for payload in payloads)
        return self._flush(now)

    def _remember_retryable(self, rid: int, key: str | None) -> None:
        self._retryable[rid] = key
        while len(self._retryable) > self.requests:
            del self._retryable[next(iter(self._retryable))]

    # --- keys (XEP-0124 §15) ----------------------------------------------------------------------

    def _key_reaches(self, key: str | None, depth: int) -> bool:
        """Does hashing `key` `depth` times give the current key? (depth 1: the next request's key)."""
        if key is None or self._key is None or len(key) > 256:
            return False
        value = key
        for _ in range(depth):
            value = hashlib.sha1(value.encode()).hexdigest()
        return secrets.compare_digest(value.encode(), self._key.encode())

    def _accept_key(self, body: RequestBody) -> bool:
        """Check the key of the next request in order and advance the chain ('newkey' starts a new one)."""
        if not self._uses_keys:
            return True
        key = body.get("key")
        if key is None or not self._key_reaches(key, 1):
            return False
        self._key = body.get("newkey") or key
        return True

    def _same_key(self, expected: str | None, given: str | None) -> bool:
        """A repeated rid must carry the key that rid carried the first time."""
        if not self._uses_keys:
            return True
        return expected is not None and given is not None and secrets.compare_digest(expected.encode(),
                                                                                     given.encode())

    # --- request details --------------------------------------------------------------------------

    def _note_client_ack(self, body: RequestBody, now: float) -> None:
        """XEP-0124 §9.2: a client ack below a response we already sent means that response was lost."""
        if not self._acks or (ack_text := body.get("ack")) is None or not ack_text.isdigit():
            return
        ack = int(ack_text)
        lost = [rid for rid in self._cache if ack < rid < body.rid]
        if lost:
            rid = min(lost)
            _request_id, _data, sent_at, _key, _carried = self._cache[rid]
            self._report = (rid, now - sent_at)

    def _pause(self, pause_text: str, now: float) -> list[BoshAction]:
        """XEP-0124 §10: answer everything held (this request too), then allow a longer silence once."""
        if not pause_text.isdigit() or int(pause_text) > self._limits.max_pause_seconds:
            return self._flush(now)
        actions: list[BoshAction] = []
        for held in list(self._held):
            actions += self._answer(held, now, empty=not self._pending)
        self._inactivity_seconds = float(int(pause_text))
        return actions

    def _polling_violation(self, body: RequestBody, now: float) -> BoshCondition | None:
        """XEP-0124 §12: a polling session (hold=0) must not poll faster than 'polling'."""
        if self.hold > 0 or body.payloads or body.restart:
            return None
        last, self._last_empty_poll = self._last_empty_poll, now
        if last is not None and now - last < self._limits.polling_seconds:
            return BoshCondition.POLICY_VIOLATION
        return None

    def _hold_request(self, request_id: int, rid: int, now: float, *, key: str | None) -> None:
        self._held.append(_Held(request_id=request_id, rid=rid, expires_at=now + self.wait, key=key))
        self._held.sort(key=lambda held: held.rid)
        self._inactivity_seconds = self._limits.inactivity_seconds

    # --- stanzas from the server ------------------------------------------------------------------

    def _on_server_stanzas(self, stanzas: tuple[Element | bytes, ...], now: float) -> list[BoshAction]:
        if self._state is _State.ENDED or self._closing is not None:
            return []
        actions: list[BoshAction] = []
        for stanza in stanzas:
            if isinstance(stanza, bytes):
                data = stanza
            else:
                if stanza.tag == SASL_SUCCESS and not self.authenticated:
                    self.authenticated = True   # RFC 6120 §6.4.6: the server says so; the client cannot fake it
                    actions.append(Authenticated())
                data = self._serialize(stanza)
            self._pending.append(data)
            self._pending_bytes += len(data)
        actions += self._flush(now)
        if self._pending_bytes > self._limits.max_pending_bytes:
            # The client cannot keep up (or stopped asking): end it rather than buffer without bound.
            self._pending.clear()
            self._pending_bytes = 0
            self._closing = ServerClosed(condition=BoshCondition.POLICY_VIOLATION)
            actions += self._close_upstream()
            actions += self._flush(now)
        return actions

    # --- responses --------------------------------------------------------------------------------

    def _flush(self, now: float) -> list[BoshAction]:
        """Send what is pending in the oldest held requests; a terminate goes last of all."""
        actions: list[BoshAction] = []
        while self._pending and self._held and (self._state is _State.ACTIVE or self._stream_id):
            actions += self._answer(self._held[0], now, empty=False)
        if self._closing is not None and self._held and not self._pending:
            first, *others = self._held
            self._held.clear()
            closing = self._closing
            final = self._serialize(build_terminate(closing.condition, closing.stanzas))
            actions.append(self._respond(first, final, now, ()))
            terminate = self._serialize(build_terminate(closing.condition))
            actions += [Respond(request_id=held.request_id, data=terminate) for held in others]
            actions += self._end(closing.condition, close_upstream=False)
        return actions

    def _answer(self, held: _Held, now: float, *, empty: bool) -> list[BoshAction]:
        self._held.remove(held)
        if not self._held:
            self._inactive_since = now
        attrs: dict[str, str] = {}
        if self._state is _State.CREATING:
            attrs = self._creation_attrs(held.rid)
            self._state = _State.ACTIVE
        elif self._acks and held.rid < self._last_rid:
            attrs["ack"] = str(self._last_rid)  # XEP-0124 §9.1: tell the client what we have seen
        if self._report is not None:
            (report, elapsed), self._report = self._report, None
            attrs |= {"report": str(report), "time": str(int(elapsed * 1000))}
        head = self._plain_head() if not attrs else self._serialize(build_body(attrs))
        payloads = () if empty else self._take_pending(self._limits.max_response_bytes - len(head)
                                                       - _CLOSE_TAG_OVERHEAD)
        return [self._respond(held, with_payloads(head, payloads), now, payloads)]

    def _plain_head(self) -> bytes:
        head = _PLAIN_HEADS.get(self._serialize)
        if head is None:
            head = _PLAIN_HEADS[self._serialize] = self._serialize(build_body({}))
        return head

    def _take_pending(self, budget: int) -> tuple[bytes, ...]:
        """As many pending stanzas as fit in `budget` bytes, and at least one."""
        count = size = 0
        for payload in self._pending:
            if count and size + len(payload) > budget:
                break
            count += 1
            size += len(payload)
        taken = tuple(self._pending[:count])
        del self._pending[:count]
        self._pending_bytes -= size
        return taken

    def _creation_attrs(self, rid: int) -> dict[str, str]:
        """XEP-0124 §7.2 and XEP-0206 §4 session creation response."""
        attrs = {"sid": self.sid, "wait": str(int(self.wait)), "requests": str(self.requests),
                 "hold": str(self.hold), "inactivity": str(int(self._limits.inactivity_seconds)),
                 "polling": str(int(self._limits.polling_seconds)),
                 "maxpause": str(int(self._limits.max_pause_seconds)), "ver": "{}.{}".format(*self._version),
                 "from": self._domain, "authid": self._stream_id, "secure": "true",
                 qname("urn:xmpp:xbosh", "version"): "1.0",
                 qname("urn:xmpp:xbosh", "restartlogic"): "true", qname(NS_XML, "lang"): "en"}
        if self._acks:
            attrs["ack"] = str(rid)
        return attrs

    def _respond(self, held: _Held, data: bytes, now: float, payloads: tuple[bytes, ...]) -> Respond:
        self._cache[held.rid] = (held.request_id, data, now, held.key, bool(payloads))
        while len(self._cache) > self.requests:
            del self._cache[next(iter(self._cache))]
        return Respond(request_id=held.request_id, data=data)

    def _refuse(self, request_id: int) -> Respond:
        """Answer one request with item-not-found without touching the session."""
        return Respond(request_id=request_id, data=self._serialize(build_terminate(BoshCondition.ITEM_NOT_FOUND)))

    def _recoverable_error(self, request_id: int) -> Respond:
        """XEP-0124 §17.1: a recoverable binding error; the session goes on."""
        return Respond(request_id=request_id, data=self._serialize(build_body({"type": "error"})))

    def _terminate_now(self, request_id: int, condition: BoshCondition | None, *,
                       close_upstream: bool = True, by_client: bool = False) -> list[BoshAction]:
        actions: list[BoshAction] = []
        terminate = self._serialize(build_terminate(condition))
        for held in self._held:
            actions.append(Respond(request_id=held.request_id, data=terminate))
        self._held.clear()
        actions.append(Respond(request_id=request_id, data=terminate))
        return actions + self._end(condition, close_upstream=close_upstream, by_client=by_client)

    def _close_upstream(self, *, by_client: bool = False) -> list[BoshAction]:
        if self._upstream_closed:
            return []
        self._upstream_closed = True
        return [CloseUpstream(by_client=by_client)]

    def _end(self, condition: BoshCondition | None, *, close_upstream: bool,
             by_client: bool = False) -> list[BoshAction]:
        if self._state is _State.ENDED:
            return []
        self._state = _State.ENDED
        self._pending.clear()
        self._pending_bytes = 0
        # Requests that arrived early (waiting for a gap in the rids) are answered too: nothing waits forever.
        terminate = self._serialize(build_terminate(condition))
        actions: list[BoshAction] = [Respond(request_id=early.request_id, data=terminate)
                                     for early in self._early.values()]
        self._early.clear()
        self._early_until.clear()
        if close_upstream:
            actions += self._close_upstream(by_client=by_client)
        return [*actions, SessionEnded(condition=condition)]
