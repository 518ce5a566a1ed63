"""PEP (XEP-0163) through the router: publish, items, access models, quotas, caps-filtered notifications."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element
from boshcm.xmpp.blocking import Blocklists, MemoryBlocklistStore
from boshcm.xmpp.pubsub import MemoryPepStore, PepLimits, PepStore, SqlitePepStore
from boshcm.xmpp.pubsub.caps import verification_hash
from boshcm.xmpp.pubsub.node import NodeConfig
from boshcm.xmpp.pubsub.store import StoredItem
from boshcm.xmpp.router import Deliver, Router, RouterAction
from boshcm.xmpp.storage import MemoryStore

ALICE, ALICE_PHONE = JID.parse("alice@localhost/desk"), JID.parse("alice@localhost/phone")
BOB, BOB_PHONE = JID.parse("bob@localhost/laptop"), JID.parse("bob@localhost/phone")
CAROL = JID.parse("carol@localhost/home")
PUBSUB = "http://jabber.org/protocol/pubsub"
EVENT = "http://jabber.org/protocol/pubsub#event"
ERRORS = "http://jabber.org/protocol/pubsub#errors"
TUNE = "http://jabber.org/protocol/tune"


class Users:
    def __init__(self) -> None:
        self.anonymous: set[str] = set()

    def exists(self, username: str) -> bool:
        return username in {"alice", "bob", "carol"} | self.anonymous


class Server:
    def __init__(self, pep: PepStore | None = None, limits: PepLimits | None = None) -> None:
        self.store = MemoryStore()
        self.pep = pep if pep is not None else MemoryPepStore()
        self.users = Users()
        self.router = Router(domain="localhost", users=self.users, store=self.store,
                             wall_clock=lambda: 1_700_000_000.0, pep_store=self.pep, pep_limits=limits)

    def send(self, sender: JID, text: str) -> list[RouterAction]:
        return self.router.handle_stanza(sender, etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0], 0.0)

    def online(self, jid: JID, caps: str = "") -> list[RouterAction]:
        self.router.bind(jid, 0.0)
        return self.send(jid, f"<presence>{caps}</presence>")

    def publish(self, sender: JID, node: str, payload: str, item_id: str | None = "current", options: str = "",
                to: str = "") -> Element:
        return reply(self.publish_actions(sender, node, payload, item_id, options, to), sender)

    def publish_actions(self, sender: JID, node: str, payload: str, item_id: str | None = "current",
                        options: str = "", to: str = "") -> list[RouterAction]:
        item = f"<item id='{item_id}'>{payload}</item>" if item_id is not None else f"<item>{payload}</item>"
        publish_options = f"<publish-options>{form('publish-options', options)}</publish-options>" if options else ""
        return self.send(sender, f"<iq type='set' id='pub' {to}><pubsub xmlns='{PUBSUB}'>"
                                 f"<publish node='{node}'>{item}</publish>{publish_options}</pubsub></iq>")

    def items(self, sender: JID, owner: str, node: str, extra: str = "") -> Element:
        return reply(self.send(sender, f"<iq type='get' id='items' to='{owner}'><pubsub xmlns='{PUBSUB}'>"
                                       f"<items node='{node}' {extra}/></pubsub></iq>"), sender)


def form(kind: str, fields: str) -> str:
    return (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>http://jabber.org/protocol/pubsub#{kind}</value></field>{fields}</x>")


def field(var: str, value: str) -> str:
    return f"<field var='pubsub#{var}'><value>{value}</value></field>"


def reply(actions: list[RouterAction], to: JID) -> Element:
    (answer,) = [a.stanza for a in actions if isinstance(a, Deliver) and a.to == to
                 and etree.QName(a.stanza).localname == "iq"]
    return answer


def error_of(stanza: Element) -> tuple[str, str | None]:
    error = stanza.find("{jabber:client}error")
    assert stanza.get("type") == "error" and error is not None
    conditions = [etree.QName(child).localname for child in error if etree.QName(child).namespace != ERRORS
                  and etree.QName(child).localname != "text"]
    app = [etree.QName(child).localname for child in error if etree.QName(child).namespace == ERRORS]
    return conditions[0], app[0] if app else None


def notifications(actions: list[RouterAction]) -> list[tuple[str, Element]]:
    return [(str(a.to), a.stanza) for a in actions if isinstance(a, Deliver)
            and a.stanza.find(f"{{{EVENT}}}event") is not None]


def subscribe_both_ways(server: Server, one: JID, other: JID) -> None:
    server.send(one, f"<presence to='{other.bare}' type='subscribe'/>")
    server.send(other, f"<presence to='{one.bare}' type='subscribed'/>")
    server.send(other, f"<presence to='{one.bare}' type='subscribe'/>")
    server.send(one, f"<presence to='{other.bare}' type='subscribed'/>")


DISCO_INFO = "http://jabber.org/protocol/disco#info"


def caps_answer(query: Element, features: list[str], *, ver: str | None = None) -> str:
    """What a client answers to the server's disco#info question, optionally with a made-up ver."""
    node = query[0].get("node")
    feature_xml = "".join(f"<feature var='{var}'/>" for var in features)
    return (f"<iq type='result' id='{query.get('id')}' to='localhost'><query xmlns='{DISCO_INFO}' node='{node}'>"
            f"<identity category='client' type='pc' name='test'/>{feature_xml}</query></iq>")


