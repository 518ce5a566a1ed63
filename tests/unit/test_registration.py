"""XEP-0077 in-band registration as conversations through the client-session core (no sockets), and the
abuse limits of xmpp/registration.py with a fake clock."""

from __future__ import annotations

import base64

from lxml import etree

from boshcm.errors import StreamErrorCondition
from boshcm.stanza import NS_BIND, NS_CLIENT, NS_SASL, NS_STANZAS, NS_STREAM, NS_TLS, Element, qname
from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.client_session import (
    ClientSession,
    CloseStream,
    DeriveKey,
    ElementReceived,
    KeyDerived,
    SendElement,
    SessionAction,
    SessionSettings,
    StreamStarted,
    TlsEstablished,
    TlsPolicy,
    Transport,
)
from boshcm.xmpp.registration import (
    DAY_SECONDS,
    HOUR_SECONDS,
    NS_REGISTER,
    NS_REGISTER_FEATURE,
    RegistrationLimits,
    Registrations,
    RegistrationSettings,
)
from boshcm.xmpp.throttle import AuthThrottle
from tests.unit.test_client_session import RecordingRouter, with_keys_derived

NOW = 1_000.0


def xml(text: str) -> Element:
    return etree.fromstring(text)


def sent(actions: list[SessionAction]) -> list[Element]:
    return [action.element for action in actions if isinstance(action, SendElement)]


class Visitor:
    """One client stream to a server whose accounts and registration limits outlive the stream."""

    def __init__(self, accounts: AccountStore, registrations: Registrations, *, secure: bool = True,
                 address: str = "192.0.2.7", tls_policy: TlsPolicy = TlsPolicy.REQUIRED,
                 now: float = NOW) -> None:
        self.now = now
        self.session = ClientSession(
            settings=SessionSettings(domain="localhost", tls_policy=tls_policy),
            transport=Transport(secure=secure, can_starttls=not secure, remote_address=address),
            router=RecordingRouter(), accounts=accounts, throttle=AuthThrottle(), now=now,
            registrations=registrations)

    def open(self) -> list[SessionAction]:
        return self.session.handle(StreamStarted(to="localhost"), self.now)

    def send(self, text: str) -> list[SessionAction]:
        return with_keys_derived(self.session, self.session.handle(ElementReceived(element=xml(text)), self.now),
                                 self.now)

    def register(self, username: str, password: str, iq_id: str = "r1") -> Element:
        (reply,) = sent(self.send(
            f"<iq xmlns='{NS_CLIENT}' type='set' id='{iq_id}'><query xmlns='{NS_REGISTER}'>"
            f"<username>{username}</username><password>{password}</password></query></iq>"))
        return reply

    def login(self, username: str, password: str) -> list[SessionAction]:
        payload = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        actions = self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        if sent(actions)[0].tag != qname(NS_SASL, "success"):
            return actions
        self.session.handle(StreamStarted(to="localhost"), self.now)
        return self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")


def server(**settings: int | bool) -> tuple[AccountStore, Registrations]:
    accounts = AccountStore(":memory:", iterations=1)
    accounts.add("alice", "wonderland")
    return accounts, Registrations(RegistrationSettings(**settings), accounts,  # type: ignore[arg-type]
                                   iterations=1)


def condition_of(reply: Element) -> str | None:
    if reply.get("type") != "error":
        return None
    (error,) = reply.iter(qname(NS_CLIENT, "error"))
    return next(etree.QName(child).localname for child in error if etree.QName(child).namespace == NS_STANZAS)


def error_type(reply: Element) -> str | None:
    (error,) = reply.iter(qname(NS_CLIENT, "error"))
    return error.get("type")


def test_secure_stream_offers_the_register_feature_before_login() -> None:
    accounts, registrations = server()
    actions = Visitor(accounts, registrations).open()
    (features,) = [e for e in sent(actions) if e.tag == qname(NS_STREAM, "features")]
    assert features.find(qname(NS_REGISTER_FEATURE, "register")) is not None


def test_insecure_stream_offers_starttls_only_and_after_tls_registration() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations, secure=False)
    (features,) = [e for e in sent(visitor.open()) if e.tag == qname(NS_STREAM, "features")]
    assert [child.tag for child in features] == [qname(NS_TLS, "starttls")]
    visitor.send(f"<starttls xmlns='{NS_TLS}'/>")
    visitor.session.handle(TlsEstablished(), NOW)
    (features,) = [e for e in sent(visitor.open()) if e.tag == qname(NS_STREAM, "features")]
    assert features.find(qname(NS_REGISTER_FEATURE, "register")) is not None


