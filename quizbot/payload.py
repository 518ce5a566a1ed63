"""The machine-readable side of every bot message: elements in `urn:boshcm:quiz:0` (schema in docs/quiz.md).

Ordinary clients read the body; rich clients (the browser page, tests) read these and never scrape text.
Times that leave the bot are wall-clock ISO 8601 UTC with milliseconds; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from boshcm.timestamps import xep0082
from quizbot.game import CHOICE_KEYS, AskQuestion, AwardPoints, RevealAnswer, ShowHint

NS = "urn:boshcm:quiz:0"


def _element(tag: str, /, **attributes: str | int | float | None) -> etree._Element:
    element = etree.Element(f"{{{NS}}}{tag}", nsmap={None: NS})
    for key, value in attributes.items():
        if value is not None:
            element.set(key, _text(value))
    return element


def _child(parent: etree._Element, tag: str, text: str | None = None, /, **attributes: str | int | float | None
           ) -> etree._Element:
    child = etree.SubElement(parent, f"{{{NS}}}{tag}")
    for key, value in attributes.items():
        if value is not None:
            child.set(key, _text(value))
    if text is not None:
        child.text = text
    return child


def _text(value: str | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)




@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerView:
    nick: str
    points: int
    eliminated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomView:
    """How players find a room again: its readable name and its game PIN."""

    name: str | None = None
    pin: str | None = None


def game_state(*, game_id: str, state: str, mode: str, language: str, total: int, opener: str | None,
               players: Sequence[PlayerView], board_size: int, category: str | None = None,
               room: RoomView = RoomView()) -> etree._Element:
    """state: lobby | running | paused | ended | none (no game in the room). The first `board_size` players (in the
    order given); `players` says how many there are in all — a room of thousands must not get thousands of names
    with every lobby join and game state."""
    element = _element("game", id=game_id, state=state, mode=mode, language=language, total=total, opener=opener,
                       category=category, pin=room.pin, name=room.name, players=len(players))
    for player in players[:board_size]:
        _child(element, "player", nick=player.nick, points=player.points,
               eliminated="true" if player.eliminated else None)
    return element


def question(ask: AskQuestion, *, game_id: str, deadline_wall: float) -> etree._Element:
    element = _element("question", id=ask.question_id, game=game_id, index=ask.index, total=ask.total,
                       kind=ask.kind.value, category=ask.category, duration=ask.duration_seconds,
                       deadline=xep0082(deadline_wall))
    _child(element, "text", ask.text)
    for key, choice in zip(CHOICE_KEYS, ask.choices, strict=False):
        _child(element, "choice", choice, key=key)
    return element


def hint(shown: ShowHint) -> etree._Element:
    return _element("hint", question=shown.question_id, pattern=shown.pattern, points=shown.points_now)


def progress(*, question_id: str, answered: int, players: int) -> etree._Element:
    """To the room while a live or sixbreak question is open: how many have answered (for a host view)."""
    return _element("progress", question=question_id, answered=answered, players=players)


def received(question_id: str) -> etree._Element:
    """Sent privately to a rich client right after its answer was accepted (before the reveal)."""
    return _element("received", question=question_id)


def reveal(revealed: RevealAnswer, *, choices: Sequence[str], board_size: int) -> etree._Element:
    """The first `board_size` scorers in the order they scored; `scorers` says how many scored in all (each player
    hears its own result privately: `result`)."""
    element = _element("reveal", question=revealed.question_id, answer=revealed.answer, source=revealed.source,
                       scorers=len(revealed.scorers))
    for key, choice in zip(CHOICE_KEYS, choices, strict=False):
        _child(element, "choice", choice, key=key, count=revealed.distribution.get(key, 0),
               correct="true" if choice == revealed.answer else None)
    for award in revealed.scorers[:board_size]:
        _scorer(element, award)
    return element


def _scorer(parent: etree._Element, award: AwardPoints) -> None:
    _child(parent, "scorer", nick=award.nick, points=award.points, seconds=award.seconds, streak=award.streak)


def eliminated(*, question_id: str, nick: str) -> etree._Element:
    return _element("eliminated", question=question_id, nick=nick)


def pause(*, until_wall: float) -> etree._Element:
    return _element("pause", until=xep0082(until_wall))


def ready(*, until_wall: float, seconds: float) -> etree._Element:
    """Beside the start's `<game state="running">`: when the first question comes, and how many seconds that is."""
    return _element("ready", until=xep0082(until_wall), seconds=seconds)


