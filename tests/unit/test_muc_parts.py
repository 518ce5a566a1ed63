"""The room's parts (visibility, moderation, owner, invitations, history, ...) are functions of the room that use its
public interface only: no module of boshcm/xmpp/muc/ reaches into another object's private attributes (issue 16);
and each part does its job, tested here on a real room."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from lxml import etree

import boshcm.xmpp.muc
from boshcm.jid import JID
from boshcm.stanza import NS_DATA_FORMS, NS_DISCO_INFO
from boshcm.xmpp.muc import disco, room_ids, visibility
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.nick import parse_nick
from boshcm.xmpp.muc.reserved_nicks import ReservedNicks
from boshcm.xmpp.muc.roles import Affiliation, Role
from boshcm.xmpp.muc.room import Occupant, Room, RoomState
from boshcm.xmpp.muc.visibility import Sight

MUC = Path(boshcm.xmpp.muc.__file__).parent


def private_reaches(source: str) -> list[str]:
    """`x._name` where `x` is not `self` or `cls`: a reach into someone else's privates."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_sees_a_reach_into_the_rooms_privates() -> None:
    assert private_reaches("def f(room):\n    return room._occupants\n") == ["2: room._occupants"]
    assert private_reaches("class A:\n    def f(self):\n        return self._occupants\n") == []


def test_no_muc_module_uses_another_objects_private_attributes() -> None:
    reaches = {path.name: found for path in sorted(MUC.glob("*.py"))
               if (found := private_reaches(path.read_text(encoding="utf-8")))}
    assert reaches == {}


def test_whose_presence_a_room_broadcasts_is_decided_in_visibility_py_only() -> None:
    """XEP-0045 §10.2 presencebroadcast is read by the form (config.py) and the visibility rules, nowhere else."""
    readers = {path.name for path in MUC.glob("*.py") if "presence_broadcast" in path.read_text(encoding="utf-8")}
    assert readers == {"config.py", "visibility.py"}


# --- visibility.py: who sees whom, over a room of real occupants ------------------------------------------------

ROOM = JID.parse("quiz@conference.localhost")
OWNER, BOB, CAROL = (JID.parse(j) for j in ("alice@localhost/desk", "bob@localhost/phone", "carol@localhost/web"))


def quiet_room(broadcast: tuple[Role, ...] = (Role.MODERATOR,)) -> Room:
    """Alice owns the room (a moderator); Bob and Carol are participants; only `broadcast` roles are shown."""
    ids = itertools.count(1)
    room = Room(jid=ROOM, state=RoomState(config=RoomConfig(presence_broadcast=broadcast)), secret=b"secret",
                id_factory=lambda: f"id{next(ids)}", wall_clock=lambda: 1_700_000_000.0)
    room.state.affiliations[OWNER.bare] = Affiliation.OWNER
    for real, nick in ((OWNER, "Quizmaster"), (BOB, "Bob"), (CAROL, "Carol")):
        presence = etree.fromstring(f"<presence xmlns='jabber:client' from='{real}' to='{ROOM}/{nick}'/>")
        room.handle(presence, 0.0)
    return room


def occupant(room: Room, nick: str) -> Occupant:
    found = room.find(nick)
    assert found is not None
    return found


def test_an_occupant_whose_role_is_not_broadcast_is_seen_by_itself_and_the_moderators() -> None:
    room = quiet_room()
    bob, alice = occupant(room, "Bob"), occupant(room, "Quizmaster")
    assert not visibility.broadcast(room, bob) and visibility.broadcast(room, alice)
    assert visibility.audience(room, bob) == [BOB, OWNER]
    assert visibility.audience(room, alice) == [OWNER, BOB, CAROL]
    assert visibility.leave_audience(room, bob) == [OWNER]


def test_a_joining_moderator_sees_everyone_and_a_joining_participant_the_broadcast_roles() -> None:
    room = quiet_room()
    alice = occupant(room, "Quizmaster")
    assert [o.nick for o in visibility.seen_on_joining(room, Role.PARTICIPANT, besides=None)] == ["Quizmaster"]
    assert [o.nick for o in visibility.seen_on_joining(room, Role.MODERATOR, besides=alice)] == ["Bob", "Carol"]


def test_a_new_moderator_starts_seeing_the_hidden_occupants_and_a_former_one_stops() -> None:
    room = quiet_room()
    bob = occupant(room, "Bob")
    room.set_role(bob, Role.MODERATOR)
    assert visibility.moderator_changed(room, bob) == [Sight(occupant=occupant(room, "Carol"), to=(BOB,), shown=True)]
    room.set_role(bob, Role.PARTICIPANT)
    assert visibility.moderator_changed(room, bob) == [Sight(occupant=occupant(room, "Carol"), to=(BOB,), shown=False)]


