"""Rooms under attack, as conversations: room-assigned ids cannot be forged, iqs through occupant JIDs come back to
the requester (and only answers from the target do), and the room quotas hold."""

from __future__ import annotations

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element
from tests.unit.test_muc_room import ALICE, BOB, CAROL, MUC, ROOM, Conference, error_of

SID = "{urn:xmpp:sid:0}stanza-id"
OID = "{urn:xmpp:occupant-id:0}occupant-id"
FORGED = (f"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}'/>"
          "<stanza-id xmlns='urn:xmpp:sid:0' id='forged2' by='conference.localhost'/>"
          "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/>")
PING = "<ping xmlns='urn:xmpp:ping'/>"


def room_with_alice_and_bob(**options: object) -> Conference:
    conference = Conference(**options)  # type: ignore[arg-type]
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    return conference


def assert_only_room_ids(stanza: Element, conference: Conference, account: str) -> None:
    room = conference.service.room(JID.parse(ROOM))
    assert room is not None
    assert [s.get("id") for s in stanza.iter(SID) if s.get("id", "").startswith("forged")] == []
    occupant_ids = [o.get("id") for o in stanza.iter(OID)]
    assert occupant_ids == [room.occupant_id(JID.parse(account))], etree.tostring(stanza)


def test_forged_room_ids_are_stripped_from_private_messages_and_groupchat() -> None:
    conference = room_with_alice_and_bob()
    (private,) = conference.send(BOB, f"<message to='{ROOM}/Alice' type='chat'><body>hi</body>{FORGED}</message>")
    assert private.get("to") == ALICE
    assert_only_room_ids(private, conference, "bob@localhost")
    for reflected in conference.send(BOB, f"<message to='{ROOM}' type='groupchat'><body>x</body>{FORGED}</message>"):
        assert_only_room_ids(reflected, conference, "bob@localhost")
        assert [s.get("by") for s in reflected.iter(SID)] == [ROOM]


def test_forged_room_ids_are_stripped_from_presence_on_join_update_nick_change_and_leave() -> None:
    conference = room_with_alice_and_bob()
    out = conference.join(CAROL, "Carol", FORGED)
    out += conference.send(CAROL, f"<presence to='{ROOM}/Carol'>{FORGED}</presence>")
    out += conference.send(CAROL, f"<presence to='{ROOM}/Caroline'>{FORGED}</presence>")
    out += conference.send(CAROL, f"<presence to='{ROOM}/Caroline' type='unavailable'>{FORGED}</presence>")
    joined = conference.send(BOB, f"<presence to='{ROOM}/Bob' type='unavailable'/>")
    conference_joins = conference.send(BOB, f"<presence to='{ROOM}/Bob'><x xmlns='{MUC}'/>{FORGED}</presence>")
    presences = [s for s in out + joined + conference_joins if etree.QName(s).localname == "presence"]
    assert len(presences) > 10
    for presence in presences:
        if presence.get("from", "").endswith(("/Carol", "/Caroline")):
            assert_only_room_ids(presence, conference, "carol@localhost")
        if presence.get("from") == f"{ROOM}/Bob":
            assert_only_room_ids(presence, conference, "bob@localhost")


def test_an_iq_through_an_occupant_jid_comes_back_to_the_requester_with_its_own_id() -> None:
    conference = room_with_alice_and_bob()
    (forwarded,) = conference.send(ALICE, f"<iq to='{ROOM}/Bob' type='get' id='p1'>{PING}</iq>")
    assert forwarded.get("to") == BOB and forwarded.get("from") == f"{ROOM}/Alice"
    assert forwarded.get("id") != "p1"
    (answer,) = conference.send(BOB, f"<iq to='{ROOM}/Alice' type='result' id='{forwarded.get('id')}'/>")
    assert (answer.get("to"), answer.get("from"), answer.get("id"), answer.get("type")) == (
        ALICE, f"{ROOM}/Bob", "p1", "result")
    # The same answer again is not routed twice.
    assert conference.send(BOB, f"<iq to='{ROOM}/Alice' type='result' id='{forwarded.get('id')}'/>") == []


