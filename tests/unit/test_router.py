"""Routing rules (RFC 6121 §8.5), presence, roster and subscriptions, read as conversations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lxml import etree

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import SHARED_ADDRESSEE, Addressed, Element, shared
from boshcm.xmpp.orders import FetchOffline, RemoveRosterItem, RouterOrder, SaveRosterItem, StoreOffline
from boshcm.xmpp.router import Deliver, Disconnect, Router, RouterAction, RouterMachine
from boshcm.xmpp.storage import MemoryStore, RosterItem, SqliteStore

ALICE_DESK, ALICE_PHONE = JID.parse("alice@localhost/desk"), JID.parse("alice@localhost/phone")
BOB = JID.parse("bob@localhost/laptop")


class Users:
    anonymous: frozenset[str] = frozenset()

    def exists(self, username: str) -> bool:
        return username in {"alice", "bob", "carol"}


class Server:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.router = Router(domain="localhost", users=Users(), store=self.store, wall_clock=lambda: 1_700_000_000.0)

    def bind(self, *jids: JID) -> None:
        for jid in jids:
            self.router.bind(jid, 0.0)

    def send(self, sender: JID, text: str) -> list[RouterAction]:
        return self.router.handle_stanza(sender, etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0], 0.0)

    def online(self, jid: JID, priority: int = 0) -> list[RouterAction]:
        self.bind(jid)
        self.send(jid, "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        return self.send(jid, f"<presence><priority>{priority}</priority></presence>")


def delivered(actions: list[RouterAction]) -> list[tuple[str, Element]]:
    return [(str(a.to), a.stanza) for a in actions if isinstance(a, Deliver)]


def recipients(actions: list[RouterAction], kind: str | None = None) -> list[str]:
    return [to for to, stanza in delivered(actions) if kind is None or etree.QName(stanza).localname == kind]


def error_condition(stanza: Element) -> str:
    error = stanza.find("{jabber:client}error")
    assert error is not None
    return etree.QName(error[0]).localname


def subscribe_both_ways(server: Server) -> None:
    server.send(ALICE_DESK, "<presence to='bob@localhost' type='subscribe'/>")
    server.send(BOB, "<presence to='alice@localhost' type='subscribed'/>")
    server.send(BOB, "<presence to='alice@localhost' type='subscribe'/>")
    server.send(ALICE_DESK, "<presence to='bob@localhost' type='subscribed'/>")


def test_message_to_a_full_jid_reaches_only_that_resource_stamped_with_the_sender() -> None:
    server = Server()
    server.online(ALICE_DESK)
    server.online(BOB)
    ((to, stanza),) = delivered(
        server.send(BOB, "<message to='alice@localhost/desk' type='chat'><body>hi</body></message>")
    )
    assert to == "alice@localhost/desk" and stanza.get("from") == "bob@localhost/laptop"


def test_message_to_a_bare_jid_goes_to_the_highest_priority_resources() -> None:
    server = Server()
    server.online(ALICE_DESK, priority=5)
    server.online(ALICE_PHONE, priority=1)
    server.online(BOB)
    assert recipients(server.send(BOB, "<message to='alice@localhost' type='chat'><body>x</body></message>")) == [
        "alice@localhost/desk"
    ]
    server.send(ALICE_PHONE, "<presence><priority>5</priority></presence>")
    assert sorted(recipients(server.send(BOB, "<message to='alice@localhost'><body>x</body></message>"))) == [
        "alice@localhost/desk",
        "alice@localhost/phone",
    ]


def test_negative_priority_resources_get_no_bare_messages_so_they_are_stored() -> None:
    server = Server()
    server.online(ALICE_DESK, priority=-1)
    server.online(BOB)
    assert delivered(server.send(BOB, "<message to='alice@localhost' type='chat'><body>x</body></message>")) == []
    assert len(server.store.offline_messages("alice")) == 1


def test_chat_to_an_unbound_full_jid_falls_back_to_the_bare_jid() -> None:
    server = Server()
    server.online(ALICE_PHONE)
    server.online(BOB)
    actions = server.send(BOB, "<message to='alice@localhost/gone' type='chat'><body>x</body></message>")
    assert recipients(actions) == ["alice@localhost/phone"]


def test_iq_to_an_unbound_full_jid_is_service_unavailable() -> None:
    server = Server()
    server.online(BOB)
    ((to, reply),) = delivered(
        server.send(BOB, "<iq to='alice@localhost/gone' type='get' id='1'><query xmlns='jabber:iq:version'/></iq>")
    )
    assert to == "bob@localhost/laptop" and reply.get("type") == "error" and reply.get("id") == "1"
    assert error_condition(reply) == "service-unavailable"


def test_offline_chat_and_normal_messages_are_stored_and_delivered_in_order_at_next_initial_presence() -> None:
    server = Server()
    server.online(BOB)
    server.send(BOB, "<message to='alice@localhost' type='chat'><body>one</body></message>")
    server.send(BOB, "<message to='alice@localhost'><body>two</body></message>")
    server.send(BOB, "<message to='alice@localhost' type='headline'><body>news</body></message>")
    # XEP-0334: the sender asked that it not be stored, not even for later delivery.
    server.send(BOB, "<message to='alice@localhost' type='chat'><body>gone</body><no-store xmlns='urn:xmpp:hints'/>"
                     "</message>")
    server.send(
        BOB,
        "<message to='alice@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    )
    server.bind(ALICE_DESK)
    actions = server.send(ALICE_DESK, "<presence/>")
    bodies = [
        s.findtext("{jabber:client}body") for to, s in delivered(actions) if etree.QName(s).localname == "message"
    ]
    assert bodies == ["one", "two"]
    (stored,) = [s for _to, s in delivered(actions) if s.findtext("{jabber:client}body") == "one"]
    assert stored.find("{urn:xmpp:delay}delay").get("stamp") == "2023-11-14T22:13:20.000Z"  # type: ignore[union-attr]
    assert server.store.offline_messages("alice") == []


def test_groupchat_to_a_user_is_service_unavailable_and_unknown_users_bounce() -> None:
    server = Server()
    server.online(BOB)
    (reply,) = [
        s
        for _to, s in delivered(
            server.send(BOB, "<message to='alice@localhost' type='groupchat'><body>x</body></message>")
        )
    ]
    assert error_condition(reply) == "service-unavailable"
    (reply,) = [s for _to, s in delivered(server.send(BOB, "<message to='nobody@localhost'><body>x</body></message>"))]
    assert error_condition(reply) == "service-unavailable"
    assert delivered(server.send(BOB, "<presence to='nobody@localhost'/>")) == []


def test_remote_domains_are_remote_server_not_found() -> None:
    server = Server()
    server.online(BOB)
    (reply,) = [s for _to, s in delivered(server.send(BOB, "<message to='x@example.org'><body>x</body></message>"))]
    assert error_condition(reply) == "remote-server-not-found"


def test_errors_are_never_answered_with_errors() -> None:
    server = Server()
    server.online(BOB)
    assert delivered(server.send(BOB, "<message to='nobody@localhost' type='error'><body>x</body></message>")) == []


def test_server_answers_disco_ping_and_version_and_refuses_unknown_namespaces() -> None:
    server = Server()
    server.online(BOB)
    ((_, info),) = delivered(
        server.send(
            BOB, "<iq to='localhost' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
    )
    features = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {
        "urn:xmpp:ping",
        "jabber:iq:version",
        "jabber:iq:roster",
        "http://jabber.org/protocol/disco#items",
    } <= features
    ((_, pong),) = delivered(
        server.send(BOB, "<iq to='localhost' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
    )
    assert pong.get("type") == "result" and pong.get("from") == "localhost"
    ((_, version),) = delivered(
        server.send(BOB, "<iq to='localhost' type='get' id='v'><query xmlns='jabber:iq:version'/></iq>")
    )
    assert version.findtext("{jabber:iq:version}query/{jabber:iq:version}name") == "boshcm"
    ((_, refusal),) = delivered(
        server.send(BOB, "<iq to='localhost' type='get' id='u'><query xmlns='urn:example:nope'/></iq>")
    )
    assert error_condition(refusal) == "service-unavailable"
    ((_, bad),) = delivered(server.send(BOB, "<iq to='localhost' type='get' id='b'/>"))
    assert error_condition(bad) == "bad-request"


def test_roster_set_is_pushed_to_interested_resources_only() -> None:
    server = Server()
    server.online(ALICE_DESK)
    server.bind(ALICE_PHONE)  # never asked for the roster
    actions = server.send(
        ALICE_DESK,
        "<iq type='set' id='s'><query xmlns='jabber:iq:roster'>"
        "<item jid='carol@localhost' name='Carol'><group>Quiz</group></item></query></iq>",
    )
    pushes = [(to, s) for to, s in delivered(actions) if s.get("type") == "set"]
    assert [to for to, _ in pushes] == ["alice@localhost/desk"]
    item = pushes[0][1].find(".//{jabber:iq:roster}item")
    assert item is not None and item.get("name") == "Carol" and item.get("subscription") == "none"
    assert item.findtext("{jabber:iq:roster}group") == "Quiz"


def test_full_subscription_dance_between_two_local_users() -> None:
    server = Server()
    server.online(ALICE_DESK)
    server.online(BOB)
    request = server.send(ALICE_DESK, "<presence to='bob@localhost' type='subscribe'/>")
    assert ("bob@localhost/laptop", "subscribe") in [(to, s.get("type")) for to, s in delivered(request)]
    assert server.store.roster_item("alice", JID.parse("bob@localhost")).ask  # type: ignore[union-attr]

    approval = server.send(BOB, "<presence to='alice@localhost' type='subscribed'/>")
    kinds = [(to, etree.QName(s).localname, s.get("type")) for to, s in delivered(approval)]
    assert ("alice@localhost/desk", "presence", "subscribed") in kinds
    assert ("alice@localhost/desk", "presence", None) in kinds  # bob's current presence follows
    assert server.store.roster_item("alice", JID.parse("bob@localhost")).subscription == "to"  # type: ignore[union-attr]
    assert server.store.roster_item("bob", JID.parse("alice@localhost")).subscription == "from"  # type: ignore[union-attr]

    server.send(BOB, "<presence to='alice@localhost' type='subscribe'/>")
    server.send(ALICE_DESK, "<presence to='bob@localhost' type='subscribed'/>")
    assert server.store.roster_item("alice", JID.parse("bob@localhost")).subscription == "both"  # type: ignore[union-attr]
    assert server.store.roster_item("bob", JID.parse("alice@localhost")).subscription == "both"  # type: ignore[union-attr]

    update = server.send(BOB, "<presence><show>away</show></presence>")
    assert "alice@localhost/desk" in recipients(update, "presence")


def test_unsubscribed_stops_presence_and_roster_remove_cancels_both_ways() -> None:
    server = Server()
    server.online(ALICE_DESK)
    server.online(BOB)
    subscribe_both_ways(server)
    cancel = server.send(BOB, "<presence to='alice@localhost' type='unsubscribed'/>")
    assert ("alice@localhost/desk", "unavailable") in [(to, s.get("type")) for to, s in delivered(cancel)]
    assert server.store.roster_item("alice", JID.parse("bob@localhost")).subscription == "from"  # type: ignore[union-attr]
    assert "alice@localhost/desk" not in recipients(server.send(BOB, "<presence/>"), "presence")

    server.send(
        ALICE_DESK,
        "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>"
        "<item jid='bob@localhost' subscription='remove'/></query></iq>",
    )
    assert server.store.roster_item("alice", JID.parse("bob@localhost")) is None
    assert server.store.roster_item("bob", JID.parse("alice@localhost")).subscription == "none"  # type: ignore[union-attr]


def test_subscription_request_to_an_offline_user_is_delivered_at_their_next_login() -> None:
    server = Server()
    server.online(ALICE_DESK)
    server.send(ALICE_DESK, "<presence to='bob@localhost' type='subscribe'/>")
    login = server.online(BOB)
    assert ("bob@localhost/laptop", "subscribe") in [(to, s.get("type")) for to, s in delivered(login)]


def test_initial_presence_probes_contacts_and_unbind_broadcasts_unavailable() -> None:
    server = Server()
    server.online(ALICE_DESK)
    server.online(BOB)
    subscribe_both_ways(server)
    server.router.unbind(BOB, 0.0)
    server.bind(BOB)
    login = server.send(BOB, "<presence><status>back</status></presence>")
    assert ("bob@localhost/laptop", "alice@localhost/desk") in [(to, s.get("from")) for to, s in delivered(login)]
    gone = server.router.unbind(BOB, 0.0)
    assert [(to, s.get("type"), s.get("from")) for to, s in delivered(gone)] == [
        ("alice@localhost/desk", "unavailable", "bob@localhost/laptop")
    ]


def test_directed_presence_recipients_get_unavailable_at_logoff() -> None:
    server = Server()
    server.online(ALICE_DESK)
    server.bind(BOB)  # no subscription between them
    server.send(BOB, "<presence to='alice@localhost/desk'/>")
    gone = server.router.unbind(BOB, 0.0)
    assert [(to, s.get("type")) for to, s in delivered(gone)] == [("alice@localhost/desk", "unavailable")]


def test_binding_a_bound_resource_disconnects_the_old_session_with_conflict() -> None:
    server = Server()
    server.bind(ALICE_DESK)
    assert server.router.bind(ALICE_DESK, 0.0) == [Disconnect(jid=ALICE_DESK, condition=StreamErrorCondition.CONFLICT)]


def test_direct_muc_invitation_xep_0249_reaches_an_offline_invitee_later() -> None:
    server = Server()
    server.online(BOB)
    server.send(BOB, "<message to='alice@localhost'><x xmlns='jabber:x:conference' jid='quiz@conference.localhost'/>"
                     "</message>")
    login = server.online(ALICE_DESK)
    invitations = [s for _to, s in delivered(login) if s.find("{jabber:x:conference}x") is not None]
    assert len(invitations) == 1 and invitations[0].get("from") == "bob@localhost/laptop"


# --- offline storage: guests, quotas, storage faults ------------------------------------------------

GUEST = JID.parse("anon-7f3a@localhost/web")


class UsersWithGuest(Users):
    anonymous = frozenset({"anon-7f3a"})

    def exists(self, username: str) -> bool:
        return username in self.anonymous or super().exists(username)


class SqliteServer(Server):
    def __init__(self, path: Path, **limits: int) -> None:
        self.store = SqliteStore(path, **limits)  # type: ignore[assignment]
        self.router = Router(domain="localhost", users=UsersWithGuest(), store=self.store,
                             wall_clock=lambda: 1_700_000_000.0)

    @property
    def db(self) -> sqlite3.Connection:
        assert isinstance(self.store, SqliteStore)
        return self.store.connection


def bodies_for(actions: list[RouterAction], to: str) -> list[str | None]:
    return [stanza.findtext("{jabber:client}body") for jid, stanza in delivered(actions)
            if jid == to and etree.QName(stanza).localname == "message"]


def error_of(actions: list[RouterAction], to: str) -> tuple[str, str | None]:
    ((_to, reply),) = [(jid, stanza) for jid, stanza in delivered(actions) if jid == to]
    error = reply.find("{jabber:client}error")
    assert reply.get("type") == "error" and error is not None
    return etree.QName(error[0]).localname, error.get("type")


def test_a_guest_cannot_leave_offline_messages_but_can_chat_with_online_users(tmp_path: Path) -> None:
    server = SqliteServer(tmp_path / "server.sqlite")
    server.online(GUEST)
    actions = server.send(GUEST, "<message to='bob@localhost' type='chat'><body>spam</body></message>")
    assert error_of(actions, str(GUEST)) == ("service-unavailable", "cancel")
    assert server.store.offline_messages("bob") == []
    server.online(BOB)
    actions = server.send(GUEST, "<message to='bob@localhost' type='chat'><body>hello</body></message>")
    assert bodies_for(actions, str(BOB)) == ["hello"]


def test_offline_quota_is_per_recipient_and_full_means_service_unavailable(tmp_path: Path) -> None:
    server = SqliteServer(tmp_path / "server.sqlite", max_offline_messages=2)
    server.online(ALICE_DESK)
    for text in ("one", "two"):
        assert server.send(ALICE_DESK, f"<message to='bob@localhost'><body>{text}</body></message>") == []
    actions = server.send(ALICE_DESK, "<message to='bob@localhost'><body>three</body></message>")
    assert error_of(actions, str(ALICE_DESK)) == ("service-unavailable", "cancel")
    assert server.send(ALICE_DESK, "<message to='carol@localhost'><body>for carol</body></message>") == []


def test_a_full_store_bounces_with_resource_constraint_wait_and_keeps_earlier_messages(tmp_path: Path) -> None:
    server = SqliteServer(tmp_path / "server.sqlite")
    server.online(ALICE_DESK)
    server.send(ALICE_DESK, "<message to='bob@localhost'><body>before</body></message>")
    (pages,) = server.db.execute("PRAGMA page_count").fetchone()
    server.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL, as on a full disk
    big = "x" * 20_000
    actions = server.send(ALICE_DESK, f"<message to='bob@localhost' id='m2'><body>{big}</body></message>")
    assert error_of(actions, str(ALICE_DESK)) == ("resource-constraint", "wait")
    # Roster changes that cannot be saved are refused the same way, not a traceback.
    actions = server.send(ALICE_DESK, f"<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                                      f"<item jid='carol@localhost' name='{big}'/></query></iq>")
    assert error_of(actions, str(ALICE_DESK)) == ("resource-constraint", "wait")
    # The recipient still logs in and gets what was stored before.
    assert bodies_for(server.online(BOB), str(BOB)) == ["before"]
    server.router.unbind(BOB, 0.0)
    server.db.execute("PRAGMA max_page_count = 1073741823")  # space returns
    assert server.send(ALICE_DESK, f"<message to='bob@localhost'><body>{big}</body></message>") == []
    assert bodies_for(server.online(BOB), str(BOB)) == [big]


def test_when_deleting_delivered_offline_messages_fails_they_come_again_not_lost(tmp_path: Path) -> None:
    server = SqliteServer(tmp_path / "server.sqlite")
    server.online(ALICE_DESK)
    server.send(ALICE_DESK, "<message to='bob@localhost'><body>one</body></message>")
    server.send(ALICE_DESK, "<message to='bob@localhost'><body>two</body></message>")
    server.db.execute("PRAGMA query_only = ON")  # writes fail (SQLITE_READONLY), reads work
    assert bodies_for(server.online(BOB), str(BOB)) == ["one", "two"]  # login does not depend on the delete
    server.router.unbind(BOB, 0.0)
    server.db.execute("PRAGMA query_only = OFF")
    assert bodies_for(server.online(BOB), str(BOB)) == ["one", "two"]  # delivered again, now deleted
    server.router.unbind(BOB, 0.0)
    assert bodies_for(server.online(BOB), str(BOB)) == []


class AccountServer(Server):
    """The router with the server's real directory of users over a real account database, and a clock."""

    def __init__(self, path: Path) -> None:
        from boshcm.app import LiveUsers
        from boshcm.xmpp.accounts import AccountStore

        self.now = 0.0
        self.accounts = AccountStore(path, iterations=1, clock=lambda: self.now)
        for name in ("alice", "bob"):
            self.accounts.add(name, f"{name}-secret")
        self.store = MemoryStore()
        self.router = Router(domain="localhost", users=LiveUsers(self.accounts), store=self.store,
                             wall_clock=lambda: 1_700_000_000.0)
        self.statements: list[str] = []
        self.accounts._db.set_trace_callback(self.statements.append)  # every statement SQLite runs for it


