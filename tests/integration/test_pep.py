"""PEP (XEP-0163) on the embedded server with real slixmpp clients: xep_0060/0163/0115/0084/0223/0402."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0402.stanza import Conference

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from boshcm.xmpp.storage import RosterItem
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.servers import running_server

PLUGINS = ("xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084", "xep_0223", "xep_0402")
AVATAR_METADATA = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
DEVICES = "eu.siacs.conversations.axolotl.devicelist"
ERRORS = "{http://jabber.org/protocol/pubsub#errors}"


def contacts(server: Server) -> None:
    """alice and bob see each other's presence (subscription both), as after an accepted request."""
    server.store.put_roster_item("alice", RosterItem(jid=JID.parse("bob@localhost"), subscription="both"))
    server.store.put_roster_item("bob", RosterItem(jid=JID.parse("alice@localhost"), subscription="both"))


async def pep_client(server: Server, clients: list[XmppClient], jid: str, password: str,
                     interests: tuple[str, ...] = ()) -> tuple[XmppClient, asyncio.Queue[Any]]:
    client = XmppClient(jid, password, port=server.c2s.port, ca_cert=server.config.data_path / SELF_SIGNED_CERT,
                        plugins=PLUGINS)
    events: asyncio.Queue[Any] = asyncio.Queue()
    client.xmpp.add_event_handler("pubsub_publish", events.put_nowait)
    for namespace in interests:
        # XEP-0163 §4.3.1: +notify in our caps; slixmpp sends it with the caps in the first presence.
        client.xmpp.plugin["xep_0030"].add_feature(f"{namespace}+notify")
    clients.append(client)
    await client.connect()
    client.xmpp.send_presence()
    return client, events


def app_error(error: IqError) -> str | None:
    for child in error.iq["error"].xml:
        if child.tag.startswith(ERRORS):
            return str(child.tag[len(ERRORS):])
    return None


async def test_avatar_metadata_last_item_on_presence_then_live_notifications_to_an_interested_contact(
        server: Server, clients: list[XmppClient]) -> None:
    contacts(server)
    alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
    metadata = alice.xmpp.plugin["xep_0084"]
    await metadata.publish_avatar_metadata(
        [{"id": "first", "type": "image/png", "bytes": "1024", "height": "64", "width": "64"}],
        timeout=TIMEOUT_SECONDS)

    # bob comes online with +notify in his caps: the server asks what his ver means (XEP-0115 §6.2) and then
    # sends the last published item (XEP-0163 §4.3.2).
    _bob, bob_events = await pep_client(server, clients, "bob@localhost/laptop", "bob-secret",
                                        interests=(AVATAR_METADATA,))
    last = await asyncio.wait_for(bob_events.get(), TIMEOUT_SECONDS)
    assert str(last["from"]) == "alice@localhost"
    assert last["pubsub_event"]["items"]["node"] == AVATAR_METADATA
    assert last["pubsub_event"]["items"]["item"]["payload"].find(f"{{{AVATAR_METADATA}}}info").get("id") == "first"

    await metadata.publish_avatar_metadata(
        [{"id": "second", "type": "image/png", "bytes": "2048", "height": "64", "width": "64"}],
        timeout=TIMEOUT_SECONDS)
    live = await asyncio.wait_for(bob_events.get(), TIMEOUT_SECONDS)
    assert live["pubsub_event"]["items"]["item"]["payload"].find(f"{{{AVATAR_METADATA}}}info").get("id") == "second"

    # alice's own client did not ask for avatar notifications: she got none.
    assert alice.messages.empty()


