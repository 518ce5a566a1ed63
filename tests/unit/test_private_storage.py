"""XEP-0049 private storage and the XEP-0411 bookmarks conversion to XEP-0402 PEP bookmarks (pure)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element, make_stanza
from boshcm.xmpp.orders import SavePrivate
from boshcm.xmpp.private_storage import (
    NS_BOOKMARKS,
    NS_PRIVATE,
    MemoryPrivateStore,
    PrivateOutcome,
    PrivateStorage,
    SqlitePrivateStore,
)
from boshcm.xmpp.pubsub import MemoryPepStore, PepService
from boshcm.xmpp.router import Deliver, Router, RouterMachine
from boshcm.xmpp.storage import MemoryStore, RosterItem

ALICE = JID.parse("alice@localhost/desk")


def private_iq(kind: str, inner: str, *, sender: JID = ALICE, to: str | None = None) -> Element:
    iq = make_stanza("iq", {"type": kind, "id": "p1", "from": str(sender), **({"to": to} if to else {})})
    iq.append(etree.fromstring(f"<query xmlns='{NS_PRIVATE}'>{inner}</query>"))
    return iq


def handled(storage: PrivateStorage, sender: JID, iq: Element) -> PrivateOutcome:
    """`handle_iq`, with its write order performed as the router's adapter would."""
    outcome = storage.handle_iq(sender, iq)
    if outcome.write is not None:
        storage.store.put_fragment(outcome.write.user, outcome.write.key, outcome.write.xml)
    return outcome


def test_data_round_trips_per_element() -> None:
    storage = PrivateStorage(MemoryPrivateStore())
    assert handled(storage, ALICE, private_iq("set", "<p xmlns='urn:x'>dark</p>")).reply.get("type") == "result"
    reply = handled(storage, ALICE, private_iq("get", "<p xmlns='urn:x'/>")).reply
    assert reply.findtext("{jabber:iq:private}query/{urn:x}p") == "dark"
    empty = handled(storage, ALICE, private_iq("get", "<q xmlns='urn:x'/>")).reply
    assert empty.find("{jabber:iq:private}query/{urn:x}q") is not None


def test_another_accounts_storage_is_forbidden() -> None:
    bob = JID.parse("bob@localhost/x")
    reply = handled(PrivateStorage(MemoryPrivateStore()), bob, private_iq("get", "<p xmlns='urn:x'/>", sender=bob,
                                                                               to="alice@localhost")).reply
    assert reply.find(".//{*}forbidden") is not None


def test_reserved_namespaces_and_several_children_are_not_acceptable() -> None:
    storage = PrivateStorage(MemoryPrivateStore())
    for inner in ("<x xmlns='jabber:client'/>", "<a xmlns='urn:x'/><b xmlns='urn:x'/>", ""):
        assert handled(storage, ALICE, private_iq("set", inner)).reply.find(".//{*}not-acceptable") is not None


def test_size_and_count_limits() -> None:
    storage = PrivateStorage(MemoryPrivateStore(), max_bytes=100, max_items=2)
    big = handled(storage, ALICE, private_iq("set", f"<p xmlns='urn:x'>{'x' * 100}</p>")).reply
    assert big.find(".//{*}not-acceptable") is not None
    handled(storage, ALICE, private_iq("set", "<a xmlns='urn:x'/>"))
    handled(storage, ALICE, private_iq("set", "<b xmlns='urn:x'/>"))
    assert handled(storage, ALICE, private_iq("set", "<a xmlns='urn:x'>again</a>")).reply.get("type") == "result"
    third = handled(storage, ALICE, private_iq("set", "<c xmlns='urn:x'/>")).reply
    assert third.find(".//{*}resource-constraint") is not None


class NoRoster:
    def roster_item(self, user: str, jid: JID) -> RosterItem | None:
        return None

    def roster_items(self, user: str) -> list[RosterItem]:
        return []


