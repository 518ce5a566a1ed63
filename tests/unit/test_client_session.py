"""The client-session core as conversations: client facts in, server orders out. No sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from lxml import etree

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, NS_TLS, Element, qname
from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.client_session import (
    Bound,
    ClientSession,
    CloseStream,
    DeriveKey,
    ElementReceived,
    ExpectRestart,
    KeyDerived,
    OpenStream,
    PeerError,
    Replaced,
    SendElement,
    SessionAction,
    SessionSettings,
    StartTls,
    StreamEnded,
    StreamStarted,
    TlsEstablished,
    TlsPolicy,
    Transport,
    TransportClosed,
)
from boshcm.xmpp.router import Deliver, Disconnect, RouterAction
from boshcm.xmpp.throttle import AuthThrottle, ThrottleSettings

NOW = 100.0


class RecordingRouter:
    """Stands in for xmpp/router.py: records what the session hands it."""

    def __init__(self) -> None:
        self.bound: list[JID] = []
        self.unbound: list[JID] = []
        self.stanzas: list[tuple[JID, Element]] = []

    def bind(self, jid: JID, now: float) -> list[RouterAction]:
        replaced = [Disconnect(jid=jid, condition=StreamErrorCondition.CONFLICT)] if jid in self.bound else []
        self.bound.append(jid)
        return list(replaced)

    def unbind(self, jid: JID, now: float) -> list[RouterAction]:
        self.unbound.append(jid)
        return []

    def is_bound(self, jid: JID) -> bool:
        return jid in self.bound

    def handle_stanza(self, sender: JID, stanza: Element, now: float) -> list[RouterAction]:
        self.stanzas.append((sender, stanza))
        return [Deliver(to=sender, stanza=stanza)]

    def take_over_unacked(self, jid: JID, stanzas: list[Element], now: float) -> list[RouterAction]:
        return []


def xml(text: str) -> Element:
    return etree.fromstring(text)


def sent(actions: list[SessionAction]) -> list[Element]:
    return [action.element for action in actions if isinstance(action, SendElement)]


def with_keys_derived(session: ClientSession, actions: list[SessionAction], now: float) -> list[SessionAction]:
    """What the adapter does with `DeriveKey` (in a thread pool), done at once: the key goes back to the session."""
    done: list[SessionAction] = []
    for action in actions:
        if isinstance(action, DeriveKey):
            done += with_keys_derived(session, session.handle(
                KeyDerived(request=action.request, key=action.work.run()), now), now)
        else:
            done.append(action)
    return done


def alice_store() -> AccountStore:
    accounts = AccountStore(":memory:")
    accounts.add("alice", "wonderland")
    return accounts


class Conversation:
    def __init__(self, *, secure: bool = False, can_starttls: bool = True,
                 tls_policy: TlsPolicy = TlsPolicy.REQUIRED, anonymous: bool = False,
                 throttle: AuthThrottle | None = None, accounts: AccountStore | None = None,
                 remote_address: str = "192.0.2.7", now: float = NOW, **settings: Any) -> None:
        self.accounts = accounts or alice_store()
        self.router = RecordingRouter()
        self.throttle = throttle or AuthThrottle()
        self.now = now
        self.session = ClientSession(
            settings=SessionSettings(domain="localhost", tls_policy=tls_policy, anonymous=anonymous, **settings),
            transport=Transport(secure=secure, can_starttls=can_starttls, remote_address=remote_address),
            router=self.router, accounts=self.accounts, throttle=self.throttle, now=now)

    def open(self, to: str = "localhost", version: str | None = "1.0") -> list[SessionAction]:
        return self.session.handle(StreamStarted(to=to, version=version), self.now)

    def send(self, text: str) -> list[SessionAction]:
        return with_keys_derived(self.session, self.session.handle(ElementReceived(element=xml(text)), self.now),
                                 self.now)

    def starttls(self) -> None:
        self.open()
        actions = self.send(f"<starttls xmlns='{NS_TLS}'/>")
        assert [a.element.tag for a in actions if isinstance(a, SendElement)] == [qname(NS_TLS, "proceed")]
        assert any(isinstance(a, StartTls) for a in actions)
        assert any(isinstance(a, ExpectRestart) for a in self.session.handle(TlsEstablished(), NOW))

    def plain_auth(self, user: str = "alice", password: str = "wonderland") -> list[SessionAction]:
        payload = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")

    def login(self, resource: str | None = "desk") -> list[SessionAction]:
        self.starttls()
        self.open()
        assert sent(self.plain_auth())[0].tag == qname(NS_SASL, "success")
        self.open()
        inner = f"<resource>{resource}</resource>" if resource else ""
        return self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='b1'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>")


def features_of(actions: list[SessionAction]) -> list[str]:
    (features,) = [e for e in sent(actions) if e.tag == qname(NS_STREAM, "features")]
    return [child.tag for child in features]


def mechanisms_of(actions: list[SessionAction]) -> list[str]:
    (features,) = [e for e in sent(actions) if e.tag == qname(NS_STREAM, "features")]
    return [m.text or "" for m in features.iter(qname(NS_SASL, "mechanism"))]


def closed_with(actions: list[SessionAction]) -> StreamErrorCondition | None:
    (close,) = [a for a in actions if isinstance(a, CloseStream)]
    return close.condition


def test_header_is_answered_and_only_starttls_offered_when_required() -> None:
    talk = Conversation()
    actions = talk.open()
    opened = actions[0]
    assert isinstance(opened, OpenStream)
    assert opened.attrs["from"] == "localhost" and opened.attrs["version"] == "1.0" and opened.attrs["id"]
    assert features_of(actions) == [qname(NS_TLS, "starttls")]


def test_after_tls_scram_mechanisms_come_first_and_plain_is_offered() -> None:
    talk = Conversation()
    talk.starttls()
    assert mechanisms_of(talk.open()) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def test_optional_tls_offers_sasl_without_plain_beside_starttls() -> None:
    talk = Conversation(tls_policy=TlsPolicy.OPTIONAL)
    actions = talk.open()
    assert qname(NS_TLS, "starttls") in features_of(actions)
    assert mechanisms_of(actions) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]


def test_anonymous_is_offered_only_when_enabled() -> None:
    talk = Conversation(secure=True, can_starttls=False, anonymous=True)
    assert "ANONYMOUS" in mechanisms_of(talk.open())
    assert "ANONYMOUS" not in mechanisms_of(Conversation(secure=True, can_starttls=False).open())


def test_auth_before_required_starttls_closes_with_not_authorized() -> None:
    talk = Conversation()
    talk.open()
    assert closed_with(talk.plain_auth()) is StreamErrorCondition.NOT_AUTHORIZED
    assert talk.session.closed


def test_wrong_host_gets_host_unknown_after_our_header() -> None:
    actions = Conversation().open(to="example.org")
    assert isinstance(actions[0], OpenStream)
    assert closed_with(actions) is StreamErrorCondition.HOST_UNKNOWN


def test_old_version_gets_unsupported_version() -> None:
    assert closed_with(Conversation().open(version="0.9")) is StreamErrorCondition.UNSUPPORTED_VERSION


def test_full_login_binds_the_requested_resource() -> None:
    talk = Conversation()
    actions = talk.login("desk")
    assert Bound(jid=JID.parse("alice@localhost/desk")) in actions
    (result,) = sent(actions)
    assert result.get("type") == "result" and result.get("id") == "b1"
    assert result.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") == "alice@localhost/desk"
    assert talk.router.bound == [JID.parse("alice@localhost/desk")]
    assert talk.session.next_deadline() is None


def test_server_generates_a_resource_when_none_is_asked_for() -> None:
    talk = Conversation()
    (bound,) = [a for a in talk.login(resource=None) if isinstance(a, Bound)]
    assert bound.jid.local == "alice" and bound.jid.resource


def test_binding_an_existing_resource_disconnects_the_old_session() -> None:
    first, second = Conversation(), Conversation()
    second.router = first.router
    second.session._router = first.router  # both sessions share one server
    first.login("desk")
    actions = second.login("desk")
    assert Disconnect(jid=JID.parse("alice@localhost/desk"), condition=StreamErrorCondition.CONFLICT) in actions
    replaced = first.session.handle(Replaced(), NOW)
    assert closed_with(replaced) is StreamErrorCondition.CONFLICT
    assert first.router.unbound == []  # the successor keeps the binding


def test_wrong_password_fails_with_not_authorized_and_may_retry() -> None:
    talk = Conversation()
    talk.starttls()
    talk.open()
    (failure,) = sent(talk.plain_auth(password="wrong"))
    assert failure.tag == qname(NS_SASL, "failure")
    assert failure[0].tag == qname(NS_SASL, "not-authorized")
    assert sent(talk.plain_auth())[0].tag == qname(NS_SASL, "success")


def test_repeated_failures_on_an_account_are_refused_for_a_while_without_looking_at_the_password() -> None:
    throttle = AuthThrottle(ThrottleSettings(account_free_failures=2, first_delay_seconds=30))
    accounts = alice_store()
    for attempt in range(3):
        talk = Conversation(throttle=throttle, accounts=accounts, remote_address=f"192.0.2.{attempt}")
        talk.starttls()
        talk.open()
        assert sasl_outcome(talk.plain_auth(password="wrong")) == ("not-authorized", "")
    talk = Conversation(throttle=throttle, accounts=accounts, remote_address="198.51.100.1", now=NOW + 10)
    talk.starttls()
    talk.open()
    # RFC 6120 §6.5.12: even the right password is refused while the delay lasts, and the text says until when.
    assert sasl_outcome(talk.plain_auth()) == ("temporary-auth-failure",
                                               "Too many failed attempts; try again in 20 seconds")


def test_scram_sha_256_login_proves_the_server_knows_the_secret() -> None:
    talk = Conversation(secure=True, can_starttls=False)
    talk.open()
    client_nonce = "rOprNGfwEbeRWgbNEkqO"
    first_bare = f"n=alice,r={client_nonce}"
    payload = base64.b64encode(f"n,,{first_bare}".encode()).decode()
    (challenge,) = sent(talk.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{payload}</auth>"))
    server_first = base64.b64decode(challenge.text or "").decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    assert fields["r"].startswith(client_nonce)
    salted = hashlib.pbkdf2_hmac("sha256", b"wonderland", base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    response = base64.b64encode(f"{final_bare},p={proof}".encode()).decode()
    (success,) = sent(talk.send(f"<response xmlns='{NS_SASL}'>{response}</response>"))
    assert success.tag == qname(NS_SASL, "success")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
    assert base64.b64decode(success.text or "").decode() == f"v={expected}"


def test_bad_base64_in_auth_is_incorrect_encoding() -> None:
    talk = Conversation(secure=True, can_starttls=False)
    talk.open()
    (failure,) = sent(talk.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!!notbase64</auth>"))
    assert failure[0].tag == qname(NS_SASL, "incorrect-encoding")


def test_stanza_before_bind_closes_with_not_authorized() -> None:
    talk = Conversation()
    talk.starttls()
    talk.open()
    talk.plain_auth()
    talk.open()
    actions = talk.send(f"<message xmlns='{NS_CLIENT}' to='bob@localhost'><body>hi</body></message>")
    assert closed_with(actions) is StreamErrorCondition.NOT_AUTHORIZED


def test_bound_stanzas_go_to_the_router_stamped_with_the_session_jid() -> None:
    talk = Conversation()
    talk.login("desk")
    talk.send(f"<message xmlns='{NS_CLIENT}' to='bob@localhost'><body>hi</body></message>")
    (sender, stanza), = talk.router.stanzas
    assert sender == JID.parse("alice@localhost/desk")
    assert stanza.findtext(f"{{{NS_CLIENT}}}body") == "hi"


def test_forged_from_is_an_invalid_from_stream_error() -> None:
    talk = Conversation()
    talk.login("desk")
    actions = talk.send(f"<message xmlns='{NS_CLIENT}' from='bob@localhost' to='x@localhost'/>")
    assert closed_with(actions) is StreamErrorCondition.INVALID_FROM
    assert talk.router.unbound == [JID.parse("alice@localhost/desk")]


def test_legacy_session_iq_is_answered_with_a_result() -> None:
    talk = Conversation()
    talk.login("desk")
    (result,) = sent(talk.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='s1'>"
                               "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"))
    assert result.get("type") == "result" and result.get("id") == "s1"
    assert talk.router.stanzas == []


def test_non_stanza_after_bind_is_unsupported_stanza_type() -> None:
    talk = Conversation()
    talk.login("desk")
    assert closed_with(talk.send("<foo xmlns='urn:example'/>")) is StreamErrorCondition.UNSUPPORTED_STANZA_TYPE


def test_parser_error_closes_the_stream_and_unbinds() -> None:
    talk = Conversation()
    talk.login("desk")
    actions = talk.session.handle(PeerError(condition=StreamErrorCondition.POLICY_VIOLATION), NOW)
    assert closed_with(actions) is StreamErrorCondition.POLICY_VIOLATION
    assert talk.router.unbound == [JID.parse("alice@localhost/desk")]
    assert talk.session.handle(ElementReceived(element=xml("<x/>")), NOW) == []


def test_error_before_any_header_is_still_wrapped_in_a_stream() -> None:
    talk = Conversation()
    actions = talk.session.handle(PeerError(condition=StreamErrorCondition.NOT_WELL_FORMED), NOW)
    assert isinstance(actions[0], OpenStream)
    assert closed_with(actions) is StreamErrorCondition.NOT_WELL_FORMED


def test_clean_close_and_transport_loss_both_unbind() -> None:
    talk = Conversation()
    talk.login("desk")
    assert closed_with(talk.session.handle(StreamEnded(), NOW)) is None
    other = Conversation()
    other.login("desk")
    assert other.session.handle(TransportClosed(), NOW) == []
    assert other.router.unbound == [JID.parse("alice@localhost/desk")]


def test_negotiation_timeout_is_connection_timeout() -> None:
    talk = Conversation()
    talk.open()
    deadline = talk.session.next_deadline()
    assert deadline is not None
    assert talk.session.handle_timeout(deadline - 1) == []
    assert closed_with(talk.session.handle_timeout(deadline)) is StreamErrorCondition.CONNECTION_TIMEOUT


def sasl_outcome(actions: list[SessionAction]) -> tuple[str, str]:
    """("success", "") or the SASL failure's condition and text."""
    (reply,) = [e for e in sent(actions) if e.tag in (qname(NS_SASL, "success"), qname(NS_SASL, "failure"))]
    if reply.tag == qname(NS_SASL, "success"):
        return "success", ""
    condition = next(child for child in reply if child.tag != qname(NS_SASL, "text"))
    return etree.QName(condition).localname, reply.findtext(qname(NS_SASL, "text")) or ""


