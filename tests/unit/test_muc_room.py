"""The MUC room and service (XEP-0045) as conversations: real JIDs send, addressed stanzas come back."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Addressed, Element, Outgoing, for_recipient
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.service import MucRegistry, MucService, RoomStore

ROOM = "quiz@conference.localhost"
ALICE, BOB, CAROL = "alice@localhost/desk", "bob@localhost/phone", "carol@localhost/web"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "{http://jabber.org/protocol/muc#user}"


def own_stanzas(items: Iterable[Outgoing]) -> list[Element]:
    """What the room sends, each recipient's stanza addressed to it: a shared one copied, as the router does when a
    stanza must become the recipient's own (the tests read each one's `to`)."""
    return [for_recipient(item.stanza, item.to) if isinstance(item, Addressed) else item for item in items]


class Conference:
    def __init__(self, *, lock_seconds: float = 0.0, store: RoomStore | None = None, **options: Any) -> None:
        ids = itertools.count(1)
        store = store or RoomStore(":memory:")
        registry = MucRegistry(
            domain="conference.localhost",
            secret=store.secret(),
            rooms=store.load(),
            wall_clock=lambda: 1_700_000_000.0 + self.now,
            lock_seconds=lock_seconds,
            id_factory=lambda: f"id{next(ids)}",
            **options,
        )
        self.service = MucService(registry, store)
        self.now = 0.0

    def send(self, sender: str, text: str) -> list[Element]:
        return own_stanzas(self.send_raw(sender, text))

    def send_raw(self, sender: str, text: str) -> list[Outgoing]:
        stanza = etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0]
        stanza.set("from", sender)
        return self.service.handle_stanza(stanza, self.now)

    def join(self, sender: str, nick: str, extra: str = "") -> list[Element]:
        return self.send(sender, f"<presence to='{ROOM}/{nick}'><x xmlns='{MUC}'>{extra}</x></presence>")

    def instant(self, owner: str = ALICE) -> None:
        self.send(
            owner,
            f"<iq to='{ROOM}' type='set' id='cfg'><query xmlns='{MUC}#owner'>"
            "<x xmlns='jabber:x:data' type='submit'/></query></iq>",
        )


def codes(stanza: Element) -> set[str]:
    return {status.get("code", "") for status in stanza.iter(f"{MUC_USER}status")}


def to_and_kind(stanzas: list[Element]) -> list[tuple[str, str, str]]:
    return [(s.get("to", ""), etree.QName(s).localname, s.get("from", "")) for s in stanzas]


def error_of(stanza: Element) -> str:
    error = stanza.find("{jabber:client}error")
    assert error is not None, etree.tostring(stanza)
    return etree.QName(error[0]).localname


def test_first_join_creates_a_locked_room_with_status_201_and_an_empty_subject_last() -> None:
    conference = Conference(lock_seconds=60)
    out = conference.join(ALICE, "Alice")
    presence, subject = out
    assert presence.get("from") == f"{ROOM}/Alice" and {"110", "201"} <= codes(presence)
    assert presence.find(f"{MUC_USER}x/{MUC_USER}item").get("affiliation") == "owner"  # type: ignore[union-attr]
    assert subject.find("{jabber:client}subject") is not None and subject.get("type") == "groupchat"
    refused = conference.join(BOB, "Bob")
    assert error_of(refused[0]) == "item-not-found"  # locked until configured
    conference.instant()
    assert len(conference.join(BOB, "Bob")) == 4


def test_lock_lapses_for_creators_that_never_configure() -> None:
    conference = Conference(lock_seconds=10)
    conference.join(ALICE, "Alice")
    conference.now = 11
    out = conference.join(CAROL, "Carol")
    assert out[-1].find("{jabber:client}subject") is not None


def test_joiner_gets_occupants_then_itself_then_subject_and_others_see_the_join() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    out = conference.join(BOB, "Bob")
    assert to_and_kind(out) == [
        (BOB, "presence", f"{ROOM}/Alice"),
        (ALICE, "presence", f"{ROOM}/Bob"),
        (BOB, "presence", f"{ROOM}/Bob"),
        (BOB, "message", ROOM),
    ]
    assert "110" in codes(out[2]) and "110" not in codes(out[1])
    assert out[2].find("{urn:xmpp:occupant-id:0}occupant-id") is not None


def test_nick_conflict_and_password_and_members_only_and_max_users() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    assert error_of(conference.join(BOB, "Alice")[0]) == "conflict"
    room = conference.service.room(JID.parse(ROOM))
    assert room is not None
    room.state.config = RoomConfig(password="secret", max_users=2)
    assert error_of(conference.join(BOB, "Bob")[0]) == "not-authorized"
    assert conference.join(BOB, "Bob", "<password>secret</password>")[-1].find("{jabber:client}subject") is not None
    assert error_of(conference.join(CAROL, "Carol", "<password>secret</password>")[0]) == "service-unavailable"
    room.state.config = RoomConfig(members_only=True)
    assert error_of(conference.join(CAROL, "Carol")[0]) == "registration-required"


def test_groupchat_is_reflected_to_everyone_with_one_stanza_id_and_the_occupant_id() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    out = conference.send(BOB, f"<message to='{ROOM}' type='groupchat' id='m1'><body>42</body></message>")
    assert sorted(s.get("to", "") for s in out) == sorted([ALICE, BOB])
    stanza_ids = {s.find("{urn:xmpp:sid:0}stanza-id").get("id") for s in out}  # type: ignore[union-attr]
    assert len(stanza_ids) == 1
    assert all(s.get("from") == f"{ROOM}/Bob" and s.get("id") == "m1" for s in out)


def test_non_occupants_cannot_speak_and_visitors_cannot_in_moderated_rooms() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    (error,) = conference.send(CAROL, f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
    assert error_of(error) == "not-acceptable"
    room = conference.service.room(JID.parse(ROOM))
    assert room is not None
    room.state.config = RoomConfig(moderated=True)
    conference.join(BOB, "Bob")
    (error,) = conference.send(BOB, f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
    assert error_of(error) == "forbidden"


def test_history_honours_maxstanzas_maxchars_and_seconds() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    for index in range(5):
        conference.now = index * 10.0
        conference.send(ALICE, f"<message to='{ROOM}' type='groupchat'><body>q{index}</body></message>")
    conference.now = 45.0

    def history(extra: str) -> list[str]:
        out = conference.join(BOB, "Bob", extra)
        conference.send(BOB, f"<presence to='{ROOM}/Bob' type='unavailable'/>")
        return [s.findtext("{jabber:client}body") or "" for s in out if s.find("{urn:xmpp:delay}delay") is not None]

    assert history("") == ["q0", "q1", "q2", "q3", "q4"]
    assert history("<history maxstanzas='2'/>") == ["q3", "q4"]
    assert history("<history seconds='20'/>") == ["q3", "q4"]
    assert history("<history maxchars='0'/>") == []


def test_nick_change_sends_303_then_the_new_presence() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    out = conference.send(BOB, f"<presence to='{ROOM}/Robert'/>")
    gone = [s for s in out if s.get("type") == "unavailable"]
    assert all("303" in codes(s) for s in gone) and len(gone) == 2
    assert gone[0].find(f"{MUC_USER}x/{MUC_USER}item").get("nick") == "Robert"  # type: ignore[union-attr]
    assert {s.get("from") for s in out if s.get("type") is None} == {f"{ROOM}/Robert"}


def test_kick_and_ban_need_the_right_privileges() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    conference.join(CAROL, "Carol")
    kick = (
        f"<iq to='{ROOM}' type='set' id='k'><query xmlns='{MUC}#admin'>"
        "<item nick='{nick}' role='none'><reason>spam</reason></item></query></iq>"
    )
    (refusal,) = conference.send(BOB, kick.replace("{nick}", "Carol"))
    assert error_of(refusal) == "not-allowed"
    out = conference.send(ALICE, kick.replace("{nick}", "Carol"))
    assert out[0].get("type") == "result"
    kicked = [s for s in out if s.get("to") == CAROL]
    assert kicked and {"307", "110"} <= codes(kicked[0])
    ban = (
        f"<iq to='{ROOM}' type='set' id='b'><query xmlns='{MUC}#admin'>"
        "<item jid='bob@localhost' affiliation='outcast'/></query></iq>"
    )
    out = conference.send(ALICE, ban)
    assert any("301" in codes(s) for s in out if s.get("to") == BOB)
    assert error_of(conference.join(BOB, "Bob")[0]) == "forbidden"


def test_mediated_invitation_and_decline() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    (invite,) = conference.send(
        ALICE,
        f"<message to='{ROOM}'><x xmlns='{MUC}#user'>"
        "<invite to='bob@localhost'><reason>quiz?</reason></invite></x></message>",
    )
    assert invite.get("to") == "bob@localhost" and invite.get("from") == ROOM
    assert invite.find(f"{MUC_USER}x/{MUC_USER}invite").get("from") == "alice@localhost"  # type: ignore[union-attr]
    (decline,) = conference.send(
        BOB, f"<message to='{ROOM}'><x xmlns='{MUC}#user'><decline to='alice@localhost'/></x></message>"
    )
    assert decline.get("to") == "alice@localhost"


def test_session_end_leaves_and_an_empty_temporary_room_goes_away() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    out = conference.service.session_ended(JID.parse(BOB), conference.now)
    assert [(s.get("to"), s.get("type")) for s in out] == [(BOB, "unavailable"), (ALICE, "unavailable")]
    conference.service.session_ended(JID.parse(ALICE), conference.now)
    assert conference.service.room(JID.parse(ROOM)) is None


def test_self_ping_is_answered_for_occupants_only() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    (pong,) = conference.send(ALICE, f"<iq to='{ROOM}/Alice' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert pong.get("type") == "result"
    (refusal,) = conference.send(BOB, f"<iq to='{ROOM}/Alice' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert error_of(refusal) == "not-acceptable"


def test_occupant_id_is_stable_across_nick_changes_and_rejoins() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    first = conference.join(BOB, "Bob")[2].find("{urn:xmpp:occupant-id:0}occupant-id").get("id")  # type: ignore[union-attr]
    conference.send(BOB, f"<presence to='{ROOM}/Bob' type='unavailable'/>")
    again = conference.join(BOB, "Bobby")[2].find("{urn:xmpp:occupant-id:0}occupant-id").get("id")  # type: ignore[union-attr]
    assert first == again


def test_service_disco_lists_public_rooms() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    stanza = etree.fromstring(
        "<iq xmlns='jabber:client' type='get' id='d' to='conference.localhost' "
        "from='bob@localhost/phone'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
    )
    (items,) = conference.service.handle_stanza(stanza, 0.0)
    assert [item.get("jid") for item in items.iter("{http://jabber.org/protocol/disco#items}item")] == [ROOM]


def admin_item(conference: Conference, actor: str, item: str) -> list[Element]:
    return conference.send(actor, f"<iq to='{ROOM}' type='set' id='a'><query xmlns='{MUC}#admin'>{item}</query></iq>")


def test_voice_is_granted_and_revoked_by_moderators_in_moderated_rooms_section_8_3() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    room = conference.service.room(JID.parse(ROOM))
    assert room is not None
    room.state.config = RoomConfig(moderated=True)
    conference.join(BOB, "Bob")
    assert error_of(admin_item(conference, BOB, "<item nick='Bob' role='participant'/>")[0]) == "not-allowed"
    granted = admin_item(conference, ALICE, "<item nick='Bob' role='participant'/>")
    assert granted[0].get("type") == "result"
    assert conference.send(BOB, f"<message to='{ROOM}' type='groupchat'><body>now I may</body></message>")
    assert all(
        s.get("type") == "groupchat"
        for s in conference.send(BOB, f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
    )
    admin_item(conference, ALICE, "<item nick='Bob' role='visitor'/>")
    (refused,) = conference.send(BOB, f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
    assert error_of(refused) == "forbidden"


def test_subject_is_for_moderators_unless_the_room_lets_participants_section_8_1() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    (refused,) = conference.send(BOB, f"<message to='{ROOM}' type='groupchat'><subject>mine</subject></message>")
    assert error_of(refused) == "forbidden"
    changed = conference.send(ALICE, f"<message to='{ROOM}' type='groupchat'><subject>Round 1</subject></message>")
    assert {s.get("to") for s in changed} == {ALICE, BOB}
    assert conference.join(CAROL, "Carol")[-1].findtext("{jabber:client}subject") == "Round 1"


def test_admins_cannot_touch_owners_and_the_last_owner_stays_section_10() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    admin_item(conference, ALICE, "<item jid='bob@localhost' affiliation='admin'/>")
    assert error_of(admin_item(conference, BOB, "<item jid='alice@localhost' affiliation='none'/>")[0]) == "forbidden"
    assert error_of(admin_item(conference, BOB, "<item jid='carol@localhost' affiliation='admin'/>")[0]) == "forbidden"
    assert admin_item(conference, BOB, "<item jid='carol@localhost' affiliation='member'/>")[0].get("type") == "result"
    assert error_of(admin_item(conference, ALICE, "<item jid='alice@localhost' affiliation='admin'/>")[0]) == "conflict"


def test_owner_destroys_the_room_and_occupants_are_told_section_10_9() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    out = conference.send(
        ALICE,
        f"<iq to='{ROOM}' type='set' id='d'><query xmlns='{MUC}#owner'>"
        f"<destroy jid='other@conference.localhost'><reason>game over</reason></destroy>"
        "</query></iq>",
    )
    told = [s for s in out if s.get("type") == "unavailable"]
    assert {s.get("to") for s in told} == {ALICE, BOB}
    assert told[0].find(f"{MUC_USER}x/{MUC_USER}destroy").get("jid") == "other@conference.localhost"  # type: ignore[union-attr]
    assert conference.service.room(JID.parse(ROOM)) is None


def test_configuration_form_round_trip_and_non_owners_are_refused_section_10_2() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    get = f"<iq to='{ROOM}' type='get' id='g'><query xmlns='{MUC}#owner'/></iq>"
    assert error_of(conference.send(BOB, get)[0]) == "forbidden"
    (form,) = conference.send(ALICE, get)
    fields = {f.get("var") for f in form.iter("{jabber:x:data}field")}
    assert {"muc#roomconfig_persistentroom", "muc#roomconfig_roomsecret", "muc#roomconfig_membersonly"} <= fields
    out = conference.send(
        ALICE,
        f"<iq to='{ROOM}' type='set' id='s'><query xmlns='{MUC}#owner'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_roomname'><value>Finals</value></field>"
        "<field var='muc#roomconfig_maxusers'><value>ten</value></field></x></query></iq>",
    )
    assert error_of(out[0]) == "not-acceptable"
    out = conference.send(
        ALICE,
        f"<iq to='{ROOM}' type='set' id='s'><query xmlns='{MUC}#owner'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_roomname'><value>Finals</value></field></x></query></iq>",
    )
    assert out[0].get("type") == "result" and any("104" in codes(s) for s in out[1:])


# --- muc#roomconfig_presencebroadcast (XEP-0045 §10.2): whose presence the room broadcasts ------------------


def broadcast_only(conference: Conference, roles: tuple[str, ...], owner: str = ALICE) -> list[Element]:
    values = "".join(f"<value>{role}</value>" for role in roles)
    return conference.send(
        owner,
        f"<iq to='{ROOM}' type='set' id='pb'><query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' type='submit'>"
        f"<field var='muc#roomconfig_presencebroadcast'>{values}</field></x></query></iq>",
    )


def test_presencebroadcast_is_offered_in_the_form_with_every_role_by_default() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    (form,) = conference.send(ALICE, f"<iq to='{ROOM}' type='get' id='g'><query xmlns='{MUC}#owner'/></iq>")
    (field,) = [f for f in form.iter("{jabber:x:data}field") if f.get("var") == "muc#roomconfig_presencebroadcast"]
    assert field.get("type") == "list-multi"
    assert [v.text for v in field.findall("{jabber:x:data}value")] == ["moderator", "participant", "visitor"]
    assert [o.get("label") for o in field.findall("{jabber:x:data}option")] == ["moderator", "participant", "visitor"]


def test_presencebroadcast_refuses_unknown_roles() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    assert error_of(broadcast_only(conference, ("moderator", "owner"))[0]) == "not-acceptable"


def test_with_only_moderators_broadcast_a_participant_join_costs_its_own_presence_and_the_moderators() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    broadcast_only(conference, ("moderator",))
    out = conference.join(BOB, "Bob")
    # Bob sees the moderator, then himself (110), then the subject; of the others only the moderator hears of
    # Bob (boshcm's reading of §10.2: tests/unit/test_muc_quiet_presence.py).
    assert to_and_kind(out) == [(BOB, "presence", f"{ROOM}/Quizmaster"), (BOB, "presence", f"{ROOM}/Bob"),
                                (ALICE, "presence", f"{ROOM}/Bob"), (BOB, "message", ROOM)]
    assert "110" in codes(out[1])
    out = conference.join(CAROL, "Carol")
    assert to_and_kind(out) == [(CAROL, "presence", f"{ROOM}/Quizmaster"), (CAROL, "presence", f"{ROOM}/Carol"),
                                (ALICE, "presence", f"{ROOM}/Carol"), (CAROL, "message", ROOM)]
    # A status change and the leave of a participant stay between the room, that participant and the moderator.
    assert to_and_kind(conference.send(BOB, f"<presence to='{ROOM}/Bob'><show>away</show></presence>")) == [
        (BOB, "presence", f"{ROOM}/Bob"), (ALICE, "presence", f"{ROOM}/Bob")]
    assert to_and_kind(conference.send(BOB, f"<presence to='{ROOM}/Bob' type='unavailable'/>")) == [
        (BOB, "presence", f"{ROOM}/Bob"), (ALICE, "presence", f"{ROOM}/Bob")]
    # The moderator's own presence still reaches everyone, and messages still reach everyone.
    assert {s.get("to") for s in conference.send(ALICE, f"<presence to='{ROOM}/Quizmaster'><show>chat</show>"
                                                        "</presence>")} == {ALICE, CAROL}
    message = conference.send(CAROL, f"<message to='{ROOM}' type='groupchat'><body>hi</body></message>")
    assert {s.get("to") for s in message} == {ALICE, CAROL}


def test_a_participant_made_moderator_appears_and_one_made_visitor_disappears_for_others() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    broadcast_only(conference, ("moderator", "participant"))
    conference.join(BOB, "Bob")
    conference.join(CAROL, "Carol")
    voice = f"<iq to='{ROOM}' type='set' id='v'><query xmlns='{MUC}#admin'><item nick='Bob' role='visitor'/>" \
            "</query></iq>"
    out = conference.send(ALICE, voice)[1:]
    # Others are told Bob is gone from their view (unavailable); Bob himself and the moderator see his new role.
    seen = {(s.get("to"), s.get("type")) for s in out}
    assert seen == {(ALICE, None), (CAROL, "unavailable"), (BOB, None)}
    dave = "dave@localhost/x"
    assert [s.get("from") for s in conference.join(dave, "Dave") if s.get("to") == dave][:-1] == [
        f"{ROOM}/Alice", f"{ROOM}/Carol", f"{ROOM}/Dave"]   # no Bob: visitors are not broadcast
    back = f"<iq to='{ROOM}' type='set' id='v2'><query xmlns='{MUC}#admin'><item nick='Bob' role='participant'/>" \
           "</query></iq>"
    assert {(s.get("to"), s.get("type")) for s in conference.send(ALICE, back)[1:]} == {
        (ALICE, None), (CAROL, None), (dave, None), (BOB, None)}


def test_presencebroadcast_survives_a_restart_of_a_persistent_room() -> None:
    store = RoomStore(":memory:")
    conference = Conference(store=store)
    conference.join(ALICE, "Alice")
    conference.send(
        ALICE,
        f"<iq to='{ROOM}' type='set' id='pb'><query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
        "<field var='muc#roomconfig_presencebroadcast'><value>moderator</value></field></x></query></iq>",
    )
    again = Conference(store=store)
    room = again.service.room(JID.parse(ROOM))
    assert room is not None and room.config.presence_broadcast == ("moderator",)


def test_five_hundred_joins_with_moderator_only_broadcast_cost_linear_stanzas() -> None:
    conference = Conference()
    conference.join(ALICE, "Quizmaster")
    broadcast_only(conference, ("moderator",))
    total = sum(len(conference.join(f"p{i}@localhost/web", f"player{i}")) for i in range(500))
    # To the joiner the moderator, itself and the subject; its presence to the moderator: not O(N²).
    assert total == 500 * 4


def test_a_second_session_joining_the_same_nick_learns_who_else_is_in_the_room() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    alice_phone = "alice@localhost/phone"
    out = conference.join(alice_phone, "Alice")
    to_phone = [s for s in out if s.get("to") == alice_phone and etree.QName(s).localname == "presence"]
    # XEP-0045 §7.2.3 for the new session too: every other occupant, then its own presence with 110.
    assert [s.get("from") for s in to_phone] == [f"{ROOM}/Bob", f"{ROOM}/Alice"]
    assert "110" in codes(to_phone[-1]) and "110" not in codes(to_phone[0])
