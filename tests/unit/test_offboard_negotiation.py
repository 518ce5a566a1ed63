"""The off-board link's upstream stream as conversations: server bytes and client orders in, orders out.

Most tests drive the pure machine (upstream/negotiation.py) with a fake clock; the last few run `OffboardLink`, its
adapter, against a scripted XMPP server on a loopback socket (the Prosody interop test does real STARTTLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence

import pytest
from lxml import etree

from boshcm.cluster import Address
from boshcm.errors import BoshCondition
from boshcm.stanza import NS_STREAM, Element, qname
from boshcm.upstream.negotiation import (
    Backlog,
    BytesReceived,
    ClientClosed,
    ClientRestart,
    ClientStanzas,
    Connect,
    Connected,
    ConnectFailed,
    ConnectionLost,
    Hangup,
    OffboardAction,
    OffboardEvent,
    OffboardNegotiation,
    ReportClosed,
    ReportOpened,
    ReportServer,
    ReportStanzas,
    Start,
    StartTls,
    TlsEstablished,
    TlsFailed,
    Write,
)
from boshcm.upstream.offboard_link import OffboardLink
from boshcm.xml.writer import STREAM_CLOSE

A, B = ("a.example", 5222), ("b.example", 5223)
T0 = 1000.0

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
          b" id='%s' from='example.org' version='1.0'>")
TLS_FEATURES = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                b"</stream:features>")
SASL_FEATURES = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
                 b"</mechanisms></stream:features>")
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
FAILURE = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
STARTTLS = b'<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'


def stream_error(condition: str, extra: bytes = b"") -> bytes:
    return (b"<stream:error><" + condition.encode() + b" xmlns='urn:ietf:params:xml:ns:xmpp-streams'>" + extra
            + b"</" + condition.encode() + b"></stream:error>")


def message(body: str) -> Element:
    return etree.fromstring(f"<message xmlns='jabber:client' to='bob@example.org'><body>{body}</body></message>")


class Upstream:
    """One machine and a fake clock: `now` moves only when a test says so."""

    def __init__(self, *, servers: Sequence[Address] = (A, B), starttls_required: bool = True,
                 connect_timeout_seconds: float = 3.0, negotiation_timeout_seconds: float = 10.0,
                 max_backlog_bytes: int = 1_048_576) -> None:
        self.machine = OffboardNegotiation(to="example.org", lang=None, servers=servers,
                                           starttls_required=starttls_required, max_stanza_bytes=65_536,
                                           max_depth=32, max_backlog_bytes=max_backlog_bytes,
                                           connect_timeout_seconds=connect_timeout_seconds,
                                           negotiation_timeout_seconds=negotiation_timeout_seconds)
        self.now = T0

    def do(self, event: OffboardEvent) -> list[OffboardAction]:
        return self.machine.handle(event, self.now)

    def server_sends(self, data: bytes) -> list[OffboardAction]:
        return self.do(BytesReceived(data=data))

    def wait(self, seconds: float) -> list[OffboardAction]:
        self.now += seconds
        return self.machine.handle_timeout(self.now)

    def connected(self) -> list[OffboardAction]:
        """Start and connect to the first server: the stream header goes out."""
        assert self.do(Start()) == [Connect(server=A)]
        return self.do(Connected())

    def to_tls(self) -> None:
        """Connected to A, which offers STARTTLS; the handshake done, the header went out again."""
        self.connected()
        assert self.server_sends(HEADER % b"plain" + TLS_FEATURES) == [Write(data=STARTTLS)]
        assert self.server_sends(PROCEED) == [StartTls(server_hostname="example.org")]
        assert self.do(TlsEstablished()) == [header_write()]

    def ready(self) -> list[OffboardAction]:
        self.to_tls()
        return self.server_sends(HEADER % b"s1" + SASL_FEATURES)


def header_write() -> Write:
    return Write(data=b'<?xml version="1.0"?><stream:stream xmlns="jabber:client" xmlns:stream='
                      b'"http://etherx.jabber.org/streams" to="example.org" version="1.0" xml:lang="en">')


def failed(actions: list[OffboardAction]) -> list[Address]:
    return [action.server for action in actions if isinstance(action, ReportServer) and not action.ok]


def closed(actions: list[OffboardAction]) -> list[ReportClosed]:
    return [action for action in actions if isinstance(action, ReportClosed)]


def tags(actions: list[OffboardAction]) -> list[list[str]]:
    return [[str(stanza.tag) for stanza in action.stanzas] for action in actions if isinstance(action, ReportStanzas)]


# --- connecting -------------------------------------------------------------------------------------

def test_start_connects_to_the_first_server_and_the_connection_sends_the_stream_header() -> None:
    upstream = Upstream()
    assert upstream.do(Start()) == [Connect(server=A)]
    assert upstream.machine.next_deadline() == T0 + 3.0
    assert upstream.do(Connected()) == [header_write()]
    assert upstream.machine.next_deadline() == T0 + 10.0


def test_a_refused_connection_tries_the_next_server_and_when_all_fail_the_client_hears_remote_connection_failed(
) -> None:
    upstream = Upstream()
    upstream.do(Start())
    actions = upstream.do(ConnectFailed(reason="Connection refused"))
    assert actions == [ReportServer(server=A, ok=False, reason="Connection refused"), Connect(server=B)]
    actions = upstream.do(ConnectFailed(reason="Connection refused"))
    assert actions == [ReportServer(server=B, ok=False, reason="Connection refused"),
                       ReportClosed(condition=BoshCondition.REMOTE_CONNECTION_FAILED)]
    assert upstream.machine.closed and upstream.machine.next_deadline() is None


def test_a_connect_that_takes_too_long_tries_the_next_server() -> None:
    upstream = Upstream()
    upstream.do(Start())
    assert upstream.wait(2.9) == []
    actions = upstream.wait(0.1)
    assert failed(actions) == [A] and actions[-1] == Connect(server=B)
    assert upstream.machine.next_deadline() == upstream.now + 3.0


def test_a_server_that_closes_before_its_header_is_skipped() -> None:
    upstream = Upstream()
    upstream.connected()
    actions = upstream.do(ConnectionLost())
    assert failed(actions) == [A]
    assert actions[1:] == [Hangup(abort=True), Connect(server=B)]


def test_a_server_that_sends_garbage_is_skipped() -> None:
    upstream = Upstream()
    upstream.connected()
    actions = upstream.server_sends(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert failed(actions) == [A] and actions[-1] == Connect(server=B)


def test_a_server_that_closes_its_stream_during_negotiation_is_skipped() -> None:
    upstream = Upstream()
    upstream.connected()
    assert failed(upstream.server_sends(HEADER % b"x" + b"</stream:stream>")) == [A]


def test_a_server_that_sends_something_else_than_features_is_skipped() -> None:
    upstream = Upstream()
    upstream.connected()
    assert failed(upstream.server_sends(HEADER % b"x" + b"<message xmlns='jabber:client'/>")) == [A]


def test_a_silent_server_times_out_after_the_negotiation_timeout() -> None:
    upstream = Upstream()
    upstream.connected()
    upstream.server_sends(HEADER % b"x")   # the header, but no features: a step still unfinished
    assert upstream.wait(9.9) == []
    actions = upstream.wait(0.1)
    assert actions[0] == ReportServer(server=A, ok=False, reason="negotiation timed out")
    assert actions[1:] == [Hangup(abort=True), Connect(server=B)]


# --- STARTTLS -----------------------------------------------------------------------------------------

def test_starttls_offered_is_taken_and_the_features_over_tls_go_to_the_client() -> None:
    upstream = Upstream()
    upstream.to_tls()
    actions = upstream.server_sends(HEADER % b"s1" + SASL_FEATURES)
    assert actions[:2] == [ReportOpened(stream_id="s1", domain="example.org"), ReportServer(server=A, ok=True)]
    assert tags(actions) == [[qname(NS_STREAM, "features")]]
    assert upstream.machine.ready and upstream.machine.next_deadline() is None


def test_each_negotiation_step_has_its_own_deadline() -> None:
    upstream = Upstream()
    upstream.connected()
    upstream.now += 9
    upstream.server_sends(HEADER % b"plain" + TLS_FEATURES)
    assert upstream.machine.next_deadline() == upstream.now + 10
    upstream.now += 9
    upstream.server_sends(PROCEED)
    assert upstream.machine.next_deadline() == upstream.now + 10   # the TLS handshake
    upstream.now += 9
    upstream.do(TlsEstablished())
    assert upstream.wait(9.9) == []
    assert failed(upstream.wait(0.1)) == [A]


def test_starttls_required_but_not_offered_skips_the_server_and_none_left_is_remote_connection_failed() -> None:
    upstream = Upstream()
    upstream.connected()
    actions = upstream.server_sends(HEADER % b"plain" + SASL_FEATURES)
    assert actions[0] == ReportServer(server=A, ok=False, reason="server does not offer STARTTLS")
    assert actions[1:] == [Hangup(abort=True), Connect(server=B)]
    upstream.do(Connected())
    actions = upstream.server_sends(HEADER % b"plain" + SASL_FEATURES)
    assert failed(actions) == [B]
    assert closed(actions) == [ReportClosed(condition=BoshCondition.REMOTE_CONNECTION_FAILED)]
    assert not [action for action in actions if isinstance(action, ReportOpened | ReportStanzas)]


def test_starttls_optional_and_not_offered_goes_on_in_plain() -> None:
    upstream = Upstream(starttls_required=False)
    upstream.connected()
    actions = upstream.server_sends(HEADER % b"plain" + SASL_FEATURES)
    assert actions[:2] == [ReportOpened(stream_id="plain", domain="example.org"), ReportServer(server=A, ok=True)]
    assert tags(actions) == [[qname(NS_STREAM, "features")]]
    assert upstream.machine.ready


def test_starttls_optional_and_offered_is_still_taken() -> None:
    upstream = Upstream(starttls_required=False)
    upstream.connected()
    assert upstream.server_sends(HEADER % b"plain" + TLS_FEATURES) == [Write(data=STARTTLS)]


def test_failure_to_starttls_skips_the_server() -> None:
    upstream = Upstream(servers=(A,))
    upstream.connected()
    upstream.server_sends(HEADER % b"plain" + TLS_FEATURES)
    actions = upstream.server_sends(FAILURE + b"</stream:stream>")
    assert failed(actions) == [A]
    assert closed(actions) == [ReportClosed(condition=BoshCondition.REMOTE_CONNECTION_FAILED)]


def test_a_failed_tls_handshake_skips_the_server() -> None:
    upstream = Upstream()
    upstream.connected()
    upstream.server_sends(HEADER % b"plain" + TLS_FEATURES)
    upstream.server_sends(PROCEED)
    actions = upstream.do(TlsFailed(reason="certificate verify failed"))
    assert actions[0] == ReportServer(server=A, ok=False, reason="TLS handshake failed: certificate verify failed")
    assert actions[-1] == Connect(server=B)


def test_plaintext_after_proceed_is_not_taken_as_if_it_came_over_tls() -> None:
    upstream = Upstream()
    upstream.connected()
    upstream.server_sends(HEADER % b"plain" + TLS_FEATURES)
    actions = upstream.server_sends(PROCEED + HEADER % b"evil" + SASL_FEATURES)
    assert failed(actions) == [A]
    assert not [action for action in actions if isinstance(action, StartTls | ReportOpened)]


# --- stream errors while negotiating ---------------------------------------------------------------------

def test_a_stream_error_before_tls_skips_the_server() -> None:
    upstream = Upstream()
    upstream.connected()
    actions = upstream.server_sends(HEADER % b"x" + stream_error("system-shutdown"))
    assert actions[0] == ReportServer(server=A, ok=False, reason="stream error during negotiation: system-shutdown")
    assert actions[-1] == Connect(server=B)


def test_a_stream_error_after_tls_skips_the_server_and_none_left_is_remote_connection_failed() -> None:
    upstream = Upstream(servers=(A,))
    upstream.to_tls()
    actions = upstream.server_sends(HEADER % b"s1" + stream_error("resource-constraint"))
    assert failed(actions) == [A]
    assert closed(actions) == [ReportClosed(condition=BoshCondition.REMOTE_CONNECTION_FAILED)]


def test_host_unknown_reaches_the_client_and_no_other_server_is_asked() -> None:
    upstream = Upstream()
    upstream.connected()
    actions = upstream.server_sends(HEADER % b"x" + stream_error("host-unknown"))
    assert actions == [ReportServer(server=A, ok=True), ReportClosed(condition=BoshCondition.HOST_UNKNOWN),
                       Hangup(abort=True)]
    assert upstream.machine.closed


def test_see_other_host_is_not_followed_the_next_configured_server_is_tried() -> None:
    upstream = Upstream()
    upstream.connected()
    actions = upstream.server_sends(HEADER % b"x" + stream_error("see-other-host", b"evil.example:25"))
    assert failed(actions) == [A]
    assert [action for action in actions if isinstance(action, Connect)] == [Connect(server=B)]


# --- the client's payloads ---------------------------------------------------------------------------------

def test_client_payloads_sent_before_the_stream_is_ready_are_written_in_order_right_after_the_features() -> None:
    upstream = Upstream()
    upstream.do(Start())
    assert upstream.do(ClientStanzas(stanzas=(message("one"),))) == []
    upstream.do(ConnectFailed(reason="refused"))     # queued payloads survive a change of server
    upstream.do(Connected())
    assert upstream.do(ClientStanzas(stanzas=(message("two"), message("three")))) == []
    upstream.server_sends(HEADER % b"plain" + TLS_FEATURES)
    upstream.server_sends(PROCEED)
    upstream.do(TlsEstablished())
    actions = upstream.server_sends(HEADER % b"s1" + SASL_FEATURES)
    assert isinstance(actions[-2], ReportStanzas)   # the client sees the features first
    written = actions[-1]
    assert isinstance(written, Write)
    bodies = [stanza.findtext("{jabber:client}body") for stanza in etree.fromstring(b"<w>" + written.data + b"</w>")]
    assert bodies == ["one", "two", "three"]
    assert upstream.do(ClientStanzas(stanzas=(message("four"),))) == [
        Write(data=b'<message xmlns="jabber:client" to="bob@example.org"><body>four</body></message>')]


def test_a_client_whose_payloads_waiting_for_the_stream_pass_the_backlog_limit_hears_policy_violation() -> None:
    upstream = Upstream(max_backlog_bytes=1_000)
    upstream.connected()
    stanza = message("x" * 300)
    assert upstream.do(ClientStanzas(stanzas=(stanza, stanza))) == []   # about 700 bytes wait
    actions = upstream.do(ClientStanzas(stanzas=(stanza,)))
    assert actions == [ReportClosed(condition=BoshCondition.POLICY_VIOLATION), Hangup(abort=True)]
    assert upstream.machine.closed
    assert upstream.server_sends(HEADER % b"late" + TLS_FEATURES) == []   # nothing more for anyone


def test_a_write_buffer_beyond_the_backlog_limit_ends_the_session_with_policy_violation() -> None:
    upstream = Upstream(max_backlog_bytes=1_000)
    upstream.ready()
    assert upstream.do(Backlog(size_bytes=1_000)) == []   # at the limit: the server may still catch up
    assert upstream.do(Backlog(size_bytes=1_001)) == [ReportClosed(condition=BoshCondition.POLICY_VIOLATION),
                                                      Hangup(abort=True)]
    assert upstream.do(Backlog(size_bytes=5_000)) == []   # closed already


def test_a_restart_sends_a_new_header_and_the_new_stream_is_announced() -> None:
    upstream = Upstream()
    upstream.ready()
    upstream.do(ClientStanzas(stanzas=(etree.fromstring(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYQ==</auth>"),)))
    assert tags(upstream.server_sends(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")) == [
        ["{urn:ietf:params:xml:ns:xmpp-sasl}success"]]
    assert upstream.do(ClientRestart()) == [header_write()]
    # A fresh parser: a second header on one parser would be a parse error.
    actions = upstream.server_sends(HEADER % b"s2" + SASL_FEATURES)
    assert actions[0] == ReportOpened(stream_id="s2", domain="example.org")
    assert tags(actions) == [[qname(NS_STREAM, "features")]]


# --- the relay ----------------------------------------------------------------------------------------------

def test_stanzas_of_one_read_reach_the_client_together_and_a_split_stanza_waits_for_its_end() -> None:
    upstream = Upstream()
    upstream.ready()
    actions = upstream.server_sends(b"<message xmlns='jabber:client'><body>1</body></message>"
                                    b"<presence xmlns='jabber:client'/><message xmlns='jabber:client'><bo")
    assert tags(actions) == [["{jabber:client}message", "{jabber:client}presence"]]
    assert tags(upstream.server_sends(b"dy>3</body></message>")) == [["{jabber:client}message"]]


def test_a_stream_error_in_the_relay_reaches_the_client_as_remote_stream_error_with_the_error() -> None:
    upstream = Upstream()
    upstream.ready()
    actions = upstream.server_sends(b"<message xmlns='jabber:client'/>" + stream_error("conflict"))
    assert tags(actions) == [["{jabber:client}message"]]
    [report] = closed(actions)
    assert report.condition is BoshCondition.REMOTE_STREAM_ERROR
    assert report.stanzas[0].find("{urn:ietf:params:xml:ns:xmpp-streams}conflict") is not None
    assert actions[-1] == Hangup(abort=True)


def test_the_server_closing_its_stream_is_a_clean_end() -> None:
    upstream = Upstream()
    upstream.ready()
    assert upstream.server_sends(b"</stream:stream>") == [ReportClosed(condition=None), Hangup(abort=True)]


def test_the_server_dropping_the_connection_is_remote_connection_failed() -> None:
    upstream = Upstream()
    upstream.ready()
    assert upstream.do(ConnectionLost()) == [ReportClosed(condition=BoshCondition.REMOTE_CONNECTION_FAILED),
                                             Hangup(abort=True)]


def test_garbage_in_the_relay_is_remote_connection_failed_after_what_came_before_it() -> None:
    upstream = Upstream()
    upstream.ready()
    actions = upstream.server_sends(b"<presence xmlns='jabber:client'/><a><b></a>")
    assert tags(actions) == [["{jabber:client}presence"]]
    assert closed(actions) == [ReportClosed(condition=BoshCondition.REMOTE_CONNECTION_FAILED)]


# --- closing ------------------------------------------------------------------------------------------------

def test_the_clients_close_sends_the_closing_tag_and_then_closes_gracefully() -> None:
    upstream = Upstream()
    upstream.ready()
    assert upstream.do(ClientClosed(clean=True)) == [Write(data=STREAM_CLOSE), Hangup(abort=False)]
    assert upstream.machine.closed
    assert upstream.server_sends(b"</stream:stream>") == []   # nobody to tell any more
    assert upstream.do(ClientStanzas(stanzas=(message("late"),))) == []


def test_a_lost_session_drops_the_connection_without_a_closing_tag_so_the_server_can_resume_it() -> None:
    upstream = Upstream()
    upstream.ready()
    assert upstream.do(ClientClosed(clean=False)) == [Hangup(abort=True)]
    assert upstream.do(ConnectionLost()) == []


def test_a_close_during_negotiation_stops_it_and_the_client_hears_nothing_more() -> None:
    upstream = Upstream()
    upstream.connected()
    assert upstream.do(ClientClosed(clean=True)) == [Write(data=STREAM_CLOSE), Hangup(abort=False)]
    assert upstream.server_sends(HEADER % b"x" + TLS_FEATURES) == []
    assert upstream.wait(60) == []


def test_a_connection_that_comes_up_after_the_close_is_dropped() -> None:
    upstream = Upstream()
    upstream.do(Start())
    assert upstream.do(ClientClosed(clean=False)) == []
    assert upstream.do(Connected()) == [Hangup(abort=True)]
    assert upstream.do(ConnectFailed(reason="late")) == []


def test_an_empty_server_list_is_refused() -> None:
    with pytest.raises(ValueError, match="no upstream server"):
        Upstream(servers=())


# --- the adapter, over loopback sockets ------------------------------------------------------------------

class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.changed = asyncio.Event()

    def upstream_opened(self, stream_id: str, domain: str) -> None:
        self._add("opened", stream_id)

    def upstream_stanzas(self, stanzas: tuple[Element, ...]) -> None:
        self._add("stanzas", [etree.QName(stanza).localname for stanza in stanzas])

    def upstream_closed(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> None:
        self._add("closed", condition)

    def _add(self, kind: str, value: object) -> None:
        self.events.append((kind, value))
        self.changed.set()

    async def until(self, count: int) -> list[tuple[str, object]]:
        async with asyncio.timeout(5):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.events


class PlainServer:
    """A scripted XMPP server without STARTTLS: answers the header with its own and features, records the rest."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.ended = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while data := await reader.read(65_536):
            if not self.received:
                writer.write(HEADER % b"plain" + SASL_FEATURES)
            self.received += data
        self.ended.set()
        writer.close()


