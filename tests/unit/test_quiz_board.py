"""Bounded boards (issue 14): the room hears the first `board_size` scorers and the top `board_size` players, with
how many there are in all; every player hears its own result and standing privately (docs/quiz.md)."""

from __future__ import annotations

import pytest
from lxml import etree

from boshcm.config import load_config
from boshcm.toml_config import ConfigError
from quizbot.events import OccupantPresence, Order, PrivateMessage, RoomEntered, RoomMessage, Send
from quizbot.payload import NS
from quizbot.store import QuizStore
from tests.unit.test_quiz_bot import PLAYERS, ROOM, Harness, payload, sends

QUIZ = f"{{{NS}}}"


def crowd(h: Harness, count: int) -> list[str]:
    h.feed(RoomEntered(room=ROOM))
    nicks = [f"p{n:02d}" for n in range(count)]
    for nick in nicks:
        h.feed(OccupantPresence(room=ROOM, nick=nick, available=True, real_jid=f"{nick}@localhost"))
    return nicks


def private(orders: list[Order]) -> dict[str, list[Send]]:
    """The private messages, by recipient."""
    found: dict[str, list[Send]] = {}
    for send in sends(orders):
        if not send.groupchat:
            found.setdefault(send.to, []).append(send)
    return found


def own(orders: list[Order], nick: str, *, messages: int = 1) -> dict[str, etree._Element]:
    """The private message a player gets (or the first of them): its payloads by name, in order (no body: ordinary
    clients show nothing)."""
    got = private(orders)[f"{nick}@localhost"]
    assert len(got) == messages and all(message.body == "" for message in got)
    return {etree.QName(element).localname: element for element in got[0].payload}


def room_messages(orders: list[Order]) -> list[Send]:
    """What the room reads (not the bodiless <progress/> counts)."""
    return [send for send in sends(orders) if send.groupchat and send.body]


def attributes(element: etree._Element) -> dict[str, str]:
    return dict(element.attrib)


def test_a_reveal_in_a_room_of_25_names_the_first_10_scorers_and_everyone_hears_its_own_result() -> None:
    h = Harness(board_size=10)
    nicks = crowd(h, 25)
    h.feed(OccupantPresence(room=ROOM, nick="Projector", available=True, real_jid="host@localhost", host=True))
    h.feed(RoomMessage(room=ROOM, nick="p00", body="!quiz live 1 geo"))
    asked = payload(h.feed(RoomMessage(room=ROOM, nick="p00", body="!start")), "question")
    question, game = asked.get("id"), asked.get("game")
    h.clock.advance(0.3)
    for nick in nicks[:5]:  # 0.15 s after the question: full points, all five equal
        assert not private(h.feed(RoomMessage(room=ROOM, nick=nick, body="Paris")))  # nothing said before the reveal
    h.clock.advance(10.0)
    for nick in nicks[5:15]:  # 10.15 s: equal points again
        h.feed(RoomMessage(room=ROOM, nick=nick, body="Paris"))
    for nick in nicks[15:20]:
        h.feed(RoomMessage(room=ROOM, nick=nick, body="Lyon"))
    revealed = h.advance(10.0)  # five never answer: revealed at the deadline

    (to_room,) = room_messages(revealed)
    reveal = payload([to_room], "reveal")
    assert reveal.get("scorers") == "15"
    assert [s.get("nick") for s in reveal.iter(f"{QUIZ}scorer")] == nicks[:10]  # the first to score, in order
    scores = payload([to_room], "scores")
    assert (scores.get("players"), scores.get("final")) == ("25", "false")
    assert [(p.get("nick"), p.get("rank")) for p in scores] == [(n, "1") for n in nicks[:5]] + [
        (n, "6") for n in nicks[5:10]]
    assert "p09" in to_room.body and "p10" not in to_room.body and "15" in to_room.body

    points_late = round(1000 * (1 - 10.15 / 20 / 2))
    assert set(private(revealed)) == {f"{nick}@localhost" for nick in nicks}  # not the host view
    first = own(revealed, "p00")
    assert list(first) == ["result", "standing"]  # one message, the result first
    assert attributes(first["result"]) == {"question": question, "game": game, "correct": "true", "points": "1000",
                                           "seconds": "0.15", "streak": "1"}
    assert attributes(first["standing"]) == {"game": game, "total": "1000", "rank": "1", "players": "25",
                                             "final": "false"}
    outside = own(revealed, "p12")  # scored, but not on the room's board
    assert (outside["result"].get("correct"), outside["result"].get("points")) == ("true", str(points_late))
    assert (outside["standing"].get("total"), outside["standing"].get("rank")) == (str(points_late), "6")
    wrong = own(revealed, "p17")
    assert attributes(wrong["result"]) == {"question": question, "game": game, "correct": "false", "streak": "0"}
    assert (wrong["standing"].get("total"), wrong["standing"].get("rank")) == ("0", "16")
    silent = own(revealed, "p22")
    assert list(silent) == ["standing"]  # no answer, no result
    assert (silent["standing"].get("total"), silent["standing"].get("rank")) == ("0", "16")

    ended = h.advance(3.0)
    (final_to_room,) = room_messages(ended)
    final = payload([final_to_room], "scores")
    assert (final.get("final"), final.get("players"), len(final)) == ("true", "25", 10)
    assert "p09" in final_to_room.body and "p10" not in final_to_room.body
    assert set(private(ended)) == {f"{nick}@localhost" for nick in nicks}
    last = own(ended, "p24")
    assert list(last) == ["standing"]
    assert attributes(last["standing"]) == {"game": game, "total": "0", "rank": "16", "players": "25",
                                            "final": "true"}


