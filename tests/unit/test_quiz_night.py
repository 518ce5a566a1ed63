"""Quiz night (issue 17), the bot's side: game PINs, readable rooms, "N of M answered", categories per language."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from quizbot import names, render
from quizbot.events import JoinRoom, OccupantPresence, PrivateMessage, RemovePin, RoomEntered, RoomMessage, Send
from quizbot.payload import NS, AnswerPayload
from quizbot.questions import BankSet, Question, QuestionKind
from quizbot.store import QuizStore
from tests.unit.test_quiz_bot import PLAYERS, ROOM, Harness, payload, sends


def newgame(h: Harness, jid: str = "ann@localhost") -> tuple[JoinRoom, list[Send]]:
    (join,) = h.feed(PrivateMessage(sender=f"{jid}/desk", body="!newgame"))
    assert isinstance(join, JoinRoom)
    return join, sends(h.feed(RoomEntered(room=join.room)))


def test_every_room_gets_a_six_digit_pin_that_its_game_and_room_payloads_carry(tmp_path: Path) -> None:
    h = Harness(QuizStore(tmp_path / "quiz.sqlite"))
    h.enter(*PLAYERS)
    public = payload(h.say("Ann", "!quiz live 1 geo"), "game")
    assert re.fullmatch(r"[1-9][0-9]{5}", public.get("pin", "")) and public.get("name") == "Quiz"
    join, ready = newgame(h)
    room = payload(ready, "room")
    assert room.get("jid") == join.room and room.get("pin") not in (None, public.get("pin"))
    assert room.get("name") == "Ann's quiz" and room.get("pin", "") in ready[0].body
    # Asking again re-sends the same room, PIN and name.
    again = payload(h.feed(PrivateMessage(sender="ann@localhost/desk", body="!newgame")), "room")
    assert (again.get("jid"), again.get("pin"), again.get("name")) == (join.room, room.get("pin"), "Ann's quiz")
    assert h.store is not None
    h.store.close()

    # A restarted bot knows every room by the same PIN.
    restarted = Harness(QuizStore(tmp_path / "quiz.sqlite"))
    assert any(isinstance(o, JoinRoom) and o.room == join.room and o.name == "Ann's quiz"
               for o in restarted.bot.start())
    found = payload(restarted.feed(PrivateMessage(sender="cat@localhost/x", body=f"!pin {room.get('pin')}")), "room")
    assert found.get("jid") == join.room
    restarted.enter(*PLAYERS)
    assert payload(restarted.say("Ann", "!quiz live 1 geo"), "game").get("pin") == public.get("pin")


def test_pin_finds_the_room_privately_and_says_so_when_it_does_not() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    join, ready = newgame(h)
    pin = payload(ready, "room").get("pin", "")
    (found,) = sends(h.feed(PrivateMessage(sender="cat@localhost/phone", body=f"!spielpin {pin}")))
    room = payload([found], "room")
    assert found.to == "cat@localhost/phone" and (room.get("jid"), room.get("pin")) == (join.room, pin)
    assert room.get("name") == "Ann's quiz" and join.room in found.body
    # The page asks with a <command/> payload, the same grammar.
    by_payload = h.feed(PrivateMessage(sender="dan@localhost/web", body="", command=f"pin {pin}",
                                       quiz_payloads=("command",)))
    assert payload(by_payload, "room").get("jid") == join.room
    wrong = "100000" if pin != "100000" else "100001"
    (unknown,) = sends(h.feed(PrivateMessage(sender="cat@localhost/phone", body=f"!pin {wrong}")))
    assert unknown.payload == () and f"No game has the PIN {wrong}" in unknown.body
    for bad in ("!pin", "!pin 12345", "!pin 0123456", "!pin 12a456", "!pin ١٢٣٤٥٦", "!pin 123456 7"):
        (usage,) = sends(h.feed(PrivateMessage(sender="eve@localhost/x", body=bad)))
        assert usage.body == "Usage: !pin NNNNNN", bad
    # In the room it would tell everyone the room: privately only.
    assert "privately" in sends(h.say("Ben", f"!pin {pin}"))[0].body


def test_guessing_pins_costs_like_any_command() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    _join, ready = newgame(h)
    pin = payload(ready, "room").get("pin", "")
    guesses = [f"{n}" for n in range(200000, 200010) if f"{n}" != pin]
    for guess in guesses[:6]:
        assert "No game has the PIN" in sends(h.feed(PrivateMessage(sender="eve@localhost/x",
                                                                    body=f"!pin {guess}")))[0].body
    (slow,) = sends(h.feed(PrivateMessage(sender="eve@localhost/x", body=f"!pin {pin}")))
    assert "slow down" in slow.body and slow.payload == ()  # even the right PIN: the seventh try in 10 s
    assert h.feed(PrivateMessage(sender="eve@localhost/x", body=f"!pin {pin}")) == []
    h.clock.advance(10.0)
    assert payload(h.feed(PrivateMessage(sender="eve@localhost/x", body=f"!pin {pin}")), "room").get("pin") == pin


def test_newgame_rooms_have_a_readable_address_and_a_name_in_the_requesters_language() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    join, _ready = newgame(h)
    local = join.room.partition("@")[0]
    assert re.fullmatch(r"[a-z]+-[a-z]+-[0-9]{4}", local) and join.name == "Ann's quiz"
    adjective, noun, _digits = local.split("-")
    assert adjective in names.ADJECTIVES and noun in names.NOUNS
    h.say("Ben", "!lang de")  # Ben's room speaks German now, so the bot answers him in German
    german, ready = newgame(h, "ben@localhost")
    assert german.name == "Quiz von Ben" and "Spiel-PIN" in ready[0].body and german.room != join.room
    # 256 x 256 x 10,000 addresses, words that need no escaping in a JID.
    assert len(set(names.ADJECTIVES)) == len(set(names.NOUNS)) == 256
    assert all(re.fullmatch(r"[a-z]{3,10}", word) for word in names.ADJECTIVES + names.NOUNS)


def test_room_names_repeat_nicks_printable_and_short() -> None:
    h = Harness()
    nick = "\u202eevil" + "x" * 500
    h.enter((nick, "eve@localhost", "participant"))
    join, ready = newgame(h, "eve@localhost")
    assert "\u202e" not in join.name and len(join.name) < 80 and payload(ready, "room").get("name") == join.name


def test_leaving_a_room_frees_its_pin() -> None:
    h = Harness()
    other = "trivia@conference.localhost"
    h.feed(PrivateMessage(sender="root@localhost/x", body=f"!admin join {other}"))
    h.feed(RoomEntered(room=other))
    h.feed(OccupantPresence(room=other, nick="Dan", available=True, real_jid="dan@localhost"))
    pin = payload(h.feed(RoomMessage(room=other, nick="Dan", body="!quiz live 1 geo")), "game").get("pin")
    assert payload(h.feed(PrivateMessage(sender="dan@localhost/x", body=f"!pin {pin}")), "room").get("jid") == other
    h.feed(PrivateMessage(sender="root@localhost/x", body=f"!admin leave {other}"))
    assert "No game has the PIN" in sends(h.feed(PrivateMessage(sender="dan@localhost/x", body=f"!pin {pin}")))[0].body
    assert RemovePin(room=other) in h.stored


def test_pins_are_unique_among_the_rooms() -> None:
    import random

    rng = random.Random(7)
    taken: set[str] = set()
    for _ in range(5000):
        pin = names.new_pin(rng, taken)
        assert names.is_pin(pin) and pin not in taken
        taken.add(pin)


# --- "N of M answered" -------------------------------------------------------------------------------


def crowd(h: Harness, count: int) -> list[str]:
    h.feed(RoomEntered(room=ROOM))
    nicks = [f"p{n}" for n in range(count)]
    for nick in nicks:
        h.feed(OccupantPresence(room=ROOM, nick=nick, available=True, real_jid=f"{nick}@localhost"))
    return nicks


def progress(orders: list[object]) -> list[tuple[int, int]]:
    found = []
    for send in sends(orders):  # type: ignore[arg-type]
        for element in send.payload:
            if element.tag == f"{{{NS}}}progress":
                # No chat line a second: alone without a body, or beside the reveal.
                beside = {e.tag for e in send.payload} - {element.tag}
                assert send.groupchat and send.to == ROOM and (not send.body or f"{{{NS}}}reveal" in beside)
                found.append((int(element.get("answered", "")), int(element.get("players", ""))))
    return found


def test_two_thousand_answers_make_a_few_coalesced_progress_messages_and_the_reveal_has_m_of_m() -> None:
    h = Harness()
    nicks = crowd(h, 2000)
    h.feed(RoomMessage(room=ROOM, nick="p0", body="!quiz live 1 geo"))
    asked = payload(h.feed(RoomMessage(room=ROOM, nick="p0", body="!start")), "question")
    answer = AnswerPayload(question_id=asked.get("id"), choice=None)
    seen: list[tuple[int, int]] = []
    started = time.monotonic()
    for index, nick in enumerate(nicks[:-1]):
        if index % 500 == 0 and index:
            seen += progress(h.advance(0.6))  # 1,999 answers in 1.8 s
        seen += progress(h.feed(RoomMessage(room=ROOM, nick=nick, body="Paris", answer=answer)))
    assert time.monotonic() - started < 10
    # The first at once, then not one per answer, nor one a second to 2,000 players: a second, and one more for
    # every 500 players — every 5 s here.
    assert seen == [(1, 2000)]
    assert h.bot.next_deadline() == pytest.approx(h.clock.now() + 3.2)  # 5 s after the first (now: 1.8 s)
    assert progress(h.advance(3.1)) == []
    assert progress(h.advance(0.1)) == [(1999, 2000)]  # the answers since then, once
    assert progress(h.advance(5.0)) == []  # nothing new, nothing sent
    last = h.feed(RoomMessage(room=ROOM, nick=nicks[-1], body="Paris", answer=answer))
    assert progress(last) == [(2000, 2000)]  # the last answer: with the reveal, at once
    reveal = payload(last, "reveal")
    # The room's board names the first ten; each of the 2,000 hears its own result privately.
    assert (reveal.get("scorers"), len(reveal.findall(f"{{{NS}}}scorer"))) == ("2000", 10)
    results = [s for s in sends(last) if not s.groupchat and s.payload[0].tag == f"{{{NS}}}result"]
    assert len(results) == 2000 and len(sends(last)) < 2010


def test_progress_follows_answers_in_a_small_game_and_not_in_classic() -> None:
    h = Harness()
    h.enter(*PLAYERS, ("Cat", "cat@localhost", "participant"))
    h.say("Ann", "!quiz live 2 music")
    asked = payload(h.say("Ann", "!start"), "question")
    choices = {c.text: c.get("key") or "" for c in asked.findall(f"{{{NS}}}choice")}
    assert progress(h.say("Ben", choices["Bach"])) == [(1, 3)]  # a wrong answer has answered too
    h.clock.advance(0.2)
    assert progress(h.say("Cat", choices["Mozart"])) == []  # within the second: later
    assert progress(h.say("Cat", choices["Haydn"])) == []  # a second attempt does not count
    assert progress(h.advance(0.8)) == [(2, 3)]
    done = h.say("Ann", choices["Mozart"])
    assert progress(done) == [(3, 3)]
    # The reveal carries what a player needs for "correct, +950, streak 1": its scorers with points and streak.
    (scorer_cat, scorer_ann) = payload(done, "reveal").findall(f"{{{NS}}}scorer")
    assert scorer_cat.get("nick") == "Cat" and scorer_cat.get("streak") == "1" and scorer_cat.get("points")
    assert scorer_ann.get("nick") == "Ann" and scorer_ann.get("seconds") is not None
    assert progress(h.advance(3.0)) == []  # the next question: nothing until someone answers

    h.say("Ann", "!stop")
    h.say("Ann", "!quiz classic 1 geo")
    h.say("Ann", "!start")
    assert progress(h.say("Ben", "Lyon")) == [] and progress(h.say("Ann", "Paris")) == []


# --- categories follow the question language ------------------------------------------------------------


def bilingual() -> BankSet:
    def question(qid: str, language: str, category: str) -> Question:
        return Question(id=qid, language=language, category=category, difficulty=1, kind=QuestionKind.TEXT,
                        question=f"Question {qid}?", answer="Paris", source="https://example.org")

    return BankSet([question("e1", "en", "geography"), question("e2", "en", "geography"), question("e3", "en", "art"),
                    question("d1", "de", "geografie"), question("d2", "de", "Kunst")])


def test_categories_list_the_room_languages_and_the_asked_ones_with_counts() -> None:
    h = Harness()
    h.bot.set_banks(bilingual(), [], reply_to=None)
    h.enter(*PLAYERS)
    listed = h.say("Ann", "!categories")
    assert sends(listed)[0].body == "Categories (English): art, geography"
    element = payload(listed, "categories")
    children = [(c.get("language"), c.get("name"), c.get("count"), c.text) for c in element]
    assert element.get("language") == "en" and children == [
        ("en", "art", "1", "art"), ("en", "geography", "2", "geography"),
        ("de", "geografie", "1", "geografie"), ("de", "kunst", "1", "kunst")]
    german = h.say("Ann", "!kategorien de")
    assert sends(german)[0].body == "Categories (German): geografie, kunst"
    assert payload(german, "categories").get("language") == "de" and payload(german, "categories")[0].get(
        "name") == "geografie"
    assert sends(h.say("Ann", "!categories fr"))[0].body == "Usage: !categories [de|en]"
    # Privately, before joining any room: the bot's language.
    assert payload(h.feed(PrivateMessage(sender="dan@localhost/web", body="!categories")), "categories").get(
        "language") == "en"


def test_a_category_of_the_other_language_gets_a_clear_line_not_no_questions() -> None:
    h = Harness()
    h.bot.set_banks(bilingual(), [], reply_to=None)
    h.enter(*PLAYERS)
    (other,) = sends(h.say("Ann", "!quiz live 2 geografie en"))
    assert other.body == "geografie is a category in German, not in English. Categories in English: art, geography."
    assert h.bot.rooms[ROOM].lobby is None
    (none,) = sends(h.say("Ann", "!quiz live 2 cooking"))
    assert none.body == "There is no category cooking in English. Categories in English: art, geography."
    h.say("Ann", "!lang de")
    (german,) = sends(h.say("Ann", "!quiz live 2 geography de"))
    assert german.body == ("geography ist eine Kategorie auf Englisch, nicht auf Deutsch. Kategorien auf Deutsch: "
                           "geografie, kunst.")
    # Categories compare case-insensitively: "Kunst" in the bank is !quiz ... kunst.
    assert payload(h.say("Ann", "!quiz live 1 KUNST de"), "game").get("category") == "kunst"
    assert payload(h.say("Ann", "!start"), "question").get("id") == "d2"


def test_every_line_the_bot_says_is_in_both_tables() -> None:
    used: set[str] = set()
    for source in Path(render.__file__).parent.glob("*.py"):
        used |= set(re.findall(r"render\.say\([^,]+, \"([a-z-]+)\"", source.read_text()))
        used |= set(re.findall(r"\bsay\(language, \"([a-z-]+)\"", source.read_text()))
    assert {"pin-found", "pin-unknown", "no-category", "no-category-elsewhere", "room-name"} <= used
    for language in ("de", "en"):
        assert used <= render.TEXTS[language].keys(), used - render.TEXTS[language].keys()


def test_usage_hints_in_a_german_room_are_german() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    h.say("Ann", "!lang de")
    english = ("from", "at most", "like", "takes", "characters", "question", "number", "up to")
    cases = {
        "!quiz live 99": "Aufruf: !quiz [classic|live|sixbreak] [N] [Kategorie] [de|en] (N von 1 bis 50)",
        "!bestenliste woche 0": "Aufruf: !bestenliste [tag|woche|alle] [N] (N von 1 bis 50)",
        "!melden " + "x" * 501: "Aufruf: !melden TEXT (höchstens 500 Zeichen)",
        "!hilfe bitte": "Aufruf: !help braucht keine Argumente",
        "!kategorien fr": "Aufruf: !kategorien [de|en]",
        "!admin give nobody 5": None,
        "!admin accept x": None,
        "!einreichen " + " | ".join(["x" * 301, "a", "b", "c", "d", "https://example.org"]): None,
    }
    for text, expected in cases.items():
        (reply,) = sends(h.say("Ben", text))
        assert reply.body.startswith("Aufruf: ") and not any(word in reply.body for word in english), reply.body
        assert expected is None or reply.body == expected, reply.body
        h.clock.advance(2.0)  # below the command rate
    for text in ("!pin 12", "!einladen nobody"):
        (reply,) = sends(h.feed(PrivateMessage(sender="ann@localhost/x", body=text)))  # Ann is in the German room
        assert reply.body.startswith("Aufruf: !") and not any(word in reply.body for word in english), reply.body


def test_newgame_takes_the_name_to_call_the_room_after() -> None:
    """A page's guest is not in a room yet and its JID is random: the page says the nick the player chose."""
    h = Harness()
    (join,) = h.feed(PrivateMessage(sender="x7f3a9@localhost/web", body="", command="newgame Ann Lee",
                                    quiz_payloads=("command",)))
    assert isinstance(join, JoinRoom) and join.name == "Ann Lee's quiz"
    assert payload(h.feed(RoomEntered(room=join.room)), "room").get("name") == "Ann Lee's quiz"
    (usage,) = sends(h.feed(PrivateMessage(sender="eve@localhost/x", body="!newgame " + "x" * 41)))
    assert usage.body == "Usage: !newgame [NAME] (at most 40 characters)"
