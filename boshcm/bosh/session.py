"""One BOSH session (XEP-0124, XEP-0206): the rid window, held requests, wait, inactivity, keys, pause.

Theory of operation. The adapter hands in facts: a request arrived (`RequestArrived`, with the adapter's own
`request_id` for the HTTP exchange it holds open), a request's client went away (`RequestAborted`), the
XMPP side produced stanzas (`ServerStanzas`) or ended (`ServerClosed`), and time passed (`handle_timeout`).
Orders come back: answer a held request with these bytes (`Respond`), start/restart/stop the XMPP stream
(`OpenUpstream`, `RestartUpstream`, `CloseUpstream`), pass the client's payloads on (`ForwardToServer`), and
forget the session (`SessionEnded`).

Requests are processed strictly in rid order (§14.1) within a window of `requests` rids; a request that
arrives early waits for the gap to fill. After processing, a request is *held* until there is something to
send or its `wait` runs out. At most `hold` requests are held; the oldest surplus one is answered at once
(§8). Every answer is cached as bytes under its rid, so a client that lost a response and repeats the rid
gets the same bytes again (§14.3). One deadline (`next_deadline`) covers every held request's wait and the
session's inactivity (§10).

This file knows nothing of HTTP, asyncio or XMPP routing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from boshcm.bosh.body import BadRequest, RequestBody, build_body, build_terminate
from boshcm.errors import BoshCondition
from boshcm.stanza import NS_XML, Element, qname

BOSH_VERSION = "1.11"
# (to, route) -> a refusal condition, or None when the session may go there.
AddressCheck = Callable[[str, str | None], BoshCondition | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class BoshLimits:
    max_wait_seconds: float = 60.0
    max_hold: int = 2
    inactivity_seconds: float = 60.0
    polling_seconds: float = 2.0
    max_pause_seconds: float = 120.0


# --- events ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class RequestArrived:
    request_id: int
    body: RequestBody


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAborted:
    request_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamOpened:
    stream_id: str
    domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStanzas:
    stanzas: tuple[Element, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerClosed:
    condition: BoshCondition | None
    stanzas: tuple[Element, ...] = ()


BoshEvent = RequestArrived | RequestAborted | UpstreamOpened | ServerStanzas | ServerClosed


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
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded:
    condition: BoshCondition | None


BoshAction = Respond | OpenUpstream | ForwardToServer | RestartUpstream | CloseUpstream | SessionEnded


class _State(Enum):
    CREATING = auto()   # waiting for the upstream stream to open and say something
    ACTIVE = auto()
    ENDED = auto()


@dataclass(slots=True)
class _Held:
    request_id: int
    rid: int
    expires_at: float


class BoshSession:
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
        self._acks = body.get("ack") == "1"
        self._key = body.get("newkey")
        self._state = _State.CREATING
        self._last_rid = body.rid           # highest rid processed in order
        self._early: dict[int, RequestArrived] = {}
        self._held: list[_Held] = []
        self._cache: OrderedDict[int, tuple[bytes, float]] = OrderedDict()   # rid -> (response, sent at)
        self._report: tuple[int, float] | None = None
        self._pending: list[Element] = []
        self._closing: ServerClosed | None = None
        self._stream_id = ""
        self._domain = body.get("to") or ""
        self._inactive_since = now
        self._inactivity_seconds = limits.inactivity_seconds
        self._last_empty_poll: float | None = None
        self._created_request = first

    # --- queries ----------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._state is _State.ENDED

    def next_deadline(self) -> float | None:
        if self._state is _State.ENDED:
            return None
        if self._held:
            return min(held.expires_at for held in self._held)
        return self._inactive_since + self._inactivity_seconds

    # --- entry points -----------------------------------------------------------------------------

    def start(self, now: float) -> list[BoshAction]:
        """Process the session-creation request (XEP-0124 §7.1, XEP-0206 §4)."""
        body = self._created_request.body
        if not body.get("to"):
            return self._terminate_now(self._created_request.request_id, BoshCondition.IMPROPER_ADDRESSING)
        if (refusal := self._check_address(body.get("to") or "", body.get("route"))) is not None:
            # XEP-0124 §7.1: only hosts the operator allows; never an open proxy.
            return self._terminate_now(self._created_request.request_id, refusal, close_upstream=False)
        self._hold_request(self._created_request.request_id, body.rid, now)
        return [OpenUpstream(to=body.get("to") or "", lang=body.lang, version=body.xmpp_version,
                             route=body.get("route"), secure=body.get("secure") != "false")]

    def handle(self, event: BoshEvent, now: float) -> list[BoshAction]:
        match event:
            case RequestArrived():
                return self._on_request(event, now)
            case RequestAborted(request_id=request_id):
                self._held = [held for held in self._held if held.request_id != request_id]
                if not self._held:
                    self._inactive_since = now
                return []
            case UpstreamOpened(stream_id=stream_id, domain=domain):
                self._stream_id, self._domain = stream_id, domain or self._domain
                return []
            case ServerStanzas(stanzas=stanzas):
                if self._state is _State.ENDED:
                    return []
                self._pending.extend(stanzas)
                return self._flush(now)
            case ServerClosed():
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
        if not self._held and now >= self._inactive_since + self._inactivity_seconds:
            # XEP-0124 §10: no request for longer than 'inactivity': the session is gone, nobody to tell.
            actions += self._end(None, close_upstream=True)
        return actions

    # --- requests ---------------------------------------------------------------------------------

    def _on_request(self, event: RequestArrived, now: float) -> list[BoshAction]:
        rid = event.body.rid
        if self._state is _State.ENDED:
            return [Respond(request_id=event.request_id,
                            data=self._serialize(build_terminate(BoshCondition.ITEM_NOT_FOUND)))]
        if rid <= self._last_rid:
            return self._repeat(event, now)
        if rid > self._last_rid + self.requests:
            # XEP-0124 §14.3: beyond the window.
            return self._terminate_now(event.request_id, BoshCondition.ITEM_NOT_FOUND)
        if rid in self._early:
            self._early[rid] = event  # the client retried an early request on a new connection
            return []
        if len(self._held) + len(self._early) >= self.requests:
            # XEP-0124 §11: more simultaneous requests than allowed.
            return self._terminate_now(event.request_id, BoshCondition.POLICY_VIOLATION)
        self._early[rid] = event
        actions: list[BoshAction] = []
        while (ready := self._early.pop(self._last_rid + 1, None)) is not None:
            self._last_rid += 1
            actions += self._process(ready, now)
            if self.ended:
                actions += [Respond(request_id=late.request_id,
                                    data=self._serialize(build_terminate(BoshCondition.ITEM_NOT_FOUND)))
                            for late in self._early.values()]
                self._early.clear()
                break
        return actions

    def _repeat(self, event: RequestArrived, now: float) -> list[BoshAction]:
        rid = event.body.rid
        for held in self._held:
            if held.rid == rid:
                # INTEROP.md: a held rid on a new connection is the client retrying; the new one replaces it.
                # The old connection is most likely dead; it gets an empty body so nothing waits forever.
                stale, held.request_id = held.request_id, event.request_id
                return [Respond(request_id=stale, data=self._serialize(build_body({})))]
        if (cached := self._cache.get(rid)) is not None:
            return [Respond(request_id=event.request_id, data=cached[0])]  # XEP-0124 §14.3, byte for byte
        return self._terminate_now(event.request_id, BoshCondition.ITEM_NOT_FOUND)

    def _process(self, event: RequestArrived, now: float) -> list[BoshAction]:
        body = event.body
        if (problem := self._check_key(body)) is not None:
            return self._terminate_now(event.request_id, problem)
        self._note_client_ack(body, now)
        actions: list[BoshAction] = []
        if body.payloads and self._state is not _State.ENDED:
            actions.append(ForwardToServer(stanzas=body.payloads))
        if body.is_terminate:
            # XEP-0124 §13: payloads (e.g. unavailable presence) first, then the session ends.
            return actions + self._terminate_now(event.request_id, None, close_upstream=True)
        if body.restart:
            actions.append(RestartUpstream())  # XEP-0206 §5
        if (policy := self._polling_violation(body, now)) is not None:
            return actions + self._terminate_now(event.request_id, policy)
        self._hold_request(event.request_id, body.rid, now)
        if (pause := body.get("pause")) is not None:
            return actions + self._pause(pause, now)
        while len(self._held) > self.hold and self._state is _State.ACTIVE:
            actions += self._answer(self._held[0], now, empty=not self._pending)
        return actions + self._flush(now)

    def _check_key(self, body: RequestBody) -> BoshCondition | None:
        """XEP-0124 §15: each key must hash to the previous one."""
        if self._key is None:
            return None
        key = body.get("key")
        if key is None or hashlib.sha1(key.encode()).hexdigest() != self._key:
            return BoshCondition.ITEM_NOT_FOUND
        self._key = body.get("newkey") or key
        return None

    def _note_client_ack(self, body: RequestBody, now: float) -> None:
        """XEP-0124 §9.2: a client ack below a response we already sent means that response was lost."""
        if not self._acks or (ack_text := body.get("ack")) is None or not ack_text.isdigit():
            return
        ack = int(ack_text)
        lost = [rid for rid in self._cache if ack < rid < body.rid]
        if lost:
            rid = min(lost)
            self._report = (rid, now - self._cache[rid][1])

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

    def _hold_request(self, request_id: int, rid: int, now: float) -> None:
        self._held.append(_Held(request_id=request_id, rid=rid, expires_at=now + self.wait))
        self._held.sort(key=lambda held: held.rid)
        self._inactivity_seconds = self._limits.inactivity_seconds

    # --- responses --------------------------------------------------------------------------------

    def _flush(self, now: float) -> list[BoshAction]:
        """Send what is pending in the oldest held request; a terminate goes last of all."""
        actions: list[BoshAction] = []
        if self._pending and self._held and (self._state is _State.ACTIVE or self._stream_id):
            actions += self._answer(self._held[0], now, empty=False)
        if self._closing is not None and self._held and not self._pending:
            held = self._held.pop(0)
            closing = self._closing
            actions.append(self._respond(held, build_terminate(closing.condition, closing.stanzas), now))
            actions += self._end(closing.condition, close_upstream=False)
        return actions

    def _answer(self, held: _Held, now: float, *, empty: bool) -> list[BoshAction]:
        self._held.remove(held)
        if not self._held:
            self._inactive_since = now
        payloads = () if empty else tuple(self._pending)
        if not empty:
            self._pending.clear()
        attrs: dict[str, str] = {}
        if self._state is _State.CREATING:
            attrs = self._creation_attrs(held.rid)
            self._state = _State.ACTIVE
        elif self._acks and held.rid < self._last_rid:
            attrs["ack"] = str(self._last_rid)  # XEP-0124 §9.1: tell the client what we have seen
        if self._report is not None:
            (report, elapsed), self._report = self._report, None
            attrs |= {"report": str(report), "time": str(int(elapsed * 1000))}
        return [self._respond(held, build_body(attrs, payloads), now)]

    def _creation_attrs(self, rid: int) -> dict[str, str]:
        """XEP-0124 §7.2 and XEP-0206 §4 session creation response."""
        attrs = {"sid": self.sid, "wait": str(int(self.wait)), "requests": str(self.requests),
                 "hold": str(self.hold), "inactivity": str(int(self._limits.inactivity_seconds)),
                 "polling": str(int(self._limits.polling_seconds)),
                 "maxpause": str(int(self._limits.max_pause_seconds)), "ver": BOSH_VERSION,
                 "from": self._domain, "authid": self._stream_id, "secure": "true",
                 qname("urn:xmpp:xbosh", "version"): "1.0",
                 qname("urn:xmpp:xbosh", "restartlogic"): "true", qname(NS_XML, "lang"): "en"}
        if self._acks:
            attrs["ack"] = str(rid)
        return attrs

    def _respond(self, held: _Held, body: Element, now: float) -> Respond:
        data = self._serialize(body)
        self._cache[held.rid] = (data, now)
        while len(self._cache) > self.requests:
            self._cache.popitem(last=False)
        return Respond(request_id=held.request_id, data=data)

    def _terminate_now(self, request_id: int, condition: BoshCondition | None, *,
                       close_upstream: bool = True) -> list[BoshAction]:
        actions: list[BoshAction] = []
        terminate = self._serialize(build_terminate(condition))
        for held in self._held:
            actions.append(Respond(request_id=held.request_id, data=terminate))
        self._held.clear()
        actions.append(Respond(request_id=request_id, data=terminate))
        return actions + self._end(condition, close_upstream=close_upstream)

    def _end(self, condition: BoshCondition | None, *, close_upstream: bool) -> list[BoshAction]:
        if self._state is _State.ENDED:
            return []
        self._state = _State.ENDED
        self._pending.clear()
        actions: list[BoshAction] = [CloseUpstream()] if close_upstream else []
        return [*actions, SessionEnded(condition=condition)]