def test_results_follow_streaks_and_sixbreak_eliminations() -> None:
    h = Harness()
    h.enter(*PLAYERS, ("Cat", "cat@localhost", "participant"))
    h.say("Ann", "!quiz sixbreak 2 music")
    h.say("Ben", "!join")
    h.say("Cat", "!join")
    asked = payload(h.say("Ann", "!start"), "question")
    choices = {c.text: c.get("key") or "" for c in asked.iter(f"{QUIZ}choice")}
    h.say("Ann", choices["Mozart"])
    h.say("Ben", choices["Mozart"])
    first = h.say("Cat", choices["Bach"])
    assert own(first, "ann")["result"].get("streak") == "1"
    cat = own(first, "cat")
    assert (cat["result"].get("correct"), cat["result"].get("streak")) == ("false", "0")
    assert cat["standing"].get("rank") == "3"
    asked = payload(h.advance(3.0), "question")
    choices = {c.text: c.get("key") or "" for c in asked.iter(f"{QUIZ}choice")}
    h.say("Ann", choices["Mozart"])
    second = h.say("Ben", choices["Haydn"])  # Ann is the last one standing: reveal, then the end
    assert own(second, "ann", messages=2)["result"].get("streak") == "2"
    assert list(own(second, "cat", messages=2)) == ["standing"]  # out since the first question: no answer now
    assert own(second, "ben", messages=2)["result"].get("correct") == "false"
    final = private(second)["ann@localhost"][1].payload
    assert [(e.tag, e.get("final"), e.get("rank")) for e in final] == [(f"{QUIZ}standing", "true", "1")]


def test_classic_keeps_its_single_scorer_and_sends_standings_but_no_results() -> None:
    h = Harness()
    h.enter(*PLAYERS, ("Cat", "cat@localhost", "participant"))
    h.say("Ann", "!quiz classic 2 geo")
    h.say("Ann", "!start")
    h.say("Cat", "Lyon")
    won = h.say("Ben", "Paris")
    reveal = payload(won, "reveal")
    assert reveal.get("scorers") == "1" and [s.get("nick") for s in reveal.iter(f"{QUIZ}scorer")] == ["Ben"]
    assert set(private(won)) == {"ann@localhost", "ben@localhost", "cat@localhost"}
    for nick, total, rank in (("ann", "0", "2"), ("ben", "100", "1"), ("cat", "0", "2")):
        got = own(won, nick)
        assert list(got) == ["standing"]
        assert (got["standing"].get("total"), got["standing"].get("rank"), got["standing"].get("players")) == (
            total, rank, "3")


