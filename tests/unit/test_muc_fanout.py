"""Fan-out in a room (issue 14): each occupant's presence is built once and copied to every joiner; a reflection is
one stanza shared by every occupant. These tests pin what the copies must still be (current, per viewer, and
independent) and what sharing must keep (each recipient's own address on the wire, a copy where one is kept)."""

from __future__ import annotations

from lxml import etree

from boshcm.stanza import SHARED_ADDRESSEE, Addressed, Element, addressed_copy, for_recipient, shared
from boshcm.xml.writer import serialize, serialize_to, serialized_size
from tests.unit.test_muc_room import ALICE, BOB, CAROL, MUC_USER, ROOM, Conference, admin_item

DAVE, ERIN, BOB_PHONE = "dave@localhost/pc", "erin@localhost/tab", "bob@localhost/phone2"


def presence_of(stanzas: list[Element], nick: str, to: str) -> Element:
    (found,) = [s for s in stanzas if s.get("from") == f"{ROOM}/{nick}" and s.get("to") == to
                and etree.QName(s).localname == "presence"]
    return found


def item(presence: Element) -> Element:
    found = presence.find(f"{MUC_USER}x/{MUC_USER}item")
    assert found is not None
    return found


def test_each_joiner_sees_the_occupants_as_they_are_now_not_as_they_were_first_shown() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    first = presence_of(conference.join(CAROL, "Carol"), "Bob", CAROL)
    assert first.findtext("{jabber:client}status") is None and item(first).get("role") == "participant"

    conference.send(BOB, f"<presence to='{ROOM}/Bob'><show>away</show><status>brb</status></presence>")
    after_status = presence_of(conference.join(DAVE, "Dave"), "Bob", DAVE)
    assert after_status.findtext("{jabber:client}status") == "brb"

    admin_item(conference, ALICE, "<item jid='bob@localhost' affiliation='member'/>")
    admin_item(conference, ALICE, "<item nick='Bob' role='visitor'/>")
    conference.send(BOB, f"<presence to='{ROOM}/Robert'/>")
    seen = presence_of(conference.join(ERIN, "Erin"), "Robert", ERIN)
    assert (item(seen).get("affiliation"), item(seen).get("role")) == ("member", "visitor")
    assert seen.findtext("{jabber:client}status") is None   # the nick change carried a plain presence


def test_real_jids_are_shown_per_viewer_and_follow_the_session_that_remains() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    conference.join(BOB_PHONE, "Bob")
    # Semi-anonymous (the default): a participant joining does not see Bob's real JID, the owner would.
    assert item(presence_of(conference.join(CAROL, "Carol"), "Bob", CAROL)).get("jid") is None
    conference.send(ALICE, f"<presence to='{ROOM}/Alice' type='unavailable'/>")
    owner_view = presence_of(conference.join(ALICE, "Alice"), "Bob", ALICE)
    assert item(owner_view).get("jid") == BOB
    conference.send(BOB, f"<presence to='{ROOM}/Bob' type='unavailable'/>")   # Bob's first session leaves
    conference.send(ALICE, f"<presence to='{ROOM}/Alice' type='unavailable'/>")
    assert item(presence_of(conference.join(ALICE, "Alice"), "Bob", ALICE)).get("jid") == BOB_PHONE


def test_a_reflection_is_one_stanza_for_every_occupant_written_with_each_ones_jid() -> None:
    """Serialise once (issue 14): the room makes one stanza for all occupants, not a copy each; the writers put
    each recipient's JID in; whoever needs a stanza of its own (a bounce, the XEP-0198 hand-back) gets a copy."""
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    conference.join(CAROL, "Carol")
    routed = conference.send_raw(BOB, f"<message to='{ROOM}' type='groupchat' id='m1'>"
                                      "<body>a &amp; \"b\"</body></message>")
    assert all(isinstance(item, Addressed) for item in routed)
    assert [str(item.to) for item in routed if isinstance(item, Addressed)] == [ALICE, BOB, CAROL]
    assert len({id(item.stanza) for item in routed if isinstance(item, Addressed)}) == 1
    everyone = routed[0].stanza if isinstance(routed[0], Addressed) else None
    assert everyone is not None and everyone.get("to") == SHARED_ADDRESSEE
    # On the wire each occupant's bytes are those of a copy addressed to it, serialised once for all.
    for to in (ALICE, BOB, CAROL, "odd'\"&<>@localhost/x"):
        assert serialize_to(everyone, to) == serialize(addressed_copy(everyone, to))
        assert etree.fromstring(serialize_to(everyone, to)).get("to") == to
    assert serialized_size(everyone) == len(serialize(everyone))
    # A stanza of one's own is a copy: changing it changes nobody else's.
    own = for_recipient(everyone, BOB)
    assert own is not everyone and own.get("to") == BOB
    own_body = own.find("{jabber:client}body")
    assert own_body is not None
    own_body.text = "changed by Bob's path"
    assert everyone.findtext("{jabber:client}body") == 'a & "b"'
    assert for_recipient(own, CAROL) is own  # not shared: as it is


def test_bytes_of_a_shared_stanza_are_not_those_of_another_at_the_same_address() -> None:
    """The writer's cache is by identity: a stanza made after another was freed (the same id) is serialised anew."""
    first = shared(etree.fromstring("<message xmlns='jabber:client' type='groupchat'><body>one</body></message>"))
    assert b"one" in serialize_to(first, ALICE)
    for text in ("two", "three", "four"):
        again = shared(etree.fromstring(f"<message xmlns='jabber:client'><body>{text}</body></message>"))
        assert text.encode() in serialize_to(again, ALICE)