def plain_attempt(throttle: AuthThrottle, accounts: AccountStore, *, address: str, now: float,
                  user: str = "alice", password: str = "wrong") -> tuple[str, str]:
    talk = Conversation(secure=True, can_starttls=False, throttle=throttle, accounts=accounts,
                        remote_address=address, now=now)
    talk.open()
    return sasl_outcome(talk.plain_auth(user, password))


def test_twelve_addresses_guessing_1000_times_a_minute_get_a_handful_of_guesses() -> None:
    # The issue: 12 addresses guess one password 1,000 times a minute. With the default settings only the
    # few attempts between growing delays are evaluated; every other one is refused unread.
    throttle, accounts = AuthThrottle(), alice_store()
    outcomes = [plain_attempt(throttle, accounts, address=f"203.0.113.{attempt % 12}", now=NOW + attempt * 0.06)
                for attempt in range(1000)]
    evaluated = [outcome for outcome in outcomes if outcome == ("not-authorized", "")]  # refusals carry a text
    assert len(evaluated) <= 12
    assert {outcome[0] for outcome in outcomes} == {"not-authorized", "temporary-auth-failure"}


def test_made_up_account_failures_do_not_lock_a_real_user_out_of_the_address() -> None:
    throttle, accounts = AuthThrottle(ThrottleSettings(address_free_failures=2)), alice_store()
    for index in range(30):
        assert plain_attempt(throttle, accounts, address="192.0.2.50", now=NOW + index,
                             user=f"ghost{index}") == ("not-authorized", "")
    assert plain_attempt(throttle, accounts, address="192.0.2.50", now=NOW + 30,
                         password="wonderland") == ("success", "")