@contextlib.asynccontextmanager
async def plain_server() -> AsyncIterator[tuple[PlainServer, int]]:
    script = PlainServer()
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    try:
        yield script, server.sockets[0].getsockname()[1]
    finally:
        for writer in script.writers:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def offboard_link(listener: Listener, servers: Sequence[Address], tasks: set[asyncio.Task[None]],
                  reports: list[tuple[Address, bool]]) -> OffboardLink:
    return OffboardLink(listener, to="example.org", lang=None, servers=servers, starttls_required=False,
                        tls_context=ssl.create_default_context(), tasks=tasks, max_stanza_bytes=65_536, max_depth=32,
                        connect_timeout_seconds=2.0, report=lambda server, ok: reports.append((server, ok)))


async def test_the_link_skips_a_dead_server_and_writes_early_payloads_after_the_features_then_closes_cleanly(
) -> None:
    listener, tasks, reports = Listener(), set[asyncio.Task[None]](), list[tuple[Address, bool]]()
    async with plain_server() as (script, port):
        dead = ("127.0.0.1", closed_port())
        link = offboard_link(listener, (dead, ("127.0.0.1", port)), tasks, reports)
        link.open()
        link.forward((message("early"),))
        assert await listener.until(2) == [("opened", "plain"), ("stanzas", ["features"])]
        assert reports == [(dead, False), (("127.0.0.1", port), True)]
        link.forward((message("later"),))
        link.close(by_client=True)
        async with asyncio.timeout(5):
            await script.ended.wait()
        sent = bytes(script.received)
        assert sent.index(b"<body>early</body>") < sent.index(b"<body>later</body>")
        assert sent.endswith(STREAM_CLOSE)
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)
    assert listener.events == [("opened", "plain"), ("stanzas", ["features"])]   # nothing after the close


