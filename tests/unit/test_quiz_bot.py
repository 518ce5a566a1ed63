"""The bot and its rooms without sockets: facts in, orders out, a real SQLite store in memory, a fake clock."""

from __future__ import annotations

import random
from collections.abc import Iterable

from lxml import etree

from boshcm.clock import FakeClock
from quizbot.bot import BotSettings, QuizBot
from quizbot.events import (
    Invite,
    JoinRoom,
    OccupantPresence,
    Order,
    Ping,
    PrivateMessage,
    RoomEntered,
    RoomMessage,
    RoundTrip,
    Send,
)
from quizbot.game import GameSettings
from quizbot.payload import NS, AnswerPayload
from quizbot.questions import BankSet, Question, QuestionKind
from quizbot.store import QuizStore

ROOM = "quiz@conference.localhost"
BOT = "quiz@localhost"
SETTINGS = GameSettings(question_seconds=20, reveal_seconds=3, hint_interval_seconds=5)


def bank() -> BankSet:
    questions = [
        Question(id=f"t{n}", language="en", category="geo", difficulty=1, kind=QuestionKind.TEXT,
                 question=f"Capital number {n}?", answer="Paris", source="https://example.org/t")
        for n in range(3)
    ] + [
        Question(id=f"c{n}", language="en", category="music", difficulty=1, kind=QuestionKind.CHOICE,
                 question=f"Composer {n}?", answer="Mozart", wrong=("Bach", "Haydn", "Handel"),
                 source="https://example.org/c")
        for n in range(3)
    ]
    return BankSet(questions)


class Harness:
    def __init__(self, store: QuizStore | None = None) -> None:
        self.clock = FakeClock()
        self.store = store or QuizStore(":memory:")
        self.bot = QuizBot(settings=BotSettings(jid=BOT, muc_domain="conference.localhost",
                                                admins=frozenset({"root@localhost"}), rooms=(ROOM,), game=SETTINGS),
                           store=self.store, banks=bank(), bank_report=["en.json: 6"], rng=random.Random(3))

    def feed(self, fact: object) -> list[Order]:
        return self.bot.handle(fact, self.clock.now(), self.clock.wall())  # type: ignore[arg-type]

    def enter(self, *players: tuple[str, str, str]) -> None:
        self.feed(RoomEntered(room=ROOM))
        for nick, jid, role in players:
            self.feed(OccupantPresence(room=ROOM, nick=nick, available=True, real_jid=jid, role=role))

    def say(self, nick: str, body: str, answer: AnswerPayload | None = None) -> list[Order]:
        return self.feed(RoomMessage(room=ROOM, nick=nick, body=body, answer=answer))

    def advance(self, seconds: float) -> list[Order]:
        self.clock.advance(seconds)
        return self.bot.tick(self.clock.now(), self.clock.wall())


def sends(orders: Iterable[Order]) -> list[Send]:
    return [order for order in orders if isinstance(order, Send)]


def payload(orders: Iterable[Order], name: str) -> etree._Element:
    for send in sends(orders):
        for element in send.payload:
            if element.tag == f"{{{NS}}}{name}":
                return element
    raise AssertionError(f"no <{name}/> in {[s.body for s in sends(orders)]}")


PLAYERS = (("Ann", "ann@localhost", "moderator"), ("Ben", "ben@localhost", "participant"))


def test_lobby_join_start_and_a_live_question_scored_by_speed() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    lobby = h.say("Ann", "!quiz live 2 geo")
    state = payload(lobby, "game")
    assert state.get("state") == "lobby" and state.get("mode") == "live" and state.get("total") == "2"
    joined = h.say("Ben", "!mitmachen")
    assert [p.get("nick") for p in payload(joined, "game")] == ["Ann", "Ben"]
    assert "only the game's opener" in sends(h.say("Ben", "!start"))[0].body  # Ben did not open it
    started = h.say("Ann", "!start")
    asked = payload(started, "question")
    assert asked.get("kind") == "text" and asked.get("index") == "1" and "Paris" not in etree.tostring(asked).decode()
    assert {o.nick for o in started if isinstance(o, Ping)} == {"Ann", "Ben"}  # round trips for the credit
    h.feed(RoundTrip(room=ROOM, nick="Ben", seconds=0.4))
    h.feed(RoomMessage(room=ROOM, nick="quizbot", body="...", own=True, reflected_question=asked.get("id")))

    h.clock.advance(0.3)
    ack = h.say("Ann", "paris", AnswerPayload(question_id=asked.get("id"), choice=None))
    received = payload(ack, "received")
    assert received.get("question") == asked.get("id") and sends(ack)[0].to == f"{ROOM}/Ann"
    h.clock.advance(9.9)  # Ben: 10.2 s after the reflection, minus 0.2 s credit and 0.15 s grace
    revealed = h.say("Ben", "Pariss")  # one typo is forgiven in a five-letter word
    reveal = payload(revealed, "reveal")
    assert reveal.get("answer") == "Paris"
    points = {s.get("nick"): int(s.get("points", "")) for s in reveal.findall(f"{{{NS}}}scorer")}
    assert points == {"Ann": 1000, "Ben": round(1000 * (1 - 9.85 / 40))}
    assert "Paris" in sends(revealed)[0].body

    nxt = h.advance(3.0)
    second = payload(nxt, "question")
    assert second.get("index") == "2"
    ended = h.advance(20.0)  # nobody answers: revealed at the deadline
    payload(ended, "reveal")
    final = payload(h.advance(3.0), "scores")
    assert final.get("final") == "true"
    board = h.store.leaderboard("all", wall=h.clock.wall())
    assert [(player, pts) for player, _nick, pts in board] == [("ann@localhost", 1000), ("ben@localhost", 754)]