def test_a_user_who_logged_in_before_from_her_address_is_not_locked_out_by_an_attack() -> None:
    throttle, accounts = AuthThrottle(ThrottleSettings(first_delay_seconds=60)), alice_store()
    assert plain_attempt(throttle, accounts, address="192.0.2.1", now=NOW, password="wonderland")[0] == "success"
    for attempt in range(10):
        plain_attempt(throttle, accounts, address=f"203.0.113.{attempt}", now=NOW + 1)
    assert plain_attempt(throttle, accounts, address="198.51.100.9", now=NOW + 2,
                         password="wonderland")[0] == "temporary-auth-failure"
    assert plain_attempt(throttle, accounts, address="192.0.2.1", now=NOW + 2,
                         password="wonderland") == ("success", "")


def test_real_and_made_up_names_get_the_same_answers_all_the_way_into_the_delay() -> None:
    throttle, accounts = AuthThrottle(ThrottleSettings(account_free_failures=2)), alice_store()
    for step in range(6):
        now = NOW + step * 0.5
        real = plain_attempt(throttle, accounts, address=f"203.0.113.{step}", now=now, user="alice")
        made_up = plain_attempt(throttle, accounts, address=f"198.51.100.{step}", now=now, user="nobody")
        assert real == made_up


def test_a_throttled_scram_attempt_is_refused_at_auth_before_any_challenge() -> None:
    throttle = AuthThrottle(ThrottleSettings(account_free_failures=0, first_delay_seconds=60))
    accounts = alice_store()
    plain_attempt(throttle, accounts, address="203.0.113.1", now=NOW)
    talk = Conversation(secure=True, can_starttls=False, throttle=throttle, accounts=accounts, now=NOW + 1)
    talk.open()
    payload = base64.b64encode(b"n,,n=alice,r=abcdef").decode()
    actions = talk.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{payload}</auth>")
    assert sasl_outcome(actions) == ("temporary-auth-failure", "Too many failed attempts; try again in 59 seconds")


