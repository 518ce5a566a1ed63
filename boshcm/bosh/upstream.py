"""The XMPP side of a BOSH session.

On-board, a BOSH session *is* a client session of the embedded server: the same ClientSession core as TCP
and WebSocket, with no loopback hop and no second serialisation. Off-board, the link is a TCP stream to any
XMPP server (see OffboardLink).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from boshcm.bosh.session import OpenUpstream, ServerClosed, ServerStanzas, UpstreamOpened
from boshcm.clock import Clock
from boshcm.errors import BoshCondition, StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element, stream_error_element
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.stream import (
    Bound,
    ClientSession,
    CloseStream,
    ElementReceived,
    ExpectRestart,
    OpenStream,
    Replaced,
    SendElement,
    SessionAction,
    Shutdown,
    StartTls,
    StreamEnded,
    StreamStarted,
    Transport,
)

if TYPE_CHECKING:
    from boshcm.bosh.http import BoshConnection

log = logging.getLogger(__name__)


class OnboardLink:
    """A BOSH session bound straight to the client-session core; also the hub's sink for its JID."""

    def __init__(self, connection: BoshConnection, order: OpenUpstream, *, hub: Hub, clock: Clock,
                 new_session: Callable[[Transport], ClientSession]) -> None:
        self._connection = connection
        self._hub, self._clock = hub, clock
        self._core = new_session(Transport(secure=connection.secure and order.secure, can_starttls=False,
                                           remote_address=connection.remote))
        self._start = StreamStarted(to=order.to, version=order.version or "1.0", lang=order.lang)
        self._bound_jid: JID | None = None

    # --- orders from the BOSH session -------------------------------------------------------------

    def open(self, order: OpenUpstream) -> None:
        self._perform(self._core.handle(self._start, self._clock.now()))

    def forward(self, stanzas: tuple[Element, ...]) -> None:
        for stanza in stanzas:
            self._perform(self._core.handle(ElementReceived(element=stanza), self._clock.now()))

    def restart(self) -> None:
        self._perform(self._core.handle(self._start, self._clock.now()))

    def close(self) -> None:
        self._perform(self._core.handle(StreamEnded(), self._clock.now()))

    # --- SessionSink ------------------------------------------------------------------------------

    def deliver(self, stanza: Element) -> None:
        self._connection.event(ServerStanzas(stanzas=(stanza,)))

    def disconnect(self, condition: StreamErrorCondition) -> None:
        self._perform(self._core.handle(Replaced(condition=condition), self._clock.now()))

    def shutdown(self) -> None:
        self._perform(self._core.handle(Shutdown(), self._clock.now()))

    # --- orders from the session core -------------------------------------------------------------

    def _perform(self, actions: list[SessionAction]) -> None:
        outgoing: list[Element] = []
        for action in actions:
            match action:
                case OpenStream(attrs=attrs):
                    self._connection.event(UpstreamOpened(stream_id=attrs["id"], domain=attrs["from"]))
                case SendElement(element=element):
                    outgoing.append(element)
                case StartTls() | ExpectRestart():
                    pass  # XEP-0206: TLS is HTTPS's job; a restart is the client's xmpp:restart request
                case Bound(jid=jid):
                    self._bound_jid = jid
                    self._hub.register(jid, self)
                case CloseStream(condition=condition, text=text):
                    if outgoing:
                        self._connection.event(ServerStanzas(stanzas=tuple(outgoing)))
                        outgoing = []
                    if condition is None:
                        self._connection.event(ServerClosed(condition=None))
                    else:
                        # XEP-0206 §7: stream errors travel inside a remote-stream-error terminate.
                        self._connection.event(ServerClosed(condition=BoshCondition.REMOTE_STREAM_ERROR,
                                                            stanzas=(stream_error_element(condition, text),)))
                case _:
                    self._hub.perform([action])
        if outgoing:
            self._connection.event(ServerStanzas(stanzas=tuple(outgoing)))
        if self._core.closed and self._bound_jid is not None:
            self._hub.unregister(self._bound_jid, self)
            self._bound_jid = None
