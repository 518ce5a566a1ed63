"""The hub: which live session is bound to which full JID, and the performer of router orders.

The router (`RouterMachine`, behind its storage adapter `Router`) and sessions are pure; the hub is the one
place that turns `Deliver(to, stanza)` into a call on the session currently bound to `to`, whatever its transport.
Every adapter registers itself here on `Bound`.

XEP-0198: a resumable session whose transport is lost is *parked* here (`park`): the hub becomes its sink,
feeding what the router delivers into the session's unacked queue, until a resumption on any transport
registers that transport's adapter under the same JID, or the session's resumption time runs out — the
hub's one timer (`run_expiry`) then ends it, which unbinds it and hands its unacked stanzas to the router.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Protocol

from boshcm.clock import Clock
from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element
from boshcm.xmpp.client_session import (
    ClientSession,
    Replaced,
    ResumptionExpired,
    SessionAction,
    Shutdown,
    StanzaForClient,
)
from boshcm.xmpp.resumption import ResumptionTable
from boshcm.xmpp.router import Deliver, Disconnect, RouterAction


class SessionSink(Protocol):
    def deliver(self, stanza: Element) -> None:
        """Queue one stanza for the client; must not block."""

    def disconnect(self, condition: StreamErrorCondition) -> None:
        """Close the session with a stream error (its JID was bound elsewhere, or an admin request)."""


class Hub:
    def __init__(self, *, clock: Clock | None = None,
                 resumptions: ResumptionTable[ClientSession] | None = None) -> None:
        self._sinks: dict[JID, SessionSink] = {}
        self._clock = clock
        self.resumptions = resumptions
        self._wakeup = asyncio.Event()
        self.delivered = 0  # stanzas handed to sessions, read by boshcm/metrics.py

    def register(self, jid: JID, sink: SessionSink) -> None:
        self._sinks[jid] = sink

    def unregister(self, jid: JID, sink: SessionSink) -> None:
        # Only the sink that owns the binding may remove it: a replaced session leaves after its successor.
        if self._sinks.get(jid) is sink:
            del self._sinks[jid]

    def perform(self, actions: Iterable[RouterAction | SessionAction]) -> None:
        for action in actions:
            match action:
                case Deliver(to=to, stanza=stanza):
                    # The router only addresses bound JIDs; a session that went away meanwhile loses the
                    # stanza exactly as if it had disconnected a moment earlier.
                    if (sink := self._sinks.get(to)) is not None:
                        self.delivered += 1
                        sink.deliver(stanza)
                case Disconnect(jid=jid, condition=condition):
                    if (sink := self._sinks.pop(jid, None)) is not None:
                        sink.disconnect(condition)
                case _:
                    pass  # a parked session has no stream to write to or close

    # --- detached sessions (XEP-0198 §5) ----------------------------------------------------------

    def park(self, jid: JID, session: ClientSession) -> None:
        """Keep a detached session bound: the hub is its sink until it is resumed or expires."""
        self.register(jid, _ParkedSession(self, jid, session))
        self._wakeup.set()

    def _now(self) -> float:
        assert self._clock is not None, "parking sessions needs the hub's clock"
        return self._clock.now()

    async def run_expiry(self) -> None:
        """The one timer for every detached session: sleep until the next expiry, end what expired."""
        assert self.resumptions is not None
        while True:
            self._wakeup.clear()
            deadline = self.resumptions.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            now = self._now()
            for session in self.resumptions.expired(now):
                self._end_parked(session, ResumptionExpired(), now)

    def end_parked(self) -> None:
        """Shutdown: every detached session ends now; its unacked messages go where §8.5 says (offline)."""
        if self.resumptions is None:
            return
        now = self._now()
        for session in self.resumptions.detached_owners():
            self._end_parked(session, Shutdown(), now)

    def _end_parked(self, session: ClientSession, event: ResumptionExpired | Shutdown, now: float) -> None:
        jid = session.jid
        if jid is not None and isinstance(sink := self._sinks.get(jid), _ParkedSession) and sink.session is session:
            del self._sinks[jid]
        self.perform(session.handle(event, now))


class _ParkedSession:
    """The hub's sink for a detached session: deliveries go into its unacked queue."""

    __slots__ = ("_hub", "_jid", "session")

    def __init__(self, hub: Hub, jid: JID, session: ClientSession) -> None:
        self._hub, self._jid, self.session = hub, jid, session

    def deliver(self, stanza: Element) -> None:
        self._perform(self.session.handle(StanzaForClient(stanza=stanza), self._hub._now()))

    def disconnect(self, condition: StreamErrorCondition) -> None:
        self._perform(self.session.handle(Replaced(condition=condition), self._hub._now()))

    def _perform(self, actions: list[SessionAction]) -> None:
        if self.session.closed:
            self._hub.unregister(self._jid, self)
        self._hub.perform(actions)


class HubSeat:
    """One session's place in the hub: taken on `Bound`, given up once when the session has closed. The sink is
    passed in rather than kept: the sink owns its seat, and a seat holding its sink would be a reference cycle."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._jid: JID | None = None

    def take(self, jid: JID, sink: SessionSink) -> None:
        self._jid = jid
        self._hub.register(jid, sink)

    def park(self, session: ClientSession) -> None:
        """The transport is gone but the session waits for a resumption (`Detach`)."""
        if self._jid is not None:
            self._hub.park(self._jid, session)
            self._jid = None

    def release(self, sink: SessionSink) -> None:
        if self._jid is not None:
            self._hub.unregister(self._jid, sink)
            self._jid = None