def bound(**settings: Any) -> Conversation:
    talk = Conversation(**settings)
    talk.login("desk")
    return talk


def message(number: int) -> str:
    return f"<message xmlns='{NS_CLIENT}' to='bob@localhost' id='m{number}'><body>{number}</body></message>"


def test_stanzas_beyond_the_rate_get_policy_violation_of_type_wait() -> None:
    talk = bound(stanza_rate_per_second=1.0, stanza_burst=3)
    for number in range(3):
        talk.send(message(number))
    (refused,) = sent(talk.send(message(3)))
    assert refused.get("type") == "error" and refused.get("id") == "m3"
    error = refused.find(qname(NS_CLIENT, "error"))
    assert error is not None and error.get("type") == "wait"
    assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None
    assert error.findtext("{urn:ietf:params:xml:ns:xmpp-stanzas}text") == "rate limit"
    assert len(talk.router.stanzas) == 3
    talk.now += 1.0  # one more token
    talk.send(message(4))
    assert len(talk.router.stanzas) == 4


def test_presence_and_errors_beyond_the_rate_are_dropped_without_a_reply() -> None:
    talk = bound(stanza_rate_per_second=1.0, stanza_burst=1)
    talk.send(message(0))
    assert sent(talk.send(f"<presence xmlns='{NS_CLIENT}'/>")) == []
    assert sent(talk.send(f"<message xmlns='{NS_CLIENT}' to='bob@localhost' type='error'/>")) == []
    assert sent(talk.send(f"<iq xmlns='{NS_CLIENT}' to='bob@localhost' type='result' id='r'/>")) == []
    assert len(talk.router.stanzas) == 1


