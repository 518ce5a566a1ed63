"""XEP-0198 as conversations: the counters, the resumption table and client sessions over a real router.

No sockets: client sessions are driven with facts, a fake clock gives `now`, and a small hub stand-in
performs the router's deliveries the way xmpp/hub.py does (through `StanzaForClient`; tests/unit/sm_client.py).
"""

from __future__ import annotations

from lxml import etree

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, NS_DELAY, NS_STANZAS, NS_STREAM, Element, qname
from boshcm.xmpp.client_session import ClientSession, ResumptionExpired, StreamEnded, Transport
from boshcm.xmpp.resumption import ResumptionTable
from boshcm.xmpp.stream_management import NS_SM, SEQUENCE_MODULUS, SmLimits, StreamManagement
from boshcm.xmpp.throttle import AuthThrottle
from tests.unit.sm_client import SM, Client, World, chat, tag

# --- the counters ----------------------------------------------------------------------------------

def stanza(number: int) -> Element:
    return etree.fromstring(f"<message xmlns='{NS_CLIENT}' id='m{number}'><body>{number}</body></message>")


def test_acks_drop_what_the_client_handled_and_h_wraps_at_2_to_the_32() -> None:
    sm = StreamManagement(limits=SmLimits(), resume_id="id", resume_seconds=300)
    # As if 2^32 - 5 stanzas had gone and been acknowledged: the counters sit just below the wrap.
    sm._acked = sm.sent = SEQUENCE_MODULUS - 5
    for number in range(6):
        sm.stanza_sent(stanza(number))
    assert sm.sent == 1  # wrapped
    assert sm.acknowledged(SEQUENCE_MODULUS - 1)  # four handled, just before the wrap
    assert [s.get("id") for s in sm.unacked()] == ["m4", "m5"]
    assert sm.acknowledged(1)  # two more, across the wrap
    assert sm.unacked() == []
    assert not sm.acknowledged(2)  # more than was sent


def test_received_counter_wraps() -> None:
    sm = StreamManagement(limits=SmLimits(), resume_id=None, resume_seconds=0)
    sm.received = SEQUENCE_MODULUS - 1
    sm.stanza_received()
    assert sm.received == 0


def test_the_queue_is_bounded_in_stanzas_and_bytes() -> None:
    by_count = StreamManagement(limits=SmLimits(max_unacked_stanzas=2), resume_id=None, resume_seconds=0)
    assert by_count.stanza_sent(stanza(1)) and by_count.stanza_sent(stanza(2))
    assert not by_count.stanza_sent(stanza(3))
    by_bytes = StreamManagement(limits=SmLimits(max_unacked_bytes=100), resume_id=None, resume_seconds=0)
    small = etree.fromstring(f"<message xmlns='{NS_CLIENT}'><body>{'x' * 40}</body></message>")
    assert by_bytes.stanza_sent(small)  # 94 bytes on the wire
    large = etree.fromstring(f"<message xmlns='{NS_CLIENT}'><body>{'x' * 200}</body></message>")
    assert not by_bytes.stanza_sent(large)


# --- the table -------------------------------------------------------------------------------------

def test_detached_sessions_expire_in_order_and_resumed_ones_do_not() -> None:
    table: ResumptionTable[str] = ResumptionTable(max_detached=10)
    table.register("a", "session-a", "alice")
    table.register("b", "session-b", "bob")
    assert table.next_deadline() is None  # attached sessions never expire
    assert table.detach("a", 100.0, 300.0) and table.detach("b", 150.0, 60.0)
    assert table.next_deadline() == 210.0
    assert table.expired(209.0) == []
    table.register("b", "session-b2", "bob")  # resumed: attached again
    assert table.expired(1000.0) == ["session-a"]
    assert table.next_deadline() is None and len(table) == 1


def test_an_id_exists_only_for_the_account_that_enabled_it() -> None:
    table: ResumptionTable[str] = ResumptionTable(max_detached=10)
    table.register("a", "session-a", "alice")
    assert table.find("a", "mallory") is None
    assert table.find("a", "alice") == "session-a"


def test_the_number_of_detached_sessions_is_bounded() -> None:
    table: ResumptionTable[str] = ResumptionTable(max_detached=1)
    table.register("a", "session-a", "alice")
    table.register("b", "session-b", "bob")
    assert table.detach("a", 0.0, 300.0)
    assert not table.detach("b", 0.0, 300.0)
    table.remove("a")
    assert table.detach("b", 0.0, 300.0)


def test_guests_have_their_own_share_of_the_detached_table_and_cannot_crowd_out_accounts() -> None:
    table: ResumptionTable[str] = ResumptionTable(max_detached=3, max_detached_guests=2)
    for name in ("g1", "g2", "g3"):
        table.register(name, f"session-{name}", f"anon-{name}", guest=True)
    assert table.detach("g1", 0.0, 300.0) and table.detach("g2", 0.0, 300.0)
    assert not table.detach("g3", 0.0, 300.0)            # the guests' share is full
    table.register("a", "session-a", "alice")
    assert table.detach("a", 0.0, 300.0)                 # an account still finds room
    assert sorted(table.expired(301.0)) == ["session-a", "session-g1", "session-g2"]
    assert table.detach("g3", 302.0, 300.0)              # expiry gave the share back