async def test_omemo_device_list_is_open_and_preconditions_are_checked(server: Server,
                                                                      clients: list[XmppClient]) -> None:
    alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
    bob, _ = await pep_client(server, clients, "bob@localhost/laptop", "bob-secret")  # no subscription
    pubsub = alice.xmpp.plugin["xep_0060"]

    def options(access_model: str) -> Any:
        form = alice.xmpp.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
        form.add_field(var="pubsub#access_model", value=access_model)
        return form

    device_list = ElementTree.fromstring("<list xmlns='eu.siacs.conversations.axolotl'><device id='31415'/></list>")
    await pubsub.publish(None, DEVICES, id="current", payload=device_list, options=options("open"),
                         timeout=TIMEOUT_SECONDS)
    result = await bob.xmpp.plugin["xep_0060"].get_items("alice@localhost", DEVICES, timeout=TIMEOUT_SECONDS)
    (item,) = list(result["pubsub"]["items"])
    assert item["id"] == "current"

    with pytest.raises(IqError) as refused:
        await pubsub.publish(None, DEVICES, id="current", payload=device_list, options=options("presence"),
                             timeout=TIMEOUT_SECONDS)
    assert refused.value.condition == "conflict" and app_error(refused.value) == "precondition-not-met"


async def test_bookmarks_are_stored_privately_with_the_xep_0402_profile(server: Server,
                                                                        clients: list[XmppClient]) -> None:
    contacts(server)
    alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
    bob, _ = await pep_client(server, clients, "bob@localhost/laptop", "bob-secret")
    storage = alice.xmpp.plugin["xep_0223"]
    storage.node_profiles[BOOKMARKS] = {"pubsub#max_items": "max", "pubsub#send_last_published_item": "never"}
    conference = Conference()
    conference["name"] = "Quiz night"
    conference["autojoin"] = True
    conference["nick"] = "Alice"
    await storage.store(conference, node=BOOKMARKS, id="quiz@conference.localhost", timeout=TIMEOUT_SECONDS)

    stored = await storage.retrieve(BOOKMARKS, timeout=TIMEOUT_SECONDS)
    (item,) = list(stored["pubsub"]["items"])
    assert item["id"] == "quiz@conference.localhost"
    assert item["conference"]["autojoin"] is True and item["conference"]["nick"] == "Alice"

    with pytest.raises(IqError) as closed:  # whitelist: not even a contact may read them
        await bob.xmpp.plugin["xep_0060"].get_items("alice@localhost", BOOKMARKS, timeout=TIMEOUT_SECONDS)
    assert closed.value.condition == "not-allowed" and app_error(closed.value) == "closed-node"


async def test_bad_publishes_get_the_xep_errors_and_the_session_carries_on(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"pep.max_item_bytes": 16_384}) as server:
        clients: list[XmppClient] = []
        try:
            await _bad_publishes(server, clients)
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


async def _bad_publishes(server: Server, clients: list[XmppClient]) -> None:
    alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
    await pep_client(server, clients, "bob@localhost/laptop", "bob-secret")
    pubsub = alice.xmpp.plugin["xep_0060"]

    huge = ElementTree.fromstring(f"<data xmlns='urn:xmpp:avatar:data'>{'A' * 20_000}</data>")
    with pytest.raises(IqError) as too_big:
        await pubsub.publish(None, "urn:xmpp:avatar:data", id="x", payload=huge, timeout=TIMEOUT_SECONDS)
    assert too_big.value.condition == "not-acceptable" and app_error(too_big.value) == "payload-too-big"

    small = ElementTree.fromstring("<tune xmlns='http://jabber.org/protocol/tune'/>")
    with pytest.raises(IqError) as forbidden:
        await pubsub.publish("bob@localhost", "http://jabber.org/protocol/tune", payload=small,
                             timeout=TIMEOUT_SECONDS)
    assert forbidden.value.condition == "forbidden"

    await alice.xmpp.plugin["xep_0199"].ping("localhost", timeout=TIMEOUT_SECONDS)  # still connected and served
    assert server.pep_store is not None and server.pep_store.nodes("bob") == {}


DELAY = "{urn:xmpp:delay}delay"
OPEN_NODE = "urn:example:status"


