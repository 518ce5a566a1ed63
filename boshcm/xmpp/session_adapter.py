"""The one adapter around a ClientSession, for every transport (TCP, WebSocket, on-board BOSH).

It owns the session, its seat in the hub and the clock; it is the hub's sink for the session's JID
(`deliver`/`disconnect`/`shutdown`) and the one place that performs the session's orders. A transport supplies
only how to write an open, an element and a close, and the two things only TCP does (switch to TLS, expect a
restarted stream); the on-board BOSH link also batches the elements of one perform (`end_batch`). This is how
xmpp.js factors its transports.

PLAIN's key derivation (`DeriveKey`) runs here, in a thread pool, never on the event loop; its result goes back
to the session as `KeyDerived`. A session that has closed by then ignores it, and a derivation not yet started
when the session closes is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Protocol

from boshcm.address_slots import Slot
from boshcm.clock import Clock
from boshcm.errors import StreamErrorCondition
from boshcm.stanza import Element
from boshcm.xmpp.accounts import ScramCredentials
from boshcm.xmpp.client_session import (
    Bound,
    ClientSession,
    CloseStream,
    DeriveKey,
    Detach,
    ExpectRestart,
    KeyDerived,
    OpenStream,
    Replaced,
    SendElement,
    SessionAction,
    SessionEvent,
    Shutdown,
    StanzaForClient,
    StartTls,
)
from boshcm.xmpp.hub import Hub, HubSeat

log = logging.getLogger(__name__)

# PBKDF2 is CPU-bound (and releases the GIL): more threads than cores only make every login slower.
MAX_KEY_DERIVATION_THREADS = 4


def key_derivation_pool() -> ThreadPoolExecutor:
    """The bounded pool that runs every session's key derivations (one per server)."""
    threads = max(1, min(MAX_KEY_DERIVATION_THREADS, os.cpu_count() or 1))
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="boshcm-kdf")


class SessionTransport(Protocol):
    """How one transport puts the session's words on its wire."""

    def write_open(self, attrs: dict[str, str]) -> None:
        """The stream header (RFC 6120 §4.7), or its framing's equivalent."""

    def write_element(self, element: Element) -> None:
        """One top-level element; must not block."""

    def write_close(self, close: CloseStream) -> None:
        """The stream error (when `close.condition` is set) and the end of the stream; then end the transport."""

    def start_tls(self) -> None:
        """Switch to TLS once what was written is out (TCP only); the transport reports `TlsEstablished`."""

    def expect_restart(self) -> None:
        """The next thing from the client is a fresh stream header (TCP: a new parser)."""

    def end_batch(self) -> None:
        """What this perform wrote is complete: flush it (BOSH sends the batch as one payload)."""


class _NoTransport:
    """Where a finished adapter's words go: nowhere (a closed session says nothing more anyway)."""

    def write_open(self, attrs: dict[str, str]) -> None:
        pass

    def write_element(self, element: Element) -> None:
        pass

    def write_close(self, close: CloseStream) -> None:
        pass

    def start_tls(self) -> None:
        pass

    def expect_restart(self) -> None:
        pass

    def end_batch(self) -> None:
        pass


_NO_TRANSPORT = _NoTransport()


class SessionAdapter:
    """One client session's adapter: performs its orders, takes and gives up its hub seat, derives keys."""

    def __init__(self, session: ClientSession, transport: SessionTransport, *, hub: Hub, clock: Clock,
                 key_pool: Executor | None = None, unauthenticated: Slot | None = None) -> None:
        self.session = session
        self._transport: SessionTransport = transport
        self._hub, self._clock = hub, clock
        self._key_pool = key_pool  # None: the event loop's default executor (bounded too)
        # Given back once the session has logged in or closed (one count for every transport).
        self.unauthenticated = unauthenticated
        self._seat = HubSeat(hub)
        self._derivation: asyncio.Future[ScramCredentials] | None = None

    # --- facts from the transport -----------------------------------------------------------------

    def handle(self, event: SessionEvent) -> None:
        self.perform(self.session.handle(event, self._clock.now()))

    def handle_timeout(self) -> None:
        self.perform(self.session.handle_timeout(self._clock.now()))

    def seconds_to_deadline(self) -> float | None:
        """How long a transport may wait for input before `handle_timeout` is due (None: no deadline)."""
        deadline = self.session.next_deadline()
        return None if deadline is None else max(0.0, deadline - self._clock.now())

    # --- SessionSink (called by the hub, synchronously) -------------------------------------------

    def deliver(self, stanza: Element) -> None:
        # Through the session: with stream management the stanza is counted and kept until acknowledged.
        self.handle(StanzaForClient(stanza=stanza))

    def disconnect(self, condition: StreamErrorCondition) -> None:
        self.handle(Replaced(condition=condition))

    def shutdown(self, condition: StreamErrorCondition = StreamErrorCondition.SYSTEM_SHUTDOWN) -> None:
        self.handle(Shutdown(condition=condition))

    # --- the one loop that performs a session's orders --------------------------------------------

    def perform(self, actions: list[SessionAction]) -> None:
        transport = self._transport
        for action in actions:
            match action:
                case OpenStream(attrs=attrs):
                    transport.write_open(attrs)
                case SendElement(element=element):
                    transport.write_element(element)
                case StartTls():
                    transport.start_tls()
                case ExpectRestart():
                    transport.expect_restart()
                case Bound(jid=jid):
                    self._seat.take(jid, self)
                case Detach():
                    self._seat.park(self.session)
                case CloseStream():
                    transport.write_close(action)
                case DeriveKey():
                    self._derive(action)
                case _:
                    # What this session already said goes first (XEP-0198 counts in wire order), and a
                    # delivery to this very session, re-entering here, comes after it.
                    transport.end_batch()
                    self._hub.perform([action])
        transport.end_batch()
        if self.unauthenticated is not None and (self.session.authenticated or self.session.closed):
            self.unauthenticated.release()
        if self.session.closed:
            self._seat.release(self)
            self._cancel_derivation()
            self._let_go_of_transport()

    def close(self) -> None:
        """The transport is done with this adapter: a derivation not yet started is not needed any more."""
        self._cancel_derivation()
        if self.unauthenticated is not None:
            self.unauthenticated.release()
        self._let_go_of_transport()

    def _let_go_of_transport(self) -> None:
        # The transport holds this adapter and this adapter its transport: once either is done, one side lets go,
        # so that an ended session is freed by reference counting, not left for a full cyclic collection.
        self._transport = _NO_TRANSPORT

    # --- key derivation, off the event loop -------------------------------------------------------

    def _derive(self, order: DeriveKey) -> None:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._key_pool, order.work.run)
        except RuntimeError:  # the pool has been shut down: the server is stopping
            self.shutdown()
            return
        self._derivation = future
        future.add_done_callback(lambda done: self._derived(order.request, done))

    def _derived(self, request: int, future: asyncio.Future[ScramCredentials]) -> None:
        if self._derivation is future:
            self._derivation = None
        if future.cancelled():
            return
        if (error := future.exception()) is not None:
            log.error("key derivation failed", exc_info=error)
            self.shutdown(StreamErrorCondition.INTERNAL_SERVER_ERROR)
            return
        self.handle(KeyDerived(request=request, key=future.result()))

    def _cancel_derivation(self) -> None:
        if self._derivation is not None:
            self._derivation.cancel()
            self._derivation = None
