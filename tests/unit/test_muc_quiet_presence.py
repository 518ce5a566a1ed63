"""XEP-0045 §10.2 muc#roomconfig_presencebroadcast as boshcm reads it (issue 14): a role that is not broadcast
still shows to the room's moderators — they moderate whom they can see — and to nobody else."""

from __future__ import annotations

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element
from tests.unit.test_muc_room import (
    ALICE,
    BOB,
    CAROL,
    MUC,
    MUC_USER,
    ROOM,
    Conference,
    admin_item,
    broadcast_only,
    codes,
)

DAVE = "dave@localhost/tablet"
MODERATORS_SEE_ALL = "urn:boshcm:muc:moderators-see-all:0"


def presences(stanzas: list[Element]) -> set[tuple[str, str, str]]:
    """(to, occupant nick, type) of each presence: who learnt what."""
    return {(s.get("to", ""), s.get("from", "").rpartition("/")[2], s.get("type") or "available")
            for s in stanzas if etree.QName(s).localname == "presence"}


def role_of(stanza: Element) -> str:
    item = stanza.find(f"{MUC_USER}x/{MUC_USER}item")
    assert item is not None
    return item.get("role", "")


def quiet_room() -> Conference:
    """Alice owns the room (a moderator) and broadcasts only moderators; Bob and Carol are participants."""
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    broadcast_only(conference, ("moderator",))
    conference.join(BOB, "Bob")
    conference.join(CAROL, "Carol")
    return conference


def test_a_hidden_participants_join_reaches_itself_and_the_moderators_only() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    broadcast_only(conference, ("moderator",))
    conference.join(BOB, "Bob")
    out = conference.join(CAROL, "Carol")
    assert presences(out) == {(CAROL, "Quizmaster", "available"), (CAROL, "Carol", "available"),
                              (ALICE, "Carol", "available")}
    (to_moderator,) = [s for s in out if s.get("to") == ALICE]
    assert "110" not in codes(to_moderator) and role_of(to_moderator) == "participant"
    # The moderator sees the real JID (a semi-anonymous room shows it to moderators).
    assert to_moderator.find(f"{MUC_USER}x/{MUC_USER}item").get("jid") == CAROL  # type: ignore[union-attr]


def test_a_hidden_participants_status_change_nick_change_and_leave_reach_itself_and_the_moderators() -> None:
    conference = quiet_room()
    away = conference.send(BOB, f"<presence to='{ROOM}/Bob'><show>away</show></presence>")
    assert presences(away) == {(BOB, "Bob", "available"), (ALICE, "Bob", "available")}
    renamed = conference.send(BOB, f"<presence to='{ROOM}/Robert'/>")
    assert presences(renamed) == {(BOB, "Bob", "unavailable"), (ALICE, "Bob", "unavailable"),
                                  (BOB, "Robert", "available"), (ALICE, "Robert", "available")}
    gone = conference.send(BOB, f"<presence to='{ROOM}/Robert' type='unavailable'/>")
    assert presences(gone) == {(BOB, "Robert", "unavailable"), (ALICE, "Robert", "unavailable")}


def test_a_moderator_joining_sees_every_occupant_and_others_only_the_broadcast_roles() -> None:
    conference = quiet_room()
    admin_item(conference, ALICE, "<item jid='dave@localhost' affiliation='admin'/>")
    out = conference.join(DAVE, "Dave")
    # XEP-0045 §7.2.3 order: the others first (all of them, for a moderator), then its own presence.
    to_dave = [s.get("from", "").rpartition("/")[2] for s in out
               if s.get("to") == DAVE and etree.QName(s).localname == "presence"]
    assert to_dave == ["Quizmaster", "Bob", "Carol", "Dave"]
    # Dave is a moderator, a broadcast role: everyone sees him come.
    assert {(to, nick) for to, nick, _type in presences(out) if nick == "Dave"} == {
        (DAVE, "Dave"), (ALICE, "Dave"), (BOB, "Dave"), (CAROL, "Dave")}
    # A participant joining after him still sees only the moderators.
    erin = "erin@localhost/web"
    assert [s.get("from", "").rpartition("/")[2] for s in conference.join(erin, "Erin")
            if etree.QName(s).localname == "presence" and s.get("to") == erin] == ["Quizmaster", "Dave", "Erin"]