async def test_owner_whitelists_a_member_who_then_reads_the_node_and_sees_the_affiliation(
        server: Server, clients: list[XmppClient]) -> None:
    alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
    bob, _ = await pep_client(server, clients, "bob@localhost/laptop", "bob-secret")
    pubsub, bob_pubsub = alice.xmpp.plugin["xep_0060"], bob.xmpp.plugin["xep_0060"]
    form = alice.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#access_model", value="whitelist")
    note = ElementTree.fromstring("<note xmlns='urn:example:notes'>for bob</note>")
    await pubsub.publish(None, "urn:example:notes", id="n1", payload=note, options=form, timeout=TIMEOUT_SECONDS)
    with pytest.raises(IqError) as closed:
        await bob_pubsub.get_items("alice@localhost", "urn:example:notes", timeout=TIMEOUT_SECONDS)
    assert closed.value.condition == "not-allowed" and app_error(closed.value) == "closed-node"

    await pubsub.modify_affiliations("alice@localhost", "urn:example:notes",
                                     affiliations=[("bob@localhost", "member")], timeout=TIMEOUT_SECONDS)
    result = await bob_pubsub.get_items("alice@localhost", "urn:example:notes", timeout=TIMEOUT_SECONDS)
    assert [item["id"] for item in result["pubsub"]["items"]] == ["n1"]
    listing = await pubsub.get_node_affiliations("alice@localhost", "urn:example:notes", timeout=TIMEOUT_SECONDS)
    assert {(str(a["jid"]), a["affiliation"]) for a in listing["pubsub_owner"]["affiliations"]} == {
        ("alice@localhost", "owner"), ("bob@localhost", "member")}
    own = await bob_pubsub.get_affiliations("alice@localhost", timeout=TIMEOUT_SECONDS)
    assert [(a["node"], a["affiliation"]) for a in own["pubsub"]["affiliations"]] == [
        ("urn:example:notes", "member")]

    with pytest.raises(IqError) as not_owner:
        await bob_pubsub.modify_affiliations("alice@localhost", "urn:example:notes",
                                             affiliations=[("bob@localhost", "outcast")], timeout=TIMEOUT_SECONDS)
    assert not_owner.value.condition == "forbidden"


async def test_stranger_subscribes_to_an_open_node_gets_the_stamped_last_item_then_live_ones(
        server: Server, clients: list[XmppClient]) -> None:
    alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
    bob, bob_events = await pep_client(server, clients, "bob@localhost/laptop", "bob-secret")  # no roster, no +notify
    pubsub, bob_pubsub = alice.xmpp.plugin["xep_0060"], bob.xmpp.plugin["xep_0060"]
    form = alice.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#access_model", value="open")
    status = ElementTree.fromstring("<status xmlns='urn:example:status'>away</status>")
    await pubsub.publish(None, OPEN_NODE, id="s", payload=status, options=form, timeout=TIMEOUT_SECONDS)

    answer = await bob_pubsub.subscribe("alice@localhost", OPEN_NODE, timeout=TIMEOUT_SECONDS)
    assert answer["pubsub"]["subscription"]["subscription"] == "subscribed"
    last = await asyncio.wait_for(bob_events.get(), TIMEOUT_SECONDS)
    assert last["pubsub_event"]["items"]["item"]["id"] == "s"
    assert last.xml.find(DELAY) is not None and last.xml.find(DELAY).get("from") == "alice@localhost"

    await pubsub.publish(None, OPEN_NODE, id="s", payload=status, timeout=TIMEOUT_SECONDS)
    live = await asyncio.wait_for(bob_events.get(), TIMEOUT_SECONDS)
    assert live.xml.find(DELAY) is None
    mine = await bob_pubsub.get_subscriptions("alice@localhost", timeout=TIMEOUT_SECONDS)
    assert [(s["node"], str(s["jid"])) for s in mine["pubsub"]["subscriptions"]] == [(OPEN_NODE, "bob@localhost")]
    theirs = await pubsub.get_node_subscriptions("alice@localhost", OPEN_NODE, timeout=TIMEOUT_SECONDS)
    assert [str(s["jid"]) for s in theirs["pubsub_owner"]["subscriptions"]] == ["bob@localhost"]

    await bob_pubsub.unsubscribe("alice@localhost", OPEN_NODE, timeout=TIMEOUT_SECONDS)
    await pubsub.publish(None, OPEN_NODE, id="s", payload=status, timeout=TIMEOUT_SECONDS)
    await bob.xmpp.plugin["xep_0199"].ping("localhost", timeout=TIMEOUT_SECONDS)  # anything in flight has arrived
    assert bob_events.empty()