def caps_for(features: list[str]) -> tuple[str, str]:
    """The <c/> element and ver for a client with these features."""
    query = etree.fromstring(f"<query xmlns='{DISCO_INFO}'><identity category='client' type='pc' name='test'/>"
                             + "".join(f"<feature var='{var}'/>" for var in features) + "</query>")
    ver = verification_hash(query, "sha-1")
    assert ver is not None
    return f"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test' ver='{ver}'/>", ver


def caps_query(actions: list[RouterAction], to: JID) -> Element:
    (query,) = [a.stanza for a in actions if isinstance(a, Deliver) and a.to == to
                and a.stanza.find(f"{{{DISCO_INFO}}}query") is not None and a.stanza.get("from") == "localhost"]
    return query


def online_with_interest(server: Server, jid: JID, nodes: list[str]) -> list[RouterAction]:
    """A resource comes online with caps naming `nodes`+notify and answers the server's question."""
    features = [DISCO_INFO, *(f"{node}+notify" for node in nodes)]
    caps, _ver = caps_for(features)
    actions = server.online(jid, caps)
    queries = [a for a in actions if isinstance(a, Deliver) and a.stanza.get("from") == "localhost"]
    if not queries:
        return actions
    return actions + server.send(jid, caps_answer(queries[0].stanza, features))


# --- publishing and reading ------------------------------------------------------------------------


def test_first_publish_creates_the_node_and_the_owner_reads_the_item_back() -> None:
    server = Server()
    server.online(ALICE)
    result = server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'><title>Yesterday</title></tune>")
    assert result.get("type") == "result" and result.get("from") == "alice@localhost"
    assert result.find(f".//{{{PUBSUB}}}item").get("id") == "current"
    items = server.items(ALICE, "alice@localhost", TUNE)
    (item,) = items.iter(f"{{{PUBSUB}}}item")
    assert item.get("id") == "current" and item.findtext(f"{{{TUNE}}}tune/{{{TUNE}}}title") == "Yesterday"


def test_publish_without_an_item_id_gets_one_from_the_service() -> None:
    server = Server()
    server.online(ALICE)
    result = server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>", item_id=None)
    assert result.find(f".//{{{PUBSUB}}}item").get("id")


def test_publish_to_someone_elses_pep_is_forbidden_and_changes_nothing() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    result = server.publish(BOB, TUNE, f"<tune xmlns='{TUNE}'/>", to="to='alice@localhost'")
    assert error_of(result) == ("forbidden", None)
    assert server.pep.nodes("alice") == {}


def test_oversized_item_is_refused_with_payload_too_big() -> None:
    server = Server(limits=PepLimits(max_item_bytes=200))
    server.online(ALICE)
    result = server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'><title>{'x' * 300}</title></tune>")
    assert error_of(result) == ("not-acceptable", "payload-too-big")
    assert server.pep.nodes("alice") == {}


def test_too_many_nodes_is_a_resource_constraint() -> None:
    server = Server(limits=PepLimits(max_nodes_per_account=2))
    server.online(ALICE)
    for node in ("urn:one", "urn:two"):
        assert server.publish(ALICE, node, "<x xmlns='urn:test'/>").get("type") == "result"
    assert error_of(server.publish(ALICE, "urn:three", "<x xmlns='urn:test'/>")) == ("resource-constraint", None)
    assert server.publish(ALICE, "urn:two", "<y xmlns='urn:test'/>").get("type") == "result"  # existing still fine