def test_plaintext_stream_without_tls_gets_no_feature_and_a_set_is_refused() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations, secure=False, tls_policy=TlsPolicy.DISABLED)
    (features,) = [e for e in sent(visitor.open()) if e.tag == qname(NS_STREAM, "features")]
    assert features.find(qname(NS_REGISTER_FEATURE, "register")) is None
    assert condition_of(visitor.register("mallory", "long enough")) == "not-authorized"
    assert not accounts.exists("mallory")


def test_get_returns_the_username_and_password_fields() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    (reply,) = sent(visitor.send(f"<iq xmlns='{NS_CLIENT}' type='get' id='g'><query xmlns='{NS_REGISTER}'/></iq>"))
    assert reply.get("type") == "result" and reply.get("id") == "g"
    query = reply.find(qname(NS_REGISTER, "query"))
    assert query is not None
    assert query.find(qname(NS_REGISTER, "username")) is not None
    assert query.find(qname(NS_REGISTER, "password")) is not None


def test_registered_account_can_log_in_with_its_password() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    reply = visitor.register("guest-Abc123", "a random password")
    assert reply.get("type") == "result" and reply.get("id") == "r1"
    assert accounts.exists("guest-abc123")  # PRECIS: the localpart is case-folded
    assert accounts.verify_password("guest-abc123", "a random password")
    actions = visitor.login("guest-abc123", "a random password")
    assert any(e.tag == qname(NS_CLIENT, "iq") and e.get("type") == "result" for e in sent(actions))
    assert visitor.session.jid is not None and visitor.session.jid.local == "guest-abc123"


def test_registration_derives_the_secrets_off_the_loop_and_holds_what_comes_meanwhile() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    actions = visitor.session.handle(ElementReceived(element=xml(
        f"<iq xmlns='{NS_CLIENT}' type='set' id='r'><query xmlns='{NS_REGISTER}'>"
        f"<username>bob</username><password>builder123</password></query></iq>")), NOW)
    (order,) = actions
    assert isinstance(order, DeriveKey)
    # The client's next words wait for the answer.
    assert visitor.session.handle(ElementReceived(element=xml(
        f"<iq xmlns='{NS_CLIENT}' type='get' id='g'><query xmlns='{NS_REGISTER}'/></iq>")), NOW) == []
    second = visitor.session.handle(KeyDerived(request=order.request, key=order.work.run()), NOW)
    assert not accounts.exists("bob")
    (order2,) = second
    assert isinstance(order2, DeriveKey) and order2.work.hash_name != order.work.hash_name
    done = visitor.session.handle(KeyDerived(request=order2.request, key=order2.work.run()), NOW)
    assert [(e.get("id"), e.get("type")) for e in sent(done)] == [("r", "result"), ("g", "result")]
    assert accounts.verify_password("bob", "builder123")


def test_taken_name_is_a_conflict() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    assert condition_of(visitor.register("Alice", "another password")) == "conflict"
    assert accounts.verify_password("alice", "wonderland")


def test_bad_names_and_missing_fields_are_not_acceptable() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    for name in ("a@b", "with space", "x" * 1100, "a/b", "a&quot;b"):
        assert condition_of(visitor.register(name, "long enough")) == "not-acceptable", name
    assert condition_of(visitor.register("fine", "short")) == "not-acceptable"
    (reply,) = sent(visitor.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='x'><query xmlns='{NS_REGISTER}'>"
                                 f"<username>fine</username></query></iq>"))
    assert condition_of(reply) == "not-acceptable"
    assert accounts.usernames() == ["alice"]


def test_per_address_limit_is_policy_violation_wait_and_other_addresses_still_register() -> None:
    accounts, registrations = server(per_address_per_hour=2)
    for index in range(2):
        visitor = Visitor(accounts, registrations, address="2001:db8::1")
        visitor.open()
        assert visitor.register(f"user{index}", "long enough").get("type") == "result"
    visitor = Visitor(accounts, registrations, address="2001:db8::2")  # the same /64
    visitor.open()
    refused = visitor.register("user9", "long enough")
    assert condition_of(refused) == "policy-violation" and error_type(refused) == "wait"
    assert not accounts.exists("user9")
    other = Visitor(accounts, registrations, address="198.51.100.1")
    other.open()
    assert other.register("user9", "long enough").get("type") == "result"