def scores(*, game_id: str, standings: Sequence[tuple[str, int]], final: bool, board_size: int,
           reason: str | None = None) -> etree._Element:
    """The top `board_size` of `standings` (best first); `players` says how many are ranked in all."""
    element = _element("scores", game=game_id, final="true" if final else "false", reason=reason,
                       players=len(standings))
    _ranked(element, standings[:board_size])  # a prefix keeps its ranks: ties look only at who is above
    return element


def result(*, question_id: str, game_id: str, correct: bool, streak: int, points: int | None = None,
           seconds: float | None = None) -> etree._Element:
    """Privately after a live or sixbreak reveal, to a player whose answer counted: `points` and `seconds` only
    when it was right."""
    return _element("result", question=question_id, game=game_id, correct=correct, points=points, seconds=seconds,
                    streak=streak)


def standing(*, game_id: str, total: int, rank: int, players: int, final: bool) -> etree._Element:
    """Privately beside every <scores/> to the room: the player's own place, on the board or not."""
    return _element("standing", game=game_id, total=total, rank=rank, players=players, final=final)


def top(*, period: str, standings: Sequence[tuple[str, int]]) -> etree._Element:
    element = _element("top", period=period)
    _ranked(element, standings)
    return element


def _ranked(parent: etree._Element, standings: Sequence[tuple[str, int]]) -> None:
    for (nick, points), rank in zip(standings, ranks([points for _nick, points in standings]), strict=True):
        _child(parent, "player", nick=nick, points=points, rank=rank)


def ranks(points: Sequence[int]) -> list[int]:
    """The rank of each of `points` (best first): equal points share a rank (1, 2, 2, 4)."""
    ranked: list[int] = []
    for position, value in enumerate(points, start=1):
        ranked.append(position if position == 1 or value != points[position - 2] else ranked[-1])
    return ranked


def categories(language: str, by_language: dict[str, Sequence[tuple[str, int]]]) -> etree._Element:
    """Reply to !categories: `language` is the one asked for (else the room's) and its categories come first; the
    other languages' follow, each child naming its language, so a page can offer the ones of any question
    language from one reply."""
    element = _element("categories", language=language)
    ordered = sorted(by_language.items(), key=lambda item: (item[0] != language, item[0]))
    for category_language, counted in ordered:
        for name, count in counted:
            _child(element, "category", name, language=category_language, name=name, count=count)
    return element


def invitation(*, room: str, view: RoomView = RoomView()) -> etree._Element:
    """A room for rich clients: the answer to !newgame (the requester's room) and to !pin."""
    return _element("room", jid=room, name=view.name, pin=view.pin)


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerPayload:
    question_id: str | None
    choice: str | None


def parse_answer(stanza: etree._Element) -> AnswerPayload | None:
    """`<answer xmlns='urn:boshcm:quiz:0' question='ID' choice='B'/>` beside the body, if present."""
    found = stanza.find(f"{{{NS}}}answer")
    if found is None:
        return None
    choice = found.get("choice")
    if choice is not None and (len(choice) != 1 or choice.upper() not in CHOICE_KEYS):
        choice = None  # a bad choice attribute falls back to the body text
    return AnswerPayload(question_id=found.get("question"), choice=choice.upper() if choice else None)


MAX_COMMAND_PAYLOAD_CHARS = 600  # name and arguments; the longest typed command (!submit) fits


def parse_command(stanza: etree._Element) -> str | None:
    """`<command xmlns='urn:boshcm:quiz:0' name='quiz'>live 10 en</command>` as the text typed after the prefix.

    Pages and bots steer the quiz without chat lines or the players' language; the arguments then go through the
    very grammar typed commands do (quizbot/commands.py), so both ways accept and refuse the same things."""
    found = stanza.find(f"{{{NS}}}command")
    if found is None:
        return None
    name = (found.get("name") or "").strip()
    arguments = " ".join((found.text or "").split())
    if not name or " " in name:
        return ""  # nothing to run: the bot ignores it rather than taking it for an answer
    return f"{name} {arguments}".strip()[:MAX_COMMAND_PAYLOAD_CHARS]