def test_score_and_top_are_bounded_too() -> None:
    h = Harness(QuizStore(":memory:"), board_size=3)
    nicks = crowd(h, 6)
    h.feed(RoomMessage(room=ROOM, nick="p00", body="!quiz live 2 geo"))
    h.feed(RoomMessage(room=ROOM, nick="p00", body="!start"))
    for nick in nicks[:5]:
        h.clock.advance(1.0)
        h.feed(RoomMessage(room=ROOM, nick=nick, body="Paris"))
    h.advance(20.0)

    (in_room,) = sends(h.feed(RoomMessage(room=ROOM, nick="p05", body="!score")))
    scores = payload([in_room], "scores")
    assert (scores.get("players"), [p.get("nick") for p in scores]) == ("6", nicks[:3])
    assert "p02" in in_room.body and "p03" not in in_room.body and "6" in in_room.body
    (alone,) = sends(h.feed(PrivateMessage(sender="p05@localhost/x", body="!score")))
    assert (payload([alone], "scores").get("players"), len(payload([alone], "scores"))) == ("6", 3)

    (top,) = sends(h.feed(RoomMessage(room=ROOM, nick="p04", body="!top 50")))
    assert [p.get("nick") for p in payload([top], "top")] == nicks[:3]
    assert "p02" in top.body and "p03" not in top.body


def test_a_board_of_a_few_players_is_whole() -> None:
    h = Harness()
    h.enter(*PLAYERS)
    h.say("Ann", "!quiz live 1 geo")
    h.say("Ann", "!start")
    h.say("Ann", "Paris")
    done = h.say("Ben", "Paris")
    reveal, scores = payload(done, "reveal"), payload(done, "scores")
    assert (reveal.get("scorers"), len(reveal.findall(f"{QUIZ}scorer"))) == ("2", 2)
    assert (scores.get("players"), len(scores)) == ("2", 2)
    assert "Points: Ann" in room_messages(done)[0].body  # the text as before: nobody left out, nothing to count


@pytest.mark.parametrize("size", [2, 51, 0])
def test_board_size_out_of_bounds_is_refused(size: int) -> None:
    with pytest.raises(ConfigError, match=r"^quizbot\.board_size: must be from 3 to 50"):
        load_config(None, {"quizbot.board_size": size})


def test_board_size_defaults_to_ten_and_takes_its_bounds() -> None:
    assert load_config(None, {}).extensions["quizbot"].settings.board_size == 10
    for size in (3, 50):
        assert load_config(None, {"quizbot.board_size": size}).extensions["quizbot"].settings.board_size == size


def test_a_lobby_and_game_state_of_25_name_the_first_10_players_and_say_how_many() -> None:
    h = Harness(board_size=10)
    nicks = crowd(h, 25)
    h.feed(RoomMessage(room=ROOM, nick="p00", body="!quiz live 1 geo"))
    for nick in nicks[1:-1]:
        h.feed(RoomMessage(room=ROOM, nick=nick, body="!join"))
    (joined,) = room_messages(h.feed(RoomMessage(room=ROOM, nick=nicks[-1], body="!join")))
    lobby = payload([joined], "game")
    assert (lobby.get("state"), lobby.get("players")) == ("lobby", "25")
    assert [p.get("nick") for p in lobby.iter(f"{QUIZ}player")] == nicks[:10]  # in the order they joined
    assert "25" in joined.body and "p09" in joined.body and "p10" not in joined.body
    started = payload(h.feed(RoomMessage(room=ROOM, nick="p00", body="!start")), "game")
    assert (started.get("state"), started.get("players")) == ("running", "25")
    assert len(started.findall(f"{QUIZ}player")) == 10