def test_a_role_no_longer_broadcast_hides_the_occupant_from_all_but_itself_and_the_moderators() -> None:
    room = quiet_room(broadcast=(Role.MODERATOR, Role.PARTICIPANT))
    bob = occupant(room, "Bob")
    bob.role = Role.VISITOR
    assert visibility.hidden_by_role_change(room, bob, was_broadcast=True) == [CAROL]
    assert visibility.hidden_by_role_change(room, bob, was_broadcast=False) == []


def test_restricting_the_broadcast_hides_participants_from_the_non_moderators_only() -> None:
    room = quiet_room(broadcast=(Role.MODERATOR, Role.PARTICIPANT))
    previous = room.config
    room.state.config = RoomConfig(presence_broadcast=(Role.MODERATOR,))
    bob, carol = occupant(room, "Bob"), occupant(room, "Carol")
    assert visibility.broadcast_changed(room, previous.presence_broadcast) == [
        Sight(occupant=bob, to=(CAROL,), shown=False), Sight(occupant=carol, to=(BOB,), shown=False)]
    assert visibility.broadcast_changed(room, room.config.presence_broadcast) == []
    restricted = room.config
    room.state.config = previous
    assert [sight.shown for sight in visibility.broadcast_changed(room, restricted.presence_broadcast)] == [True, True]


def test_a_crowd_above_quiet_above_broadcasts_only_moderators_until_half_of_it_is_left() -> None:
    config = RoomConfig(quiet_above=4)
    assert [visibility.is_crowded(config, n, was=False) for n in (3, 4, 5)] == [False, False, True]
    assert [visibility.is_crowded(config, n, was=True) for n in (3, 2, 1)] == [True, True, False]
    assert not visibility.is_crowded(RoomConfig(), 5_000, was=False)  # 0: never
    assert visibility.broadcast_roles(config, crowded=True) == (Role.MODERATOR,)
    assert visibility.broadcast_roles(RoomConfig(presence_broadcast=(Role.PARTICIPANT,)), crowded=True) == ()
    assert visibility.broadcast_roles(config, crowded=False) == config.presence_broadcast


# --- the other parts split from room.py --------------------------------------------------------------------------

def test_an_affiliated_accounts_nick_and_its_look_alikes_stay_reserved_until_released() -> None:
    affiliations = {BOB.bare: Affiliation.MEMBER}
    nicks: dict[JID, str] = {}
    reserved = ReservedNicks(nicks, lambda jid: affiliations.get(jid.bare, Affiliation.NONE))
    reserved.register(BOB.bare, "Bob")
    reserved.register(CAROL.bare, "Carol")  # not affiliated: nothing kept
    assert nicks == {BOB.bare: "Bob"}
    assert reserved.for_other(parse_nick("\uff22\uff2f\uff22"), CAROL.bare)  # fullwidth BOB: a look-alike
    assert not reserved.for_other(parse_nick("Bob"), BOB.bare)
    assert not reserved.for_other(parse_nick("Carol"), BOB.bare)
    reserved.release(BOB.bare)
    assert nicks == {} and not reserved.for_other(parse_nick("Bob"), CAROL.bare)


def test_ids_only_the_room_assigns_are_stripped_from_what_a_client_sends() -> None:
    presence = etree.fromstring(
        "<presence xmlns='jabber:client'><show>away</show><x xmlns='http://jabber.org/protocol/muc'/>"
        "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='conference.localhost' id='forged'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='theirs'/></presence>")
    cleaned = room_ids.clean_presence(ROOM, presence)
    assert [etree.QName(child).localname for child in cleaned] == ["show", "stanza-id"]
    assert cleaned[1].get("by") == "elsewhere.example"


def test_disco_info_lists_the_rooms_features_and_its_subject() -> None:
    room = quiet_room()
    room.state.subject = "Round 1"
    info = disco.room_info(room)
    features = {feature.get("var") for feature in info.iter(f"{{{NS_DISCO_INFO}}}feature")}
    assert {visibility.NS_MODERATORS_SEE_ALL, "muc_semianonymous", "muc_temporary"} <= features
    values = {field.get("var"): field.findtext(f"{{{NS_DATA_FORMS}}}value")
              for field in info.iter(f"{{{NS_DATA_FORMS}}}field")}
    assert values["muc#roominfo_occupants"] == "3" and values["muc#roominfo_subject"] == "Round 1"
