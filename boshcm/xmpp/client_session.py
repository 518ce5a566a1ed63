"""The client-session core: one XMPP client stream from open to close, for every transport.

Theory of operation. A `ClientSession` is a pure machine. Its adapter (xmpp/session_adapter.py, the same
for every transport: TCP in xmpp/c2s.py, BOSH in bosh/onboard.py, WebSocket in websocket.py) turns the
transport's framing into four facts — a stream was opened (`StreamStarted`), a top-level element arrived
(`ElementReceived`), TLS is now up (`TlsEstablished`), the peer is gone (`TransportClosed`) — and performs the
orders that come back: open a stream (`OpenStream`, formatted as a TCP header, a BOSH session-creation body or
a WebSocket `<open/>`), send an element, switch to TLS, close with or without a stream error. Router orders
(`Deliver`, `Disconnect`) pass through for the hub; `Bound` tells the adapter to register itself under its JID.

Negotiation follows RFC 6120 §4-§7 in this order: [STARTTLS] -> SASL -> restart -> bind (+ the legacy
session iq), after which stanzas go to the router, stamped with the bound JID. Everything the client may
do wrong at each step ends in the RFC's stream error, which closes only this stream.

Stream management (XEP-0198, xmpp/stream_management.py) is offered after authentication: once enabled,
stanzas are counted both ways and those sent wait in the unacked queue until the client acknowledges them.
A resumable session whose transport is lost is not ended but *detached* (`Detach`): it stays bound, keeps its
presence and rooms, and queues what arrives, until a `<resume/>` on any transport (the ids live in
xmpp/resumption.py) takes it over or its time runs out (`ResumptionExpired`). A session that ends without
resumption hands its unacknowledged stanzas to the router (RFC 6121 §8.5: redelivered, stored or bounced).
Guests resume too: another anonymous login presents the id, takes back the guest's name and drops its own.

PLAIN's key derivation (PBKDF2) is slow on purpose, so it is an order too: `DeriveKey` carries the work, the
session waits (what the client sends meanwhile is held, in order, and handled after the answer) until the
adapter, having run it in a thread pool, reports `KeyDerived`. A session that closed or timed out meanwhile
ignores the late result.

Logins are throttled per account and per address (xmpp/throttle.py): the decision is taken as soon as SASL
names the username, before any challenge or password check, and again when a derived key is about to be
compared, so that guesses run in parallel stop being evaluated once the first failures set a delay. Bound
stanzas pass a token bucket; over the rate they are refused with a `policy-violation` stanza error, and a
session that keeps flooding is closed.

In-band registration (XEP-0077, xmpp/registration.py decides): before authentication where PLAIN would be
offered, and for the account's own password or removal once bound. Its secrets are derived by `DeriveKey`
orders like PLAIN's, one hash after the other, with the client's next words held meanwhile.

This file must not know about sockets, framing, asyncio or the clock; time arrives as `now`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Protocol

from lxml import etree

from boshcm.errors import StanzaErrorCondition, StanzaErrorType, StreamErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_BIND,
    NS_CLIENT,
    NS_SASL,
    NS_SESSION,
    NS_STREAM,
    NS_TLS,
    NS_XML,
    STANZA_TAGS,
    Element,
    element,
    error_reply,
    first_child,
    iq_result,
    local_name,
    namespace_of,
    qname,
    stream_error_element,
    sub,
)
from boshcm.xmpp import registration
from boshcm.xmpp.accounts import KeyDerivation, ScramCredentials
from boshcm.xmpp.csi import DEFAULT_MAX_HELD, NS_CSI, ClientState
from boshcm.xmpp.registration import ChangePassword, Create, Registrations, Remove, Reply
from boshcm.xmpp.resumption import ResumptionTable
from boshcm.xmpp.router import Deliver, Disconnect, RouterAction
from boshcm.xmpp.sasl import (
    CredentialSource,
    SaslChallenge,
    SaslCondition,
    SaslExchange,
    SaslFailure,
    SaslKeyNeeded,
    SaslResult,
    SaslSuccess,
    decode_sasl_payload,
    encode_sasl_payload,
    offered_mechanisms,
)
from boshcm.xmpp.stream_management import (
    NS_SM,
    SmLimits,
    StreamManagement,
    ack_element,
    enabled_element,
    failed_element,
    handled_count_too_high,
    parse_h,
    request_element,
    resumed_element,
    sm_feature,
)
from boshcm.xmpp.throttle import AuthThrottle, TokenBucket

# RFC 6120 §6.4.5: allow a reasonable number of retries (at least 2, at most 5) before closing.
MAX_SASL_ATTEMPTS_PER_STREAM = 3
# Elements a client may send while its password is being checked; they are handled after the answer.
MAX_HELD_WHILE_DERIVING = 16


class Router(Protocol):
    """What the session needs of xmpp/router.py."""

    def bind(self, jid: JID, now: float) -> list[RouterAction]: ...
    def unbind(self, jid: JID, now: float) -> list[RouterAction]: ...
    def is_bound(self, jid: JID) -> bool: ...
    def handle_stanza(self, sender: JID, stanza: Element, now: float) -> list[RouterAction]: ...
    def take_over_unacked(self, jid: JID, stanzas: list[Element], now: float) -> list[RouterAction]: ...


# --- events (facts) -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStarted:
    """The client opened (or restarted) its stream; attributes as sent."""

    to: str | None
    from_: str | None = None
    version: str | None = "1.0"
    lang: str | None = None
    # RFC 6120 §4.8: stream namespace and content namespace as declared; TCP only checks these.
    namespace_ok: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ElementReceived:
    element: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsEstablished:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded:
    """The client closed its stream cleanly (</stream:stream>, <close/>, BOSH terminate)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerError:
    """The transport found the client's input unacceptable (parser, framing)."""

    condition: StreamErrorCondition
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportClosed:
    """The connection is gone; nothing more can be sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Replaced:
    """Another session bound the same full JID (RFC 6120 §7.7.2.2): leave without unbinding it."""

    condition: StreamErrorCondition = StreamErrorCondition.CONFLICT


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    condition: StreamErrorCondition = StreamErrorCondition.SYSTEM_SHUTDOWN


@dataclass(frozen=True, slots=True, kw_only=True)
class StanzaForClient:
    """The router delivers a stanza to this session (through the hub)."""

    stanza: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumptionExpired:
    """A detached session was not resumed in time (XEP-0198 §5)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyDerived:
    """The key a `DeriveKey` order asked for; `request` says which order."""

    request: int
    key: ScramCredentials = field(repr=False)


