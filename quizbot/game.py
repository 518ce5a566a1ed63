"""One quiz game (pure): players, questions, timers and scores for the classic, live and sixbreak modes.

Theory of operation. The room controller feeds facts — a player joined, the game was started, the bot saw
its own question reflected by the room, an answer arrived, a round trip was measured, time passed — and
performs the orders that come back: get ready, ask, hint, award, eliminate, reveal, pause, end. Time is `now`
(monotonic seconds) passed in; `next_deadline()` says when to call `handle_timeout`.

Getting ready. The first question comes `get_ready_seconds` after the start, not with it: the start announcement
reaches thousands of players at once, and over BOSH it takes each one's held request; a question in the same
instant would wait for all of them to poll again. Until then no question is open (as between questions): answers,
hints and skips have nothing to act on, a stop ends the game, and players may still come and go.

Fairness. A question's clock starts when the bot sees its own question reflected (everyone got it at about
the same moment), or at sending if the reflection is late. A player's answer time is credited with half
their measured round trip (capped, so at most `max_latency_credit_seconds`) plus a grace. Answers outside
an open question are ignored; per-player rate limits apply; the answer never appears in an `AskQuestion`.
Players are keys chosen by the caller (real bare JID or occupant-id), never nicks.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from boshcm.toml_config import ConfigError
from quizbot.matching import match_choice, match_number, match_text, parse_number
from quizbot.questions import Question, QuestionKind

CHOICE_KEYS = "ABCD"
MAX_ANSWER_CHARS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class GameSettings:
    question_seconds: float = 30.0
    hint_interval_seconds: float = 10.0
    max_hints: int = 3
    classic_points: int = 100
    live_points: int = 1000
    full_points_under_seconds: float = 0.5
    streak_bonus: int = 50
    streak_cap: int = 250
    grace_seconds: float = 0.15
    max_round_trip_seconds: float = 1.0
    reveal_seconds: float = 5.0
    break_every: int = 6
    break_seconds: float = 30.0
    unanswered_limit: int = 3
    rate_limit_answers: int = 3
    rate_limit_window_seconds: float = 2.0
    get_ready_seconds: float = 3.0  # from the start to the first question; 0: at once

    def validate(self, section: str) -> None:
        """Configuration check (`[quizbot.game]`): times positive (the get-ready pause not negative), counts and
        points not negative."""
        for name in ("question_seconds", "hint_interval_seconds", "reveal_seconds", "break_seconds",
                     "rate_limit_window_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{section}.{name}", "must be positive")
        for name in ("max_hints", "classic_points", "live_points", "streak_bonus", "streak_cap", "break_every",
                     "unanswered_limit", "rate_limit_answers", "grace_seconds", "max_round_trip_seconds",
                     "get_ready_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{section}.{name}", "must not be negative")


class Mode(Enum):
    CLASSIC = "classic"
    LIVE = "live"
    SIXBREAK = "sixbreak"


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerJoined:
    player: str
    nick: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerLeft:
    player: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Begin:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionReflected:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerGiven:
    player: str
    nick: str
    text: str
    choice: str | None = None  # a letter from the machine-readable <answer/> payload


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTripMeasured:
    player: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipRequested:
    player: str
    direct: bool  # opener, moderator or admin: no vote needed


@dataclass(frozen=True, slots=True, kw_only=True)
class HintRequested:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRequested:
    pass


GameEvent = (
    PlayerJoined
    | PlayerLeft
    | Begin
    | QuestionReflected
    | AnswerGiven
    | RoundTripMeasured
    | SkipRequested
    | HintRequested
    | StopRequested
)


# --- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GetReady:
    until: float  # when the first question comes


@dataclass(frozen=True, slots=True, kw_only=True)
class AskQuestion:
    index: int  # 1-based
    total: int
    question_id: str
    text: str
    kind: QuestionKind
    category: str
    choices: tuple[str, ...]  # in the order shown, keys A-D
    duration_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowHint:
    question_id: str
    pattern: str
    points_now: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AwardPoints:
    player: str
    nick: str
    points: int
    seconds: float
    streak: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Eliminate:
    player: str
    nick: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RevealAnswer:
    question_id: str
    answer: str
    source: str
    scorers: tuple[AwardPoints, ...]
    distribution: dict[str, int]  # choice key -> how many picked it (choice questions)
    # Live and sixbreak: every player whose attempt counted -> whether it was right (for each one's own result).
    verdicts: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    until: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GameEnded:
    scores: tuple[tuple[str, str, int], ...]  # (player, nick, points), best first
    reason: str  # finished | stopped | unanswered | last-standing


GameAction = GetReady | AskQuestion | ShowHint | AwardPoints | Eliminate | RevealAnswer | Pause | GameEnded

Judge = Callable[[Question, tuple[str, ...], int, str, "str | None"], "bool | None"]


def default_judge(
    question: Question, choices: tuple[str, ...], correct: int, text: str, choice: str | None
) -> bool | None:
    """True/False for an attempt, None when the text is not an attempt at all."""
    if len(text) > MAX_ANSWER_CHARS:
        return None  # chatter, not an answer; and it keeps matching cheap
    if question.kind is QuestionKind.CHOICE:
        if choice is not None and choice.upper() in CHOICE_KEYS[: len(choices)]:
            return CHOICE_KEYS.index(choice.upper()) == correct
        result = match_choice(text, choices, correct, question.language)
        return None if result is None else result.correct
    if question.kind is QuestionKind.NUMBER:
        expected = parse_number(question.answer, question.language)
        if expected is None or parse_number(text, question.language) is None:
            return None  # chatter is not an attempt at a number question
        return match_number(text, expected, question.language, question.tolerance).correct
    return match_text(text, [question.answer, *question.alternatives], question.language).correct


class _State(Enum):
    LOBBY = auto()
    OPEN = auto()  # a question is being answered
    BETWEEN = auto()  # no question open (getting ready for the first, or revealed): the next comes at the deadline
    PAUSED = auto()
    ENDED = auto()


@dataclass(slots=True)
class _Player:
    nick: str
    points: int = 0
    streak: int = 0
    round_trip: float = 0.0
    eliminated: bool = False
    present: bool = True  # in the room; absent players keep their points but are not waited for
    recent: deque[float] = field(default_factory=deque)


class QuizGame:
    def __init__(
        self,
        *,
        mode: Mode,
        questions: Sequence[Question],
        settings: GameSettings,
        rng: random.Random,
        judge: Judge = default_judge,
    ) -> None:
        self.mode = mode
        self._questions = list(questions)
        self._settings = settings
        self._rng = rng
        self._judge = judge
        self._players: dict[str, _Player] = {}
        self._state = _State.LOBBY
        self._index = -1
        self._choices: tuple[str, ...] = ()
        self._correct = -1
        self._asked_at = self._started_at = 0.0
        self._deadline: float | None = None
        self._hints = 0
        self._answered: dict[str, bool] = {}
        self._picks: dict[str, int] = {}
        self._awards: list[AwardPoints] = []
        self._skip_votes: set[str] = set()
        self._unanswered_in_a_row = 0

    # --- queries ----------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._state is _State.ENDED

    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def in_lobby(self) -> bool:
        return self._state is _State.LOBBY

    @property
    def paused(self) -> bool:
        return self._state is _State.PAUSED

    @property
    def question_open(self) -> bool:
        return self._state is _State.OPEN

    def skip_votes(self) -> tuple[int, int]:
        """Votes to skip the open question so far, and how many end it: half the active players."""
        return len(self._skip_votes), (max(1, len(self._active_players())) + 1) // 2

    @property
    def current_question(self) -> Question | None:
        return self._questions[self._index] if 0 <= self._index < len(self._questions) else None

    @property
    def current_choices(self) -> tuple[str, ...]:
        return self._choices

    @property
    def question_count(self) -> int:
        return len(self._questions)

    def question_deadline(self) -> float | None:
        """When the open question closes (monotonic), or None between questions."""
        return self._started_at + self._settings.question_seconds if self._state is _State.OPEN else None

    def verdict(self, player: str) -> bool | None:
        """Live and sixbreak: whether the player's counted attempt at the open question was right."""
        return self._answered.get(player)

    def progress(self) -> tuple[int, int]:
        """Live and sixbreak, while a question is open: (answered, players) — who has answered, of everyone the
        question waits for (active players in the room, and whoever answered it)."""
        waiting = {p for p in self._active_players() if self._players[p].present}
        return len(self._answered), len(waiting | self._answered.keys())

    def is_eliminated(self, player: str) -> bool:
        return player in self._players and self._players[player].eliminated

    def has_player(self, player: str) -> bool:
        return player in self._players

    def scores(self) -> tuple[tuple[str, str, int], ...]:
        ranked = sorted(self._players.items(), key=lambda item: (-item[1].points, item[1].nick))
        return tuple((player, state.nick, state.points) for player, state in ranked)

    # --- restart ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What survives a bot restart: the questions, the position and every player's standing (JSON-able)."""
        return {
            "mode": self.mode.value,
            "questions": [question.id for question in self._questions],
            "index": self._index,
            "unanswered_in_a_row": self._unanswered_in_a_row,
            "players": {key: self.player_snapshot(key) for key in self._players},
        }

    def player_snapshot(self, player: str) -> dict[str, Any]:
        """One player's part of `snapshot()`, cheap to save after every answer."""
        p = self._players[player]
        return {"nick": p.nick, "points": p.points, "streak": p.streak, "eliminated": p.eliminated}

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        *,
        questions: dict[str, Question],
        settings: GameSettings,
        rng: random.Random,
        now: float,
    ) -> QuizGame:
        """Resume after a restart: scores as they were; the question that was open is void, the next one comes
        after `reveal_seconds`. Questions no longer in the banks are dropped."""
        asked = snapshot["questions"][: snapshot["index"] + 1]
        remaining = [questions[qid] for qid in snapshot["questions"][snapshot["index"] + 1 :] if qid in questions]
        kept_asked = [questions[qid] for qid in asked if qid in questions]
        game = cls(mode=Mode(snapshot["mode"]), questions=kept_asked + remaining, settings=settings, rng=rng)
        game._index = len(kept_asked) - 1
        game._unanswered_in_a_row = int(snapshot.get("unanswered_in_a_row", 0))
        for key, raw in snapshot["players"].items():
            game._players[key] = _Player(nick=str(raw["nick"]), points=int(raw["points"]),
                                         streak=int(raw["streak"]), eliminated=bool(raw["eliminated"]))
        game._state = _State.BETWEEN
        game._deadline = now + settings.reveal_seconds
        return game

    # --- entry points -----------------------------------------------------------------------------

    def handle(self, event: GameEvent, now: float) -> list[GameAction]:
        if self._state is _State.ENDED:
            return []
        match event:
            case PlayerJoined(player=player, nick=nick):
                if player in self._players:
                    self._players[player].nick = nick
                    self._players[player].present = True
                elif self._state is _State.LOBBY or self.mode is not Mode.SIXBREAK:
                    self._players[player] = _Player(nick=nick)
                return []
            case PlayerLeft(player=player):
                if player not in self._players:
                    return []
                self._players[player].present = False
                return self._reveal(now) if self._everyone_present_answered() else []
            case Begin():
                return self._begin(now) if self._state is _State.LOBBY else []
            case QuestionReflected():
                if self._state is _State.OPEN and self._started_at == self._asked_at:
                    self._started_at = now
                    self._deadline = self._next_wake(now)  # classic: the first hint, not the end
                return []
            case AnswerGiven():
                return self._answer(event, now)
            case RoundTripMeasured(player=player, seconds=seconds):
                if player in self._players:
                    self._players[player].round_trip = min(seconds, self._settings.max_round_trip_seconds)
                return []
            case SkipRequested(player=player, direct=direct):
                return self._skip(player, direct, now)
            case HintRequested():
                return self._hint(now) if self._state is _State.OPEN and self.mode is Mode.CLASSIC else []
            case StopRequested():
                return self._end("stopped")
        raise AssertionError(f"unknown event {event!r}")

    def handle_timeout(self, now: float) -> list[GameAction]:
        if self._deadline is None or now < self._deadline:
            return []
        if self._state is _State.OPEN:
            if (
                self.mode is Mode.CLASSIC
                and self._hints < self._settings.max_hints
                and now < self._started_at + self._settings.question_seconds
            ):
                return self._hint(now)
            return self._reveal(now)
        if self._state in (_State.BETWEEN, _State.PAUSED):
            return self._ask(now)
        return []

    # --- asking -----------------------------------------------------------------------------------

    def _begin(self, now: float) -> list[GameAction]:
        """The first question at once, or after the get-ready pause (asked by `handle_timeout`)."""
        if self._settings.get_ready_seconds <= 0:
            return self._ask(now)
        self._state = _State.BETWEEN
        self._deadline = now + self._settings.get_ready_seconds
        return [GetReady(until=self._deadline)]

    def _ask(self, now: float) -> list[GameAction]:
        self._index += 1
        if self._index >= len(self._questions):
            return self._end("finished")
        question = self._questions[self._index]
        if question.kind is QuestionKind.CHOICE:
            options = [question.answer, *question.wrong]
            self._rng.shuffle(options)
            self._choices, self._correct = tuple(options), options.index(question.answer)
        else:
            self._choices, self._correct = (), -1
        self._state = _State.OPEN
        self._asked_at = self._started_at = now
        self._hints = 0
        self._answered, self._picks, self._awards, self._skip_votes = {}, {}, [], set()
        self._deadline = self._next_wake(now)
        return [
            AskQuestion(
                index=self._index + 1,
                total=len(self._questions),
                question_id=question.id,
                text=question.question,
                kind=question.kind,
                category=question.category,
                choices=self._choices,
                duration_seconds=self._settings.question_seconds,
            )
        ]

    def _hint(self, now: float) -> list[GameAction]:
        """Classic: letters appear over time; every hint halves what the question is worth."""
        question = self._questions[self._index]
        if self._hints >= self._settings.max_hints:
            return []
        self._hints += 1
        answer = question.answer
        shown = max(1, len(answer) * self._hints // (self._settings.max_hints + 1))
        pattern = " ".join(char if index < shown or not char.isalnum() else "_" for index, char in enumerate(answer))
        self._deadline = self._next_wake(now)
        return [ShowHint(question_id=question.id, pattern=pattern, points_now=self._classic_points())]

    def _next_wake(self, now: float) -> float:
        """While a question is open: the next hint (classic, while hints are left), else its end."""
        end = self._started_at + self._settings.question_seconds
        if self.mode is Mode.CLASSIC and self._hints < self._settings.max_hints:
            return min(now + self._settings.hint_interval_seconds, end)
        return end

    def _classic_points(self) -> int:
        return self._settings.classic_points >> self._hints

    # --- answers ----------------------------------------------------------------------------------

    def _answer(self, event: AnswerGiven, now: float) -> list[GameAction]:
        if self._state is not _State.OPEN or (
            self._deadline is not None and now > self._started_at + self._settings.question_seconds
        ):
            return []  # before the question or after the deadline
        player = self._players.get(event.player)
        if player is None:
            if self.mode is Mode.SIXBREAK:
                return []  # sixbreak players join in the lobby only
            player = self._players[event.player] = _Player(nick=event.nick)
        if player.eliminated or event.player in self._answered or self._rate_limited(player, now):
            return []
        question = self._questions[self._index]
        verdict = self._judge(question, self._choices, self._correct, event.text, event.choice)
        if verdict is None:
            return []
        if self.mode is not Mode.CLASSIC:
            self._answered[event.player] = verdict  # live and sixbreak: the first attempt counts
            if self._choices:
                key = self._pick_key(question, event)
                if key is not None:
                    self._picks[key] = self._picks.get(key, 0) + 1
        actions: list[GameAction] = []
        if verdict:
            elapsed = round(self._credited_seconds(player, now), 3)  # scored on the time the reveal shows
            points = self._classic_points() if self.mode is Mode.CLASSIC else self._speed_points(elapsed)
            player.streak += 1
            if self.mode is not Mode.CLASSIC and player.streak > 1:
                points += min(self._settings.streak_bonus * (player.streak - 1), self._settings.streak_cap)
            player.points += points
            award = AwardPoints(
                player=event.player, nick=player.nick, points=points, seconds=elapsed, streak=player.streak
            )
            self._awards.append(award)
            actions.append(award)
            if self.mode is Mode.CLASSIC:
                return actions + self._reveal(now)  # the first correct answer wins the question
        else:
            player.streak = 0
            if self.mode is Mode.SIXBREAK:
                player.eliminated = True
                actions.append(Eliminate(player=event.player, nick=player.nick))
        if self._everyone_present_answered():
            actions += self._reveal(now)  # everyone has answered: lock early
        return actions

    def _everyone_present_answered(self) -> bool:
        """Live and sixbreak lock early once every player still in the room has answered the open question."""
        if self.mode is Mode.CLASSIC or self._state is not _State.OPEN or not self._answered:
            return False
        # A generator, not a list: it stops at the first player still to answer, which with answers in random order
        # is a short scan — per answer, in a room of thousands.
        return all(key in self._answered for key, player in self._players.items()
                   if player.present and not player.eliminated)

    def _pick_key(self, question: Question, event: AnswerGiven) -> str | None:
        if event.choice is not None and event.choice.upper() in CHOICE_KEYS[: len(self._choices)]:
            return event.choice.upper()
        for index in range(len(self._choices)):
            if self._judge(question, self._choices, index, event.text, None):
                return CHOICE_KEYS[index]
        return None

    def _credited_seconds(self, player: _Player, now: float) -> float:
        credit = min(player.round_trip, self._settings.max_round_trip_seconds) / 2 + self._settings.grace_seconds
        return max(0.0, now - self._started_at - credit)

    def _speed_points(self, seconds: float) -> int:
        """points = round(P * (1 - t/(2T))), full points under the threshold."""
        if seconds < self._settings.full_points_under_seconds:
            return self._settings.live_points
        duration = self._settings.question_seconds
        return round(self._settings.live_points * (1 - min(seconds, duration) / (2 * duration)))

    def _rate_limited(self, player: _Player, now: float) -> bool:
        window = self._settings.rate_limit_window_seconds
        while player.recent and player.recent[0] <= now - window:
            player.recent.popleft()
        if len(player.recent) >= self._settings.rate_limit_answers:
            return True
        player.recent.append(now)
        return False

    def _active_players(self) -> list[str]:
        return [key for key, player in self._players.items() if not player.eliminated]

    # --- skipping, revealing, ending --------------------------------------------------------------

    def _skip(self, player: str, direct: bool, now: float) -> list[GameAction]:
        if self._state is not _State.OPEN:
            return []
        if not direct:
            self._skip_votes.add(player)
            votes, needed = self.skip_votes()
            if votes < needed:
                return []
        return self._reveal(now)

    def _reveal(self, now: float) -> list[GameAction]:
        question = self._questions[self._index]
        scored = {award.player for award in self._awards}  # a set: thousands of players, thousands of scorers
        for key, player in self._players.items():
            if key not in self._answered and key not in scored:
                player.streak = 0
        answered_by_anyone = bool(self._answered) or bool(self._awards)
        self._unanswered_in_a_row = 0 if answered_by_anyone else self._unanswered_in_a_row + 1
        actions: list[GameAction] = [
            RevealAnswer(
                question_id=question.id,
                answer=question.answer,
                source=question.source,
                scorers=tuple(self._awards),
                distribution=dict(self._picks),
                verdicts=dict(self._answered),
            )
        ]
        self._state = _State.BETWEEN
        self._deadline = now + self._settings.reveal_seconds
        if self._unanswered_in_a_row >= self._settings.unanswered_limit:
            return actions + self._end("unanswered")
        if self.mode is Mode.SIXBREAK:
            standing = self._active_players()
            if (len(self._players) > 1 and len(standing) <= 1) or (self._players and not standing):
                return actions + self._end("last-standing")
            if (self._index + 1) % self._settings.break_every == 0 and self._index + 1 < len(self._questions):
                self._state = _State.PAUSED
                self._deadline = now + self._settings.break_seconds
                actions.append(Pause(until=self._deadline))
        return actions

    def _end(self, reason: str) -> list[GameAction]:
        self._state = _State.ENDED
        self._deadline = None
        return [GameEnded(scores=self.scores(), reason=reason)]