def test_per_address_windows_slide() -> None:
    limits = RegistrationLimits(RegistrationSettings(per_address_per_hour=3, per_address_per_day=4))
    for minute in range(3):
        limits.record("192.0.2.1", NOW + minute * 60)
    assert limits.retry_at("192.0.2.1", NOW + 300) == NOW + HOUR_SECONDS
    assert limits.retry_at("192.0.2.1", NOW + HOUR_SECONDS) is None
    limits.record("192.0.2.1", NOW + HOUR_SECONDS)
    # Four in the day: the next one after the first has left the day.
    assert limits.retry_at("192.0.2.1", NOW + 2 * HOUR_SECONDS) == NOW + DAY_SECONDS
    assert limits.retry_at("192.0.2.1", NOW + DAY_SECONDS + 60) is None


def test_global_limit_applies_to_every_address() -> None:
    limits = RegistrationLimits(RegistrationSettings(global_per_hour=3))
    for index in range(3):
        limits.record(f"192.0.2.{index}", NOW + index)
    assert limits.retry_at("203.0.113.9", NOW + 10) == NOW + HOUR_SECONDS
    assert limits.retry_at("203.0.113.9", NOW + HOUR_SECONDS) is None


def test_address_table_is_bounded() -> None:
    limits = RegistrationLimits(RegistrationSettings(max_tracked_addresses=5, global_per_hour=1_000))
    for index in range(50):
        limits.record(f"10.0.0.{index}", NOW)
    assert limits.tracked() == 5


def test_disabled_registration_offers_no_feature_and_answers_service_unavailable() -> None:
    accounts, registrations = server(enabled=False)
    visitor = Visitor(accounts, registrations)
    (features,) = [e for e in sent(visitor.open()) if e.tag == qname(NS_STREAM, "features")]
    assert features.find(qname(NS_REGISTER_FEATURE, "register")) is None
    assert condition_of(visitor.register("someone", "long enough")) == "service-unavailable"


def test_bound_account_changes_its_password() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    visitor.login("alice", "wonderland")
    reply = visitor.register("alice", "looking-glass")
    assert reply.get("type") == "result"
    assert accounts.verify_password("alice", "looking-glass")
    assert condition_of(visitor.register("bob", "whatever123")) == "not-authorized"


def test_bound_get_says_registered() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    visitor.login("alice", "wonderland")
    (reply,) = sent(visitor.send(f"<iq xmlns='{NS_CLIENT}' type='get' id='g'><query xmlns='{NS_REGISTER}'/></iq>"))
    query = reply.find(qname(NS_REGISTER, "query"))
    assert query is not None and query.find(qname(NS_REGISTER, "registered")) is not None
    assert query.findtext(qname(NS_REGISTER, "username")) == "alice"


def test_bound_account_removes_itself_and_the_stream_closes() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    visitor.login("alice", "wonderland")
    actions = visitor.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='rm'><query xmlns='{NS_REGISTER}'>"
                           "<remove/></query></iq>")
    (reply,) = sent(actions)
    assert reply.get("type") == "result" and reply.get("id") == "rm"
    assert any(isinstance(a, CloseStream) and a.condition is None for a in actions)
    assert visitor.session.closed and not accounts.exists("alice")


def test_remove_before_login_is_refused() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    (reply,) = sent(visitor.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='rm'><query xmlns='{NS_REGISTER}'>"
                                 "<remove/></query></iq>"))
    assert condition_of(reply) == "not-authorized" and accounts.exists("alice")


def test_other_iqs_before_login_still_close_the_stream() -> None:
    accounts, registrations = server()
    visitor = Visitor(accounts, registrations)
    visitor.open()
    actions = visitor.send(f"<iq xmlns='{NS_CLIENT}' type='get' id='v'><query xmlns='jabber:iq:version'/></iq>")
    (close,) = [a for a in actions if isinstance(a, CloseStream)]
    assert close.condition is StreamErrorCondition.NOT_AUTHORIZED
