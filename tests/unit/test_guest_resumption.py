"""XEP-0198 resumption for guests (SASL ANONYMOUS), as conversations over a real router and a room.

A guest gets a new random name at every anonymous login, so "the same account" (XEP-0198 §5) cannot be its
name: the resumption id (unguessable, told only to the stream that enabled it) is the proof, and only
another anonymous login may present a guest's id. The resuming stream's own throw-away name disappears; the
guest keeps its JID, presence and rooms while detached, and loses them for good when the window expires.
"""

from __future__ import annotations

from lxml import etree

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, NS_STANZAS, Element, qname
from boshcm.xmpp.muc.service import MucRegistry, MucService, RoomStore
from boshcm.xmpp.storage import RosterItem
from tests.unit.sm_client import SM, Client, World, chat, tag

ROOM = "lobby@conference.localhost"


def guest_world(*, max_detached: int = 100) -> World:
    """Guests allowed, a resumption window of a minute, and a conference service that knows who is a guest."""
    world = World(anonymous=True, max_detached=max_detached, resume_seconds=60)
    users = world.users
    rooms = RoomStore(":memory:")
    muc = MucService(MucRegistry(domain="conference.localhost", secret=rooms.secret(), rooms=rooms.load(),
                                 wall_clock=lambda: 1_700_000_000.0,
                                 is_guest=lambda jid: jid.domain == "localhost" and jid.local in users.anonymous),
                     rooms)
    world.router.add_component("conference.localhost", muc, "Chatrooms")
    return world


def item_not_found(elements: list[Element]) -> bool:
    (failed,) = elements
    return tag(failed) == "failed" and failed.find(qname(NS_STANZAS, "item-not-found")) is not None


def test_a_guest_resumes_with_a_new_anonymous_login_and_its_throw_away_name_disappears() -> None:
    world = guest_world()
    guest, bob = Client(world), Client(world, "bob")
    enabled = guest.online()
    assert enabled is not None and enabled.get("resume") == "true" and enabled.get("id") == "sm-0"
    name = guest.jid
    bob.online(enable=None)
    bob.send(chat(name, "seen"))
    guest.drop()
    assert guest.detached and world.router.is_bound(name) and name.local in world.users.anonymous
    bob.send(chat(name, "while away"))

    again = Client(world)
    again.authenticate()  # a new random guest name, for now
    assert len(world.users.anonymous) == 2
    resumed, *_rest = again.send(f"<resume {SM} previd='sm-0' h='2'/>")
    assert (tag(resumed), resumed.get("previd")) == ("resumed", "sm-0")
    assert again.messages() == ["while away"]
    assert again.jid == name and world.sessions[name] is again
    assert world.users.anonymous == {name.local}  # the throw-away name is gone, the guest's stays
    bob.send(chat(name, "welcome back"))
    assert again.messages() == ["while away", "welcome back"]


def test_a_guests_id_is_not_resumable_by_an_account_nor_an_accounts_id_by_a_guest() -> None:
    world = guest_world()
    guest, alice = Client(world), Client(world, "alice")
    guest.online()  # sm-0
    alice.online()  # sm-1
    guest.drop()
    alice.drop()
    bob = Client(world, "bob")
    bob.authenticate()
    assert item_not_found(bob.send(f"<resume {SM} previd='sm-0' h='0'/>"))
    stranger = Client(world)
    stranger.authenticate()
    assert item_not_found(stranger.send(f"<resume {SM} previd='sm-1' h='0'/>"))
    assert item_not_found(stranger.send(f"<resume {SM} previd='made-up' h='0'/>"))
    assert world.table.detached_count == 2  # both still waiting for their owners


def test_a_guest_resuming_over_its_still_open_stream_keeps_its_name() -> None:
    world = guest_world()
    guest = Client(world)
    guest.online()
    name = guest.jid
    again = Client(world)
    again.authenticate()
    assert tag(again.send(f"<resume {SM} previd='sm-0' h='1'/>")[0]) == "resumed"
    assert [c.condition for c in guest.closed] == [StreamErrorCondition.CONFLICT]
    # The replaced stream closed without taking the guest's name (or binding) with it.
    assert world.users.anonymous == {name.local} and world.router.is_bound(name)


def test_when_a_guests_window_expires_its_rooms_see_it_leave_and_unacked_messages_go_back() -> None:
    world = guest_world()
    guest, bob = Client(world), Client(world, "bob")
    guest.online()
    name = guest.jid
    bob.online(enable=None)
    bob.send(f"<presence xmlns='{NS_CLIENT}' to='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    bob.send(f"<iq xmlns='{NS_CLIENT}' to='{ROOM}' type='set' id='instant'><query "
             "xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
    guest.send(f"<presence xmlns='{NS_CLIENT}' to='{ROOM}/guest'><x xmlns='http://jabber.org/protocol/muc'/>"
               "</presence>")
    assert any(e.get("from") == f"{ROOM}/guest" for e in bob.received)
    world.router.handle_stanza(name, etree.fromstring(
        f"<iq xmlns='{NS_CLIENT}' type='set' id='r1'><query xmlns='jabber:iq:roster'>"
        f"<item jid='bob@localhost'/></query></iq>"), world.now)
    assert world.store.roster_items(name.local) != []
    guest.drop()
    before = len(bob.received)
    bob.send(chat(name, "still there?"))
    bob.send(chat(name.bare, "to the bare JID"))
    assert not [e for e in bob.received[before:] if e.get("type") in ("unavailable", "error")]  # it waits

    world.expire()
    after = bob.received[before:]
    left = [e for e in after if tag(e) == "presence" and e.get("type") == "unavailable"
            and e.get("from") == f"{ROOM}/guest"]
    assert len(left) == 1
    # RFC 6121 §8.5.2.2.1: no offline storage for a guest: both messages go back to bob.
    errors = [e for e in after if tag(e) == "message" and e.get("type") == "error"]
    assert sorted(e.findtext(qname(NS_CLIENT, "body")) or "" for e in errors) == ["still there?", "to the bare JID"]
    assert all(e.find(f"{{{NS_CLIENT}}}error/{{{NS_STANZAS}}}service-unavailable") is not None for e in errors)
    assert world.store.offline_messages(name.local) == []
    # Gone for good: unbound, no name, no roster, not resumable.
    assert not world.router.is_bound(name) and world.users.anonymous == set()
    assert world.store.roster_items(name.local) == []
    later = Client(world)
    later.authenticate()
    assert item_not_found(later.send(f"<resume {SM} previd='sm-0' h='0'/>"))


def test_detached_guests_count_against_the_one_bound_of_detached_sessions() -> None:
    world = guest_world(max_detached=1)
    guest, alice, other = Client(world), Client(world, "alice"), Client(world)
    guest.online()
    alice.online()
    other.online()
    guest.drop()
    assert guest.detached
    alice.drop()
    other.drop()
    # The table is full: a lost connection ends its session at once, an account's as a guest's.
    assert not alice.detached and not other.detached and world.table.detached_count == 1
    assert world.users.anonymous == {guest.jid.local}


def test_guest_roster_items_do_not_outlive_a_session_that_ends_cleanly() -> None:
    world = guest_world()
    guest = Client(world)
    guest.online(enable=None)
    name = guest.jid
    world.store.put_roster_item(name.local, RosterItem(jid=JID.parse("bob@localhost")))
    guest.drop()
    assert world.store.roster_items(name.local) == [] and world.users.anonymous == set()