def test_account_bytes_quota_counts_replaced_items_once() -> None:
    server = Server(limits=PepLimits(max_account_bytes=300))
    server.online(ALICE)
    payload = f"<x xmlns='urn:test'>{'a' * 150}</x>"
    assert server.publish(ALICE, "urn:one", payload).get("type") == "result"
    assert server.publish(ALICE, "urn:one", payload).get("type") == "result"  # replaces "current"
    assert error_of(server.publish(ALICE, "urn:two", payload)) == ("resource-constraint", None)


def test_malformed_publishes_get_the_xep_0060_errors() -> None:
    server = Server()
    server.online(ALICE)
    no_payload = server.send(ALICE, f"<iq type='set' id='p'><pubsub xmlns='{PUBSUB}'><publish node='n'>"
                                    "<item id='1'/></publish></pubsub></iq>")
    assert error_of(reply(no_payload, ALICE)) == ("bad-request", "payload-required")
    two_payloads = server.publish(ALICE, "n", "<a xmlns='urn:a'/><b xmlns='urn:b'/>")
    assert error_of(two_payloads) == ("bad-request", "invalid-payload")
    no_node = server.send(ALICE, f"<iq type='set' id='p'><pubsub xmlns='{PUBSUB}'><publish>"
                                 "<item><a xmlns='urn:a'/></item></publish></pubsub></iq>")
    assert error_of(reply(no_node, ALICE)) == ("bad-request", "nodeid-required")
    options = server.send(ALICE, f"<iq type='get' id='s' to='bob@localhost'><pubsub xmlns='{PUBSUB}'>"
                                 "<options node='n' jid='alice@localhost'/></pubsub></iq>")
    assert error_of(reply(options, ALICE)) == ("feature-not-implemented", "unsupported")


def test_max_items_keeps_the_newest_and_max_means_the_quota() -> None:
    server = Server(limits=PepLimits(max_items_per_node=3))
    server.online(ALICE)
    for number in range(5):
        server.publish(ALICE, "urn:list", f"<n xmlns='urn:test'>{number}</n>", item_id=str(number),
                       options=field("max_items", "max"))
    ids = [item.get("id") for item in server.items(ALICE, "alice@localhost", "urn:list").iter(f"{{{PUBSUB}}}item")]
    assert ids == ["2", "3", "4"]
    newest = server.items(ALICE, "alice@localhost", "urn:list", "max_items='1'")
    assert [item.get("id") for item in newest.iter(f"{{{PUBSUB}}}item")] == ["4"]
    too_many = server.publish(ALICE, "urn:other", "<n xmlns='urn:test'/>", options=field("max_items", "10"))
    assert error_of(too_many) == ("policy-violation", None)


def test_retract_removes_the_item_and_notifies() -> None:
    server = Server()
    online_with_interest(server, ALICE, [TUNE])
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    actions = server.send(ALICE, f"<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'><retract node='{TUNE}' "
                                 "notify='true'><item id='current'/></retract></pubsub></iq>")
    assert reply(actions, ALICE).get("type") == "result"
    ((to, message),) = notifications(actions)
    assert to == str(ALICE) and message.find(f".//{{{EVENT}}}retract").get("id") == "current"
    assert list(server.items(ALICE, "alice@localhost", TUNE).iter(f"{{{PUBSUB}}}item")) == []
    again = server.send(ALICE, f"<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'><retract node='{TUNE}'>"
                               "<item id='current'/></retract></pubsub></iq>")
    assert error_of(reply(again, ALICE)) == ("item-not-found", None)


# --- access models and publish-options --------------------------------------------------------------


def test_presence_access_needs_a_subscription_open_is_for_anyone_whitelist_for_the_owner() -> None:
    server = Server()
    for jid in (ALICE, BOB, CAROL):
        server.online(jid)
    subscribe_both_ways(server, ALICE, BOB)
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    server.publish(ALICE, "urn:private", "<x xmlns='urn:test'/>", options=field("access_model", "whitelist"))

    assert server.items(BOB, "alice@localhost", TUNE).get("type") == "result"
    stranger = server.items(CAROL, "alice@localhost", TUNE)
    assert error_of(stranger) == ("not-authorized", "presence-subscription-required")
    assert server.items(CAROL, "alice@localhost", "urn:open").get("type") == "result"
    assert error_of(server.items(BOB, "alice@localhost", "urn:private")) == ("not-allowed", "closed-node")
    assert server.items(ALICE, "alice@localhost", "urn:private").get("type") == "result"
    assert error_of(server.items(BOB, "alice@localhost", "urn:missing")) == ("item-not-found", None)
    # Whether a node exists is not told to strangers: they are refused as for a default (presence) node.
    hidden = server.items(CAROL, "alice@localhost", "urn:missing")
    assert error_of(hidden) == ("not-authorized", "presence-subscription-required")


