"""XEP-0191 blocking through the router: the list, pushes, and what a block does to every kind of stanza."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Addressed, Element, shared
from boshcm.xmpp.blocking import Blocklists, BlocklistStore, MemoryBlocklistStore, SqliteBlocklistStore
from boshcm.xmpp.orders import RemoveBlock, RouterOrder, SaveBlock
from boshcm.xmpp.router import Deliver, Router, RouterAction, RouterMachine
from boshcm.xmpp.storage import MemoryStore

ALICE, ALICE_PHONE = JID.parse("alice@localhost/desk"), JID.parse("alice@localhost/phone")
BOB, CAROL = JID.parse("bob@localhost/laptop"), JID.parse("carol@localhost/home")
NS = "urn:xmpp:blocking"


class Users:
    anonymous: frozenset[str] = frozenset()

    def exists(self, username: str) -> bool:
        return username in {"alice", "bob", "carol"}


class Server:
    def __init__(self, lists: BlocklistStore | None = None, max_items: int = 1000) -> None:
        self.lists = lists if lists is not None else MemoryBlocklistStore()
        self.store = MemoryStore()
        self.router = Router(domain="localhost", users=Users(), store=self.store, wall_clock=lambda: 0.0,
                             blocking=Blocklists(self.lists, max_items=max_items))

    def send(self, sender: JID, text: str) -> list[RouterAction]:
        return self.router.handle_stanza(sender, etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0], 0.0)

    def online(self, jid: JID) -> list[RouterAction]:
        self.router.bind(jid, 0.0)
        return self.send(jid, "<presence/>")

    def block(self, sender: JID, *jids: str, verb: str = "block") -> list[RouterAction]:
        items = "".join(f"<item jid='{jid}'/>" for jid in jids)
        return self.send(sender, f"<iq type='set' id='b'><{verb} xmlns='{NS}'>{items}</{verb}></iq>")


def delivered(actions: list[RouterAction], to: JID | None = None, kind: str | None = None) -> list[Element]:
    return [a.stanza for a in actions if isinstance(a, Deliver) and (to is None or a.to == to)
            and (kind is None or etree.QName(a.stanza).localname == kind)]


def condition(stanza: Element) -> str:
    error = stanza.find("{jabber:client}error")
    assert error is not None
    return etree.QName(error[0]).localname


def subscribe_both_ways(server: Server, one: JID, other: JID) -> None:
    server.send(one, f"<presence to='{other.bare}' type='subscribe'/>")
    server.send(other, f"<presence to='{one.bare}' type='subscribed'/>")
    server.send(other, f"<presence to='{one.bare}' type='subscribe'/>")
    server.send(one, f"<presence to='{other.bare}' type='subscribed'/>")


def test_block_is_answered_and_pushed_to_the_resources_that_asked_for_the_list() -> None:
    server = Server()
    server.online(ALICE)
    server.online(ALICE_PHONE)
    (empty,) = delivered(server.send(ALICE, f"<iq type='get' id='l'><blocklist xmlns='{NS}'/></iq>"), ALICE)
    assert empty.get("type") == "result" and list(empty[0]) == []

    actions = server.block(ALICE_PHONE, "bob@localhost")
    (result,) = delivered(actions, ALICE_PHONE)
    assert result.get("type") == "result"
    (push,) = delivered(actions, ALICE)  # the desk asked for the list; the phone did not
    assert push.get("type") == "set" and push.find(f"{{{NS}}}block/{{{NS}}}item").get("jid") == "bob@localhost"
    (listing,) = delivered(server.send(ALICE_PHONE, f"<iq type='get' id='l'><blocklist xmlns='{NS}'/></iq>"),
                           ALICE_PHONE)
    assert [item.get("jid") for item in listing[0]] == ["bob@localhost"]


def test_a_blocked_contacts_messages_and_iqs_bounce_and_presence_vanishes() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.block(ALICE, "bob@localhost")
    message = server.send(BOB, "<message to='alice@localhost/desk' type='chat'><body>hi</body></message>")
    assert delivered(message, ALICE) == []
    (bounce,) = delivered(message, BOB)
    assert condition(bounce) == "service-unavailable"  # XEP-0191 §3.5
    iq = server.send(BOB, "<iq type='get' id='v' to='alice@localhost/desk'><query xmlns='jabber:iq:version'/></iq>")
    assert delivered(iq, ALICE) == [] and condition(delivered(iq, BOB)[0]) == "service-unavailable"
    assert server.send(BOB, "<presence to='alice@localhost/desk'/>") == []
    # Offline storage is no way round it either.
    server.router.unbind(ALICE, 0.0)
    offline = server.send(BOB, "<message to='alice@localhost' type='chat'><body>later</body></message>")
    assert condition(delivered(offline, BOB)[0]) == "service-unavailable"
    assert server.store.offline_messages("alice") == []


def test_the_user_cannot_reach_whom_they_block_and_learns_why() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.block(ALICE, "bob@localhost")
    actions = server.send(ALICE, "<message to='bob@localhost' type='chat'><body>hi</body></message>")
    assert delivered(actions, BOB) == []
    (bounce,) = delivered(actions, ALICE)
    assert condition(bounce) == "not-acceptable"  # XEP-0191 §3.6
    assert bounce.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") is not None
    assert server.send(ALICE, "<presence to='bob@localhost/laptop'/>") == []


def test_presence_stops_both_ways_and_comes_back_on_unblock() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    subscribe_both_ways(server, ALICE, BOB)
    actions = server.block(ALICE, "bob@localhost")
    (gone,) = delivered(actions, BOB, "presence")  # §3.3: bob sees alice go offline
    assert gone.get("type") == "unavailable" and gone.get("from") == str(ALICE)
    assert delivered(server.send(ALICE, "<presence><show>away</show></presence>"), BOB) == []
    assert delivered(server.send(BOB, "<presence><show>dnd</show></presence>"), ALICE) == []
    server.router.bind(ALICE_PHONE, 0.0)
    seen = delivered(server.send(ALICE_PHONE, "<presence/>"), ALICE_PHONE, "presence")  # no probe answer from bob
    assert seen and all(p.get("from", "").startswith("alice@") for p in seen)

    back = server.block(ALICE, "bob@localhost", verb="unblock")
    assert {p.get("from") for p in delivered(back, BOB, "presence")} == {str(ALICE), str(ALICE_PHONE)}
    assert [p.get("from") for p in delivered(back, ALICE, "presence")] == [str(BOB)]


def test_a_blocked_contacts_subscription_request_goes_nowhere() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.block(ALICE, "bob@localhost")
    assert delivered(server.send(BOB, "<presence to='alice@localhost' type='subscribe'/>"), ALICE) == []
    assert server.store.roster_item("alice", JID.parse("bob@localhost")) is None


def test_jid_matching_domain_blocks_everyone_there_full_jid_only_that_resource() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.online(CAROL)
    bob_phone = JID.parse("bob@localhost/phone")
    server.online(bob_phone)
    server.block(ALICE, "bob@localhost/phone")
    assert delivered(server.send(BOB, "<message to='alice@localhost/desk'><body>a</body></message>"), ALICE) != []
    assert delivered(server.send(bob_phone, "<message to='alice@localhost/desk'><body>b</body></message>"), ALICE) == []
    server.block(ALICE, "conference.localhost")
    refused = server.send(ALICE, "<presence to='room@conference.localhost/alice'/>")
    assert refused == []


def test_unblock_all_empties_the_list_and_pushes_an_empty_unblock() -> None:
    server = Server()
    server.online(ALICE)
    server.send(ALICE, f"<iq type='get' id='l'><blocklist xmlns='{NS}'/></iq>")
    server.block(ALICE, "bob@localhost", "carol@localhost")
    actions = server.block(ALICE, verb="unblock")
    (push,) = [s for s in delivered(actions, ALICE) if s.get("type") == "set"]
    assert len(push[0]) == 0 and etree.QName(push[0]).localname == "unblock"
    server.online(BOB)
    assert delivered(server.send(BOB, "<message to='alice@localhost/desk'><body>hi</body></message>"), ALICE) != []


def test_bad_block_requests_get_errors_and_the_list_has_a_limit() -> None:
    server = Server(max_items=2)
    server.online(ALICE)
    assert condition(delivered(server.block(ALICE), ALICE)[0]) == "bad-request"
    assert condition(delivered(server.block(ALICE, "@@bad"), ALICE)[0]) == "jid-malformed"
    server.block(ALICE, "one@example.org", "two@example.org")
    assert condition(delivered(server.block(ALICE, "three@example.org"), ALICE)[0]) == "resource-constraint"
    assert delivered(server.block(ALICE, "one@example.org"), ALICE)[0].get("type") == "result"  # already there


def test_blocklists_survive_a_restart_and_routing_reads_them_from_a_cache(tmp_path: Path) -> None:
    first = Server(SqliteBlocklistStore(tmp_path / "blocklist.sqlite"))
    first.online(ALICE)
    first.block(ALICE, "bob@localhost")
    first.lists.close()  # type: ignore[attr-defined]
    second = Server(SqliteBlocklistStore(tmp_path / "blocklist.sqlite"))
    second.online(ALICE)
    second.online(BOB)
    assert delivered(second.send(BOB, "<message to='alice@localhost/desk'><body>x</body></message>"), ALICE) == []

    memory = MemoryBlocklistStore()
    cached = Server(memory)
    cached.online(ALICE)
    cached.online(BOB)
    before = memory.reads
    for _ in range(20):
        cached.send(BOB, "<message to='alice@localhost/desk'><body>x</body></message>")
    assert memory.reads - before <= 2


def test_the_server_advertises_blocking() -> None:
    server = Server()
    server.online(ALICE)
    (info,) = delivered(server.send(ALICE, "<iq type='get' id='d' to='localhost'>"
                                           "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"), ALICE)
    assert NS in {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}


# --- blocklists in memory, writes as orders (issue 16 item 2) --------------------------------------

class MachineOverSqlite:
    """The pure router over a real blocklist.sqlite it may only read; every statement is recorded."""

    def __init__(self, path: Path) -> None:
        self.lists = SqliteBlocklistStore(path)
        self.lists.block("alice", [JID.parse("carol@localhost")])
        self.machine = RouterMachine(domain="localhost", users=Users(), rosters=MemoryStore(),
                                     wall_clock=lambda: 0.0, blocking=Blocklists(self.lists))
        self.statements: list[str] = []
        self.lists.connection.set_trace_callback(self.statements.append)

    def send(self, sender: JID, text: str) -> list[RouterOrder]:
        return self.machine.handle_stanza(sender, etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0], 0.0)


def test_block_and_unblock_are_orders_and_the_lists_of_users_online_are_read_once_at_bind(tmp_path: Path) -> None:
    server = MachineOverSqlite(tmp_path / "blocklist.sqlite")
    server.machine.bind(ALICE, 0.0)
    server.machine.bind(BOB, 0.0)
    assert len(server.statements) == 2  # alice's list and bob's, once each
    server.statements.clear()
    orders = server.send(ALICE, f"<iq type='set' id='b1'><block xmlns='{NS}'><item jid='bob@localhost'/></block></iq>")
    assert orders[0] == SaveBlock(user="alice", jids=(JID.parse("bob@localhost"),), request=orders[0].request)  # type: ignore[union-attr]
    assert orders[0].request.get("id") == "b1"  # type: ignore[union-attr]
    # Routing and the list itself come from memory.
    assert [o for o in server.send(BOB, "<message to='alice@localhost/desk'><body>x</body></message>")
            if isinstance(o, Deliver) and o.to == ALICE] == []
    (listing,) = [o.stanza for o in server.send(ALICE, f"<iq type='get' id='l'><blocklist xmlns='{NS}'/></iq>")
                  if isinstance(o, Deliver)]
    assert [item.get("jid") for item in listing[0]] == ["carol@localhost", "bob@localhost"]
    orders = server.send(ALICE, f"<iq type='set' id='u1'><unblock xmlns='{NS}'/></iq>")
    assert isinstance(orders[0], RemoveBlock) and orders[0].user == "alice" and orders[0].jids is None
    assert server.statements == []
    assert server.lists.blocklist("alice") == [JID.parse("carol@localhost")]  # the machine wrote nothing


def test_a_refused_blocklist_write_sends_nothing_that_followed_and_the_disk_stays_the_truth(tmp_path: Path) -> None:
    lists = SqliteBlocklistStore(tmp_path / "blocklist.sqlite")
    server = Server(lists)
    server.online(ALICE)
    server.online(ALICE_PHONE)
    server.online(BOB)
    server.send(ALICE_PHONE, f"<iq type='get' id='l'><blocklist xmlns='{NS}'/></iq>")  # the phone gets pushes
    lists.connection.execute("PRAGMA query_only = ON")  # writes fail (SQLITE_READONLY)
    actions = server.block(ALICE, "bob@localhost")
    (reply,) = delivered(actions, ALICE)
    assert reply.get("type") == "error" and condition(reply) == "resource-constraint"
    assert delivered(actions, ALICE_PHONE) == []  # no push for what was not kept
    lists.connection.execute("PRAGMA query_only = OFF")
    # Bob is not blocked: the list in memory was dropped and read again from the disk.
    assert len(delivered(server.send(BOB, "<message to='alice@localhost/desk'><body>x</body></message>"), ALICE)) == 1
    assert lists.blocklist("alice") == []


def test_room_messages_shared_by_every_recipient_skip_only_those_who_block_each_sender() -> None:
    """A room's reflections are one stanza per message for all recipients (`Addressed`), whose sender the router
    reads once per stanza: each stanza's own sender decides, for each recipient's own list."""
    server = Server()
    for jid in (ALICE, BOB, CAROL):
        server.online(jid)
    server.block(ALICE, "room@conference.localhost/mallory")
    server.block(CAROL, "conference.localhost")

    def reflection(sender: str) -> Element:
        return shared(etree.fromstring(f"<message xmlns='jabber:client' from='{sender}' type='groupchat'>"
                                       "<body>hi</body></message>"))

    mallory, nice, not_a_jid = (reflection(sender) for sender in
                                ("room@conference.localhost/mallory", "room@conference.localhost/nice", "@"))
    batch = [Addressed(to=to, stanza=stanza) for stanza in (mallory, nice, not_a_jid) for to in (ALICE, BOB, CAROL)]
    actions = server.router.machine.deliver_all(batch, 0.0)
    assert [(a.to, a.stanza) for a in actions if isinstance(a, Deliver)] == [
        (BOB, mallory), (ALICE, nice), (BOB, nice), (ALICE, not_a_jid), (BOB, not_a_jid), (CAROL, not_a_jid)]