def test_routing_stanzas_asks_the_account_database_nothing(tmp_path: Path) -> None:
    server = AccountServer(tmp_path / "accounts.sqlite")
    server.online(ALICE_DESK)
    server.online(BOB)
    server.statements.clear()
    for index in range(200):
        actions = server.send(ALICE_DESK, f"<message to='bob@localhost' type='chat'><body>{index}</body></message>")
        assert recipients(actions) == [str(BOB)]
        server.send(BOB, "<presence to='alice@localhost' type='subscribe'/>")
        server.send(ALICE_DESK, "<message to='nobody@localhost'><body>anyone?</body></message>")  # no such user
    assert server.statements == []


def test_accounts_another_process_makes_or_removes_are_routed_to_within_a_second(tmp_path: Path) -> None:
    from boshcm.xmpp.accounts import AccountStore

    server = AccountServer(tmp_path / "accounts.sqlite")
    server.online(ALICE_DESK)
    other = AccountStore(tmp_path / "accounts.sqlite", iterations=1)  # `boshcm adduser carol` meanwhile
    other.add("carol", "carol-secret")
    other.remove("bob")
    server.now = 1.0
    to_carol = server.send(ALICE_DESK, "<message to='carol@localhost' id='c'><body>hi</body></message>")
    assert delivered(to_carol) == []  # stored for carol's first login, not bounced
    (bounce,) = [stanza for _to, stanza in delivered(
        server.send(ALICE_DESK, "<message to='bob@localhost' id='b'><body>hi</body></message>"))]
    assert error_condition(bounce) == "service-unavailable"
    assert len([s for s in server.statements if "data_version" in s]) == 1  # one check for both, not one each


