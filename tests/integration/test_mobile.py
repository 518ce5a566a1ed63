"""For mobile clients, with real slixmpp clients over TCP: XEP-0352 client state indication, XEP-0280 message
carbons, XEP-0313 archives of accounts and rooms paged with XEP-0059."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slixmpp import JID as XmppJid
from slixmpp.exceptions import IqError

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from boshcm.xmpp.storage import RosterItem
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient

PLUGINS = ("xep_0004", "xep_0045", "xep_0059", "xep_0085", "xep_0280", "xep_0297", "xep_0313", "xep_0352")
ROOM = "mobile@conference.localhost"
QUIET_SECONDS = 0.3


def contacts(server: Server) -> None:
    server.store.put_roster_item("alice", RosterItem(jid=JID.parse("bob@localhost"), subscription="both"))
    server.store.put_roster_item("bob", RosterItem(jid=JID.parse("alice@localhost"), subscription="both"))


async def client(server: Server, clients: list[XmppClient], jid: str, password: str, *,
                 presence: bool = True) -> XmppClient:
    made = XmppClient(jid, password, port=server.c2s.port, ca_cert=server.config.data_path / SELF_SIGNED_CERT,
                      plugins=PLUGINS)
    clients.append(made)
    await made.connect()
    if presence:
        made.xmpp.send_presence()
    return made


async def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    """What arrives within a short quiet period."""
    items = []
    while True:
        try:
            items.append(await asyncio.wait_for(queue.get(), QUIET_SECONDS))
        except TimeoutError:
            return items


def shows(presences: list[Any], bare: str) -> list[str]:
    return [str(p["show"]) or str(p["type"]) for p in presences if p["from"].bare == bare]


async def test_an_inactive_client_gets_contacts_latest_presence_and_chat_states_only_when_active_or_messaged(
        server: Server, clients: list[XmppClient]) -> None:
    contacts(server)
    alice = await client(server, clients, "alice@localhost/phone", "alice-secret")
    bob = await client(server, clients, "bob@localhost/desk", "bob-secret")
    await alice.presence_from("bob@localhost")
    assert alice.xmpp.plugin["xep_0352"].enabled  # the server offered <csi/>
    await drain(alice.presences)

    alice.xmpp.plugin["xep_0352"].send_inactive()
    await asyncio.sleep(0.1)
    bob.xmpp.send_presence(pshow="away")
    bob.xmpp.send_presence(pshow="xa")
    assert await drain(alice.presences) == []

    alice.xmpp.plugin["xep_0352"].send_active()
    presences = await drain(alice.presences)
    assert shows(presences, "bob@localhost") == ["xa"]  # coalesced: only the latest

    seen: asyncio.Queue[str] = asyncio.Queue()  # chat states and bodies, in arrival order
    alice.xmpp.add_event_handler("chatstate", lambda m: seen.put_nowait(f"state {m['chat_state']}"))
    alice.xmpp.add_event_handler("message", lambda m: seen.put_nowait(f"body {m['body']}"))
    alice.xmpp.plugin["xep_0352"].send_inactive()
    await asyncio.sleep(0.1)
    composing = bob.xmpp.make_message(mto="alice@localhost/phone", mtype="chat")
    composing["chat_state"] = "composing"
    composing.send()
    bob.xmpp.send_presence(pshow="dnd")
    assert await drain(seen) == []
    bob.xmpp.send_message(mto="alice@localhost/phone", mtype="chat", mbody="are you there?")
    # What was held comes first, then the message itself.
    assert await drain(seen) == ["state composing", "body are you there?"]
    assert shows(await drain(alice.presences), "bob@localhost") == ["dnd"]


async def test_carbons_show_a_second_device_what_the_first_sent_and_received(
        server: Server, clients: list[XmppClient]) -> None:
    desk = await client(server, clients, "alice@localhost/desk", "alice-secret")
    phone = await client(server, clients, "alice@localhost/phone", "alice-secret")
    bob = await client(server, clients, "bob@localhost/laptop", "bob-secret")
    carbons: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    phone.xmpp.add_event_handler("carbon_received", lambda m: carbons.put_nowait(("received", m)))
    phone.xmpp.add_event_handler("carbon_sent", lambda m: carbons.put_nowait(("sent", m)))
    info = await phone.xmpp.plugin["xep_0030"].get_info(jid="localhost", timeout=TIMEOUT_SECONDS)
    assert "urn:xmpp:carbons:2" in info["disco_info"]["features"]
    await phone.xmpp.plugin["xep_0280"].enable(timeout=TIMEOUT_SECONDS)

    bob.xmpp.send_message(mto="alice@localhost/desk", mtype="chat", mbody="lunch?")
    assert str((await desk.next_message())["body"]) == "lunch?"
    direction, copy = await asyncio.wait_for(carbons.get(), TIMEOUT_SECONDS)
    forwarded = copy["carbon_received"]
    assert direction == "received" and str(forwarded["body"]) == "lunch?"
    assert forwarded["from"] == "bob@localhost/laptop"

    desk.xmpp.send_message(mto="bob@localhost/laptop", mtype="chat", mbody="yes, at noon")
    assert str((await bob.next_message())["body"]) == "yes, at noon"
    direction, copy = await asyncio.wait_for(carbons.get(), TIMEOUT_SECONDS)
    forwarded = copy["carbon_sent"]
    assert direction == "sent" and str(forwarded["body"]) == "yes, at noon"
    assert forwarded["to"] == "bob@localhost/laptop"

    # <private/> (XEP-0280 §7): not copied.
    private = desk.xmpp.make_message(mto="bob@localhost/laptop", mtype="chat", mbody="just for you")
    private.enable("carbon_private")
    private.send()
    assert str((await bob.next_message())["body"]) == "just for you"
    assert await drain(carbons) == []
    assert [m for m in await drain(phone.messages) if m["body"]] == []


async def test_a_client_away_longer_than_resumption_pages_through_its_archive(
        server: Server, clients: list[XmppClient]) -> None:
    bob = await client(server, clients, "bob@localhost/laptop", "bob-secret")
    for number in range(7):
        bob.xmpp.send_message(mto="alice@localhost", mtype="chat", mbody=f"note {number}")
    await asyncio.sleep(0.2)

    # alice's phone comes back (the messages were stored offline as well; the archive is what lets a second
    # device, or one that already fetched them elsewhere, catch up).
    alice = await client(server, clients, "alice@localhost/phone", "alice-secret", presence=False)
    mam = alice.xmpp.plugin["xep_0313"]
    bodies = [str(message["mam_result"]["forwarded"]["stanza"]["body"])
              async for message in mam.iterate(rsm={"max": 3})]
    assert bodies == [f"note {number}" for number in range(7)]
    # Newest first, as a client filling its screen does (<before/>), still in pages of 3.
    newest = [str(message["mam_result"]["forwarded"]["stanza"]["body"])
              async for message in mam.iterate(rsm={"max": 3}, reverse=True, total=4)]
    assert newest == ["note 6", "note 5", "note 4", "note 3"]
    from_bob = [str(message["mam_result"]["forwarded"]["stanza"]["body"])
                   async for message in mam.iterate(with_jid=XmppJid("bob@localhost"), rsm={"max": 5}, total=2)]
    assert from_bob == ["note 0", "note 1"]

    # The live message carries the archive's id (XEP-0359), so a client can page on from it.
    alice.xmpp.send_presence()
    bob.xmpp.send_message(mto="alice@localhost", mtype="chat", mbody="live")
    while True:
        message = await alice.next_message()
        if str(message["body"]) == "live":
            break
    stanza_id = message.xml.find("{urn:xmpp:sid:0}stanza-id")
    assert stanza_id is not None and stanza_id.get("by") == "alice@localhost"
    after = await mam.retrieve(rsm={"after": stanza_id.get("id")}, timeout=TIMEOUT_SECONDS)
    assert after["mam"]["results"] == [] and after["mam_fin"]["complete"]

    with pytest.raises(IqError) as refused:
        await mam.retrieve(jid=XmppJid("bob@localhost"), timeout=TIMEOUT_SECONDS)
    assert refused.value.condition == "forbidden"


async def test_a_persistent_room_archive_goes_beyond_the_join_history(
        server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/desk", "alice-secret")
    muc = alice.xmpp.plugin["xep_0045"]
    await muc.join_muc_wait(ROOM, "Alice", maxstanzas=0, timeout=TIMEOUT_SECONDS)
    submit = alice.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    submit.add_field(var="muc#roomconfig_persistentroom", value=True)
    submit.add_field(var="muc#roomconfig_historylength", value="2")
    await muc.set_room_config(ROOM, submit)
    reflections = []
    for number in range(5):
        alice.xmpp.send_message(mto=ROOM, mtype="groupchat", mbody=f"round {number}")
    while len(reflections) < 5:
        message = await alice.next_message()
        if message["type"] == "groupchat" and str(message["body"]).startswith("round"):
            reflections.append(message)

    bob = await client(server, clients, "bob@localhost/phone", "bob-secret")
    info = await bob.xmpp.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT_SECONDS)
    assert "urn:xmpp:mam:2" in info["disco_info"]["features"]
    archived = [message async for message in bob.xmpp.plugin["xep_0313"].iterate(jid=XmppJid(ROOM), rsm={"max": 2})]
    assert [str(m["mam_result"]["forwarded"]["stanza"]["body"]) for m in archived] == [
        f"round {number}" for number in range(5)]
    # One archive entry per room message, under the id every occupant saw on the live message.
    live_ids = [m.xml.find("{urn:xmpp:sid:0}stanza-id").get("id") for m in reflections]
    assert [str(m["mam_result"]["id"]) for m in archived] == live_ids
    assert str(archived[0]["mam_result"]["forwarded"]["stanza"]["from"]) == f"{ROOM}/Alice"
