"""PEP (XEP-0163) beyond implicit subscriptions: explicit XEP-0060 subscriptions, affiliations (whitelist members,
outcasts), delay stamps on last items and nodes whose items are not persisted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element
from boshcm.xmpp.pubsub import MemoryPepStore, PepLimits, PepService, SqlitePepStore
from boshcm.xmpp.pubsub.node import NodeConfig
from boshcm.xmpp.pubsub.store import StoredItem
from boshcm.xmpp.router import Deliver
from boshcm.xmpp.storage import MemoryStore, RosterItem
from tests.unit.test_pep import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    DISCO_INFO,
    EVENT,
    PUBSUB,
    TUNE,
    Server,
    caps_answer,
    caps_for,
    error_of,
    field,
    notifications,
    online_with_interest,
    reply,
    subscribe_both_ways,
)

OWNER = f"{PUBSUB}#owner"
DELAY = "{urn:xmpp:delay}delay"
PRIVATE = "urn:private"


def iq(server: Server, sender: JID, kind: str, body: str, to: str = "alice@localhost",
       namespace: str = PUBSUB) -> Element:
    return reply(server.send(sender, f"<iq type='{kind}' id='q' to='{to}'><pubsub xmlns='{namespace}'>{body}"
                                     "</pubsub></iq>"), sender)


def set_affiliations(server: Server, node: str, entries: str, sender: JID = ALICE) -> Element:
    return iq(server, sender, "set", f"<affiliations node='{node}'>{entries}</affiliations>", namespace=OWNER)


def subscribe(server: Server, sender: JID, node: str, jid: str | None = None) -> list[Deliver]:
    actions = server.send(sender, f"<iq type='set' id='s' to='alice@localhost'><pubsub xmlns='{PUBSUB}'>"
                                  f"<subscribe node='{node}' jid='{jid or sender.bare}'/></pubsub></iq>")
    return [action for action in actions if isinstance(action, Deliver)]


def item_ids(answer: Element) -> list[str | None]:
    return [item.get("id") for item in answer.iter(f"{{{PUBSUB}}}item")]


# --- affiliations: who is on a whitelist, who is an outcast ----------------------------------------


def test_the_owner_adds_a_member_to_a_whitelist_node_and_only_then_the_member_reads_it() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.publish(ALICE, PRIVATE, "<x xmlns='urn:test'/>", options=field("access_model", "whitelist"))
    assert error_of(server.items(BOB, "alice@localhost", PRIVATE)) == ("not-allowed", "closed-node")

    assert set_affiliations(server, PRIVATE, "<affiliation jid='bob@localhost/x' affiliation='member'/>") \
        .get("type") == "result"
    assert item_ids(server.items(BOB, "alice@localhost", PRIVATE)) == ["current"]
    listing = iq(server, ALICE, "get", f"<affiliations node='{PRIVATE}'/>", namespace=OWNER)
    assert [(a.get("jid"), a.get("affiliation")) for a in listing.iter(f"{{{OWNER}}}affiliation")] == [
        ("alice@localhost", "owner"), ("bob@localhost", "member")]  # affiliations are by bare JID (§4.1)
    own = iq(server, BOB, "get", "<affiliations/>")
    assert [(a.get("node"), a.get("affiliation")) for a in own.iter(f"{{{PUBSUB}}}affiliation")] == [
        (PRIVATE, "member")]

    set_affiliations(server, PRIVATE, "<affiliation jid='bob@localhost' affiliation='none'/>")
    assert error_of(server.items(BOB, "alice@localhost", PRIVATE)) == ("not-allowed", "closed-node")


def test_members_of_a_whitelist_get_its_notifications_as_contacts() -> None:
    server = Server()
    online_with_interest(server, ALICE, [PRIVATE])
    online_with_interest(server, BOB, [PRIVATE])
    subscribe_both_ways(server, ALICE, BOB)
    server.publish(ALICE, PRIVATE, "<x xmlns='urn:test'/>", options=field("access_model", "whitelist"))
    set_affiliations(server, PRIVATE, "<affiliation jid='bob@localhost' affiliation='member'/>")
    actions = server.publish_actions(ALICE, PRIVATE, "<x xmlns='urn:test'/>")
    assert sorted(to for to, _m in notifications(actions)) == [str(ALICE), str(BOB)]


def test_only_the_owner_sees_and_changes_affiliations_and_only_member_and_outcast_are_offered() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.publish(ALICE, PRIVATE, "<x xmlns='urn:test'/>")
    assert error_of(iq(server, BOB, "get", f"<affiliations node='{PRIVATE}'/>", namespace=OWNER)) \
        == ("forbidden", None)                                                          # XEP-0060 §8.9.1.2
    assert error_of(set_affiliations(server, PRIVATE, "<affiliation jid='bob@localhost' affiliation='member'/>",
                                     sender=BOB)) == ("forbidden", None)
    assert error_of(set_affiliations(server, "urn:missing", "<affiliation jid='bob@localhost' "
                                                            "affiliation='member'/>")) == ("item-not-found", None)
    assert error_of(set_affiliations(server, PRIVATE, "<affiliation jid='bob@localhost' affiliation='publisher'/>")) \
        == ("feature-not-implemented", "unsupported")
    assert error_of(set_affiliations(server, PRIVATE, "<affiliation jid='bob@localhost' affiliation='boss'/>")) \
        == ("bad-request", None)
    assert error_of(set_affiliations(server, PRIVATE, "<affiliation jid='@@' affiliation='member'/>")) \
        == ("bad-request", "invalid-jid")
    assert error_of(set_affiliations(server, PRIVATE, "<affiliation jid='alice@localhost' affiliation='none'/>")) \
        == ("not-acceptable", None)
    # A refused request changes nothing, even the entries before the bad one.
    set_affiliations(server, PRIVATE, "<affiliation jid='carol@localhost' affiliation='member'/>"
                                      "<affiliation jid='bob@localhost' affiliation='publisher'/>")
    assert server.pep.affiliations("alice", PRIVATE) == {}


def test_a_whitelist_holds_a_bounded_number_of_affiliations() -> None:
    server = Server(limits=PepLimits(max_affiliations_per_node=2))
    server.online(ALICE)
    server.publish(ALICE, PRIVATE, "<x xmlns='urn:test'/>", options=field("access_model", "whitelist"))
    three = "".join(f"<affiliation jid='user{n}@localhost' affiliation='member'/>" for n in range(3))
    assert error_of(set_affiliations(server, PRIVATE, three)) == ("resource-constraint", None)
    assert server.pep.affiliations("alice", PRIVATE) == {}
    two = "".join(f"<affiliation jid='user{n}@localhost' affiliation='member'/>" for n in range(2))
    assert set_affiliations(server, PRIVATE, two).get("type") == "result"
    # Replacing one keeps the count; removing one makes room.
    swap = ("<affiliation jid='user0@localhost' affiliation='none'/>"
            "<affiliation jid='user9@localhost' affiliation='outcast'/>")
    assert set_affiliations(server, PRIVATE, swap).get("type") == "result"
    assert server.pep.affiliations("alice", PRIVATE) == {"user1@localhost": "member", "user9@localhost": "outcast"}


def test_an_outcast_is_kept_out_of_an_open_node_and_loses_its_subscription() -> None:
    server = Server()
    server.online(ALICE)
    server.online(CAROL)
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    subscribe(server, CAROL, "urn:open")
    set_affiliations(server, "urn:open", "<affiliation jid='carol@localhost' affiliation='outcast'/>")
    assert error_of(server.items(CAROL, "alice@localhost", "urn:open")) == ("forbidden", None)
    assert server.pep.subscriptions("alice", "urn:open") == []
    assert notifications(server.publish_actions(ALICE, "urn:open", "<x xmlns='urn:test'/>")) == []
    (answer,) = [d.stanza for d in subscribe(server, CAROL, "urn:open") if d.to == CAROL]
    assert error_of(answer) == ("forbidden", None)                                    # XEP-0060 §6.1.3.8


# --- explicit subscriptions ------------------------------------------------------------------------


def test_a_subscriber_gets_the_last_item_then_every_notification_without_notify_until_it_unsubscribes() -> None:
    server = Server()
    server.online(ALICE)
    server.online(CAROL)  # no roster relation, no caps
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'>first</x>", options=field("access_model", "open"))

    delivered = subscribe(server, CAROL, "urn:open")
    answer = delivered[0].stanza
    assert answer.get("type") == "result"
    (subscription,) = answer.iter(f"{{{PUBSUB}}}subscription")
    assert (subscription.get("node"), subscription.get("jid"), subscription.get("subscription")) == (
        "urn:open", "carol@localhost", "subscribed")
    ((to, last),) = notifications(delivered)
    assert to == str(CAROL) and last.findtext(f".//{{{EVENT}}}item/{{urn:test}}x") == "first"
    assert last.find(DELAY) is not None                                              # XEP-0060 §6.1.7

    live = notifications(server.publish_actions(ALICE, "urn:open", "<x xmlns='urn:test'>second</x>"))
    assert [(to, m.find(DELAY)) for to, m in live] == [(str(CAROL), None)]

    gone = iq(server, CAROL, "set", "<unsubscribe node='urn:open' jid='carol@localhost'/>")
    assert gone.get("type") == "result"
    assert notifications(server.publish_actions(ALICE, "urn:open", "<x xmlns='urn:test'/>")) == []
    again = iq(server, CAROL, "set", "<unsubscribe node='urn:open' jid='carol@localhost'/>")
    assert error_of(again) == ("unexpected-request", "not-subscribed")               # XEP-0060 §6.2.3.2


def test_a_full_jid_subscription_reaches_that_resource_only() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.online(BOB_PHONE)
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    subscribe(server, BOB_PHONE, "urn:open", jid=str(BOB_PHONE))
    actions = server.publish_actions(ALICE, "urn:open", "<x xmlns='urn:test'/>")
    assert [to for to, _m in notifications(actions)] == [str(BOB_PHONE)]


def test_subscribing_follows_the_access_model_and_only_for_oneself() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.online(CAROL)
    subscribe_both_ways(server, ALICE, BOB)
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    server.publish(ALICE, PRIVATE, "<x xmlns='urn:test'/>", options=field("access_model", "whitelist"))

    def refused(sender: JID, node: str, jid: str | None = None) -> tuple[str, str | None]:
        return error_of(next(d.stanza for d in subscribe(server, sender, node, jid) if d.to == sender))

    assert refused(CAROL, TUNE) == ("not-authorized", "presence-subscription-required")  # §6.1.3.2
    assert refused(BOB, PRIVATE) == ("not-allowed", "closed-node")                       # §6.1.3.4
    assert refused(BOB, TUNE, jid="carol@localhost") == ("bad-request", "invalid-jid")   # §6.1.3.1
    assert refused(BOB, "urn:missing") == ("item-not-found", None)                      # §6.1.3.11
    assert refused(CAROL, "urn:missing") == ("not-authorized", "presence-subscription-required")  # not told
    assert subscribe(server, BOB, TUNE)[0].stanza.get("type") == "result"
    guest = JID.parse("guest1@localhost/web")
    server.users.anonymous.add("guest1")
    server.online(guest)
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    assert refused(guest, "urn:open") == ("forbidden", None)                             # §6.1.3.6
    assert server.pep.subscriptions("alice", TUNE) == ["bob@localhost"]
    assert server.pep.subscriptions("alice", "urn:open") == []


def test_subscriptions_per_node_are_bounded_and_a_repeated_subscribe_is_the_same_subscription() -> None:
    server = Server(limits=PepLimits(max_subscriptions_per_node=1))
    server.online(ALICE)
    server.online(BOB)
    server.online(CAROL)
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    assert subscribe(server, BOB, "urn:open")[0].stanza.get("type") == "result"
    assert subscribe(server, BOB, "urn:open")[0].stanza.get("type") == "result"      # XEP-0060 §6.1.6
    answer = next(d.stanza for d in subscribe(server, CAROL, "urn:open") if d.to == CAROL)
    assert error_of(answer) == ("resource-constraint", None)
    assert server.pep.subscriptions("alice", "urn:open") == ["bob@localhost"]


def test_subscriptions_are_listed_to_the_subscriber_and_to_the_owner_who_may_remove_them() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.online(CAROL)
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    server.publish(ALICE, "urn:other", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    subscribe(server, BOB, "urn:open")
    subscribe(server, BOB, "urn:other")
    subscribe(server, CAROL, "urn:open")

    mine = iq(server, BOB, "get", "<subscriptions/>")                                   # XEP-0060 §5.6
    assert [(s.get("node"), s.get("jid")) for s in mine.iter(f"{{{PUBSUB}}}subscription")] == [
        ("urn:open", "bob@localhost"), ("urn:other", "bob@localhost")]
    one = iq(server, BOB, "get", "<subscriptions node='urn:open'/>")
    assert len(list(one.iter(f"{{{PUBSUB}}}subscription"))) == 1

    everyone = iq(server, ALICE, "get", "<subscriptions node='urn:open'/>", namespace=OWNER)  # §8.8.1
    assert [(s.get("jid"), s.get("subscription")) for s in everyone.iter(f"{{{OWNER}}}subscription")] == [
        ("bob@localhost", "subscribed"), ("carol@localhost", "subscribed")]
    assert error_of(iq(server, BOB, "get", "<subscriptions node='urn:open'/>", namespace=OWNER)) \
        == ("forbidden", None)
    removed = iq(server, ALICE, "set", "<subscriptions node='urn:open'><subscription jid='bob@localhost' "
                                       "subscription='none'/></subscriptions>", namespace=OWNER)   # §8.8.2
    assert removed.get("type") == "result"
    assert server.pep.subscriptions("alice", "urn:open") == ["carol@localhost"]


def test_making_a_node_whitelist_cancels_the_subscriptions_of_non_members() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    subscribe(server, BOB, "urn:open")
    configure = (f"<configure node='urn:open'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
                 f"type='hidden'><value>{PUBSUB}#node_config</value></field>"
                 f"{field('access_model', 'whitelist')}</x></configure>")
    assert iq(server, ALICE, "set", configure, namespace=OWNER).get("type") == "result"
    assert server.pep.subscriptions("alice", "urn:open") == []


def test_account_disco_lists_the_subscription_and_affiliation_features() -> None:
    server = Server()
    server.online(BOB)
    info = reply(server.send(BOB, f"<iq type='get' id='i' to='alice@localhost'><query xmlns='{DISCO_INFO}'/>"
                                  "</iq>"), BOB)
    features = {f.get("var") for f in info.iter(f"{{{DISCO_INFO}}}feature")}
    for name in ("subscribe", "retrieve-subscriptions", "manage-subscriptions", "retrieve-affiliations",
                 "modify-affiliations", "member-affiliation", "outcast-affiliation"):
        assert f"{PUBSUB}#{name}" in features, name


# --- delay stamps on last items ---------------------------------------------------------------------


def test_the_last_item_sent_on_presence_carries_its_publication_time() -> None:
    clock = [1_700_000_000.0]
    roster = MemoryStore()
    roster.put_roster_item("bob", RosterItem(jid=JID.parse("alice@localhost"), subscription="both"))
    roster.put_roster_item("alice", RosterItem(jid=JID.parse("bob@localhost"), subscription="both"))
    online: dict[str, list[JID]] = {"alice": [ALICE], "bob": []}
    pep = PepService(domain="localhost", store=MemoryPepStore(), roster=roster,
                     online=lambda jid: online.get(jid.local or "", []), wall_clock=lambda: clock[0])
    publish = etree.fromstring(f"<iq xmlns='jabber:client' type='set' id='p' from='{ALICE}'><pubsub xmlns='{PUBSUB}'>"
                               f"<publish node='{TUNE}'><item id='t'><tune xmlns='{TUNE}'/></item></publish>"
                               "</pubsub></iq>")
    pep.handle_iq(ALICE.bare, publish)

    clock[0] += 3600.0  # bob comes online an hour later, with +notify in his caps
    online["bob"] = [BOB]
    features = [DISCO_INFO, f"{TUNE}+notify"]
    caps, _ver = caps_for(features)
    (query,) = pep.presence_available(BOB, etree.fromstring(f"<presence xmlns='jabber:client'>{caps}</presence>"),
                                      initial=True)
    answer = etree.fromstring(f"<x xmlns='jabber:client'>{caps_answer(query.stanza, features)}</x>")[0]
    answer.set("from", str(BOB))
    answered = pep.iq_answer(answer)
    assert answered is not None
    (last,) = answered
    delay = last.stanza.find(DELAY)
    assert last.to == BOB and delay is not None
    assert (delay.get("stamp"), delay.get("from")) == ("2023-11-14T22:13:20.000Z", "alice@localhost")


# --- pubsub#persist_items false ---------------------------------------------------------------------


def test_items_of_a_node_that_does_not_persist_are_served_but_never_written(tmp_path: Path) -> None:
    path = tmp_path / "pep.sqlite"
    first = Server(pep=SqlitePepStore(path))
    online_with_interest(first, ALICE, [])
    first.publish(ALICE, "urn:status", "<s xmlns='urn:test'>busy</s>", options=field("persist_items", "0"))
    assert item_ids(first.items(ALICE, "alice@localhost", "urn:status")) == ["current"]
    subscribe_both_ways(first, ALICE, BOB)
    last = notifications(online_with_interest(first, BOB, ["urn:status"]))
    assert [to for to, _m in last] == [str(BOB)]  # the last item still goes out while the server runs
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM items").fetchone() == (0,)
    first.pep.close()  # type: ignore[attr-defined]

    second = Server(pep=SqlitePepStore(path))
    second.online(ALICE)
    assert item_ids(second.items(ALICE, "alice@localhost", "urn:status")) == []
    assert second.pep.node("alice", "urn:status") == NodeConfig(persist_items=False)  # the node stays


def test_turning_persistence_on_and_off_moves_the_items(tmp_path: Path) -> None:
    store = SqlitePepStore(tmp_path / "pep.sqlite")
    store.put_node("alice", "n", NodeConfig(max_items=2), keep=2)
    store.publish("alice", "n", StoredItem(id="1", payload=b"<a xmlns='urn:a'/>", published_at=1.0), keep=2)
    store.put_node("alice", "n", NodeConfig(max_items=2, persist_items=False), keep=2)
    assert store.connection.execute("SELECT COUNT(*) FROM items").fetchone() == (0,)
    store.publish("alice", "n", StoredItem(id="2", payload=b"<b xmlns='urn:b'/>", published_at=2.0), keep=2)
    assert [item.id for item in store.items("alice", "n")] == ["1", "2"]
    assert store.usage_bytes("alice") == len(b"<a xmlns='urn:a'/>") + len(b"<b xmlns='urn:b'/>")
    store.put_node("alice", "n", NodeConfig(max_items=2), keep=2)
    store.close()
    reopened = SqlitePepStore(tmp_path / "pep.sqlite")
    assert [(item.id, item.published_at) for item in reopened.items("alice", "n")] == [("1", 1.0), ("2", 2.0)]


def test_a_store_from_before_publication_times_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "pep.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE nodes (owner TEXT NOT NULL, node TEXT NOT NULL, config TEXT NOT NULL, PRIMARY KEY (owner, node));
        CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, node TEXT NOT NULL,
                            id TEXT NOT NULL, payload BLOB NOT NULL, UNIQUE (owner, node, id));
        INSERT INTO items (owner, node, id, payload) VALUES ('alice', 'n', '1', x'3c612f3e');
    """)
    old.close()
    store = SqlitePepStore(path)
    assert store.items("alice", "n") == [StoredItem(id="1", payload=b"<a/>", published_at=None)]


def test_deleting_an_account_removes_its_memberships_and_subscriptions_elsewhere(tmp_path: Path) -> None:
    for store in (MemoryPepStore(), SqlitePepStore(tmp_path / "pep.sqlite")):
        store.put_node("alice", "n", NodeConfig(), keep=1)
        store.set_affiliation("alice", "n", "bob@localhost", "member")
        store.set_affiliation("alice", "n", "bob_x@localhost", "member")
        store.set_subscription("alice", "n", "bob@localhost/phone", True)
        store.set_subscription("alice", "n", "carol@localhost", True)
        store.delete_user("bob")
        assert store.affiliations("alice", "n") == {"bob_x@localhost": "member"}
        assert store.subscriptions("alice", "n") == ["carol@localhost"]