# --- the machine's storage orders (issue 16 item 2) ------------------------------------------------

class MachineOverSqlite:
    """The pure router over a real server.sqlite it may only read rosters from; every statement is recorded."""

    def __init__(self, path: Path) -> None:
        self.store = SqliteStore(path)
        self.store.put_roster_item("bob", RosterItem(jid=JID.parse("carol@localhost"), subscription="both"))
        self.machine = RouterMachine(domain="localhost", users=Users(), rosters=self.store,
                                     wall_clock=lambda: 1_700_000_000.0)
        self.statements: list[str] = []
        self.store.connection.set_trace_callback(self.statements.append)

    def send(self, sender: JID, text: str) -> list[RouterOrder]:
        return self.machine.handle_stanza(sender, etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0], 0.0)

    def writes(self) -> list[str]:
        return [statement for statement in self.statements if not statement.lstrip().upper().startswith("SELECT")]


def test_a_message_for_an_offline_user_is_a_store_offline_order_and_no_sqlite_write(tmp_path: Path) -> None:
    server = MachineOverSqlite(tmp_path / "server.sqlite")
    server.machine.bind(ALICE_DESK, 0.0)
    server.send(ALICE_DESK, "<presence/>")
    server.statements.clear()
    orders = server.send(ALICE_DESK, "<message to='bob@localhost' type='chat' id='m1'><body>later</body></message>")
    (order,) = orders
    assert isinstance(order, StoreOffline) and order.user == "bob"
    assert order.stanza.findtext("{jabber:client}body") == "later"
    assert order.stanza.find("{urn:xmpp:delay}delay").get("stamp") == "2023-11-14T22:13:20.000Z"  # type: ignore[union-attr]
    assert server.writes() == [] and server.statements == []
    assert server.store.offline_messages("bob") == []  # the machine wrote nothing; its performer would