SessionEvent = (StreamStarted | ElementReceived | TlsEstablished | StreamEnded | PeerError | TransportClosed
                | Replaced | Shutdown | StanzaForClient | ResumptionExpired | KeyDerived)


# --- actions (orders) -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class OpenStream:
    """Answer the client's stream header (RFC 6120 §4.7)."""

    attrs: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendElement:
    element: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTls:
    """Switch the transport to TLS now; the <proceed/> has been sent. Reply with TlsEstablished."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectRestart:
    """RFC 6120 §4.3.3: the next thing from the client is a fresh stream header (reset the parser)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    jid: JID


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseStream:
    """Close the stream, after a stream error when `condition` is set; then close the transport."""

    condition: StreamErrorCondition | None
    text: str = ""
    detail: Element | None = None  # an application-specific condition inside the stream error


@dataclass(frozen=True, slots=True, kw_only=True)
class Detach:
    """The transport is gone but the session waits for a resumption: hand it to the hub (`Hub.park`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeriveKey:
    """Run `work` off the event loop (it is slow on purpose) and answer `KeyDerived(request=request, ...)`."""

    request: int
    work: KeyDerivation


SessionAction = (OpenStream | SendElement | StartTls | ExpectRestart | Bound | CloseStream | Detach | DeriveKey
                 | Deliver | Disconnect)


class TlsPolicy(Enum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    domain: str
    tls_policy: TlsPolicy = TlsPolicy.REQUIRED
    allow_plain_without_tls: bool = False
    anonymous: bool = False  # offer SASL ANONYMOUS over TCP
    anonymous_web: bool = False  # ... over BOSH and WebSocket (browser guests)
    negotiation_timeout_seconds: float = 60.0
    # Bound stanzas per session: a token bucket; guests (SASL ANONYMOUS) have their own, usually lower.
    stanza_rate_per_second: float = 50.0
    stanza_burst: int = 200
    guest_stanza_rate_per_second: float = 10.0
    guest_stanza_burst: int = 100
    # Refusals without the bucket ever refilling, after which the session is closed (policy-violation).
    stanza_flood_refusals: int = 2000
    # Accounts not rate-limited: the embedded quiz bot speaks for whole rooms.
    stanza_rate_exempt: frozenset[str] = frozenset()
    stream_management: SmLimits = field(default_factory=SmLimits)
    # XEP-0352: senders whose presence or chat state an inactive client's session holds at most.
    csi_max_held: int = DEFAULT_MAX_HELD


@dataclass(slots=True, kw_only=True)
class _Registering:
    """A registration or password change waiting for its secrets, one hash after the other."""

    stanza: Element
    decision: Create | ChangePassword
    pending: list[tuple[str, KeyDerivation]]
    derived: list[ScramCredentials] = field(default_factory=list)


class _BadEncoding:
    """Marks base64 that does not decode (RFC 6120 §6.4.2 incorrect-encoding)."""


_BAD_ENCODING = _BadEncoding()


class _State(Enum):
    AWAIT_OPEN = auto()       # before the (first or restarted) stream header
    PRE_AUTH = auto()         # features sent; STARTTLS or SASL expected
    AWAIT_TLS = auto()        # <proceed/> sent; the transport is switching
    AUTHENTICATED = auto()    # SASL done, bind expected
    BOUND = auto()            # stanzas routed
    DETACHED = auto()         # XEP-0198: transport lost, still bound, waiting for a resumption
    CLOSED = auto()


@dataclass(frozen=True, slots=True)
class Transport:
    """What the adapter knows about its connection."""

    secure: bool              # already encrypted (TLS, HTTPS) or trusted loopback
    can_starttls: bool        # TCP with a certificate; never for BOSH/WebSocket
    remote_address: str
    web: bool = False         # carried over HTTP (BOSH or WebSocket): a browser
    # Advertise XEP-0198 in the features. BOSH does not: StanzaJS 12's BOSH transport, offered <sm/>, waits for
    # an <enabled/> it never asks for and then never disconnects (as Prosody, which offers no SM over BOSH).
    # <enable/> and <resume/> are still accepted there, so a page may resume its WebSocket session over BOSH.
    advertises_stream_management: bool = True


class ClientSession:
    # One per connected client: no per-instance dict.
    __slots__ = ("_accounts", "_anonymous", "_bucket", "_csi", "_derivations", "_deriving", "_guests", "_held",
                 "_id_factory", "_jid", "_negotiation_deadline", "_registering", "_registrations",
                 "_resource_factory", "_resumptions", "_router", "_sasl", "_sasl_failures", "_secure", "_settings",
                 "_sm", "_sm_id_factory", "_state", "_throttle", "_transport", "_username", "stream_id")

    def __init__(self, *, settings: SessionSettings, transport: Transport, router: Router,
                 accounts: CredentialSource, throttle: AuthThrottle, now: float, guests: set[str] | None = None,
                 resumptions: ResumptionTable[ClientSession] | None = None,
                 registrations: Registrations | None = None,
                 id_factory: Callable[[], str] = lambda: secrets.token_hex(8),
                 resource_factory: Callable[[], str] = lambda: "boshcm-" + secrets.token_hex(6),
                 sm_id_factory: Callable[[], str] = lambda: secrets.token_urlsafe(18)) -> None:
        self._settings = settings
        self._transport = transport
        self._router = router
        self._accounts = accounts
        self._throttle = throttle
        # Anonymous users exist only while their session lives; the router looks them up here.
        self._guests = guests if guests is not None else set()
        self._id_factory = id_factory
        self._resource_factory = resource_factory
        self._state = _State.AWAIT_OPEN
        self._secure = transport.secure
        self._username: str | None = None
        self._anonymous = False
        self._jid: JID | None = None
        self._sasl: SaslExchange | None = None
        self._sasl_failures = 0
        self._derivations = 0                  # DeriveKey orders given so far: each names its answer
        self._deriving: int | None = None      # the one being waited for
        # What the client sent meanwhile (at most MAX_HELD_WHILE_DERIVING): a tuple, as the empty one is shared and
        # an empty list per session would be one more object for the cyclic collector to walk.
        self._held: tuple[StreamStarted | ElementReceived, ...] = ()
        self._bucket: TokenBucket | None = None
        self._negotiation_deadline: float | None = now + settings.negotiation_timeout_seconds
        self.stream_id = ""
        # XEP-0198: resumable ids are unguessable and known to one table shared by every transport.
        # None: acks only, resumption not offered.
        self._resumptions = resumptions
        self._sm_id_factory = sm_id_factory
        self._sm: StreamManagement | None = None
        # XEP-0352: made at the client's first <inactive/>; most clients never send one.
        self._csi: ClientState | None = None
        # XEP-0077: None when the server has no in-band registration at all (off-board, tests).
        self._registrations = registrations
        self._registering: _Registering | None = None

    # --- queries ----------------------------------------------------------------------------------

    @property
    def jid(self) -> JID | None:
        return self._jid

    @property
    def anonymous(self) -> bool:
        return self._anonymous

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def detached(self) -> bool:
        return self._state is _State.DETACHED

    @property
    def stream_management(self) -> StreamManagement | None:
        return self._sm

    @property
    def authenticated(self) -> bool:
        """SASL has succeeded: adapters lift the pre-authentication limits from here on."""
        return self._username is not None

    def next_deadline(self) -> float | None:
        return self._negotiation_deadline

    # --- the one entry point ----------------------------------------------------------------------

    def handle(self, event: SessionEvent, now: float) -> list[SessionAction]:
        if self._state is _State.CLOSED:
            return []
        if self._state is _State.DETACHED:
            return self._handle_detached(event, now)
        if self._deriving is not None and isinstance(event, StreamStarted | ElementReceived):
            return self._hold(event, now)
        match event:
            case StanzaForClient(stanza=stanza):
                return self._to_client(stanza, now)
            case StreamStarted():
                return self._on_stream_started(event, now)
            case ElementReceived(element=received):
                return self._on_element(received, now)
            case TlsEstablished():
                return self._on_tls_established()
            case StreamEnded():
                return self._close(None, now)
            case PeerError(condition=condition, text=text):
                return self._close(condition, now, text)
            case TransportClosed():
                return self._transport_lost(now)
            case Replaced(condition=condition):
                # The new session owns the binding now: leave without unbinding it.
                return self._close(condition, now, "Replaced by a new session with the same resource", unbind=False)
            case Shutdown(condition=condition):
                return self._close(condition, now)
            case ResumptionExpired():
                return []
            case KeyDerived(request=request, key=key):
                return self._on_key_derived(request, key, now)
        raise AssertionError(f"unknown event {event!r}")

    def _handle_detached(self, event: SessionEvent, now: float) -> list[SessionAction]:
        match event:
            case StanzaForClient(stanza=stanza):
                return self._to_client(stanza, now)
            case ResumptionExpired() | Shutdown():
                return self._finish(now)
            case Replaced():
                return self._finish(now, unbind=False)
        return []  # the transport is gone: nothing else can arrive

    def handle_timeout(self, now: float) -> list[SessionAction]:
        if self._negotiation_deadline is not None and now >= self._negotiation_deadline:
            return self._close(StreamErrorCondition.CONNECTION_TIMEOUT, now, "Negotiation took too long")
        return []

    # --- stream header ----------------------------------------------------------------------------

    def _on_stream_started(self, event: StreamStarted, now: float) -> list[SessionAction]:
        if self._state is not _State.AWAIT_OPEN:
            # A second header without a restart being due cannot be well-formed XML on one stream.
            return self._close(StreamErrorCondition.NOT_WELL_FORMED, now, "Unexpected stream header")
        self.stream_id = self._id_factory()
        attrs = {"from": self._settings.domain, "id": self.stream_id, "version": "1.0",
                 qname(NS_XML, "lang"): "en"}
        if event.from_:
            attrs["to"] = event.from_  # RFC 6120 §4.7.2: echo the initiator's from as our to
        opened: list[SessionAction] = [OpenStream(attrs=attrs)]
        # RFC 6120 §4.9.1.1: errors after the header is sent, so the client can parse them.
        if not event.namespace_ok:
            return opened + self._close(StreamErrorCondition.INVALID_NAMESPACE, now)
        if event.to is None or _domain_of(event.to) != self._settings.domain:
            return opened + self._close(StreamErrorCondition.HOST_UNKNOWN, now,
                                        f"This server serves {self._settings.domain}")
        if event.version is None or _major_version(event.version) < 1:
            return opened + self._close(StreamErrorCondition.UNSUPPORTED_VERSION, now)
        if self._jid is None and self._username is None:
            self._state = _State.PRE_AUTH
        elif self._state is _State.AWAIT_OPEN:
            self._state = _State.AUTHENTICATED
        return [*opened, SendElement(element=self._features())]

    def _features(self) -> Element:
        features = etree.Element(qname(NS_STREAM, "features"), nsmap={"stream": NS_STREAM})
        if self._state is _State.AUTHENTICATED:
            sub(features, NS_BIND, "bind")
            # RFC 6121 (2011) made the session iq optional; old clients still send it.
            sub(sub(features, NS_SESSION, "session"), NS_SESSION, "optional")
            if self._settings.stream_management.enabled and self._transport.advertises_stream_management:
                features.append(sm_feature())  # XEP-0198 §2: only once authenticated
            sub(features, NS_CSI, "csi")  # XEP-0352 §4
            return features
        if self._offer_starttls():
            starttls = sub(features, NS_TLS, "starttls")
            if self._settings.tls_policy is TlsPolicy.REQUIRED:
                sub(starttls, NS_TLS, "required")
                return features  # RFC 6120 §5.3.1: nothing else is useful before TLS
        mechanisms = sub(features, NS_SASL, "mechanisms")
        for name in self._mechanisms():
            sub(mechanisms, NS_SASL, "mechanism", text=name)
        if self._may_register():
            features.append(registration.feature())  # XEP-0077 §4
        return features

    def _may_register(self) -> bool:
        """XEP-0077 before authentication: where a password may be sent (as for PLAIN), when enabled."""
        return (self._registrations is not None and self._registrations.enabled
                and (self._secure or self._settings.allow_plain_without_tls))

    def _offer_starttls(self) -> bool:
        return (not self._secure and self._transport.can_starttls
                and self._settings.tls_policy is not TlsPolicy.DISABLED)

    def _mechanisms(self) -> list[str]:
        return offered_mechanisms(secure=self._secure,
                                  allow_plain_insecure=self._settings.allow_plain_without_tls,
                                  anonymous=self._settings.anonymous_web if self._transport.web
                                  else self._settings.anonymous)

    # --- elements ---------------------------------------------------------------------------------

    def _on_element(self, received: Element, now: float) -> list[SessionAction]:
        if self._state is _State.AWAIT_OPEN or self._state is _State.AWAIT_TLS:
            return self._close(StreamErrorCondition.NOT_AUTHORIZED, now, "Stream not open")
        if self._state is _State.PRE_AUTH:
            return self._on_negotiation_element(received, now)
        if namespace_of(received) == NS_SM and self._settings.stream_management.enabled:
            return self._on_sm(local_name(received), received, now)
        if namespace_of(received) == NS_CSI:
            return self._on_csi(local_name(received), now)
        if received.tag not in STANZA_TAGS:
            return self._close(StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, now)
        if self._state is _State.AUTHENTICATED:
            return self._on_pre_bind_stanza(received, now)
        return self._on_bound_stanza(received, now)

    def _on_negotiation_element(self, received: Element, now: float) -> list[SessionAction]:
        namespace, name = namespace_of(received), local_name(received)
        if namespace == NS_TLS and name == "starttls":
            if not self._offer_starttls():
                return self._close(StreamErrorCondition.POLICY_VIOLATION, now, "STARTTLS not offered")
            self._state = _State.AWAIT_TLS
            return [SendElement(element=element(NS_TLS, "proceed")), StartTls()]
        tls_missing = self._offer_starttls() and self._settings.tls_policy is TlsPolicy.REQUIRED
        if namespace == NS_SASL and not tls_missing:
            return self._on_sasl(name, received, now)
        if (self._registrations is not None and not tls_missing
                and registration.is_register_iq(received, self._settings.domain)):
            if not self._secure and not self._settings.allow_plain_without_tls and received.get("type") == "set":
                return [SendElement(element=error_reply(received, StanzaErrorCondition.NOT_AUTHORIZED,
                                                        text="Registration needs an encrypted stream"))]
            return self._on_register(received, now)
        # RFC 6120 §5.3.1 / §6.4: anything else before authentication.
        return self._close(StreamErrorCondition.NOT_AUTHORIZED, now,
                           "STARTTLS is required" if tls_missing else "Authenticate first")

    def _on_tls_established(self) -> list[SessionAction]:
        if self._state is not _State.AWAIT_TLS:
            return []
        self._secure = True
        self._state = _State.AWAIT_OPEN
        return [ExpectRestart()]

    # --- SASL (RFC 6120 §6.4) ---------------------------------------------------------------------

    def _on_sasl(self, name: str, received: Element, now: float) -> list[SessionAction]:
        if name == "auth":
            if self._sasl is not None:
                return self._sasl_result(self._sasl.abort(), now)
            payload = self._decode(received)
            if isinstance(payload, _BadEncoding):
                return self._sasl_failure(SaslFailure(condition=SaslCondition.INCORRECT_ENCODING), now)
            self._sasl = SaslExchange(mechanism=received.get("mechanism", ""), offered=self._mechanisms(),
                                      accounts=self._accounts, domain=self._settings.domain)
            return self._sasl_result(self._sasl.start(payload, admit=lambda username: self._admit(username, now)),
                                     now)
        if name == "response" and self._sasl is not None:
            payload = self._decode(received)
            if isinstance(payload, _BadEncoding) or payload is None:
                return self._sasl_result(SaslFailure(condition=SaslCondition.INCORRECT_ENCODING), now)
            return self._sasl_result(self._sasl.respond(payload, admit=lambda username: self._admit(username, now)),
                                     now)
        if name == "abort" and self._sasl is not None:
            return self._sasl_result(self._sasl.abort(), now)
        return self._close(StreamErrorCondition.POLICY_VIOLATION, now, f"Unexpected SASL <{name}/>")

    def _admit(self, username: str, now: float) -> SaslFailure | None:
        retry_at = self._throttle.retry_at(address=self._transport.remote_address, username=username, now=now)
        if retry_at is None:
            return None
        # RFC 6120 §6.5.12: temporary; the password was not looked at, so a guess learns nothing.
        seconds = max(1, math.ceil(retry_at - now))
        return SaslFailure(condition=SaslCondition.TEMPORARY_AUTH_FAILURE,
                           text=f"Too many failed attempts; try again in {seconds} seconds")

    @staticmethod
    def _decode(received: Element) -> bytes | _BadEncoding | None:
        """None when the element is empty (no initial response)."""
        text = (received.text or "").strip()
        if not text:
            return None
        decoded = decode_sasl_payload(text)
        return _BAD_ENCODING if decoded is None else decoded

    def _hold(self, event: StreamStarted | ElementReceived, now: float) -> list[SessionAction]:
        """The password is being checked: the client's next words wait for the answer (bounded)."""
        if len(self._held) >= MAX_HELD_WHILE_DERIVING:
            return self._close(StreamErrorCondition.POLICY_VIOLATION, now, "Wait for the authentication result")
        self._held += (event,)
        return []

    # --- in-band registration (XEP-0077) ----------------------------------------------------------------

    def _on_register(self, stanza: Element, now: float) -> list[SessionAction]:
        assert self._registrations is not None
        decision = self._registrations.handle(stanza, username=self._username, guest=self._anonymous,
                                              address=self._transport.remote_address, now=now)
        match decision:
            case Reply(stanza=reply):
                return self._reply(reply, now)
            case Remove(reply=reply):
                # XEP-0077 §3.2: the account is gone; so is its stream.
                return [*self._reply(reply, now), *self._close(None, now)]
            case Create() | ChangePassword():
                work = self._registrations.derivations(decision.prepared_password)
                self._registering = _Registering(stanza=stanza, decision=decision, pending=list(work.items()))
                return self._next_registration_key()
        raise AssertionError(f"unknown registration decision {decision!r}")

    def _reply(self, stanza: Element, now: float) -> list[SessionAction]:
        # Before binding nothing is counted (XEP-0198 starts after bind).
        return self._to_client(stanza, now) if self._state is _State.BOUND else [SendElement(element=stanza)]

    def _next_registration_key(self) -> list[SessionAction]:
        assert self._registering is not None
        _hash_name, work = self._registering.pending[len(self._registering.derived)]
        self._derivations += 1
        self._deriving = self._derivations
        return [DeriveKey(request=self._deriving, work=work)]

    def _on_registration_key(self, key: ScramCredentials, now: float) -> list[SessionAction]:
        pending = self._registering
        assert pending is not None and self._registrations is not None
        self._deriving = None
        pending.derived.append(key)
        if len(pending.derived) < len(pending.pending):
            return self._next_registration_key()
        self._registering = None
        secrets = {hash_name: secret for (hash_name, _work), secret in zip(pending.pending, pending.derived,
                                                                          strict=True)}
        decision = pending.decision
        if isinstance(decision, Create):
            reply = self._registrations.created_account(pending.stanza, decision.username, secrets,
                                                        self._transport.remote_address, now)
        else:
            reply = self._registrations.password_changed(pending.stanza, decision.username, secrets)
        actions = self._reply(reply, now)
        held, self._held = self._held, ()
        for event in held:
            actions += self.handle(event, now)  # in order, as after a login's derivation
        return actions

    def _on_key_derived(self, request: int, key: ScramCredentials, now: float) -> list[SessionAction]:
        if request == self._deriving and self._registering is not None:
            return self._on_registration_key(key, now)
        if request != self._deriving or self._sasl is None:
            return []  # a late answer to an exchange that is over
        self._deriving = None
        username = self._sasl.username
        # Parallel guesses were admitted before any of them failed: once a delay is set, none is evaluated.
        refused = self._admit(username, now) if username is not None else None
        actions = self._sasl_result(refused if refused is not None else self._sasl.key_derived(key), now)
        held, self._held = self._held, ()
        for event in held:
            actions += self.handle(event, now)  # in order; a new derivation holds the rest again
        return actions

    def _sasl_result(self, result: SaslResult, now: float) -> list[SessionAction]:
        match result:
            case SaslKeyNeeded(work=work):
                self._derivations += 1
                self._deriving = self._derivations
                return [DeriveKey(request=self._deriving, work=work)]
            case SaslChallenge(data=data):
                return [SendElement(element=element(NS_SASL, "challenge", text=encode_sasl_payload(data)))]
            case SaslSuccess():
                self._sasl = None
                if not result.anonymous:
                    self._throttle.record_success(address=self._transport.remote_address, username=result.username,
                                                  now=now)
                self._username = result.username
                self._anonymous = result.anonymous
                if result.anonymous:
                    self._guests.add(result.username)
                self._state = _State.AWAIT_OPEN
                text = encode_sasl_payload(result.data) if result.data else None
                return [SendElement(element=element(NS_SASL, "success", text=text)), ExpectRestart()]
            case SaslFailure():
                exchange, self._sasl = self._sasl, None
                if (result.condition is SaslCondition.NOT_AUTHORIZED and exchange is not None
                        and exchange.username is not None):
                    # A password was evaluated: charge the name (real or not) and, if real, the address.
                    self._throttle.record_failure(address=self._transport.remote_address,
                                                  username=exchange.username,
                                                  account_exists=exchange.account_exists, now=now)
                return self._sasl_failure(result, now)
        raise AssertionError(f"unknown SASL result {result!r}")

    def _sasl_failure(self, failure: SaslFailure, now: float) -> list[SessionAction]:
        self._sasl_failures += 1
        reply = element(NS_SASL, "failure")
        sub(reply, NS_SASL, failure.condition.value)
        if failure.text:
            sub(reply, NS_SASL, "text", text=failure.text).set(qname(NS_XML, "lang"), "en")
        actions: list[SessionAction] = [SendElement(element=reply)]
        if self._sasl_failures >= MAX_SASL_ATTEMPTS_PER_STREAM:
            actions += self._close(StreamErrorCondition.POLICY_VIOLATION, now, "Too many failed attempts")
        return actions

    # --- resource binding (RFC 6120 §7) -----------------------------------------------------------

    def _on_pre_bind_stanza(self, stanza: Element, now: float) -> list[SessionAction]:
        payload = first_child(stanza)
        is_bind = (local_name(stanza) == "iq" and stanza.get("type") == "set" and payload is not None
                   and payload.tag == qname(NS_BIND, "bind"))
        if not is_bind:
            # RFC 6120 §7.1: stanzas before binding close the stream.
            return self._close(StreamErrorCondition.NOT_AUTHORIZED, now, "Bind a resource first")
        assert payload is not None and self._username is not None
        requested = payload.findtext(qname(NS_BIND, "resource"))
        try:
            resource = requested.strip() if requested and requested.strip() else self._resource_factory()
            jid = JID.make(self._username, self._settings.domain, resource)
        except InvalidJID:
            return [SendElement(element=error_reply(stanza, StanzaErrorCondition.BAD_REQUEST,
                                                    text="Invalid resource"))]
        actions: list[SessionAction] = list(self._router.bind(jid, now))
        self._jid = jid
        self._state = _State.BOUND
        self._negotiation_deadline = None
        self._bucket = self._stanza_bucket(now)
        result_payload = element(NS_BIND, "bind")
        sub(result_payload, NS_BIND, "jid", text=str(jid))
        return [*actions, Bound(jid=jid), SendElement(element=iq_result(stanza, result_payload))]

    def _stanza_bucket(self, now: float) -> TokenBucket | None:
        settings = self._settings
        if self._username in settings.stanza_rate_exempt and not self._anonymous:
            return None
        if self._anonymous:
            return TokenBucket(rate_per_second=settings.guest_stanza_rate_per_second,
                               burst=settings.guest_stanza_burst, now=now)
        return TokenBucket(rate_per_second=settings.stanza_rate_per_second, burst=settings.stanza_burst, now=now)

    def _over_rate(self, stanza: Element, now: float) -> list[SessionAction]:
        """Refuse one stanza beyond the rate; close the stream of a client that never slows down."""
        assert self._bucket is not None
        if self._bucket.refused > self._settings.stanza_flood_refusals:
            return self._close(StreamErrorCondition.POLICY_VIOLATION, now, "Stanza rate limit exceeded")
        kind, stanza_type = local_name(stanza), stanza.get("type")
        # RFC 6120 §8.3.1: never answer an error (nor an iq result); presence is fire-and-forget, so dropped.
        if kind == "presence" or stanza_type == "error" or (kind == "iq" and stanza_type == "result"):
            return []
        # RFC 6120 §8.3.3.12: policy-violation, type wait: the client may retry later.
        return self._to_client(error_reply(stanza, StanzaErrorCondition.POLICY_VIOLATION,
                                           error_type=StanzaErrorType.WAIT, text="rate limit"), now)

    def _on_bound_stanza(self, stanza: Element, now: float) -> list[SessionAction]:
        assert self._jid is not None
        if self._sm is not None:
            self._sm.stanza_received()  # XEP-0198 §4: every stanza counts, refused ones too
        if self._bucket is not None and not self._bucket.take(now):
            return self._over_rate(stanza, now)
        payload = first_child(stanza)
        if (local_name(stanza) == "iq" and payload is not None and stanza.get("to") in (None, self._settings.domain)
                and stanza.get("type") in ("set", "get")):
            if payload.tag == qname(NS_SESSION, "session"):
                # RFC 3921 §3: a no-op today; answering keeps old clients going.
                return self._to_client(iq_result(stanza), now)
            if payload.tag == qname(NS_BIND, "bind"):
                return self._to_client(error_reply(stanza, StanzaErrorCondition.NOT_ALLOWED, text="Already bound"),
                                       now)
            if self._registrations is not None and registration.is_register_iq(stanza, self._settings.domain):
                return self._on_register(stanza, now)
        if (sender := stanza.get("from")) is not None and not _from_is_acceptable(sender, self._jid):
            # RFC 6120 §8.1.2.1: the server stamps or refuses a forged from.
            return self._close(StreamErrorCondition.INVALID_FROM, now)
        routed = self._router.handle_stanza(self._jid, stanza, now)
        if self._sm is None:
            return list(routed)
        actions: list[SessionAction] = []
        for action in routed:
            if isinstance(action, Deliver) and action.to == self._jid:
                # Our own answers go out in the order they are counted (XEP-0198 resends by position).
                actions += self._to_client(action.stanza, now)
            else:
                actions.append(action)
        return actions

    # --- stanzas to the client and stream management (XEP-0198) -----------------------------------

    def _to_client(self, stanza: Element, now: float) -> list[SessionAction]:
        """Every stanza for the client passes here: held while the client is inactive (XEP-0352), counted
        and kept until acknowledged (XEP-0198)."""
        if self._state is not _State.BOUND or self._csi is None:
            return self._send_counted(stanza, now)
        return self._send_all(self._csi.outgoing(stanza), now)

    def _send_all(self, stanzas: list[Element], now: float) -> list[SessionAction]:
        actions: list[SessionAction] = []
        for stanza in stanzas:
            if self._state is _State.CLOSED:
                break  # the unacked queue overflowed: the rest has nowhere to go
            actions += self._send_counted(stanza, now)
        return actions

    def _on_csi(self, name: str, now: float) -> list[SessionAction]:
        if name == "active":
            return self._csi_release(now) if self._state is _State.BOUND else []
        if name == "inactive":
            # XEP-0352 §5: meaningful once bound; before that there is nothing to hold.
            if self._state is _State.BOUND:
                if self._csi is None:
                    self._csi = ClientState(max_held=self._settings.csi_max_held)
                self._csi.set_inactive()
            return []
        return self._close(StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, now)

    def _csi_release(self, now: float) -> list[SessionAction]:
        """XEP-0352: active again; what CSI held goes out, in order."""
        return [] if self._csi is None else self._send_all(self._csi.set_active(), now)

    def _send_counted(self, stanza: Element, now: float) -> list[SessionAction]:
        sm = self._sm
        if sm is None:
            return [SendElement(element=stanza)] if self._state is _State.BOUND else []
        if not sm.stanza_sent(stanza):
            # Bounded: a client that does not acknowledge ends as if not resumable; §8.5 takes the queue.
            if self._state is _State.DETACHED:
                return self._finish(now)
            return self._close(StreamErrorCondition.RESOURCE_CONSTRAINT, now, "Too many unacknowledged stanzas")
        if self._state is not _State.BOUND:
            return []  # detached: queued for the resumption
        if sm.ack_due():
            return [SendElement(element=stanza), SendElement(element=request_element())]
        return [SendElement(element=stanza)]

    def _on_sm(self, name: str, received: Element, now: float) -> list[SessionAction]:
        if name == "enable":
            return self._on_enable(received)
        if name == "resume":
            return self._on_resume(received, now)
        if name == "r":
            if self._sm is None:
                return [SendElement(element=failed_element(StanzaErrorCondition.UNEXPECTED_REQUEST))]
            return [SendElement(element=ack_element(self._sm.received))]
        if name == "a":
            return self._on_ack(received, now)
        return self._close(StreamErrorCondition.UNSUPPORTED_STANZA_TYPE, now)

    def _on_enable(self, received: Element) -> list[SessionAction]:
        if self._state is not _State.BOUND or self._sm is not None or self._username is None:
            # XEP-0198 §3: only after binding, and only once per session.
            return [SendElement(element=failed_element(StanzaErrorCondition.UNEXPECTED_REQUEST))]
        limits = self._settings.stream_management
        seconds = limits.resume_seconds
        if (requested := parse_h(received.get("max"))) is not None and requested > 0:
            seconds = min(seconds, float(requested))  # XEP-0198 §5: the client's preference, within ours
        # Guests too (xmpp/resumption.py: for them the unguessable id is the proof of who resumes).
        resume = received.get("resume") in ("true", "1") and seconds > 0 and self._resumptions is not None
        resume_id = self._sm_id_factory() if resume else None
        self._sm = StreamManagement(limits=limits, resume_id=resume_id, resume_seconds=seconds)
        if resume_id is not None and self._resumptions is not None:
            self._resumptions.register(resume_id, self, self._username, guest=self._anonymous)
        return [SendElement(element=enabled_element(resume_id, seconds))]

    def _on_ack(self, received: Element, now: float) -> list[SessionAction]:
        sm = self._sm
        if sm is None:
            return []  # acks of a stream without stream management mean nothing
        h = parse_h(received.get("h"))
        if h is None:
            return self._close(StreamErrorCondition.INVALID_XML, now, "'h' must be an unsigned 32-bit integer")
        if not sm.acknowledged(h):
            # XEP-0198 §6: the client claims more than was sent.
            return self._close(StreamErrorCondition.UNDEFINED_CONDITION, now, "Acknowledged more than was sent",
                               detail=handled_count_too_high(h, sm.sent))
        return []

    def _on_resume(self, received: Element, now: float) -> list[SessionAction]:
        if self._state is not _State.AUTHENTICATED or self._username is None:
            # XEP-0198 §5: after authentication, instead of binding.
            return [SendElement(element=failed_element(StanzaErrorCondition.UNEXPECTED_REQUEST))]
        previd, h = received.get("previd", ""), parse_h(received.get("h"))
        if h is None:
            return [SendElement(element=failed_element(StanzaErrorCondition.BAD_REQUEST))]
        table = self._resumptions
        # Another account's id is as unknown as a made-up one; a guest's id is known only to anonymous logins.
        old = table.find(previd, self._username, guest=self._anonymous) if table is not None else None
        old_sm = old._sm if old is not None else None
        if old is None or old_sm is None:
            return [SendElement(element=failed_element(StanzaErrorCondition.ITEM_NOT_FOUND))]
        if not old_sm.acknowledged(h):
            failed = failed_element(StanzaErrorCondition.UNDEFINED_CONDITION, old_sm.received,
                                    "Acknowledged more than was sent")
            failed.append(handled_count_too_high(h, old_sm.sent))
            return [SendElement(element=failed)]
        assert table is not None
        table.remove(previd)
        jid, self._sm, bucket = old._surrender()
        assert jid is not None and jid.local is not None
        if self._anonymous:
            # The guest comes back under its old name; the one this login was just given is thrown away.
            self._guests.discard(self._username)
            self._username = jid.local
        self._jid = jid
        self._bucket = bucket if bucket is not None else self._stanza_bucket(now)
        self._state = _State.BOUND
        self._negotiation_deadline = None
        table.register(previd, self, self._username, guest=self._anonymous)
        # The old stream (still open, or parked in the hub) is told it was replaced; this one takes its seat.
        actions: list[SessionAction] = [Disconnect(jid=jid, condition=StreamErrorCondition.CONFLICT), Bound(jid=jid),
                                        SendElement(element=resumed_element(previd, old_sm.received))]
        # XEP-0198 §5: everything the client has not handled goes again, in the order it first went.
        resent = old_sm.unacked()
        actions += [SendElement(element=stanza) for stanza in resent]
        if resent:
            actions.append(SendElement(element=request_element()))
        return actions

    def _surrender(self) -> tuple[JID | None, StreamManagement | None, TokenBucket | None]:
        """A resumption takes this session's binding and state; what is left closes without unbinding."""
        taken = (self._jid, self._sm, self._bucket)
        self._jid, self._sm = None, None
        self._anonymous = False  # a guest's name goes with the session: closing this stream must not drop it
        if self._state is _State.DETACHED:
            self._state = _State.CLOSED  # nobody to tell
        return taken

    # --- closing ----------------------------------------------------------------------------------

    def _close(self, condition: StreamErrorCondition | None, now: float, text: str = "", *,
               detail: Element | None = None, unbind: bool = True) -> list[SessionAction]:
        if self._state is _State.CLOSED:
            return []
        actions: list[SessionAction] = []
        if not self.stream_id:
            # RFC 6120 §4.9.1.1: even an error before the client's header goes inside a stream of ours.
            actions.append(OpenStream(attrs={"from": self._settings.domain, "id": self._id_factory(),
                                             "version": "1.0", qname(NS_XML, "lang"): "en"}))
        actions.append(CloseStream(condition=condition, text=text, detail=detail))
        return actions + self._finish(now, unbind=unbind)

    def _transport_lost(self, now: float) -> list[SessionAction]:
        sm = self._sm
        if (self._state is _State.BOUND and sm is not None and sm.id is not None and self._resumptions is not None
                and self._resumptions.detach(sm.id, now, sm.resume_seconds)):
            # XEP-0198 §5: keep the session (binding, presence, rooms) for a resumption; what CSI held is
            # queued with the rest so that the resumed stream gets it.
            self._state = _State.DETACHED
            return [Detach(), *self._csi_release(now)]
        return self._finish(now)

    def _finish(self, now: float, *, unbind: bool = True) -> list[SessionAction]:
        self._state = _State.CLOSED
        self._negotiation_deadline = None
        self._sasl = None
        self._deriving, self._held = None, ()  # a derivation still running is answered into the void
        self._registering = None
        jid, self._jid = self._jid, None
        sm, self._sm = self._sm, None
        actions: list[SessionAction] = []
        if sm is not None and sm.id is not None and self._resumptions is not None:
            self._resumptions.remove(sm.id)
        if jid is not None and unbind:
            actions += self._router.unbind(jid, now)
        if jid is not None and sm is not None and sm.unacked_count:
            # XEP-0198 §4, RFC 6121 §8.5: what the client never acknowledged is not lost with it.
            actions += self._router.take_over_unacked(jid, sm.take_unacked(), now)
        if self._anonymous and self._username is not None:
            self._guests.discard(self._username)
        return actions


def stream_error(close: CloseStream) -> Element:
    """The <stream:error/> a CloseStream with a condition puts on the wire, whatever the framing."""
    assert close.condition is not None
    error = stream_error_element(close.condition, close.text)
    if close.detail is not None:
        error.append(close.detail)
    return error


def _domain_of(text: str) -> str | None:
    try:
        return JID.parse(text).domain
    except InvalidJID:
        return None


def _major_version(version: str) -> int:
    major, _, _ = version.partition(".")
    return int(major) if major.isdigit() else 0


def _from_is_acceptable(sender: str, bound: JID) -> bool:
    try:
        claimed = JID.parse(sender)
    except InvalidJID:
        return False
    return claimed in (bound, bound.bare)


def stream_started_from_header(tag: str, attrs: dict[str, str], default_ns: str | None) -> StreamStarted:
    """A StreamStarted from a TCP stream header as the parser reports it."""
    return StreamStarted(to=attrs.get("to"), from_=attrs.get("from"), version=attrs.get("version"),
                         lang=attrs.get(qname(NS_XML, "lang")),
                         namespace_ok=tag == qname(NS_STREAM, "stream") and default_ns == NS_CLIENT)
