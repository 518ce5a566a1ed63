"""The hub: which live session is bound to which full JID, and the performer of router orders.

Router and sessions are pure; the hub is the one place that turns `Deliver(to, stanza)` into a call on the
session currently bound to `to`, whatever its transport. Every adapter registers itself here on `Bound`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element
from boshcm.xmpp.router import Deliver, Disconnect, RouterAction


class SessionSink(Protocol):
    def deliver(self, stanza: Element) -> None:
        """Queue one stanza for the client; must not block."""

    def disconnect(self, condition: StreamErrorCondition) -> None:
        """Close the session with a stream error (its JID was bound elsewhere, or an admin request)."""


class Hub:
    def __init__(self) -> None:
        self._sinks: dict[JID, SessionSink] = {}

    def register(self, jid: JID, sink: SessionSink) -> None:
        self._sinks[jid] = sink

    def unregister(self, jid: JID, sink: SessionSink) -> None:
        # Only the sink that owns the binding may remove it: a replaced session leaves after its successor.
        if self._sinks.get(jid) is sink:
            del self._sinks[jid]

    def perform(self, actions: Iterable[RouterAction]) -> None:
        for action in actions:
            match action:
                case Deliver(to=to, stanza=stanza):
                    # The router only addresses bound JIDs; a session that went away meanwhile loses the
                    # stanza exactly as if it had disconnected a moment earlier.
                    if (sink := self._sinks.get(to)) is not None:
                        sink.deliver(stanza)
                case Disconnect(jid=jid, condition=condition):
                    if (sink := self._sinks.pop(jid, None)) is not None:
                        sink.disconnect(condition)


class HubSeat:
    """One session's place in the hub: taken on `Bound`, given up once when the session has closed."""

    def __init__(self, hub: Hub, sink: SessionSink) -> None:
        self._hub, self._sink = hub, sink
        self._jid: JID | None = None

    def take(self, jid: JID) -> None:
        self._jid = jid
        self._hub.register(jid, self._sink)

    def release(self) -> None:
        if self._jid is not None:
            self._hub.unregister(self._jid, self._sink)
            self._jid = None