def test_two_requesters_with_the_same_id_each_get_their_own_answer_and_errors_come_back_too() -> None:
    conference = room_with_alice_and_bob()
    conference.join(CAROL, "Carol")
    query = "<query xmlns='jabber:iq:version'/>"
    (to_bob_from_alice,) = conference.send(ALICE, f"<iq to='{ROOM}/Bob' type='get' id='same'>{query}</iq>")
    (to_bob_from_carol,) = conference.send(CAROL, f"<iq to='{ROOM}/Bob' type='get' id='same'>{query}</iq>")
    assert to_bob_from_alice.get("id") != to_bob_from_carol.get("id")
    (for_carol,) = conference.send(
        BOB, f"<iq to='{ROOM}/Carol' type='result' id='{to_bob_from_carol.get('id')}'>"
             "<query xmlns='jabber:iq:version'><name>x</name><version>1</version></query></iq>")
    assert (for_carol.get("to"), for_carol.get("id")) == (CAROL, "same")
    assert for_carol.findtext("{jabber:iq:version}query/{jabber:iq:version}name") == "x"
    (for_alice,) = conference.send(
        BOB, f"<iq to='{ROOM}/Alice' type='error' id='{to_bob_from_alice.get('id')}'>"
             "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
    assert (for_alice.get("to"), for_alice.get("id"), for_alice.get("type")) == (ALICE, "same", "error")


def test_an_answer_from_anyone_but_the_target_is_dropped() -> None:
    conference = room_with_alice_and_bob()
    conference.join(CAROL, "Carol")
    (forwarded,) = conference.send(ALICE, f"<iq to='{ROOM}/Bob' type='get' id='p1'>{PING}</iq>")
    assert conference.send(CAROL, f"<iq to='{ROOM}/Alice' type='result' id='{forwarded.get('id')}'/>") == []
    (answer,) = conference.send(BOB, f"<iq to='{ROOM}/Alice' type='result' id='{forwarded.get('id')}'/>")
    assert answer.get("to") == ALICE


def test_pending_iqs_are_bounded_and_expire() -> None:
    conference = room_with_alice_and_bob(max_pending_iqs=2, iq_timeout_seconds=30.0)
    conference.join(CAROL, "Carol")
    first, _second = (conference.send(ALICE, f"<iq to='{ROOM}/Bob' type='get' id='p{n}'>{PING}</iq>")[0]
                      for n in (1, 2))
    (refused,) = conference.send(CAROL, f"<iq to='{ROOM}/Bob' type='get' id='p3'>{PING}</iq>")
    assert error_of(refused) == "resource-constraint" and refused.get("to") == CAROL
    conference.now = 31.0
    (forwarded,) = conference.send(CAROL, f"<iq to='{ROOM}/Bob' type='get' id='p4'>{PING}</iq>")
    assert forwarded.get("to") == BOB
    # An answer after the timeout is not routed.
    assert conference.send(BOB, f"<iq to='{ROOM}/Alice' type='result' id='{first.get('id')}'/>") == []


def test_an_account_may_own_only_so_many_rooms() -> None:
    conference = Conference(max_rooms_per_account=2,
                            quota_exempt=frozenset({JID.parse("quiz@localhost")}))
    for name in ("one", "two"):
        assert conference.send(ALICE, f"<presence to='{name}@conference.localhost/A'><x xmlns='{MUC}'/></presence>")
    (refused,) = conference.send(ALICE, f"<presence to='three@conference.localhost/A'><x xmlns='{MUC}'/></presence>")
    assert error_of(refused) == "not-allowed"
    assert conference.service.room(JID.parse("three@conference.localhost")) is None
    # Rooms that went away no longer count.
    conference.send(ALICE, "<presence to='one@conference.localhost/A' type='unavailable'/>")
    assert conference.send(ALICE, f"<presence to='three@conference.localhost/A'><x xmlns='{MUC}'/></presence>")
    # Joining rooms that exist is not creating them; an exempt account has no limit.
    assert conference.send(BOB, f"<presence to='two@conference.localhost/B'><x xmlns='{MUC}'/></presence>")
    for index in range(5):
        out = conference.send("quiz@localhost/bot", f"<presence to='q{index}@conference.localhost/Q'>"
                                                    f"<x xmlns='{MUC}'/></presence>")
        assert out[-1].find("{jabber:client}subject") is not None


def test_guests_may_create_temporary_rooms_only() -> None:
    guest = "guest-1234@localhost/web"
    conference = Conference(is_guest=lambda jid: jid.local is not None and jid.local.startswith("guest-"))
    conference.join(guest, "Guest")
    (refused,) = conference.send(
        guest, f"<iq to='{ROOM}' type='set' id='p'><query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' type='submit'>"
               "<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>")
    assert error_of(refused) == "not-allowed"
    room = conference.service.room(JID.parse(ROOM))
    assert room is not None and not room.config.persistent


def test_a_join_that_would_create_a_persistent_room_is_refused_to_guests() -> None:
    from boshcm.xmpp.muc.config import RoomConfig

    conference = Conference(default_config=RoomConfig(persistent=True),
                            is_guest=lambda jid: jid.local == "guest")
    (refused,) = conference.send("guest@localhost/web", f"<presence to='{ROOM}/G'><x xmlns='{MUC}'/></presence>")
    assert error_of(refused) == "not-allowed"
    assert conference.join(ALICE, "Alice")[-1].find("{jabber:client}subject") is not None


def test_occupants_per_room_are_capped_by_the_service_and_owners_may_not_raise_the_cap() -> None:
    conference = room_with_alice_and_bob(max_occupants=2)
    (refused,) = conference.join(CAROL, "Carol")
    assert error_of(refused) == "service-unavailable"
    (too_many,) = conference.send(
        ALICE, f"<iq to='{ROOM}' type='set' id='c'><query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' type='submit'>"
               "<field var='muc#roomconfig_maxusers'><value>500</value></field></x></query></iq>")
    assert error_of(too_many) == "not-acceptable"
    (form,) = conference.send(ALICE, f"<iq to='{ROOM}' type='get' id='g'><query xmlns='{MUC}#owner'/></iq>")
    values = {f.get("var"): f.findtext("{jabber:x:data}value") for f in form.iter("{jabber:x:data}field")}
    assert values["muc#roomconfig_maxusers"] == "2"


def test_the_service_holds_only_so_many_rooms_however_many_accounts_create_them() -> None:
    conference = Conference(max_rooms=3, quota_exempt=frozenset({JID.parse("quiz@localhost")}))
    for index in range(3):
        assert conference.send(f"user{index}@localhost/x",
                               f"<presence to='r{index}@conference.localhost/U'><x xmlns='{MUC}'/></presence>")
    (refused,) = conference.send("mallory@localhost/x",
                                 f"<presence to='r9@conference.localhost/M'><x xmlns='{MUC}'/></presence>")
    assert error_of(refused) == "not-allowed"
    assert conference.service.room(JID.parse("r9@conference.localhost")) is None
    # Existing rooms can still be joined, and the quiz's service account is not locked out of its own rooms.
    assert conference.send(BOB, f"<presence to='r0@conference.localhost/B'><x xmlns='{MUC}'/></presence>")
    assert conference.send("quiz@localhost/bot",
                           f"<presence to='q@conference.localhost/Q'><x xmlns='{MUC}'/></presence>")


def test_affiliations_per_room_are_capped_and_changing_an_existing_one_still_works() -> None:
    conference = room_with_alice_and_bob(max_affiliations=3)   # alice (owner) + two more

    def affiliate(jid: str, affiliation: str) -> Element:
        (answer, *_) = conference.send(ALICE, f"<iq to='{ROOM}' type='set' id='a'><query xmlns='{MUC}#admin'>"
                                              f"<item jid='{jid}' affiliation='{affiliation}'/></query></iq>")
        return answer

    assert affiliate("m1@localhost", "member").get("type") == "result"
    assert affiliate("m2@localhost", "member").get("type") == "result"
    assert error_of(affiliate("m3@localhost", "outcast")) == "resource-constraint"
    assert affiliate("m2@localhost", "outcast").get("type") == "result"   # a change, not one more
    assert affiliate("m1@localhost", "none").get("type") == "result"
    assert affiliate("m3@localhost", "member").get("type") == "result"    # room again after a removal