# --- sessions over a real router -------------------------------------------------------------------

def test_sm_is_offered_after_authentication_and_enabled_after_binding() -> None:
    world = World(resume_seconds=120)
    alice = Client(world, "alice")
    features = alice.authenticate()[-1]
    assert features.tag == qname(NS_STREAM, "features") and features.find(qname(NS_SM, "sm")) is not None
    # XEP-0198 §3: not before binding.
    (failed,) = alice.send(f"<enable {SM} resume='true'/>")
    assert tag(failed) == "failed" and failed.find(qname(NS_STANZAS, "unexpected-request")) is not None
    alice.bind("desk")
    (enabled,) = alice.send(f"<enable {SM} resume='true' max='600'/>")
    assert (tag(enabled), enabled.get("id"), enabled.get("resume"), enabled.get("max")) == \
        ("enabled", "sm-0", "true", "120")
    (again,) = alice.send(f"<enable {SM}/>")
    assert tag(again) == "failed" and again.find(qname(NS_STANZAS, "unexpected-request")) is not None


def test_r_and_a_both_ways() -> None:
    world = World(ack_request_every=2)
    alice, bob = Client(world, "alice"), Client(world, "bob")
    alice.online("desk")
    bob.online("phone", enable=None)
    before = len(alice.received)
    bob.send(chat("alice@localhost/desk", "one"))
    bob.send(chat("alice@localhost/desk", "two"))
    # The server asks for an ack each time two stanzas wait for one (her own presence came first).
    assert [tag(e) for e in alice.received[before:]] == ["message", "r", "message"]
    sm = alice.session.stream_management
    assert sm is not None and sm.unacked_count == 3  # the presence reflected to herself and two messages
    assert alice.send(f"<a {SM} h='3'/>") == [] and sm.unacked_count == 0
    (ack,) = alice.send(f"<r {SM}/>")
    assert (tag(ack), ack.get("h")) == ("a", "1")  # her presence; <a/> and <r/> are not stanzas


def test_an_ack_for_more_than_was_sent_is_a_stream_error() -> None:
    world = World()
    alice = Client(world, "alice")
    alice.online("desk")
    alice.send(f"<a {SM} h='5'/>")
    (close,) = alice.closed
    assert close.condition is StreamErrorCondition.UNDEFINED_CONDITION
    assert close.detail is not None and close.detail.get("h") == "5" and close.detail.get("send-count") == "1"


def test_a_lost_transport_detaches_and_a_resumption_resends_what_was_not_handled() -> None:
    world = World()
    alice, bob = Client(world, "alice"), Client(world, "bob")
    alice.online("desk")
    bob.online("phone", enable=None)
    bob.send(chat("alice@localhost/desk", "seen"))
    alice.drop()
    assert alice.detached and world.router.is_bound(JID.parse("alice@localhost/desk"))
    bob.send(chat("alice@localhost/desk", "while away"))  # queued, the hub stand-in feeds the detached session
    again = Client(world, "alice")
    again.authenticate()
    # The client handled her presence and "seen" (h=2) before the connection dropped; the server had
    # handled one stanza of hers (the presence).
    resumed, *rest = again.send(f"<resume {SM} previd='sm-0' h='2'/>")
    assert (tag(resumed), resumed.get("previd"), resumed.get("h")) == ("resumed", "sm-0", "1")
    assert again.messages() == ["while away"] and tag(rest[-1]) == "r"
    assert world.sessions[JID.parse("alice@localhost/desk")] is again
    bob.send(chat("alice@localhost/desk", "welcome back"))
    assert again.messages() == ["while away", "welcome back"]


def test_resuming_another_accounts_id_or_a_made_up_one_is_item_not_found() -> None:
    world = World()
    alice, mallory = Client(world, "alice"), Client(world, "bob")
    alice.online("desk")
    alice.drop()
    mallory.authenticate()
    for previd in ("sm-0", "guess"):
        (failed,) = mallory.send(f"<resume {SM} previd='{previd}' h='0'/>")
        assert tag(failed) == "failed" and failed.find(qname(NS_STANZAS, "item-not-found")) is not None
    assert world.table.find("sm-0", "alice") is alice.session  # untouched


def test_resume_with_h_beyond_what_was_sent_fails_and_keeps_the_session() -> None:
    world = World()
    alice = Client(world, "alice")
    alice.online("desk")
    alice.drop()
    again = Client(world, "alice")
    again.authenticate()
    (failed,) = again.send(f"<resume {SM} previd='sm-0' h='7'/>")
    assert tag(failed) == "failed" and failed.find(qname(NS_STANZAS, "undefined-condition")) is not None
    assert failed.find(qname(NS_SM, "handled-count-too-high")) is not None
    assert world.table.find("sm-0", "alice") is alice.session


