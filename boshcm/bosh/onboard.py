"""The XMPP side of an on-board BOSH session.

On-board, a BOSH session *is* a client session of the embedded server: the same ClientSession core and the
same adapter (xmpp/session_adapter.py) as TCP and WebSocket, with no loopback hop and no second serialisation.
Off-board, the link is a TCP stream to any XMPP server (upstream/offboard_link.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor

from boshcm.clock import Clock
from boshcm.errors import BoshCondition
from boshcm.stanza import Element, is_shared
from boshcm.upstream.link import UpstreamListener
from boshcm.xml.writer import serialize_to
from boshcm.xmpp.client_session import (
    ClientSession,
    CloseStream,
    ElementReceived,
    StreamEnded,
    StreamStarted,
    Transport,
    TransportClosed,
    stream_error,
)
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.session_adapter import SessionAdapter


class OnboardLink:
    """A BOSH session bound straight to the client-session core: the transport of one SessionAdapter.

    The elements of one perform go to the BOSH session as one batch (`end_batch`), so they share a response.
    """

    def __init__(self, listener: UpstreamListener, *, to: str, lang: str | None, version: str | None, secure: bool,
                 remote: str, hub: Hub, clock: Clock, new_session: Callable[[Transport], ClientSession],
                 key_pool: Executor | None = None) -> None:
        self._listener = listener
        session = new_session(Transport(secure=secure, can_starttls=False, remote_address=remote, web=True,
                                        advertises_stream_management=False))
        self._adapter = SessionAdapter(session, self, hub=hub, clock=clock, key_pool=key_pool)
        # The stream's header as plain values, a StreamStarted made from them at each (re)start: an event kept per
        # session would be one more object per session for the cyclic collector to walk.
        self._to, self._version, self._lang = to, version or "1.0", lang
        self._outgoing: list[Element | bytes] = []  # bytes: a shared stanza, written for this session's JID

    # --- orders from the BOSH session (Link) ------------------------------------------------------

    def open(self) -> None:
        self._adapter.handle(StreamStarted(to=self._to, version=self._version, lang=self._lang))

    def forward(self, stanzas: tuple[Element, ...]) -> None:
        for stanza in stanzas:
            self._adapter.handle(ElementReceived(element=stanza))

    def restart(self) -> None:
        self.open()  # XEP-0206 §5: the same header again

    def close(self, *, by_client: bool = False) -> None:
        # The client's terminate is a clean end of the stream; inactivity or an error is a lost transport,
        # which a resumable session (XEP-0198) survives: it is detached rather than ended.
        self._adapter.handle(StreamEnded() if by_client else TransportClosed())
        self._adapter.close()

    # --- SessionTransport -------------------------------------------------------------------------

    def write_open(self, attrs: dict[str, str]) -> None:
        self._listener.upstream_opened(attrs["id"], attrs["from"])

    def write_element(self, element: Element) -> None:
        self._outgoing.append(serialize_to(element, self._adapter.session.jid) if is_shared(element) else element)

    def write_close(self, close: CloseStream) -> None:
        self.end_batch()
        if close.condition is None:
            self._listener.upstream_closed(None)
        else:
            # XEP-0206 §6: stream errors travel inside a remote-stream-error terminate.
            self._listener.upstream_closed(BoshCondition.REMOTE_STREAM_ERROR, (stream_error(close),))

    def start_tls(self) -> None:
        pass  # XEP-0206: TLS is HTTPS's job

    def expect_restart(self) -> None:
        pass  # XEP-0206 §5: a restart is the client's xmpp:restart request

    def end_batch(self) -> None:
        if self._outgoing:
            outgoing, self._outgoing = tuple(self._outgoing), []
            self._listener.upstream_stanzas(outgoing)