async def test_the_last_item_on_presence_is_stamped_with_its_publication_time(
        server: Server, clients: list[XmppClient]) -> None:
    contacts(server)
    alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
    tune = ElementTree.fromstring("<tune xmlns='http://jabber.org/protocol/tune'><title>Hey</title></tune>")
    await alice.xmpp.plugin["xep_0060"].publish(None, "http://jabber.org/protocol/tune", id="t", payload=tune,
                                                timeout=TIMEOUT_SECONDS)
    _bob, bob_events = await pep_client(server, clients, "bob@localhost/laptop", "bob-secret",
                                        interests=("http://jabber.org/protocol/tune",))
    last = await asyncio.wait_for(bob_events.get(), TIMEOUT_SECONDS)
    delay = last.xml.find(DELAY)
    assert delay is not None and delay.get("from") == "alice@localhost"
    stamp = datetime.datetime.fromisoformat(delay.get("stamp").replace("Z", "+00:00"))
    assert abs((datetime.datetime.now(datetime.UTC) - stamp).total_seconds()) < 60


async def test_items_of_a_node_that_does_not_persist_are_gone_after_a_restart(tmp_path: Path) -> None:
    async with running_server(tmp_path) as first:
        contacts(first)
        clients: list[XmppClient] = []
        try:
            alice, _ = await pep_client(first, clients, "alice@localhost/desk", "alice-secret")
            form = alice.xmpp.plugin["xep_0004"].make_form(ftype="submit")
            form.add_field(var="FORM_TYPE", ftype="hidden",
                           value="http://jabber.org/protocol/pubsub#publish-options")
            form.add_field(var="pubsub#persist_items", value="0")
            status = ElementTree.fromstring("<status xmlns='urn:example:status'>in a meeting</status>")
            await alice.xmpp.plugin["xep_0060"].publish(None, OPEN_NODE, id="now", payload=status, options=form,
                                                        timeout=TIMEOUT_SECONDS)
            # While the server runs, a contact coming online still gets it as the last item.
            _bob, bob_events = await pep_client(first, clients, "bob@localhost/laptop", "bob-secret",
                                                interests=(OPEN_NODE,))
            last = await asyncio.wait_for(bob_events.get(), TIMEOUT_SECONDS)
            assert last["pubsub_event"]["items"]["item"]["id"] == "now"
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
    async with running_server(tmp_path, accounts={}) as second:  # same data dir: the accounts are there
        clients = []
        try:
            alice, _ = await pep_client(second, clients, "alice@localhost/desk", "alice-secret")
            result = await alice.xmpp.plugin["xep_0060"].get_items(None, OPEN_NODE, timeout=TIMEOUT_SECONDS)
            assert list(result["pubsub"]["items"]) == []
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


async def test_a_whitelist_longer_than_configured_is_refused_whole(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"pep.max_affiliations_per_node": 2}) as server:
        clients: list[XmppClient] = []
        try:
            alice, _ = await pep_client(server, clients, "alice@localhost/desk", "alice-secret")
            pubsub = alice.xmpp.plugin["xep_0060"]
            note = ElementTree.fromstring("<note xmlns='urn:example:notes'/>")
            await pubsub.publish(None, "urn:example:notes", id="n", payload=note, timeout=TIMEOUT_SECONDS)
            with pytest.raises(IqError) as too_many:
                await pubsub.modify_affiliations("alice@localhost", "urn:example:notes", affiliations=[
                    (f"friend{n}@localhost", "member") for n in range(3)], timeout=TIMEOUT_SECONDS)
            assert too_many.value.condition == "resource-constraint"
            listing = await pubsub.get_node_affiliations("alice@localhost", "urn:example:notes",
                                                         timeout=TIMEOUT_SECONDS)
            assert [a["affiliation"] for a in listing["pubsub_owner"]["affiliations"]] == ["owner"]
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