def test_initial_presence_orders_the_offline_messages_read_instead_of_reading_them(tmp_path: Path) -> None:
    server = MachineOverSqlite(tmp_path / "server.sqlite")
    server.store.store_offline("bob", b"<message xmlns='jabber:client'><body>stored</body></message>")
    server.machine.bind(BOB, 0.0)  # bob's roster is read here, once
    server.statements.clear()
    orders = server.send(BOB, "<presence/>")
    assert FetchOffline(jid=BOB) in orders
    assert server.statements == []


def test_roster_changes_are_orders_and_rosters_are_read_from_memory(tmp_path: Path) -> None:
    server = MachineOverSqlite(tmp_path / "server.sqlite")
    server.machine.bind(ALICE_DESK, 0.0)
    server.statements.clear()
    orders = server.send(ALICE_DESK, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                                     "<item jid='carol@localhost' name='Carol'/></query></iq>")
    assert isinstance(orders[0], SaveRosterItem) and orders[0].user == "alice"  # the write before the result
    assert orders[0].item.name == "Carol" and orders[0].request.get("id") == "r1"
    result = server.send(ALICE_DESK, "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
    (reply,) = [order.stanza for order in result if isinstance(order, Deliver)]
    assert [item.get("jid") for item in reply.iter("{jabber:iq:roster}item")] == ["carol@localhost"]
    orders = server.send(ALICE_DESK, "<iq type='set' id='r3'><query xmlns='jabber:iq:roster'>"
                                     "<item jid='carol@localhost' subscription='remove'/></query></iq>")
    assert RemoveRosterItem(user="alice", jid=JID.parse("carol@localhost"), request=orders[0].request) in orders
    # A subscription request to bob (offline): bob's roster is read once, both changes are orders.
    orders = server.send(ALICE_DESK, "<presence to='bob@localhost' type='subscribe'/>")
    assert [(order.user, str(order.item.jid)) for order in orders if isinstance(order, SaveRosterItem)] == [
        ("alice", "bob@localhost"), ("bob", "alice@localhost")]
    assert server.writes() == []
    assert len(server.statements) == 1  # bob's roster, read when first needed
    assert server.store.roster_items("alice") == []


def test_a_refused_roster_write_sends_nothing_that_followed_and_the_disk_stays_the_truth(tmp_path: Path) -> None:
    server = SqliteServer(tmp_path / "server.sqlite")
    server.online(ALICE_DESK)
    server.db.execute("PRAGMA query_only = ON")  # writes fail (SQLITE_READONLY)
    actions = server.send(ALICE_DESK, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                                      "<item jid='carol@localhost'/></query></iq>")
    assert error_of(actions, str(ALICE_DESK)) == ("resource-constraint", "wait")  # no result, no push
    assert server.send(ALICE_DESK, "<presence to='bob@localhost' type='subscribe'/>") == []
    server.db.execute("PRAGMA query_only = OFF")
    roster = delivered(server.send(ALICE_DESK, "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>"))
    assert [item.get("jid") for _to, reply in roster for item in reply.iter("{jabber:iq:roster}item")] == []
    # Bob's side of the refused subscription request was never kept either.
    assert [stanza.get("type") for _to, stanza in delivered(server.online(BOB))] == [None]  # his own presence


def test_a_shared_stanza_reaches_bound_sessions_as_it_is_and_becomes_a_copy_wherever_else_it_goes() -> None:
    """Serialise once (issue 14): a room's reflection is one stanza for every occupant (`Addressed`); a bound
    session gets it as it is (its writer puts the JID in), anything else (a bounce here) a copy addressed to the
    recipient, and so does the XEP-0198 queue a session leaves behind."""
    server = Server()
    server.online(ALICE_DESK)
    server.online(BOB)
    # As from a room; from Bob here, so that a bounce has a session to reach in this router of one domain.
    room_message = etree.fromstring(f"<message xmlns='jabber:client' from='{BOB}' type='groupchat'>"
                                    "<body>hi</body></message>")
    one = shared(room_message)
    gone = JID.parse("carol@localhost/web")  # no session: a groupchat message to it bounces (RFC 6121 §8.5.3.2.1)
    actions = server.router.machine.deliver_all([Addressed(to=to, stanza=one) for to in (ALICE_DESK, BOB, gone)], 0.0)
    assert [(to, stanza is one) for to, stanza in delivered(actions)] == [
        (str(ALICE_DESK), True), (str(BOB), True), (str(BOB), False)]
    bounce = delivered(actions)[2][1]
    assert (bounce.get("from"), bounce.get("type")) == (str(gone), "error")
    assert one.get("to") == SHARED_ADDRESSEE and one.find("{jabber:client}error") is None  # the shared one untouched

    server.router.unbind(ALICE_DESK, 0.0)  # her session ended without acknowledging it
    ((to, handed_back),) = delivered(server.router.take_over_unacked(ALICE_DESK, [one], 0.0))
    assert (to, handed_back.get("from")) == (str(BOB), str(ALICE_DESK))
    assert error_condition(handed_back) == "service-unavailable"
    assert one.get("to") == SHARED_ADDRESSEE and one.find("{jabber:client}error") is None