def test_resume_while_the_old_stream_is_still_open_replaces_it_with_conflict() -> None:
    world = World()
    alice = Client(world, "alice")
    alice.online("desk")
    again = Client(world, "alice")
    again.authenticate()
    assert tag(again.send(f"<resume {SM} previd='sm-0' h='1'/>")[0]) == "resumed"
    (close,) = alice.closed
    assert close.condition is StreamErrorCondition.CONFLICT
    assert world.router.is_bound(JID.parse("alice@localhost/desk"))  # the old stream did not unbind it

    # Two resumptions of one id: one holds the session, the other's stream ends with conflict.
    third, fourth = Client(world, "alice"), Client(world, "alice")
    third.authenticate()
    fourth.authenticate()
    assert tag(third.send(f"<resume {SM} previd='sm-0' h='1'/>")[0]) == "resumed"
    assert tag(fourth.send(f"<resume {SM} previd='sm-0' h='1'/>")[0]) == "resumed"
    assert [c.condition for c in third.closed] == [StreamErrorCondition.CONFLICT] and fourth.closed == []
    assert world.sessions[JID.parse("alice@localhost/desk")] is fourth
    assert world.table.find("sm-0", "alice") is fourth.session


def test_expiry_unbinds_and_delivers_unacked_messages_to_another_resource_with_delay() -> None:
    world = World()
    alice, phone, bob = Client(world, "alice"), Client(world, "alice"), Client(world, "bob")
    alice.online("desk")
    phone.online("phone", enable=None)
    bob.online("laptop", enable=None)
    alice.drop()
    bob.send(chat("alice@localhost/desk", "are you there?"))
    bob.send(f"<iq xmlns='{NS_CLIENT}' to='alice@localhost/desk' type='get' id='v1'>"
             f"<query xmlns='jabber:iq:version'/></iq>")
    assert phone.messages() == []
    before = len(bob.received)
    (session,) = world.table.expired(world.now + 301)
    world.perform(session.handle(ResumptionExpired(), world.now + 301))
    assert not world.router.is_bound(JID.parse("alice@localhost/desk"))
    assert phone.messages() == ["are you there?"]
    late = next(m for m in phone.received if m.findtext(qname(NS_CLIENT, "body")) == "are you there?")
    assert late.find(qname(NS_DELAY, "delay")) is not None
    # The iq nobody will answer gets an error back to its sender (RFC 6121 §8.5.3.2.1).
    errors = [e for e in bob.received[before:] if tag(e) == "iq" and e.get("type") == "error"]
    assert [e.get("id") for e in errors] == ["v1"]
    assert errors[0].find(f"{{{NS_CLIENT}}}error/{{{NS_STANZAS}}}service-unavailable") is not None


def test_expiry_without_other_resources_stores_unacked_messages_offline() -> None:
    world = World()
    alice, bob = Client(world, "alice"), Client(world, "bob")
    alice.online("desk")
    bob.online("laptop", enable=None)
    bob.send(chat("alice@localhost/desk", "unacked"))
    alice.drop()
    bob.send(chat("alice@localhost", "queued while detached"))
    (session,) = world.table.expired(world.now + 301)
    world.perform(session.handle(ResumptionExpired(), world.now + 301))
    stored = [etree.fromstring(m.stanza) for m in world.store.offline_messages("alice")]
    assert [m.findtext(qname(NS_CLIENT, "body")) for m in stored] == ["unacked", "queued while detached"]
    assert all(len(m.findall(qname(NS_DELAY, "delay"))) == 1 for m in stored)


def test_a_clean_close_ends_the_session_and_hands_over_its_queue() -> None:
    world = World()
    alice, bob = Client(world, "alice"), Client(world, "bob")
    alice.online("desk")
    bob.online("laptop", enable=None)
    bob.send(chat("alice@localhost/desk", "unacked"))
    alice.take(alice.session.handle(StreamEnded(), world.now))
    assert not alice.detached and world.table.find("sm-0", "alice") is None
    assert [m.findtext(qname(NS_CLIENT, "body")) for m in
            (etree.fromstring(s.stanza) for s in world.store.offline_messages("alice"))] == ["unacked"]


def test_an_unacked_queue_over_its_limit_ends_the_session_even_when_detached() -> None:
    world = World(max_unacked_stanzas=3, ack_request_every=0)
    alice, bob = Client(world, "alice"), Client(world, "bob")
    alice.online("desk")
    bob.online("laptop", enable=None)
    alice.drop()
    for number in range(3):
        bob.send(chat("alice@localhost/desk", f"m{number}"))
    assert not world.router.is_bound(JID.parse("alice@localhost/desk"))
    assert world.table.find("sm-0", "alice") is None
    assert len(world.store.offline_messages("alice")) == 3


def test_without_a_table_sessions_are_acked_but_not_resumable() -> None:
    world = World()
    alice = Client(world, "alice")
    alice.session = ClientSession(settings=world.settings, router=world.router, accounts=world.accounts,
                                  throttle=AuthThrottle(), now=world.now,
                                  transport=Transport(secure=True, can_starttls=False, remote_address="192.0.2.1"))
    enabled = alice.online("desk")
    assert enabled is not None and enabled.get("resume") is None and enabled.get("id") is None
    alice.drop()
    assert not alice.detached and not world.router.is_bound(JID.parse("alice@localhost/desk"))
