"""Fan-out in a room (issue 14): each occupant's presence is built once and copied to every joiner, each reflection
is copied per occupant. These tests pin what the copies must still be: current, per viewer, and independent."""

from __future__ import annotations

from lxml import etree

from boshcm.stanza import Element
from boshcm.xml.writer import serialize
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


def test_every_occupant_gets_its_own_copy_of_a_reflection_alike_but_for_the_addressee() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    conference.join(CAROL, "Carol")
    copies = conference.send(BOB, f"<message to='{ROOM}' type='groupchat' id='m1'><body>hello</body></message>")
    assert [c.get("to") for c in copies] == [ALICE, BOB, CAROL]
    assert len({id(c) for c in copies}) == 3
    body = copies[0].find("{jabber:client}body")
    assert body is not None
    body.text = "changed by the first recipient's path"
    assert [c.findtext("{jabber:client}body") for c in copies[1:]] == ["hello", "hello"]
    wire = [serialize(c).replace(f'to="{c.get("to")}"'.encode(), b'to=""') for c in copies[1:]]
    assert wire[0] == wire[1]