def test_an_occupant_made_moderator_gets_the_hidden_occupants_and_loses_them_when_demoted() -> None:
    conference = quiet_room()
    promoted = admin_item(conference, ALICE, "<item nick='Bob' role='moderator'/>")[1:]
    # Bob's new role is broadcast now: everyone sees him; and he now sees Carol, who is hidden from participants.
    assert presences(promoted) == {(ALICE, "Bob", "available"), (BOB, "Bob", "available"),
                                   (CAROL, "Bob", "available"), (BOB, "Carol", "available")}
    demoted = admin_item(conference, ALICE, "<item nick='Bob' role='participant'/>")[1:]
    # Carol drops Bob (no longer broadcast); Alice still sees him, as a participant; Bob drops Carol.
    assert presences(demoted) == {(CAROL, "Bob", "unavailable"), (ALICE, "Bob", "available"),
                                  (BOB, "Bob", "available"), (BOB, "Carol", "unavailable")}
    (to_alice,) = [s for s in demoted if s.get("to") == ALICE]
    assert role_of(to_alice) == "participant"


def test_restricting_the_broadcast_drops_hidden_occupants_from_participants_but_not_from_moderators() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    conference.instant()
    conference.join(BOB, "Bob")
    conference.join(CAROL, "Carol")
    restricted = broadcast_only(conference, ("moderator",))
    assert restricted[0].get("type") == "result"
    # Without this the participants would keep each other's presences and never see them leave.
    assert presences(restricted) == {(BOB, "Carol", "unavailable"), (CAROL, "Bob", "unavailable")}
    assert any("104" in codes(s) for s in restricted if s.get("to") == ALICE)
    # And Bob's leave now reaches the moderator (who still lists him) but not Carol (who no longer does).
    gone = conference.send(BOB, f"<presence to='{ROOM}/Bob' type='unavailable'/>")
    assert presences(gone) == {(BOB, "Bob", "unavailable"), (ALICE, "Bob", "unavailable")}


def test_opening_the_broadcast_again_shows_the_hidden_occupants_to_the_participants() -> None:
    conference = quiet_room()
    opened = broadcast_only(conference, ("moderator", "participant", "visitor"))
    assert presences(opened) == {(BOB, "Carol", "available"), (CAROL, "Bob", "available")}
    dave = "dave@localhost/x"
    assert [s.get("from", "").rpartition("/")[2] for s in conference.join(dave, "Dave")
            if etree.QName(s).localname == "presence" and s.get("to") == dave] == ["Quizmaster", "Bob", "Carol",
                                                                                    "Dave"]


def test_the_room_advertises_that_moderators_see_every_occupant() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    conference.instant()
    (info,) = conference.send(BOB, f"<iq to='{ROOM}' type='get' id='d'><query xmlns='{MUC}'/></iq>".replace(
        MUC, "http://jabber.org/protocol/disco#info"))
    features = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert MODERATORS_SEE_ALL in features



def test_a_participant_joining_a_quiet_room_costs_the_moderators_not_the_room() -> None:
    """2,000 players filling one quiet room: each join must not walk every occupant (O(N²) for the room)."""
    conference = quiet_room()
    for index in range(50):
        conference.join(f"player{index}@localhost/web", f"Player {index}")
    room = conference.service.room(JID.parse(ROOM))
    assert room is not None

    def walked() -> list[object]:
        raise AssertionError("a participant's join walked every occupant")

    room.occupants = walked  # type: ignore[method-assign]
    erin = "erin@localhost/web"
    to_erin = [s.get("from", "").rpartition("/")[2] for s in conference.join(erin, "Erin")
               if etree.QName(s).localname == "presence" and s.get("to") == erin]
    assert to_erin == ["Quizmaster", "Erin"]