def test_a_session_that_keeps_flooding_is_closed_with_policy_violation() -> None:
    talk = bound(stanza_rate_per_second=1.0, stanza_burst=2, stanza_flood_refusals=5)
    actions: list[SessionAction] = []
    for number in range(7):  # two within the burst, then five refusals
        actions = talk.send(message(number))
        assert not any(isinstance(action, CloseStream) for action in actions)
    actions = talk.send(message(7))
    assert closed_with(actions) is StreamErrorCondition.POLICY_VIOLATION
    assert talk.router.unbound == [JID.parse("alice@localhost/desk")]


def test_guests_have_their_own_rate_and_exempt_accounts_none() -> None:
    guest = Conversation(secure=True, can_starttls=False, anonymous=True, guest_stanza_rate_per_second=1.0,
                         guest_stanza_burst=2)
    guest.open()
    assert sent(guest.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>"))[0].tag == qname(NS_SASL, "success")
    guest.open()
    guest.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
    replies = [sent(guest.send(message(number))) for number in range(3)]
    assert replies[:2] == [[], []] and replies[2][0].get("type") == "error"
    exempt = bound(stanza_rate_per_second=1.0, stanza_burst=1, stanza_rate_exempt=frozenset({"alice"}))
    for number in range(50):
        assert sent(exempt.send(message(number))) == []
    assert len(exempt.router.stanzas) == 50


# --- PLAIN's key derivation is an order: the session waits for KeyDerived ------------------------------

def plain_payload(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def derivation_asked(talk: Conversation, user: str = "alice", password: str = "wonderland") -> DeriveKey:
    """A secure stream, PLAIN sent: the one order is the key derivation, and nothing is answered yet."""
    talk.open()
    actions = talk.session.handle(ElementReceived(element=xml(
        f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain_payload(user, password)}</auth>")), talk.now)
    (order,) = actions
    assert isinstance(order, DeriveKey)
    return order


def secure_talk(**settings: Any) -> Conversation:
    return Conversation(secure=True, can_starttls=False, **settings)


def test_plain_orders_its_key_derivation_and_answers_when_the_key_comes_back() -> None:
    talk = secure_talk()
    order = derivation_asked(talk)
    stored = talk.accounts.scram_credentials("alice", "sha256")
    assert stored is not None and (order.work.salt, order.work.iterations) == (stored.salt, stored.iterations)
    actions = talk.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW)
    assert sasl_outcome(actions) == ("success", "") and any(isinstance(a, ExpectRestart) for a in actions)
    assert talk.session.authenticated


def test_a_wrong_password_is_refused_once_its_key_comes_back_and_charged_to_the_throttle() -> None:
    talk = secure_talk()
    order = derivation_asked(talk, password="wrong")
    assert talk.throttle.failures == 0  # nothing evaluated yet
    assert sasl_outcome(talk.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW)) == (
        "not-authorized", "")
    assert talk.throttle.failures == 1 and not talk.session.authenticated


def test_a_made_up_name_asks_for_the_same_derivation_and_is_refused_alike() -> None:
    real, made_up = secure_talk(), secure_talk()
    real_order, made_up_order = derivation_asked(real, password="x"), derivation_asked(made_up, "nobody", "x")
    assert made_up_order.work.iterations == real_order.work.iterations
    assert len(made_up_order.work.salt) == len(real_order.work.salt)
    assert sasl_outcome(made_up.session.handle(KeyDerived(request=made_up_order.request,
                                                          key=made_up_order.work.run()), NOW)) == (
        sasl_outcome(real.session.handle(KeyDerived(request=real_order.request, key=real_order.work.run()), NOW)))


def test_what_the_client_sends_while_its_key_is_derived_waits_and_follows_in_order() -> None:
    """A WebSocket client may send its restart <open/> and <bind/> right behind <auth/>: as if it had waited."""
    talk = secure_talk()
    order = derivation_asked(talk)
    assert talk.session.handle(StreamStarted(to="localhost"), NOW) == []
    bind = f"<iq xmlns='{NS_CLIENT}' type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>r</resource></bind></iq>"
    assert talk.session.handle(ElementReceived(element=xml(bind)), NOW) == []
    actions = talk.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW)
    assert [type(a).__name__ for a in actions] == ["SendElement", "ExpectRestart", "OpenStream", "SendElement",
                                                   "Bound", "SendElement"]
    assert talk.session.jid == JID.parse("alice@localhost/r")


def test_a_client_that_keeps_talking_while_its_key_is_derived_is_closed() -> None:
    talk = secure_talk()
    derivation_asked(talk)
    presence = ElementReceived(element=xml(f"<presence xmlns='{NS_CLIENT}'/>"))
    for _ in range(16):
        assert talk.session.handle(presence, NOW) == []
    assert closed_with(talk.session.handle(presence, NOW)) is StreamErrorCondition.POLICY_VIOLATION
    assert talk.session.closed


def test_a_key_that_comes_back_after_the_stream_closed_or_timed_out_is_dropped() -> None:
    lost = secure_talk()
    order = derivation_asked(lost)
    assert lost.session.handle(TransportClosed(), NOW) == []
    assert lost.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW) == []
    assert lost.throttle.logins == 0 and not lost.session.authenticated
    slow = secure_talk(negotiation_timeout_seconds=5)
    order = derivation_asked(slow)
    assert closed_with(slow.session.handle_timeout(NOW + 5)) is StreamErrorCondition.CONNECTION_TIMEOUT
    assert slow.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW + 6) == []
    assert slow.throttle.logins == 0


def test_a_key_for_another_request_is_ignored() -> None:
    talk = secure_talk()
    order = derivation_asked(talk)
    assert talk.session.handle(KeyDerived(request=order.request + 1, key=order.work.run()), NOW) == []
    assert sasl_outcome(talk.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW)) == (
        "success", "")


def test_parallel_guesses_are_not_evaluated_once_the_first_failures_set_a_delay() -> None:
    """Guesses admitted together (one per connection) wait for their keys; the first failures set a delay,
    and the rest, the right password included, are refused without being compared."""
    throttle, accounts = AuthThrottle(ThrottleSettings(account_free_failures=1, first_delay_seconds=60)), alice_store()
    guesses = [secure_talk(throttle=throttle, accounts=accounts, remote_address=f"198.51.100.{n}") for n in range(3)]
    orders = [derivation_asked(guesses[0], password="wrong1"), derivation_asked(guesses[1], password="wrong2"),
              derivation_asked(guesses[2])]
    outcomes = [sasl_outcome(talk.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW))
                for talk, order in zip(guesses, orders, strict=True)]
    assert [condition for condition, _text in outcomes] == ["not-authorized", "not-authorized",
                                                            "temporary-auth-failure"]
    assert not guesses[2].session.authenticated and throttle.logins == 0