def test_legacy_bookmarks_live_in_pep_and_come_back() -> None:
    pep_store = MemoryPepStore()
    pep = PepService(domain="localhost", store=pep_store, roster=NoRoster(), online=lambda jid: [])
    storage = PrivateStorage(MemoryPrivateStore(), pep_store=pep_store)
    legacy = ("<storage xmlns='storage:bookmarks'><conference jid='quiz@conference.localhost' name='Quiz' "
              "autojoin='1'><nick>Al</nick></conference><conference jid='a@conference.localhost'/></storage>")
    outcome = handled(storage, ALICE, private_iq("set", legacy))
    assert outcome.reply.get("type") == "result" and len(outcome.pubsub) == 2
    for request in outcome.pubsub:
        (reply, *_) = pep.handle_iq(ALICE.bare, request)
        assert reply.stanza.get("type") == "result", etree.tostring(reply.stanza)
    assert {item.id for item in pep_store.items("alice", NS_BOOKMARKS)} == {"quiz@conference.localhost",
                                                                           "a@conference.localhost"}
    # A set without a room retracts it (XEP-0411 §3); a get reads PEP.
    one = "<storage xmlns='storage:bookmarks'><conference jid='quiz@conference.localhost' name='Quiz'/></storage>"
    for request in handled(storage, ALICE, private_iq("set", one)).pubsub:
        pep.handle_iq(ALICE.bare, request)
    reply = handled(storage, ALICE, private_iq("get", "<storage xmlns='storage:bookmarks'/>")).reply
    conferences = reply.findall(".//{storage:bookmarks}conference")
    assert [(c.get("jid"), c.get("name"), c.get("autojoin")) for c in conferences] == [
        ("quiz@conference.localhost", "Quiz", "false")]
    assert handled(storage, ALICE, private_iq("get", "<storage xmlns='storage:bookmarks'/>")).pubsub == []


def test_a_bookmark_of_a_full_jid_is_refused() -> None:
    storage = PrivateStorage(MemoryPrivateStore(), pep_store=MemoryPepStore())
    bad = "<storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost/nick'/></storage>"
    assert handled(storage, ALICE, private_iq("set", bad)).reply.find(".//{*}bad-request") is not None


# --- writes as orders (issue 16 item 2) ------------------------------------------------------------

class Users:
    anonymous: frozenset[str] = frozenset()

    def exists(self, username: str) -> bool:
        return username == "alice"


def test_a_private_set_is_an_order_before_its_result_and_the_machine_writes_nothing(tmp_path: Path) -> None:
    store = SqlitePrivateStore(tmp_path / "private.sqlite")
    machine = RouterMachine(domain="localhost", users=Users(), rosters=MemoryStore(), wall_clock=lambda: 0.0,
                            private=PrivateStorage(store))
    machine.bind(ALICE, 0.0)
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    order, result = machine.handle_stanza(ALICE, private_iq("set", "<p xmlns='urn:x'>dark</p>"), 0.0)
    assert isinstance(order, SavePrivate) and (order.user, order.key) == ("alice", "{urn:x}p")
    assert isinstance(result, Deliver) and result.stanza.get("type") == "result"
    assert [s for s in statements if not s.lstrip().upper().startswith("SELECT")] == []
    assert store.keys("alice") == []


def test_a_refused_private_write_gets_a_storage_error_and_no_result(tmp_path: Path) -> None:
    store = SqlitePrivateStore(tmp_path / "private.sqlite")
    router = Router(domain="localhost", users=Users(), store=MemoryStore(), wall_clock=lambda: 0.0,
                    private=PrivateStorage(store))
    router.bind(ALICE, 0.0)
    store.connection.execute("PRAGMA query_only = ON")  # writes fail (SQLITE_READONLY)
    (reply,) = [a.stanza for a in router.handle_stanza(ALICE, private_iq("set", "<p xmlns='urn:x'>dark</p>"), 0.0)
                if isinstance(a, Deliver)]
    assert reply.get("type") == "error" and reply.find(".//{*}resource-constraint") is not None
    store.connection.execute("PRAGMA query_only = OFF")
    (reply,) = [a.stanza for a in router.handle_stanza(ALICE, private_iq("set", "<p xmlns='urn:x'>dark</p>"), 0.0)
                if isinstance(a, Deliver)]
    assert reply.get("type") == "result" and store.fragment("alice", "{urn:x}p") is not None