def test_omemo_device_list_publish_options_and_precondition_not_met() -> None:
    devices = "eu.siacs.conversations.axolotl.devicelist"
    server = Server()
    server.online(ALICE)
    server.online(CAROL)
    options = field("access_model", "open")
    device_list = "<list xmlns='eu.siacs.conversations.axolotl'><device id='1234'/></list>"
    assert server.publish(ALICE, devices, device_list, options=options).get("type") == "result"
    assert server.items(CAROL, "alice@localhost", devices).get("type") == "result"  # strangers fetch keys
    # XEP-0060 §7.1.5: the node exists with access_model=open; asking for presence is an unmet precondition.
    mismatch = server.publish(ALICE, devices, device_list, options=field("access_model", "presence"))
    assert error_of(mismatch) == ("conflict", "precondition-not-met")
    unknown = server.publish(ALICE, devices, device_list, options=field("made_up_option", "1"))
    assert error_of(unknown) == ("conflict", "precondition-not-met")
    # After reconfiguring (what Conversations does on precondition-not-met), the publish goes through.
    presence_form = form("node_config", field("access_model", "presence"))
    configure = server.send(ALICE, f"<iq type='set' id='c'><pubsub xmlns='{PUBSUB}#owner'>"
                                   f"<configure node='{devices}'>{presence_form}</configure></pubsub></iq>")
    assert reply(configure, ALICE).get("type") == "result"
    again = server.publish(ALICE, devices, device_list, options=field("access_model", "presence"))
    assert again.get("type") == "result"


def test_bookmarks_options_from_xep_0402_are_accepted_and_compared_by_meaning() -> None:
    server = Server()
    server.online(ALICE)
    options = (field("persist_items", "true") + field("max_items", "max")
               + field("send_last_published_item", "never") + field("access_model", "whitelist"))
    node = "urn:xmpp:bookmarks:1"
    conference = "<conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/>"
    assert server.publish(ALICE, node, conference, item_id="room@conference.localhost",
                          options=options).get("type") == "result"
    same_meaning = options.replace("<value>true</value>", "<value>1</value>")
    assert server.publish(ALICE, node, conference, item_id="other@conference.localhost",
                          options=same_meaning).get("type") == "result"
    ids = {item.get("id") for item in server.items(ALICE, "alice@localhost", node).iter(f"{{{PUBSUB}}}item")}
    assert ids == {"room@conference.localhost", "other@conference.localhost"}


def test_guests_cannot_store_pep_data() -> None:
    server = Server()
    guest = JID.parse("guest1@localhost/web")
    server.users.anonymous.add("guest1")
    server.online(guest)
    assert error_of(server.publish(guest, TUNE, f"<tune xmlns='{TUNE}'/>")) == ("forbidden", None)


# --- notifications, caps and last items -----------------------------------------------------------


def test_notifications_go_only_to_resources_that_asked_with_notify() -> None:
    server = Server()
    online_with_interest(server, ALICE, [])
    online_with_interest(server, BOB, [TUNE])
    online_with_interest(server, BOB_PHONE, ["urn:something:else"])
    online_with_interest(server, CAROL, [TUNE])
    subscribe_both_ways(server, ALICE, BOB)

    actions = server.publish_actions(ALICE, TUNE, f"<tune xmlns='{TUNE}'><title>Help!</title></tune>")
    ((to, message),) = notifications(actions)  # not carol (no subscription), not bob's phone, not alice
    assert to == str(BOB) and message.get("from") == "alice@localhost" and message.get("type") == "headline"
    assert message.findtext(f".//{{{EVENT}}}item/{{{TUNE}}}tune/{{{TUNE}}}title") == "Help!"