def test_private_answers_count_for_the_room_game_and_others_cannot_see_them() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    h.say("Ann", "!quiz live 1 music")
    h.say("Ben", "!join")
    question = payload(h.say("Ann", "!start"), "question")
    choices = {c.text: c.get("key") for c in question.findall(f"{{{NS}}}choice")}
    orders = h.feed(PrivateMessage(sender="ben@localhost/phone", body=choices["Mozart"] or ""))
    assert all(not s.groupchat for s in sends(orders))  # nothing about Ben's answer reaches the room yet
    done = h.say("Ann", "", AnswerPayload(question_id=question.get("id"), choice=choices["Bach"]))
    reveal = payload(done, "reveal")
    counts = {c.get("key"): c.get("count") for c in reveal.findall(f"{{{NS}}}choice")}
    assert counts[choices["Mozart"]] == "1" and counts[choices["Bach"]] == "1"
    assert [s.get("nick") for s in reveal.findall(f"{{{NS}}}scorer")] == ["Ben"]


def test_nick_change_and_rejoin_keep_the_score() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    h.say("Ann", "!quiz classic 2 geo")
    h.say("Ann", "!start")
    h.say("Ben", "Paris")
    h.feed(OccupantPresence(room=ROOM, nick="Ben", available=False, new_nick="Benny"))
    h.feed(OccupantPresence(room=ROOM, nick="Benny", available=True, real_jid="ben@localhost"))
    h.advance(3.0)
    scores = payload(h.say("Benny", "!score"), "scores")
    assert [(p.get("nick"), p.get("points")) for p in scores] == [("Benny", "100"), ("Ann", "0")]


def test_admin_commands_are_refused_to_others_and_work_for_admins() -> None:
    h = Harness()
    h.enter(*PLAYERS, ("Root", "root@localhost", "participant"))
    refusal = h.feed(PrivateMessage(sender="ann@localhost/desk", body="!admin rooms"))
    assert "only bot administrators" in sends(refusal)[0].body
    assert "only bot administrators" in sends(h.say("Ann", "!admin stats"))[0].body  # a moderator is no admin
    rooms = h.feed(PrivateMessage(sender="root@localhost/laptop", body="!admin rooms"))
    assert ROOM in sends(rooms)[0].body
    h.feed(PrivateMessage(sender="root@localhost/laptop", body="!admin give ben@localhost 25"))
    assert h.store.leaderboard("week", wall=h.clock.wall()) == [("ben@localhost", "ben", 25)]
    h.feed(PrivateMessage(sender="root@localhost/laptop", body="!admin ban ben@localhost"))
    assert h.say("Ben", "!help") == []  # banned players are ignored


def test_newgame_creates_a_private_room_and_invite_invites_friends() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    (join,) = h.feed(PrivateMessage(sender="ann@localhost/desk", body="!newgame"))
    assert isinstance(join, JoinRoom) and join.owner == "ann@localhost" and not join.public
    ready = h.feed(RoomEntered(room=join.room))
    assert payload(ready, "room").get("jid") == join.room
    assert [o.jid for o in ready if isinstance(o, Invite)] == ["ann@localhost"]
    invited = h.feed(PrivateMessage(sender="ann@localhost/desk", body="!invite ben@localhost cat@localhost"))
    assert [(o.room, o.jid) for o in invited if isinstance(o, Invite)] == [(join.room, "ben@localhost"),
                                                                           (join.room, "cat@localhost")]
    h.feed(PrivateMessage(sender="ann@localhost/desk", body="!invite " + " ".join(f"p{n}@x" for n in range(8))))
    limited = h.feed(PrivateMessage(sender="ann@localhost/desk", body="!invite dan@localhost"))
    assert not [o for o in limited if isinstance(o, Invite)] and "Too many" in sends(limited)[0].body
    assert "Create your room first" in sends(h.feed(PrivateMessage(sender="ben@localhost/x",
                                                                   body="!invite ann@localhost")))[0].body


def test_unknown_commands_and_bad_arguments_get_a_usage_hint() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    assert "try !help" in sends(h.say("Ann", "!dance"))[0].body
    assert sends(h.say("Ann", "!top forever"))[0].body.startswith("Usage: !top")
    assert "privately" in sends(h.say("Ann", "!newgame"))[0].body


def test_a_restarted_bot_resumes_the_running_game_with_the_scores(tmp_path: object) -> None:
    path = f"{tmp_path}/quiz.sqlite"
    first = Harness(QuizStore(path))
    first.enter(*PLAYERS)
    first.say("Ann", "!quiz live 3 geo")
    first.say("Ben", "!join")
    first.say("Ann", "!start")
    first.say("Ann", "Paris")
    first.store.close()  # the bot dies while Ben is still thinking: Ann's points were saved with her answer

    second = Harness(QuizStore(path))
    resumed = second.feed(RoomEntered(room=ROOM))
    assert "back after a restart" in sends(resumed)[0].body
    assert [(p.get("nick"), p.get("points")) for p in payload(resumed, "game")] == [("Ann", "1000"), ("Ben", "0")]
    second.enter(*PLAYERS)
    asked = payload(second.advance(3.0), "question")
    assert asked.get("index") == "2" and asked.get("total") == "3"
