"""The off-board link's stream towards an upstream XMPP server, as a pure machine.

Theory of operation. `OffboardNegotiation` owns one client stream that boshcm opens, on behalf of a BOSH
session or a WebSocket relay, to the first of `upstream.server` that gives one: connect, send the stream
header, read the features, do STARTTLS when offered (or fail when it is required and not offered), open the
stream again over TLS, and then hand the features to the client. From there on it is a relay: SASL, the
restart, binding and every stanza are the client's, passed through both ways (XEP-0206 §2).

Facts in: the adapter's connect and TLS results, the bytes read (the machine owns the stream parser, because
when to reset it is protocol: RFC 6120 §4.3.3), the client's stanzas, restart and close, and `now`. Orders out:
connect, write, start TLS, hang up (abort, or close after a clean `</stream:stream>`), and reports for the
listener (opened, stanzas, closed with a XEP-0124 condition) and for the server table (this server worked or
failed, with the reason the adapter logs).

A server that fails before the stream is ready (refused, timed out, closed, garbage, a stream error, no
STARTTLS when it is required, `<failure/>` to STARTTLS, a failed handshake) is reported and the next one is
tried; when none is left the listener hears `remote-connection-failed`. One exception: a `host-unknown`
stream error says the domain is not served there, which the client must hear (XEP-0124 §17.2), and the next
server of the same service would say the same. A `see-other-host` is not followed: `upstream.server` is the
operator's list of where boshcm may connect, and an upstream must not widen it.

What the client sends before the stream is ready waits, in order, and is written right after the features.
Once the client has closed (or the link was dropped), the listener hears nothing more.

Memory stays bounded: what the client has sent and the server has not taken yet — waiting here before the
stream is ready, or in the adapter's write buffer afterwards (it reports `Backlog`) — may be at most
`max_backlog_bytes`; beyond that the session ends with `policy-violation`. A client that posts faster than the
server reads (a server still negotiating, or one that throttles, as ejabberd's c2s shaper does) would otherwise
make boshcm hold what it sends without limit.

This file must not know about sockets, asyncio, TLS contexts, logging or the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, auto

from lxml import etree

from boshcm.cluster import Address
from boshcm.errors import BoshCondition
from boshcm.stanza import NS_STREAM, NS_STREAMS_ERR, NS_TLS, Element, element, qname
from boshcm.xml.parser import StanzaReceived, StreamClosed, StreamOpened, StreamParseError, StreamParser
from boshcm.xml.writer import STREAM_CLOSE, serialize, stream_header

# Each step of the upstream's stream opening and STARTTLS (the TCP connect has its own timeout).
NEGOTIATION_TIMEOUT_SECONDS = 10.0

_FEATURES = qname(NS_STREAM, "features")
_ERROR = qname(NS_STREAM, "error")


# --- events (facts) ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """The BOSH session or WebSocket wants its upstream stream."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """The TCP connection ordered by the last `Connect` is up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectFailed:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsEstablished:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFailed:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BytesReceived:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLost:
    """The server closed the TCP connection (end of file) or it broke."""

    reason: str = "server dropped the connection"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientStanzas:
    stanzas: tuple[Element, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backlog:
    """After a write: bytes written but not yet taken by the server's TCP stack (the adapter's write buffer)."""

    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRestart:
    """XEP-0206 §5 / RFC 7395 §3.7: after SASL success the client asks for a new stream."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientClosed:
    """`clean`: the client ended its session (a `</stream:stream>` goes up). Otherwise the session was lost
    (inactivity, a node draining): the connection is dropped without a closing tag, so the server keeps a
    XEP-0198 stream resumable (a clean close would end it)."""

    clean: bool


OffboardEvent = (Start | Connected | ConnectFailed | TlsEstablished | TlsFailed | BytesReceived | ConnectionLost
                 | ClientStanzas | Backlog | ClientRestart | ClientClosed)


# --- actions (orders) -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    server: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTls:
    server_hostname: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup:
    """Close the connection: `abort` drops it at once; otherwise what was written is sent first."""

    abort: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportServer:
    """For the server table (cluster.py): failed servers are tried last for a while. `reason` is for the log."""

    server: Address
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportOpened:
    stream_id: str
    domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportStanzas:
    stanzas: tuple[Element, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportClosed:
    condition: BoshCondition | None
    stanzas: tuple[Element, ...] = ()


OffboardAction = Connect | Write | StartTls | Hangup | ReportServer | ReportOpened | ReportStanzas | ReportClosed


class _State(Enum):
    IDLE = auto()
    CONNECTING = auto()
    AWAIT_FEATURES = auto()       # our header is sent; the server's header and features are due
    AWAIT_PROCEED = auto()        # <starttls/> is sent
    TLS_HANDSHAKE = auto()
    AWAIT_TLS_FEATURES = auto()   # the header again, over TLS
    RELAYING = auto()
    CLOSED = auto()


class _ServerFailed(Exception):
    """This server gave no stream; internal to the machine, never escapes `handle`."""


class OffboardNegotiation:
    """One upstream stream: negotiation up to the client's features, then a relay (see the module docstring)."""

    def __init__(self, *, to: str, lang: str | None, servers: Sequence[Address], starttls_required: bool,
                 max_stanza_bytes: int, max_depth: int, max_backlog_bytes: int = 1_048_576,
                 connect_timeout_seconds: float = 10.0,
                 negotiation_timeout_seconds: float = NEGOTIATION_TIMEOUT_SECONDS) -> None:
        if not servers:
            raise ValueError("no upstream server")
        self._servers = tuple(servers)   # tried in this order, each once, until one gives a stream
        self._index = 0
        self._domain = to
        self._lang = lang or "en"
        self._starttls_required = starttls_required
        self._connect_timeout_seconds = connect_timeout_seconds
        self._negotiation_timeout_seconds = negotiation_timeout_seconds
        self._parser = StreamParser(max_stanza_bytes=max_stanza_bytes, max_depth=max_depth)
        self._state = _State.IDLE
        self._connected = False
        self._deadline: float | None = None
        self._opened: StreamOpened | None = None   # the server's header, announced with the features
        self._outbox: list[bytes] = []             # the client's bytes that arrive before the stream is ready
        self._outbox_bytes = 0
        self._max_backlog_bytes = max_backlog_bytes

    @property
    def server(self) -> Address:
        """The server being tried, or the one relayed to."""
        return self._servers[self._index]

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def ready(self) -> bool:
        return self._state is _State.RELAYING

    def next_deadline(self) -> float | None:
        return self._deadline

    # --- the one entry point ----------------------------------------------------------------------

    def handle(self, event: OffboardEvent, now: float) -> list[OffboardAction]:
        match event:
            case ClientStanzas(stanzas=stanzas):
                return self._send([serialize(stanza) for stanza in stanzas])
            case Backlog(size_bytes=size) if size > self._max_backlog_bytes and self._state is not _State.CLOSED:
                return self._end(BoshCondition.POLICY_VIOLATION)
            case Backlog():
                return []
            case ClientRestart():
                return self._on_client_restart()
            case ClientClosed(clean=clean):
                return self._on_client_closed(clean)
        if self._state is _State.CLOSED:
            # Too late for anyone to hear: only a connection that comes up after all is dropped.
            return [Hangup(abort=True)] if isinstance(event, Connected) else []
        try:
            match event:
                case Start() if self._state is _State.IDLE:
                    return self._connect(now)
                case Connected() if self._state is _State.CONNECTING:
                    self._connected = True
                    return self._open_stream(now)
                case ConnectFailed(reason=reason) if self._state is _State.CONNECTING:
                    raise _ServerFailed(reason)
                case TlsEstablished() if self._state is _State.TLS_HANDSHAKE:
                    # RFC 6120 §5.4.3.3: both sides start a new stream over TLS, with a fresh parser.
                    return self._open_stream(now, state=_State.AWAIT_TLS_FEATURES)
                case TlsFailed(reason=reason) if self._state is _State.TLS_HANDSHAKE:
                    raise _ServerFailed(f"TLS handshake failed: {reason}")
                case BytesReceived(data=data) if self._connected:
                    return self._on_bytes(data, now)
                case ConnectionLost(reason=reason) if self._connected:
                    if self._state is _State.RELAYING:
                        return self._end(BoshCondition.REMOTE_CONNECTION_FAILED)
                    raise _ServerFailed(f"server closed the connection during negotiation ({reason})")
        except _ServerFailed as failure:
            return self._next_server(str(failure), now)
        return []

    def handle_timeout(self, now: float) -> list[OffboardAction]:
        if self._deadline is None or now < self._deadline or self._state is _State.CLOSED:
            return []
        step = "connect" if self._state is _State.CONNECTING else "negotiation"
        return self._next_server(f"{step} timed out", now)

    # --- the client's side ------------------------------------------------------------------------

    def _header(self) -> bytes:
        return stream_header(attrs={"to": self._domain, "version": "1.0", "xml:lang": self._lang})

    def _send(self, data: list[bytes]) -> list[OffboardAction]:
        if self._state is _State.RELAYING:
            return [Write(data=b"".join(data))] if data else []
        if self._state is not _State.CLOSED:
            self._outbox.extend(data)
            self._outbox_bytes += sum(map(len, data))
            if self._outbox_bytes > self._max_backlog_bytes:
                return self._end(BoshCondition.POLICY_VIOLATION)
        return []

    def _on_client_restart(self) -> list[OffboardAction]:
        if self._state is _State.RELAYING:
            # XEP-0206 §5: the server answers our new header with a new stream: a new parser for it.
            self._parser.reset()
        return self._send([self._header()])

    def _on_client_closed(self, clean: bool) -> list[OffboardAction]:
        if self._state is _State.CLOSED:
            return []
        self._state, self._deadline = _State.CLOSED, None
        if not self._connected:
            return []   # connecting, or not started: a connection that comes up later is dropped
        if clean:
            return [Write(data=STREAM_CLOSE), Hangup(abort=False)]
        return [Hangup(abort=True)]

    # --- the server's side ------------------------------------------------------------------------

    def _connect(self, now: float) -> list[OffboardAction]:
        self._state, self._connected = _State.CONNECTING, False
        self._deadline = now + self._connect_timeout_seconds
        self._parser.reset()
        self._opened = None
        return [Connect(server=self.server)]

    def _open_stream(self, now: float, state: _State = _State.AWAIT_FEATURES) -> list[OffboardAction]:
        self._state, self._deadline = state, now + self._negotiation_timeout_seconds
        self._parser.reset()
        self._opened = None
        return [Write(data=self._header())]

    def _on_bytes(self, data: bytes, now: float) -> list[OffboardAction]:
        actions: list[OffboardAction] = []
        stanzas: list[Element] = []
        for parsed in self._parser.feed(data):
            if self._state is _State.CLOSED:
                break
            if self._state is _State.TLS_HANDSHAKE:
                # Plaintext after <proceed/> would be taken as if it came over TLS (STARTTLS command injection).
                raise _ServerFailed("server sent data after <proceed/>")
            if self._state is not _State.RELAYING:
                actions += self._negotiate(parsed, now)
                continue
            match parsed:
                case StreamOpened(attrs=attrs):
                    # A restarted stream (after SASL): WebSocket clients see a fresh <open/>.
                    actions += self._flush(stanzas)
                    actions.append(ReportOpened(stream_id=attrs.get("id", ""),
                                                domain=attrs.get("from", self._domain)))
                case StanzaReceived(element=received) if received.tag == _ERROR:
                    # XEP-0206 §6: the stream error reaches the client inside a remote-stream-error terminate.
                    return actions + self._flush(stanzas) + self._end(BoshCondition.REMOTE_STREAM_ERROR,
                                                                       (received,))
                case StanzaReceived(element=received):
                    stanzas.append(received)
                case StreamClosed():
                    return actions + self._flush(stanzas) + self._end(None)
                case StreamParseError():
                    return actions + self._flush(stanzas) + self._end(BoshCondition.REMOTE_CONNECTION_FAILED)
        return actions + self._flush(stanzas)

    def _negotiate(self, parsed: StreamOpened | StanzaReceived | StreamClosed | StreamParseError,
                   now: float) -> list[OffboardAction]:
        match parsed:
            case StreamOpened():
                self._opened = parsed
                return []
            case StanzaReceived(element=received) if received.tag == _ERROR:
                if received.find(qname(NS_STREAMS_ERR, "host-unknown")) is not None:
                    # The domain is not served there (nor, then, by the other servers of the same service).
                    return [ReportServer(server=self.server, ok=True), *self._end(BoshCondition.HOST_UNKNOWN)]
                raise _ServerFailed(f"stream error during negotiation: {_error_name(received)}")
            case StanzaReceived(element=received) if self._state in (_State.AWAIT_FEATURES,
                                                                      _State.AWAIT_TLS_FEATURES):
                if received.tag != _FEATURES:
                    raise _ServerFailed(f"expected stream features, got {received.tag!r}")
                return self._on_features(received, now)
            case StanzaReceived(element=received):   # AWAIT_PROCEED
                if received.tag != qname(NS_TLS, "proceed"):
                    # RFC 6120 §5.4.2.2: <failure/>, after which the server closes the stream.
                    raise _ServerFailed(f"STARTTLS refused ({received.tag!r})")
                self._state, self._deadline = _State.TLS_HANDSHAKE, now + self._negotiation_timeout_seconds
                return [StartTls(server_hostname=self._domain)]
            case StreamClosed():
                raise _ServerFailed("server closed the stream during negotiation")
            case StreamParseError(text=text):
                raise _ServerFailed(f"server sent bad XML during negotiation: {text}")
        raise AssertionError(f"unknown parser event {parsed!r}")

    def _on_features(self, features: Element, now: float) -> list[OffboardAction]:
        if self._state is _State.AWAIT_FEATURES:
            if features.find(qname(NS_TLS, "starttls")) is not None:
                # Offered: always taken, whether or not boshcm requires it.
                self._state, self._deadline = _State.AWAIT_PROCEED, now + self._negotiation_timeout_seconds
                return [Write(data=serialize(element(NS_TLS, "starttls")))]
            if self._starttls_required:
                raise _ServerFailed("server does not offer STARTTLS")
        self._state, self._deadline = _State.RELAYING, None
        actions: list[OffboardAction] = []
        if self._opened is not None:
            attrs = self._opened.attrs
            actions.append(ReportOpened(stream_id=attrs.get("id", ""), domain=attrs.get("from", self._domain)))
        actions += [ReportServer(server=self.server, ok=True), ReportStanzas(stanzas=(features,))]
        if self._outbox:
            actions.append(Write(data=b"".join(self._outbox)))
            self._outbox.clear()
            self._outbox_bytes = 0
        return actions

    def _next_server(self, reason: str, now: float) -> list[OffboardAction]:
        actions: list[OffboardAction] = [ReportServer(server=self.server, ok=False, reason=reason)]
        if self._connected:
            actions.append(Hangup(abort=True))
            self._connected = False
        if self._index + 1 < len(self._servers):
            self._index += 1
            return actions + self._connect(now)
        return actions + self._end(BoshCondition.REMOTE_CONNECTION_FAILED)

    def _end(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> list[OffboardAction]:
        # Never a clean `</stream:stream>` here: the server ended the stream, or broke it.
        actions: list[OffboardAction] = [Hangup(abort=True)] if self._connected else []
        self._state, self._deadline, self._connected = _State.CLOSED, None, False
        self._outbox.clear()
        self._outbox_bytes = 0
        return [ReportClosed(condition=condition, stanzas=stanzas), *actions]

    @staticmethod
    def _flush(stanzas: list[Element]) -> list[OffboardAction]:
        if not stanzas:
            return []
        flushed = tuple(stanzas)
        stanzas.clear()
        return [ReportStanzas(stanzas=flushed)]


def _error_name(error: Element) -> str:
    """RFC 6120 §4.9.3: the condition is the error's child in the streams namespace (besides <text/>)."""
    for child in error:
        name = etree.QName(child)
        if name.namespace == NS_STREAMS_ERR and name.localname != "text":
            return name.localname
    return "no condition"