def test_unknown_caps_are_asked_once_then_answered_with_the_last_item() -> None:
    server = Server()
    server.online(ALICE)
    server.online(BOB)
    subscribe_both_ways(server, ALICE, BOB)
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'><title>Yesterday</title></tune>")
    features = [DISCO_INFO, f"{TUNE}+notify"]
    caps, ver = caps_for(features)
    server.router.unbind(BOB, 0.0)
    actions = server.online(BOB, caps)
    query = caps_query(actions, BOB)
    assert query[0].get("node") == f"https://test#{ver}"
    assert notifications(actions) == []  # nothing is known about bob's interests yet

    answered = server.send(BOB, caps_answer(query, features))
    ((to, message),) = notifications(answered)
    assert to == str(BOB) and message.find(f".//{{{EVENT}}}items").get("node") == TUNE

    # The verified ver is cached: bob's phone with the same caps is not asked and gets the last item at once.
    phone = server.online(BOB_PHONE, caps)
    assert [a for a in phone if isinstance(a, Deliver) and a.stanza.get("from") == "localhost"] == []
    assert [to for to, _message in notifications(phone)] == [str(BOB_PHONE)]


def test_caps_that_do_not_verify_count_for_that_resource_only() -> None:
    server = Server()
    server.online(ALICE)
    features = [DISCO_INFO, f"{TUNE}+notify"]
    lying_caps = "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test' ver='bogus='/>"
    server.router.bind(BOB, 0.0)
    query = caps_query(server.send(BOB, f"<presence>{lying_caps}</presence>"), BOB)
    server.send(BOB, caps_answer(query, features))
    server.router.bind(BOB_PHONE, 0.0)
    asked_again = server.send(BOB_PHONE, f"<presence>{lying_caps}</presence>")
    assert caps_query(asked_again, BOB_PHONE) is not None


