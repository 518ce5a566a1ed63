"""Room nicknames (RFC 8266 + UTS #39 confusables): look-alikes of another account's nick are refused with
`conflict`, refused nicks with `jid-malformed`, and an affiliated user's nick stays theirs while they are away."""

from __future__ import annotations

import pytest

from boshcm.xmpp.muc.nick import NickRefused, parse_nick
from tests.unit.test_muc_room import ALICE, BOB, CAROL, MUC, MUC_USER, ROOM, Conference, codes, error_of

BOT = "quiz@localhost/bot"
LOOKALIKES = [
    "alice", "ALICE", "Alice ", " Alice", "AIice", "A1ice",
    "\uff21\uff4c\uff49\uff43\uff45",  # fullwidth
    "\u0410l\u0456c\u0435",  # Cyrillic A, i, e
    "\u0391lice",  # Greek Alpha
]
FULLWIDTH_QUIZBOT = "\uff31\uff55\uff49\uff5a\uff42\uff4f\uff54"


def joined(conference: Conference, sender: str, nick: str) -> bool:
    out = conference.join(sender, nick)
    return bool(out) and out[-1].find("{jabber:client}subject") is not None


def persistent(conference: Conference, owner: str) -> None:
    conference.send(
        owner,
        f"<iq to='{ROOM}' type='set' id='p'><query xmlns='{MUC}#owner'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>",
    )


def leave(conference: Conference, sender: str, nick: str) -> None:
    conference.send(sender, f"<presence to='{ROOM}/{nick}' type='unavailable'/>")


def test_keys_equate_case_width_spaces_and_confusables_but_not_different_names() -> None:
    alice = set(parse_nick("Alice").keys)
    for lookalike in LOOKALIKES:
        assert alice & set(parse_nick(lookalike).keys), lookalike
    for other in ("Alicia", "Bob", "Al ice"):
        assert not alice & set(parse_nick(other).keys), other
    assert parse_nick(FULLWIDTH_QUIZBOT).shown == "Quizbot" and parse_nick("  Alice  ").shown == "Alice"


@pytest.mark.parametrize("bad", ["Al\u200bice", "A\u2060lice", "Al\u00adice", "a\x07b", " "])
def test_invisible_and_control_characters_are_refused_by_precis(bad: str) -> None:
    with pytest.raises(NickRefused):
        parse_nick(bad)


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_lookalike_of_another_accounts_nick_is_refused_with_conflict(lookalike: str) -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    (refused,) = conference.join(BOB, lookalike)
    assert error_of(refused) == "conflict"
    assert refused.get("to") == BOB


def test_a_nick_precis_refuses_gets_jid_malformed() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    (refused,) = conference.join(BOB, "Al\u200bice")
    assert error_of(refused) == "jid-malformed"


def test_the_nick_is_shown_in_its_enforced_form_with_status_210() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    out = conference.join(BOB, "\uff22\uff4f\uff42 ")
    own = [s for s in out if s.get("to") == BOB and "110" in codes(s)]
    assert own and own[0].get("from") == f"{ROOM}/Bob" and "210" in codes(own[0])
    seen_by_alice = [s for s in out if s.get("to") == ALICE]
    assert [s.get("from") for s in seen_by_alice] == [f"{ROOM}/Bob"]


def test_a_nick_change_to_a_lookalike_is_refused_and_to_a_new_name_allowed() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    conference.join(BOB, "Bob")
    (refused,) = conference.send(BOB, f"<presence to='{ROOM}/\u0410l\u0456c\u0435'/>")
    assert error_of(refused) == "conflict"
    assert any(s.get("from") == f"{ROOM}/Robert" for s in conference.send(BOB, f"<presence to='{ROOM}/Robert'/>"))
    # Bob's old nick is free again.
    assert joined(conference, CAROL, "bob")


def test_an_affiliated_users_nick_stays_reserved_while_they_are_away() -> None:
    conference = Conference()
    conference.join(BOT, "Quizbot")
    persistent(conference, BOT)
    assert joined(conference, ALICE, "Alice")
    for lookalike in ("quizbot", FULLWIDTH_QUIZBOT, "QUIZBOT"):  # while the bot is in
        assert error_of(conference.join(BOB, lookalike)[0]) == "conflict"
    leave(conference, BOT, "Quizbot")  # a restart: the bot is briefly away
    for lookalike in ("Quizbot", "quizbot", FULLWIDTH_QUIZBOT, "\uff31uizbot"):
        assert error_of(conference.join(BOB, lookalike)[0]) == "conflict", lookalike
    assert joined(conference, BOT, "Quizbot")  # ... and it gets its nick back


def test_a_members_nick_is_reserved_and_freed_when_the_membership_ends() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    persistent(conference, ALICE)
    assert joined(conference, BOB, "Bob")
    conference.send(ALICE, f"<iq to='{ROOM}' type='set' id='m'><query xmlns='{MUC}#admin'>"
                           "<item jid='bob@localhost' affiliation='member'/></query></iq>")
    leave(conference, BOB, "Bob")
    assert error_of(conference.join(CAROL, "bob")[0]) == "conflict"
    conference.send(ALICE, f"<iq to='{ROOM}' type='set' id='n'><query xmlns='{MUC}#admin'>"
                           "<item jid='bob@localhost' affiliation='none'/></query></iq>")
    assert joined(conference, CAROL, "bob")


def test_an_unaffiliated_nick_is_free_once_its_occupant_left() -> None:
    conference = Conference()
    conference.join(ALICE, "Alice")
    conference.instant()
    assert joined(conference, BOB, "Bob")
    leave(conference, BOB, "Bob")
    out = conference.join(CAROL, "BOB")
    assert out[-1].find("{jabber:client}subject") is not None
    assert out[-2].find(f"{MUC_USER}x/{MUC_USER}item") is not None
