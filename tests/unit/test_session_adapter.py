"""The one session adapter (boshcm/xmpp/session_adapter.py) with a recording transport: orders performed, the hub
seat, the unauthenticated slot, and PLAIN's key derivation in a pool, dropped safely when the stream is gone."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from lxml import etree

from boshcm.address_slots import AddressSlots
from boshcm.clock import FakeClock
from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_BIND, NS_CLIENT, NS_SASL, Element
from boshcm.xmpp.client_session import (
    ClientSession,
    CloseStream,
    ElementReceived,
    SessionSettings,
    StreamEnded,
    StreamStarted,
    Transport,
    TransportClosed,
)
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.router import Deliver
from boshcm.xmpp.session_adapter import SessionAdapter
from boshcm.xmpp.throttle import AuthThrottle
from tests.unit.test_client_session import RecordingRouter, alice_store

ALICE = JID.parse("alice@localhost/desk")


class RecordingTransport:
    """Writes what the adapter says into a list: ("open", ...), ("element", tag), ("close", condition), ..."""

    def __init__(self) -> None:
        self.written: list[tuple[str, object]] = []

    def write_open(self, attrs: dict[str, str]) -> None:
        self.written.append(("open", attrs["from"]))

    def write_element(self, element: Element) -> None:
        self.written.append(("element", etree.QName(element).localname))

    def write_close(self, close: CloseStream) -> None:
        self.written.append(("close", close.condition))

    def start_tls(self) -> None:
        self.written.append(("start_tls", None))

    def expect_restart(self) -> None:
        self.written.append(("restart", None))

    def end_batch(self) -> None:
        self.written.append(("end_batch", None))

    def elements(self) -> list[object]:
        return [what for kind, what in self.written if kind == "element"]


class GatedPool(Executor):
    """Takes jobs and runs them only when told: the test decides when a derivation finishes (or fails)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Future[Any], Callable[[], Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.jobs.append((future, lambda: fn(*args, **kwargs)))
        return future

    def finish(self, *, error: Exception | None = None) -> None:
        for future, job in self.jobs:
            if future.set_running_or_notify_cancel():  # False when the adapter cancelled it
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(job())
        self.jobs.clear()


class Scene:
    def __init__(self, pool: Executor | None, *, slots: AddressSlots | None = None,
                 negotiation_timeout_seconds: float = 60.0) -> None:
        self.clock, self.hub, self.transport = FakeClock(), Hub(), RecordingTransport()
        self.slots = slots or AddressSlots(per_address=1)
        session = ClientSession(settings=SessionSettings(domain="localhost",
                                                         negotiation_timeout_seconds=negotiation_timeout_seconds),
                                transport=Transport(secure=True, can_starttls=False, remote_address="192.0.2.9"),
                                router=RecordingRouter(), accounts=alice_store(), throttle=AuthThrottle(),
                                now=self.clock.now())
        self.adapter = SessionAdapter(session, self.transport, hub=self.hub, clock=self.clock, key_pool=pool,
                                      unauthenticated=self.slots.take("192.0.2.9"))

    def send(self, text: str) -> None:
        self.adapter.handle(ElementReceived(element=etree.fromstring(text)))

    def auth(self, password: str = "wonderland") -> None:
        self.adapter.handle(StreamStarted(to="localhost"))
        token = base64.b64encode(f"\0alice\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")

    def bind(self) -> None:
        self.adapter.handle(StreamStarted(to="localhost"))
        self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='b'><bind xmlns='{NS_BIND}'><resource>desk</resource>"
                  "</bind></iq>")