async def test_a_dropped_link_leaves_without_a_closing_tag() -> None:
    listener, tasks, reports = Listener(), set[asyncio.Task[None]](), list[tuple[Address, bool]]()
    async with plain_server() as (script, port):
        link = offboard_link(listener, (("127.0.0.1", port),), tasks, reports)
        link.open()
        await listener.until(2)
        link.forward((message("hi"),))
        await asyncio.sleep(0.05)
        link.close()
        async with asyncio.timeout(5):
            await script.ended.wait()
        assert b"<body>hi</body>" in script.received
        assert STREAM_CLOSE not in script.received


async def test_the_server_ending_its_stream_reaches_the_listener_and_ends_the_task() -> None:
    listener, tasks, reports = Listener(), set[asyncio.Task[None]](), list[tuple[Address, bool]]()
    async with plain_server() as (script, port):
        link = offboard_link(listener, (("127.0.0.1", port),), tasks, reports)
        link.open()
        await listener.until(2)
        script.writers[0].write(b"<message xmlns='jabber:client'/></stream:stream>")
        assert (await listener.until(4))[2:] == [("stanzas", ["message"]), ("closed", None)]
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)


async def test_no_server_reachable_is_remote_connection_failed() -> None:
    listener, tasks, reports = Listener(), set[asyncio.Task[None]](), list[tuple[Address, bool]]()
    dead = ("127.0.0.1", closed_port())
    link = offboard_link(listener, (dead,), tasks, reports)
    link.open()
    assert await listener.until(1) == [("closed", BoshCondition.REMOTE_CONNECTION_FAILED)]
    assert reports == [(dead, False)]
