"""PEP's changes as storage orders (issue 16 item 2): the service reads and changes a view in memory, the router's
adapter writes pep.sqlite in the order given; a refused write is a storage error and the disk stays the truth."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element, make_stanza, sub
from boshcm.xmpp.orders import (
    DeletePepNode,
    DeletePepUser,
    PublishPepItem,
    PurgePepNode,
    PutPepNode,
    RetractPepItem,
    SetPepAffiliation,
    SetPepSubscription,
)
from boshcm.xmpp.private_storage import MemoryPrivateStore, PrivateStorage
from boshcm.xmpp.pubsub import NodeConfig, PepLimits, PepService, SqlitePepStore
from boshcm.xmpp.pubsub.store import perform
from boshcm.xmpp.router import Deliver, Router, RouterAction
from boshcm.xmpp.storage import MemoryStore
from boshcm.xmpp.vcard import NS_AVATAR_DATA, NS_AVATAR_METADATA, NS_VCARD, MemoryVCardStore, VCards
from tests.unit.test_pep import (
    ALICE,
    ALICE_PHONE,
    BOB,
    PUBSUB,
    TUNE,
    Server,
    error_of,
    field,
    form,
    notifications,
    online_with_interest,
    reply,
    subscribe_both_ways,
)

OWNER = f"{PUBSUB}#owner"
BOOKMARKS = "urn:xmpp:bookmarks:1"


def stanza(text: str) -> Element:
    return etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0]


def publish(node: str, payload: str, item_id: str = "current", options: str = "") -> str:
    publish_options = f"<publish-options>{form('publish-options', options)}</publish-options>" if options else ""
    return (f"<iq type='set' id='pub'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{item_id}'>"
            f"{payload}</item></publish>{publish_options}</pubsub></iq>")


class Traced:
    """`Server` (tests/unit/test_pep.py) over a real pep.sqlite whose every statement is recorded."""

    def __init__(self, path: Path, limits: PepLimits | None = None) -> None:
        self.store = SqlitePepStore(path)
        self.server = Server(pep=self.store, limits=limits)
        self.statements: list[str] = []
        self.store.connection.set_trace_callback(self.statements.append)

    def machine(self, sender: JID, text: str) -> list[object]:
        """The pure machine alone: what it orders, nothing performed."""
        return list(self.server.router.machine.handle_stanza(sender, stanza(text), 0.0))

    def writes(self) -> list[str]:
        return [s for s in self.statements if not s.lstrip().upper().startswith(("SELECT", "PRAGMA"))]


def test_a_publish_is_a_write_order_before_its_result_and_notifications_and_the_machine_touches_no_sqlite(
        tmp_path: Path) -> None:
    traced = Traced(tmp_path / "pep.sqlite")
    online_with_interest(traced.server, ALICE, [])
    online_with_interest(traced.server, ALICE_PHONE, [TUNE])
    traced.statements.clear()
    orders = traced.machine(ALICE, publish(TUNE, f"<tune xmlns='{TUNE}'>one</tune>"))
    assert traced.statements and traced.writes() == []  # alice's PEP is read at its first need, not written
    create, item, result, notification = orders
    assert isinstance(create, PutPepNode) and (create.owner, create.node) == ("alice", TUNE)
    assert isinstance(item, PublishPepItem) and (item.owner, item.node, item.item.id) == ("alice", TUNE, "current")
    assert item.request is not None and item.request.get("id") == "pub"
    assert isinstance(result, Deliver) and result.to == ALICE and result.stanza.get("type") == "result"
    assert isinstance(notification, Deliver) and notification.to == ALICE_PHONE
    assert traced.store.nodes("alice") == {}  # the machine wrote nothing; its adapter would
    traced.statements.clear()
    (item, *_delivers) = traced.machine(ALICE, publish(TUNE, f"<tune xmlns='{TUNE}'>two</tune>"))
    assert isinstance(item, PublishPepItem) and traced.statements == []  # from memory now: the node is there


def test_every_pep_change_is_an_order_in_the_order_made_and_none_is_written_while_handling(tmp_path: Path) -> None:
    traced = Traced(tmp_path / "pep.sqlite")
    online_with_interest(traced.server, ALICE, [])
    online_with_interest(traced.server, BOB, [])
    subscribe_both_ways(traced.server, ALICE, BOB)
    server = traced.server
    options = field("access_model", "open") + field("max_items", "10")
    server.send(ALICE, publish("urn:open", "<a xmlns='urn:a'/>", "1", options))
    server.send(ALICE, publish("urn:open", "<a xmlns='urn:a'/>", "2", options))
    traced.statements.clear()
    kinds: list[type] = []
    for sender, text in [
            (ALICE, f"<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'><retract node='urn:open'><item id='1'/>"
                    "</retract></pubsub></iq>"),
            (BOB, f"<iq type='set' id='s' to='alice@localhost'><pubsub xmlns='{PUBSUB}'>"
                  "<subscribe node='urn:open' jid='bob@localhost'/></pubsub></iq>"),
            (ALICE, f"<iq type='set' id='a'><pubsub xmlns='{OWNER}'><affiliations node='urn:open'>"
                    "<affiliation jid='bob@localhost' affiliation='outcast'/></affiliations></pubsub></iq>"),
            (ALICE, f"<iq type='set' id='c'><pubsub xmlns='{OWNER}'><configure node='urn:open'>"
                    f"{form('node_config', field('max_items', '5'))}</configure></pubsub></iq>"),
            (ALICE, f"<iq type='set' id='p'><pubsub xmlns='{OWNER}'><purge node='urn:open'/></pubsub></iq>"),
            (ALICE, f"<iq type='set' id='d'><pubsub xmlns='{OWNER}'><delete node='urn:open'/></pubsub></iq>")]:
        kinds += [type(order) for order in traced.machine(sender, text) if not isinstance(order, Deliver)]
    assert kinds == [RetractPepItem, SetPepSubscription,
                     SetPepAffiliation, SetPepSubscription,  # the outcast loses its subscription (XEP-0060 §8.9.2)
                     PutPepNode, PurgePepNode, DeletePepNode]
    assert traced.statements == []
    assert [item.id for item in traced.store.items("alice", "urn:open")] == ["1", "2"]  # still on the disk


def test_the_adapter_writes_the_orders_and_they_survive_a_restart(tmp_path: Path) -> None:
    first = Traced(tmp_path / "pep.sqlite")
    online_with_interest(first.server, ALICE, [])
    online_with_interest(first.server, BOB, [])
    first.server.send(ALICE, publish("urn:open", "<a xmlns='urn:a'/>", "1", field("access_model", "open")))
    first.server.send(BOB, f"<iq type='set' id='s' to='alice@localhost'><pubsub xmlns='{PUBSUB}'>"
                           "<subscribe node='urn:open' jid='bob@localhost'/></pubsub></iq>")
    assert any(s.lstrip().upper().startswith("INSERT") for s in first.writes())
    first.store.close()
    second = Server(pep=SqlitePepStore(tmp_path / "pep.sqlite"))
    second.online(ALICE)
    assert [item.get("id") for item in second.items(ALICE, "alice@localhost", "urn:open").iter(
        f"{{{PUBSUB}}}item")] == ["1"]
    listing = reply(second.send(ALICE, f"<iq type='get' id='l'><pubsub xmlns='{OWNER}'>"
                                       "<subscriptions node='urn:open'/></pubsub></iq>"), ALICE)
    assert [entry.get("jid") for entry in listing.iter(f"{{{OWNER}}}subscription")] == ["bob@localhost"]


def test_chained_publishes_of_one_request_see_each_other_in_memory(tmp_path: Path) -> None:
    store = SqlitePepStore(tmp_path / "pep.sqlite")
    router = Router(domain="localhost", users=Server().users, store=MemoryStore(), wall_clock=lambda: 0.0,
                    pep_store=store, private=PrivateStorage(MemoryPrivateStore(), pep_store=store))
    router.bind(ALICE, 0.0)
    router.handle_stanza(ALICE, stanza("<presence/>"), 0.0)
    legacy = ("<iq type='set' id='b'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
              "<conference jid='one@conference.localhost'/><conference jid='two@conference.localhost'/>"
              "</storage></query></iq>")
    orders = router.machine.handle_stanza(ALICE, stanza(legacy), 0.0)
    writes = [order for order in orders if isinstance(order, PutPepNode | PublishPepItem)]
    # XEP-0411: two publishes; the first creates the node, the second finds it (in memory: nothing is written yet).
    assert [type(order) for order in writes] == [PutPepNode, PublishPepItem, PublishPepItem]
    assert [order.item.id for order in writes if isinstance(order, PublishPepItem)] == [
        "one@conference.localhost", "two@conference.localhost"]
    assert store.nodes("alice") == {}


def test_chained_publishes_count_against_the_account_quota_together(tmp_path: Path) -> None:
    traced = Traced(tmp_path / "pep.sqlite", limits=PepLimits(max_account_bytes=700))
    online_with_interest(traced.server, ALICE, [])
    big = f"<a xmlns='urn:a'>{'x' * 400}</a>"
    first = traced.machine(ALICE, publish("urn:a", big, "1"))
    assert any(isinstance(order, PublishPepItem) for order in first)
    (answer,) = [order.stanza for order in traced.machine(ALICE, publish("urn:b", big, "2"))
                 if isinstance(order, Deliver)]
    # Nothing was written yet, but the view in memory counts the first item.
    assert error_of(answer) == ("resource-constraint", None)


def test_the_account_quota_counts_what_is_on_the_disk_after_a_restart(tmp_path: Path) -> None:
    first = Server(pep=SqlitePepStore(tmp_path / "pep.sqlite"))
    first.online(ALICE)
    big = f"<a xmlns='urn:a'>{'x' * 400}</a>"
    assert first.publish(ALICE, "urn:a", big).get("type") == "result"
    first.pep.close()  # type: ignore[attr-defined]
    second = Server(pep=SqlitePepStore(tmp_path / "pep.sqlite"), limits=PepLimits(max_account_bytes=700))
    second.online(ALICE)
    assert error_of(second.publish(ALICE, "urn:b", big)) == ("resource-constraint", None)


def test_a_refused_pep_write_is_a_storage_error_with_no_notification_and_the_disk_stays_the_truth(
        tmp_path: Path) -> None:
    traced = Traced(tmp_path / "pep.sqlite")
    server = traced.server
    online_with_interest(server, ALICE, [])
    online_with_interest(server, ALICE_PHONE, [TUNE])
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'>first</tune>")
    traced.store.connection.execute("PRAGMA query_only = ON")  # writes fail (SQLITE_READONLY)
    actions = server.send(ALICE, publish(TUNE, f"<tune xmlns='{TUNE}'>second</tune>"))
    assert error_of(reply(actions, ALICE)) == ("resource-constraint", None)
    assert reply(actions, ALICE).find("{jabber:client}error").get("type") == "wait"  # type: ignore[union-attr]
    assert notifications(actions) == []
    traced.store.connection.execute("PRAGMA query_only = OFF")
    (item,) = server.items(ALICE, "alice@localhost", TUNE).iter(f"{{{PUBSUB}}}item")
    assert item.findtext(f"{{{TUNE}}}tune") == "first"  # the view was read again from the disk


def test_a_refused_avatar_conversion_sends_the_vcard_result_only_and_publishes_nothing(tmp_path: Path) -> None:
    store = SqlitePepStore(tmp_path / "pep.sqlite")
    router = Router(domain="localhost", users=Server().users, store=MemoryStore(), wall_clock=lambda: 0.0,
                    pep_store=store, vcards=VCards(MemoryVCardStore(), pep_store=store))
    router.bind(ALICE, 0.0)
    router.handle_stanza(ALICE, stanza("<presence/>"), 0.0)
    png = b"\x89PNG picture"
    iq = make_stanza("iq", {"type": "set", "id": "v1"})
    card = sub(iq, NS_VCARD, "vCard")
    photo = sub(card, NS_VCARD, "PHOTO")
    sub(photo, NS_VCARD, "TYPE", text="image/png")
    sub(photo, NS_VCARD, "BINVAL", text=base64.b64encode(png).decode())
    store.connection.execute("PRAGMA query_only = ON")
    actions: list[RouterAction] = router.handle_stanza(ALICE, iq, 0.0)
    # XEP-0398: the vCard is stored and answered; its PEP copy could not be written, and no stray error for the
    # publish the server ran as the account goes to the client.
    assert [(a.stanza.get("id"), a.stanza.get("type")) for a in actions if isinstance(a, Deliver)] == [("v1", "result")]
    store.connection.execute("PRAGMA query_only = OFF")
    for node in (NS_AVATAR_DATA, NS_AVATAR_METADATA):
        answer = reply(router.handle_stanza(ALICE, stanza(f"<iq type='get' id='i'><pubsub xmlns='{PUBSUB}'>"
                                                          f"<items node='{node}'/></pubsub></iq>"), 0.0), ALICE)
        assert error_of(answer) == ("item-not-found", None)
    assert hashlib.sha1(png).hexdigest() not in {item.id for item in store.items("alice", NS_AVATAR_DATA)}


def test_pep_of_accounts_offline_is_dropped_from_memory_once_handled(tmp_path: Path) -> None:
    traced = Traced(tmp_path / "pep.sqlite")
    server = traced.server
    pep = server.router.machine.pep
    assert pep is not None
    online_with_interest(server, BOB, [])
    online_with_interest(server, ALICE, [])
    subscribe_both_ways(server, ALICE, BOB)
    server.send(BOB, publish("urn:open", "<b xmlns='urn:b'/>", "1", field("access_model", "open")))
    assert pep.loaded == {"bob"}
    server.router.unbind(BOB, 0.0)
    server.router.unbind(ALICE, 0.0)
    assert pep.loaded == frozenset()
    # Alice logs in, interested in the node: bob's last item comes, read from the disk, and is not kept.
    last = notifications(online_with_interest(server, ALICE, ["urn:open"]))
    assert [to for to, _message in last] == [str(ALICE)] and pep.loaded == frozenset()
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    assert pep.loaded == {"alice"}
    traced.statements.clear()
    # Alice reads bob's node: bob's PEP is read for it, then dropped; alice's stays while she is online.
    assert [item.get("id") for item in server.items(ALICE, "bob@localhost", "urn:open").iter(
        f"{{{PUBSUB}}}item")] == ["1"]
    assert traced.statements and pep.loaded == {"alice"}
    server.items(ALICE, "carol@localhost", "urn:open")  # an account with no PEP at all
    assert pep.loaded == {"alice"}
    server.router.unbind(ALICE, 0.0)
    assert pep.loaded == frozenset()


def test_deleting_an_account_is_an_order_and_its_memberships_leave_the_view_at_once(tmp_path: Path) -> None:
    store = SqlitePepStore(tmp_path / "pep.sqlite")
    store.put_node("alice", "n", NodeConfig(), keep=1)
    store.set_affiliation("alice", "n", "bob@localhost", "member")
    pep = PepService(domain="localhost", store=store, roster=MemoryStore(), online=lambda jid: [])
    assert pep.disco_items(JID.parse("alice@localhost"), JID.parse("bob@localhost/x")) == ["n"]  # a member reads
    assert pep.delete_user("bob") == [DeletePepUser(owner="bob")]
    assert pep.disco_items(JID.parse("alice@localhost"), JID.parse("bob@localhost/x")) == []
    assert store.affiliations("alice", "n") == {"bob@localhost": "member"}  # until the order is performed
    perform(store, DeletePepUser(owner="bob"))
    assert store.affiliations("alice", "n") == {}