def test_an_answer_from_someone_else_does_not_settle_the_question() -> None:
    server = Server()
    features = [DISCO_INFO, f"{TUNE}+notify"]
    caps, _ver = caps_for(features)
    server.router.bind(BOB, 0.0)
    query = caps_query(server.send(BOB, f"<presence>{caps}</presence>"), BOB)
    server.online(CAROL)
    server.send(CAROL, caps_answer(query, features))  # carol guesses bob's question id
    server.online(ALICE)
    subscribe_both_ways(server, ALICE, BOB)
    assert notifications(server.publish_actions(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")) == []
    server.send(BOB, caps_answer(query, features))  # bob's own answer still counts
    published = server.publish_actions(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    assert [to for to, _message in notifications(published)] == [str(BOB)]


def test_send_last_published_item_never_is_honoured() -> None:
    server = Server()
    server.online(ALICE)
    server.publish(ALICE, "urn:xmpp:bookmarks:1", "<conference xmlns='urn:xmpp:bookmarks:1'/>",
                   options=field("send_last_published_item", "never"))
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    actions = online_with_interest(server, ALICE_PHONE, ["urn:xmpp:bookmarks:1", TUNE])
    assert [m.find(f".//{{{EVENT}}}items").get("node") for _to, m in notifications(actions)] == [TUNE]


def test_whitelist_nodes_notify_only_the_owner() -> None:
    server = Server()
    online_with_interest(server, ALICE, ["urn:private"])
    online_with_interest(server, BOB, ["urn:private"])
    subscribe_both_ways(server, ALICE, BOB)
    actions = server.publish_actions(ALICE, "urn:private", "<x xmlns='urn:test'/>",
                                     options=field("access_model", "whitelist"))
    assert [to for to, _m in notifications(actions)] == [str(ALICE)]


def test_deleting_a_node_notifies_and_removes_it() -> None:
    server = Server()
    online_with_interest(server, ALICE, [TUNE])
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    actions = server.send(ALICE, f"<iq type='set' id='d'><pubsub xmlns='{PUBSUB}#owner'><delete node='{TUNE}'/>"
                                 "</pubsub></iq>")
    assert reply(actions, ALICE).get("type") == "result"
    ((_to, message),) = notifications(actions)
    assert message.find(f".//{{{EVENT}}}delete").get("node") == TUNE
    assert server.pep.nodes("alice") == {}


# --- discovery and persistence --------------------------------------------------------------------


def test_account_disco_shows_pep_and_lists_the_nodes_a_requester_may_read() -> None:
    server = Server()
    server.online(ALICE)
    server.online(CAROL)
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")
    server.publish(ALICE, "urn:open", "<x xmlns='urn:test'/>", options=field("access_model", "open"))
    info = reply(server.send(CAROL, f"<iq type='get' id='i' to='alice@localhost'><query xmlns='{DISCO_INFO}'/>"
                                    "</iq>"), CAROL)
    identities = {(i.get("category"), i.get("type")) for i in info.iter(f"{{{DISCO_INFO}}}identity")}
    features = {f.get("var") for f in info.iter(f"{{{DISCO_INFO}}}feature")}
    assert ("pubsub", "pep") in identities and f"{PUBSUB}#publish-options" in features
    listing = reply(server.send(CAROL, "<iq type='get' id='n' to='alice@localhost'>"
                                       "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>"), CAROL)
    assert [item.get("node") for item in listing.iter("{http://jabber.org/protocol/disco#items}item")] == ["urn:open"]


def test_nodes_and_items_survive_a_restart(tmp_path: Path) -> None:
    first = Server(pep=SqlitePepStore(tmp_path / "pep.sqlite"))
    first.online(ALICE)
    first.publish(ALICE, "urn:list", "<n xmlns='urn:test'>1</n>", item_id="1", options=field("max_items", "2"))
    first.publish(ALICE, "urn:list", "<n xmlns='urn:test'>2</n>", item_id="2", options=field("max_items", "2"))
    first.publish(ALICE, "urn:list", "<n xmlns='urn:test'>3</n>", item_id="3", options=field("max_items", "2"))
    first.pep.close()  # type: ignore[attr-defined]

    second = Server(pep=SqlitePepStore(tmp_path / "pep.sqlite"))
    second.online(ALICE)
    items = second.items(ALICE, "alice@localhost", "urn:list")
    assert [item.get("id") for item in items.iter(f"{{{PUBSUB}}}item")] == ["2", "3"]
    mismatch = second.publish(ALICE, "urn:list", "<n xmlns='urn:test'/>", options=field("max_items", "5"))
    assert error_of(mismatch) == ("conflict", "precondition-not-met")  # the configuration persisted too


def test_a_full_disk_is_a_resource_constraint_and_the_store_is_unchanged(tmp_path: Path) -> None:
    store = SqlitePepStore(tmp_path / "pep.sqlite")
    server = Server(pep=store)
    server.online(ALICE)
    server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'>first</tune>")
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.connection.execute(f"PRAGMA max_page_count = {pages}")
    result = server.publish(ALICE, TUNE, f"<tune xmlns='{TUNE}'>{'y' * 20_000}</tune>")
    assert error_of(result) == ("resource-constraint", None)
    (item,) = server.items(ALICE, "alice@localhost", TUNE).iter(f"{{{PUBSUB}}}item")
    assert item.findtext(f"{{{TUNE}}}tune") == "first"


def test_notifications_and_last_items_never_cross_a_block() -> None:
    server = Server()
    server.router = Router(domain="localhost", users=server.users, store=server.store, wall_clock=lambda: 0.0,
                           pep_store=server.pep, blocking=Blocklists(MemoryBlocklistStore()))
    online_with_interest(server, ALICE, [])
    online_with_interest(server, BOB, [TUNE])
    subscribe_both_ways(server, ALICE, BOB)
    server.send(ALICE, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/>"
                       "</block></iq>")
    assert notifications(server.publish_actions(ALICE, TUNE, f"<tune xmlns='{TUNE}'/>")) == []
    assert notifications(online_with_interest(server, BOB_PHONE, [TUNE])) == []


def test_an_accounts_usage_counts_its_own_items_on_disk_and_in_memory_only(tmp_path: Path) -> None:
    """The quota's measure (`usage_bytes`): items of nodes with persist_items false are in memory, and count for
    their owner alone, as its items on disk do."""
    store = SqlitePepStore(tmp_path / "pep.sqlite")
    volatile, kept = NodeConfig(persist_items=False, max_items=5), NodeConfig(max_items=5)
    for owner in ("alice@localhost", "bob@localhost"):
        store.put_node(owner, "urn:volatile", volatile, keep=5)
        store.put_node(owner, "urn:kept", kept, keep=5)
    store.publish("alice@localhost", "urn:volatile", StoredItem(id="1", payload=b"a" * 100), keep=5)
    store.publish("alice@localhost", "urn:kept", StoredItem(id="1", payload=b"a" * 10), keep=5)
    store.publish("bob@localhost", "urn:volatile", StoredItem(id="1", payload=b"b" * 1_000), keep=5)
    store.publish("bob@localhost", "urn:kept", StoredItem(id="1", payload=b"b" * 7), keep=5)
    assert store.usage_bytes("alice@localhost") == 110
    assert store.usage_bytes("bob@localhost") == 1_007
    assert store.usage_bytes("carol@localhost") == 0