# --- boshcm's {urn:boshcm:muc:0}roomconfig_quietabove: the room goes quiet itself, at the join that crosses it ---

QUIET_ABOVE = "{urn:boshcm:muc:0}roomconfig_quietabove"


def set_quiet_above(conference: Conference, count: int) -> list[Element]:
    return conference.send(
        ALICE,
        f"<iq to='{ROOM}' type='set' id='qa'><query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' type='submit'>"
        f"<field var='{QUIET_ABOVE}'><value>{count}</value></field></x></query></iq>",
    )


def crowd(count: int) -> list[str]:
    return [f"player{n}@localhost/web" for n in range(count)]


def test_quiet_above_is_offered_in_the_form_and_refuses_what_is_not_a_number() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    (form,) = conference.send(ALICE, f"<iq to='{ROOM}' type='get' id='g'><query xmlns='{MUC}#owner'/></iq>")
    (field,) = [f for f in form.iter("{jabber:x:data}field") if f.get("var") == QUIET_ABOVE]
    assert field.get("type") == "text-single" and field.findtext("{jabber:x:data}value") == "0"
    (refused,) = conference.send(
        ALICE, f"<iq to='{ROOM}' type='set' id='qa'><query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' "
        f"type='submit'><field var='{QUIET_ABOVE}'><value>many</value></field></x></query></iq>")
    assert refused.get("type") == "error" and refused.find(".//{*}not-acceptable") is not None


def test_the_join_that_crosses_quiet_above_finds_the_room_quiet_and_the_others_drop_each_other() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    assert [codes(s) for s in set_quiet_above(conference, 4)] == [set(), {"104"}]  # the result, the notice
    for real, nick in ((BOB, "Bob"), (CAROL, "Carol")):
        conference.join(real, nick)
    loud = conference.join(DAVE, "Dave")  # four occupants: still everyone's presence to everyone
    assert (BOB, "Dave", "available") in presences(loud)
    erin = "erin@localhost/phone"
    out = conference.join(erin, "Erin")  # five: crowded
    # The participants drop each other (as when the owner's form makes the room quiet), the moderator keeps seeing
    # everyone, and the joiner sees only the moderator and itself.
    assert presences(out) == {
        (BOB, "Carol", "unavailable"), (BOB, "Dave", "unavailable"), (CAROL, "Bob", "unavailable"),
        (CAROL, "Dave", "unavailable"), (DAVE, "Bob", "unavailable"), (DAVE, "Carol", "unavailable"),
        (erin, "Quizmaster", "available"), (erin, "Erin", "available"), (ALICE, "Erin", "available")}
    later = conference.join("frank@localhost/web", "Frank")
    assert {to for to, _, _ in presences(later)} == {"frank@localhost/web", ALICE}  # O(moderators), not O(room)


def test_a_crowded_room_is_loud_again_when_fewer_than_half_of_quiet_above_are_left() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    set_quiet_above(conference, 6)
    conference.join(BOB, "Bob")
    conference.join(CAROL, "Carol")
    players = crowd(5)
    for n, real in enumerate(players):
        conference.join(real, f"P{n}")  # eight in: crowded since the seventh
    for n, real in enumerate(players):
        # Down to three, half of six: still quiet, each leave seen by the moderator alone.
        left = conference.send(real, f"<presence to='{ROOM}/P{n}' type='unavailable'/>")
        assert presences(left) == {(real, f"P{n}", "unavailable"), (ALICE, f"P{n}", "unavailable")}
    out = conference.send(ALICE, f"<presence to='{ROOM}/Quizmaster' type='unavailable'/>")
    # Two left: loud again, and the two see each other.
    assert presences(out) == {(ALICE, "Quizmaster", "unavailable"), (BOB, "Quizmaster", "unavailable"),
                              (CAROL, "Quizmaster", "unavailable"), (BOB, "Carol", "available"),
                              (CAROL, "Bob", "available")}