async def settled(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_plain_is_derived_in_the_pool_and_answered_when_the_key_is_back() -> None:
    pool = GatedPool()
    scene = Scene(pool)
    scene.auth()
    assert len(pool.jobs) == 1 and "success" not in scene.transport.elements()  # nothing decided on the loop
    assert scene.slots.count("192.0.2.9") == 1
    pool.finish()
    await settled(lambda: "success" in scene.transport.elements())
    assert scene.transport.written[-2:] == [("restart", None), ("end_batch", None)]
    assert scene.slots.count("192.0.2.9") == 0  # logged in: the unauthenticated slot is given back


async def test_with_a_real_thread_pool_a_wrong_password_is_refused() -> None:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kdf-test") as pool:
        scene = Scene(pool)
        scene.auth(password="wrong")
        await settled(lambda: "failure" in scene.transport.elements())
        assert not scene.adapter.session.authenticated


async def test_a_transport_lost_during_the_derivation_cancels_it_and_writes_nothing_more() -> None:
    pool = GatedPool()
    scene = Scene(pool)
    scene.auth()
    (future, _job), = pool.jobs
    scene.adapter.handle(TransportClosed())
    scene.adapter.close()
    await asyncio.sleep(0)  # asyncio passes the cancellation on to the pool's future in a callback
    assert future.cancelled()
    before = list(scene.transport.written)
    pool.finish()
    await asyncio.sleep(0.02)
    assert scene.transport.written == before and not scene.adapter.session.authenticated
    assert scene.slots.count("192.0.2.9") == 0


async def test_a_negotiation_timeout_during_the_derivation_closes_and_the_late_key_is_dropped() -> None:
    pool = GatedPool()
    scene = Scene(pool, negotiation_timeout_seconds=5)
    scene.auth()
    scene.clock.advance(5)
    scene.adapter.handle_timeout()
    assert ("close", StreamErrorCondition.CONNECTION_TIMEOUT) in scene.transport.written
    before = list(scene.transport.written)
    pool.finish()
    await asyncio.sleep(0.02)
    assert scene.transport.written == before


async def test_a_derivation_that_fails_ends_the_stream_with_internal_server_error() -> None:
    pool = GatedPool()
    scene = Scene(pool)
    scene.auth()
    pool.finish(error=RuntimeError("no OpenSSL today"))
    await settled(lambda: scene.adapter.session.closed)
    assert ("close", StreamErrorCondition.INTERNAL_SERVER_ERROR) in scene.transport.written


async def test_a_pool_already_shut_down_ends_the_stream_as_a_server_shutdown() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    scene = Scene(pool)
    scene.auth()
    assert ("close", StreamErrorCondition.SYSTEM_SHUTDOWN) in scene.transport.written
    assert scene.adapter.session.closed


async def test_bound_takes_the_hub_seat_and_the_end_of_the_stream_gives_it_back() -> None:
    pool = GatedPool()
    scene = Scene(pool)
    scene.auth()
    pool.finish()
    await settled(lambda: scene.adapter.session.authenticated)
    scene.bind()
    scene.hub.perform([Deliver(to=ALICE, stanza=etree.fromstring(f"<message xmlns='{NS_CLIENT}' id='1'/>"))])
    assert scene.transport.elements()[-1] == "message"
    scene.adapter.handle(StreamEnded())
    assert scene.transport.written[-2:] == [("close", None), ("end_batch", None)]
    scene.hub.perform([Deliver(to=ALICE, stanza=etree.fromstring(f"<message xmlns='{NS_CLIENT}' id='2'/>"))])
    assert scene.hub.delivered == 1


async def test_what_the_session_said_is_flushed_before_a_router_order_is_performed() -> None:
    """The BOSH link batches: its batch must go out before a delivery that re-enters the adapter."""
    pool = GatedPool()
    scene = Scene(pool)
    scene.auth()
    pool.finish()
    await settled(lambda: scene.adapter.session.authenticated)
    scene.bind()
    del scene.transport.written[:]
    # RecordingRouter echoes a stanza back to its sender: a Deliver to this very session.
    scene.send(f"<message xmlns='{NS_CLIENT}' to='bob@localhost' id='m'><body>hi</body></message>")
    assert scene.transport.written == [("end_batch", None), ("element", "message"), ("end_batch", None),
                                       ("end_batch", None)]
