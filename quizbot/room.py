"""One quiz room (pure): occupants, the lobby, the running game and the room's commands. The bot
(quizbot/bot.py) owns one per room and routes facts to it; everything it says, and everything that must be
stored (answers, points, snapshots), comes back as orders.

Players are keyed by real bare JID when the room discloses it, else by occupant-id (XEP-0421), else — only
in fully anonymous rooms without occupant-id — by nick; never by nick when anything better exists, so nick
changes and rejoins keep the score.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, assert_never

from lxml import etree

from quizbot import payload, render
from quizbot.commands import (
    Hint,
    Join,
    Lang,
    Quiz,
    Repeat,
    Report,
    RoomCommand,
    Score,
    Skip,
    Start,
    Stop,
    may_run,
    skip_is_direct,
)
from quizbot.events import (
    RECENT_QUESTIONS,
    Orders,
    Ping,
    RecordAnswer,
    RecordGameEnded,
    RecordGameStarted,
    RecordPoints,
    RecordQuestionAsked,
    RecordReport,
    SavePlayer,
    SaveSnapshot,
)
from quizbot.game import (
    AnswerGiven,
    AskQuestion,
    AwardPoints,
    Begin,
    Eliminate,
    GameAction,
    GameEnded,
    GameSettings,
    GetReady,
    HintRequested,
    Mode,
    Pause,
    PlayerJoined,
    PlayerLeft,
    QuestionReflected,
    QuizGame,
    RevealAnswer,
    RoundTripMeasured,
    ShowHint,
    SkipRequested,
    StopRequested,
)
from quizbot.questions import BankSet, Question, QuestionKind

if TYPE_CHECKING:
    from quizbot.payload import AnswerPayload

DEFAULT_QUESTION_COUNT = 10
# A host view shows "N of M answered"; with thousands of players one room message per answer would flood the
# room, so the counts go out at most once a second — and a second more for every PROGRESS_PLAYERS_PER_SECOND
# players, since each count is a message to every one of them (over BOSH an HTTP response and a new request
# each) — and once more when the last player has answered.
PROGRESS_INTERVAL_SECONDS = 1.0
PROGRESS_PLAYERS_PER_SECOND = 500
DEFAULT_BOARD_SIZE = 10
# Above this many players a room the bot owns broadcasts only moderators' presence (the room's own field, set by
# quizbot/client.py), and the room is crowded (`QuizRoom.crowded`).
DEFAULT_QUIET_ABOVE = 100
# The round trips for the latency credit: every player's at the start (and a resume); after each reveal, in a game
# of more than PING_ALL_PLAYERS, only a PING_ROUNDS-th of them, those asked longest ago, so that each player's round
# trip is at most PING_ROUNDS reveals old. A ping is two stanzas through the room and, over BOSH, a response and a
# request more: with 2,000 players, one per player after every reveal crowded the seconds before the next question.
PING_ALL_PLAYERS = 50
PING_ROUNDS = 4
# A large game's first question waits, after the get-ready pause, for the start's round trips: 2,000 players' pings
# and pongs are 8,000 stanzas through the room (over BOSH 4,000 responses and requests more), and a question sent
# while they are still in flight reaches the players over a second apart on a slow machine. It goes once all but
# a hundredth of them are back (a phone that went silent must not hold everyone up), and at most
# FIRST_QUESTION_WAIT_SECONDS after the pause in any case.
FIRST_QUESTION_WAIT_SECONDS = 3.0
ROUND_TRIP_STRAGGLERS = 0.01


@dataclass(slots=True)
class Pacer:
    """One announcement to a room at most once an interval (1 s, and 1 s more for every PROGRESS_PLAYERS_PER_SECOND
    players: 2,000 players, every 5 s); what comes between goes out together once the interval is over. For
    <progress/> counts and a crowded lobby's joins, each a message to the whole room."""

    sent_at: float | None = None  # the last announcement
    due: float | None = None      # when the next one goes out, if something is waiting
    every: float = PROGRESS_INTERVAL_SECONDS

    def now_or_later(self, now: float) -> bool:
        """True: announce now; else it is due once the interval is over (`due`)."""
        if self.sent_at is None or now >= self.sent_at + self.every:
            return True
        if self.due is None:
            self.due = self.sent_at + self.every
        return False

    def take_due(self, now: float) -> bool:
        """True once when a waiting announcement is due."""
        if self.due is None or now < self.due:
            return False
        self.due = None
        return True

    def sent(self, now: float, players: int) -> None:
        self.sent_at, self.due = now, None
        self.every = PROGRESS_INTERVAL_SECONDS + players // PROGRESS_PLAYERS_PER_SECOND

    def cancel(self) -> None:
        """What waits is not announced (the question it counted is over)."""
        self.due = None

    def reset(self) -> None:
        self.sent_at = self.due = None


@dataclass(slots=True)
class RoundTripWait:
    """A large game's first question waiting for the start's round trips (FIRST_QUESTION_WAIT_SECONDS): the
    players whose round trip is still out, how many may stay out, and the latest the question waits until (None:
    nothing waits)."""

    out: set[str] = field(default_factory=set)
    stragglers: int = 0
    latest: float | None = None

    def start(self, players: Sequence[str], pause_ends: float) -> None:
        self.out = set(players)
        self.stragglers = math.ceil(len(players) * ROUND_TRIP_STRAGGLERS)
        self.latest = pause_ends + FIRST_QUESTION_WAIT_SECONDS

    def holding(self, now: float) -> bool:
        """Whether the question still waits; once it does not, nothing waits any more."""
        if self.latest is not None and now < self.latest and len(self.out) > self.stragglers:
            return True
        self.clear()
        return False

    def clear(self) -> None:
        self.out.clear()
        self.latest = None


@dataclass(slots=True)
class Occupant:
    nick: str
    player: str
    real_jid: str | None
    role: str
    affiliation: str
    occupant_id: str | None = None
    host: bool = False  # a host view on a projector: in the room, never a player


@dataclass(slots=True)
class Lobby:
    mode: Mode
    count: int
    category: str | None
    language: str
    opener: str  # player key
    opener_nick: str
    game_id: str  # the same id from the lobby to the end of its game
    players: dict[str, str] = field(default_factory=dict)  # key -> nick


@dataclass(frozen=True, slots=True, kw_only=True)
class Sender:
    """Who sent a command, as far as the room and the bot can prove it."""

    player: str
    nick: str
    real_jid: str | None
    is_admin: bool
    is_moderator: bool


class QuizRoom:
    def __init__(self, *, jid: str, language: str, banks: BankSet, settings: GameSettings, rng: random.Random,
                 recent: Iterable[str] = (), board_size: int = DEFAULT_BOARD_SIZE) -> None:
        self.jid = jid
        # The room hears the first `board_size` scorers and the top `board_size` players; each player hears its
        # own result and place privately (one message per player instead of every name to everyone).
        self._board_size = board_size
        self.language = language
        self.banks = banks
        # The question ids asked here lately (oldest first), so the next quiz asks fresh ones.
        self._recent: deque[str] = deque(recent, maxlen=RECENT_QUESTIONS)
        self._settings = settings
        self._rng = rng
        self.occupants: dict[str, Occupant] = {}
        self._nick_of_player: dict[str, str] = {}
        self.lobby: Lobby | None = None
        self.game: QuizGame | None = None
        self.game_id: str | None = None
        self._game_language = language
        self._opener: str | None = None
        self._opener_nick: str | None = None
        self._last_question: Question | None = None
        self._last_ask: AskQuestion | None = None
        self._ask_deadline_wall = 0.0
        self._stop_votes: set[str] = set()
        self.view = payload.RoomView()  # name and game PIN, given by the bot
        self._progress = Pacer()  # the open question's <progress/>
        # A crowded room's lobby: who joined goes out paced as <progress/> is, not once per !join (N² for N players).
        self._lobby_pacer = Pacer()
        self._lobby_joiner = ""  # the last to join, named in the next announcement
        self._pinged: dict[str, int] = {}  # the game's players: the ping round each was last asked in
        self._ping_round = 0
        self._first_question_wait = RoundTripWait()

    # --- occupants --------------------------------------------------------------------------------

    def occupant_present(self, *, nick: str, real_jid: str | None, occupant_id: str | None, role: str,
                         affiliation: str, now: float, host: bool = False) -> list[GameAction]:
        player = real_jid or (f"occupant:{self.jid}:{occupant_id}" if occupant_id else f"nick:{self.jid}/{nick}")
        self.occupants[nick] = Occupant(nick=nick, player=player, real_jid=real_jid, role=role,
                                        affiliation=affiliation, occupant_id=occupant_id, host=host)
        self._nick_of_player[player] = nick
        if host:
            return []  # watches the game: not waited for, not counted, not on the board
        if self.game is not None and (self.game.has_player(player) or self.game.mode is not Mode.SIXBREAK):
            # A rejoin or nick change keeps the points; in live and classic games everyone in the room plays.
            self.game.handle(PlayerJoined(player=player, nick=nick), now)
        return []

    def occupant_gone(self, nick: str, now: float, wall: float, orders: Orders) -> None:
        occupant = self.occupants.pop(nick, None)
        if occupant is not None and self.game is not None:
            self._perform(self.game.handle(PlayerLeft(player=occupant.player), now), now, wall, orders)
            self._round_trip_in(occupant.player, now, wall, orders)  # gone: no longer waited for
        if occupant is not None and self._nick_of_player.get(occupant.player) == nick:
            del self._nick_of_player[occupant.player]

    def crowded(self, *, quiet_above: int) -> bool:
        """More occupants than `quiet_above` (the bot not counted; 0: never): a room where a reply to each
        command would be a message to a crowd for every command, so replies go to the asker alone."""
        return 0 < quiet_above < len(self.occupants)

    def occupants_cleared(self) -> None:
        self.occupants.clear()
        self._nick_of_player.clear()

    def occupant_renamed(self, nick: str, new_nick: str) -> None:
        occupant = self.occupants.pop(nick, None)
        if occupant is not None:
            occupant.nick = new_nick
            self.occupants[new_nick] = occupant
            self._nick_of_player[occupant.player] = new_nick

    def occupant_by_id(self, occupant_id: str) -> Occupant | None:
        """XEP-0421: the occupant the room names by this id (it stays with the person across nick changes)."""
        return next((o for o in self.occupants.values() if o.occupant_id == occupant_id), None)

    def private_address(self, nick: str) -> str:
        """Where to say something to one occupant alone: the real JID where the room shows it (clients believe
        quiz payloads only from the bot's real JID), else the occupant JID through the room."""
        occupant = self.occupants.get(nick)
        return occupant.real_jid if occupant is not None and occupant.real_jid else f"{self.jid}/{nick}"

    def occupant_for_player(self, player: str) -> Occupant | None:
        nick = self._nick_of_player.get(player)
        return self.occupants.get(nick) if nick is not None else None

    # --- the running game -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.game is not None or self.lobby is not None

    def next_deadline(self) -> float | None:
        game_deadline = self.game.next_deadline() if self.game is not None else None
        if game_deadline is not None and self._first_question_wait.latest is not None:
            # Or earlier, when the last awaited round trip comes.
            game_deadline = max(game_deadline, self._first_question_wait.latest)
        deadlines = [d for d in (game_deadline, self._progress.due, self._lobby_pacer.due) if d is not None]
        return min(deadlines, default=None)

    def tick(self, now: float, wall: float, orders: Orders) -> None:
        if self._progress.take_due(now):
            self._send_progress(now, orders)
        if self._lobby_pacer.take_due(now):
            self._announce_lobby(now, orders)
        if self.game is not None and not self._first_question_wait.holding(now):
            after_break = self.game.paused
            self._perform(self.game.handle_timeout(now), now, wall, orders, after_break=after_break)

    def _round_trip_in(self, player: str, now: float, wall: float, orders: Orders) -> None:
        """One start round trip no longer out: the first question goes now if this was the one it waited for."""
        wait = self._first_question_wait
        if wait.latest is None or self.game is None:
            return
        wait.out.discard(player)
        if not wait.holding(now):
            self._perform(self.game.handle_timeout(now), now, wall, orders)  # nothing before the pause is over

    def reflected(self, question_id: str, now: float) -> None:
        question = self.game.current_question if self.game is not None else None
        if self.game is not None and question is not None and question.id == question_id:
            self.game.handle(QuestionReflected(), now)

    def round_trip(self, nick: str, seconds: float, now: float, wall: float, orders: Orders) -> None:
        occupant = self.occupants.get(nick)
        if self.game is not None and occupant is not None:
            self.game.handle(RoundTripMeasured(player=occupant.player, seconds=seconds), now)
            self._round_trip_in(occupant.player, now, wall, orders)

    def answer(self, *, player: str, nick: str, text: str, given: AnswerPayload | None, reply_to: str,
               now: float, wall: float, orders: Orders) -> None:
        game = self.game
        question = game.current_question if game is not None else None
        if game is None or question is None or not game.question_open:
            return
        if given is not None and given.question_id not in (None, question.id):
            return  # an answer to an earlier question, arriving late
        before = game.verdict(player)
        actions = game.handle(AnswerGiven(player=player, nick=nick, text=text,
                                          choice=given.choice if given else None), now)
        verdict = game.verdict(player)
        # Only the attempt that counted is recorded: a repeat changes nothing and writes no second row.
        if before is None and verdict is not None and not any(
                isinstance(a, AwardPoints) and a.player == player for a in actions):
            orders.items.append(RecordAnswer(game_id=self.game_id or "", question_id=question.id, player=player,
                                             correct=verdict, points=0, seconds=None, wall=wall))
        if given is not None and verdict is not None and game.mode is not Mode.CLASSIC:
            orders.say(reply_to, "", payload.received(question.id))  # rich clients show "answer received"
        if before is None and verdict is not None and game.mode is not Mode.CLASSIC and not any(
                isinstance(a, RevealAnswer) for a in actions):
            self._progress_later(now, orders)  # the last answer locks the question: the reveal carries the counts
        self._perform(actions, now, wall, orders)

    def _progress_later(self, now: float, orders: Orders) -> None:
        if self._progress.now_or_later(now):
            self._send_progress(now, orders)

    def _send_progress(self, now: float, orders: Orders) -> None:
        game = self.game
        question = game.current_question if game is not None else None
        if game is None or question is None or not game.question_open:
            return
        answered, players = game.progress()
        self._progress.sent(now, players)
        # No body: ordinary clients would get a chat line a second; the host view reads the payload.
        orders.say(self.jid, "", payload.progress(question_id=question.id, answered=answered, players=players),
                   groupchat=True)

    # --- commands ---------------------------------------------------------------------------------

    def command(self, command: RoomCommand, sender: Sender, *, reply_to: str, now: float, wall: float,
                orders: Orders) -> None:
        """Room commands. Announcements go to the room; answers to questions go to `reply_to`."""
        language = self.language
        is_opener = self._opener is not None and sender.player == self._opener
        privileged = dict(is_admin=sender.is_admin, is_opener=is_opener, is_moderator=sender.is_moderator)

        def reply(text: str) -> None:
            """What answers this command alone (not a change everyone sees): to `reply_to`, the room or the
            asker; in a crowded room the bot makes that the asker (quizbot/bot.py, docs/quiz.md)."""
            orders.say(reply_to, text, groupchat=reply_to == self.jid)

        if not may_run(command, **privileged):
            reply(render.say(language, "not-allowed"))
            return
        to_room = dict(groupchat=True)
        match command:
            case Quiz():
                self._open_lobby(command, sender, wall, orders, reply)
            case Join():
                if self.lobby is None:
                    reply(render.say(language, "no-lobby"))
                elif sender.player in self.lobby.players:
                    reply(render.say(language, "already-joined", nick=sender.nick))
                else:
                    self.lobby.players[sender.player] = sender.nick
                    self._lobby_joiner = sender.nick
                    if reply_to == self.jid:
                        self._announce_lobby(now, orders)
                    else:
                        # A crowded room (the bot replies privately): the joiner is told at once, the room paced.
                        orders.say(reply_to, self._lobby_text(), self._lobby_state())
                        self._lobby_later(now, orders)
            case Start():
                if self.lobby is None:
                    reply(render.say(language, "no-lobby" if self.game is None else "game-running"))
                else:
                    self._start(now, wall, orders)
            case Stop():
                self._stop(sender, skip_is_direct(**privileged), now, wall, orders, reply)
            case Skip() | Hint() | Repeat():
                self._question_command(command, sender, reply_to, reply, skip_is_direct(**privileged), now, wall,
                                       orders)
            case Score():
                self._scores(reply_to, orders)
            case Lang():
                self.language = command.language
                orders.say(self.jid, render.say(self.language, "lang"), **to_room)
            case Report():
                question = self._last_question
                if question is None:
                    reply(render.say(language, "report-nothing"))
                else:
                    orders.items.append(RecordReport(reporter=sender.real_jid or sender.player,
                                                     question_id=question.id, text=command.text, wall=wall))
                    reply(render.say(language, "report-thanks", question=question.id))
            case _:
                assert_never(command)

    def _question_command(self, command: Skip | Hint | Repeat, sender: Sender, reply_to: str,
                          reply: Callable[[str], None], skip_now: bool, now: float, wall: float,
                          orders: Orders) -> None:
        """!skip, !hint and !repeat: about the open question. Whatever they cannot do is said, never silence; to
        the asker alone where only the asker needs it (a crowd typing !hint at once must not become a crowd of room
        messages). Asked in the room, "alone" is the asker's private address."""
        language, game = self.language, self.game
        asker = self.private_address(sender.nick) if reply_to == self.jid else reply_to
        if game is None and self.lobby is None:
            reply(render.say(language, "no-game"))
        elif game is None or not game.question_open or self._last_ask is None:
            # In the lobby, between questions, getting ready or paused.
            orders.say(asker, render.say(language, "no-question"))
        elif isinstance(command, Repeat):
            self._say_question(self._last_ask, orders, to=asker)
        elif isinstance(command, Skip):
            actions = game.handle(SkipRequested(player=sender.player, direct=skip_now), now)
            if not actions:
                votes, needed = game.skip_votes()  # a vote, short of half the players
                orders.say(asker, render.say(language, "skip-vote", votes=votes, needed=needed))
            self._perform(actions, now, wall, orders)
        else:
            actions = game.handle(HintRequested(), now)
            if not actions:
                orders.say(asker, render.say(language, "no-more-hints" if game.mode is Mode.CLASSIC else "no-hints"))
            self._perform(actions, now, wall, orders)

    def _open_lobby(self, command: Quiz, sender: Sender, wall: float, orders: Orders,
                    reply: Callable[[str], None]) -> None:
        if self.busy:
            reply(render.say(self.language, "game-running"))
            return
        language = command.language or self.language
        if command.category is not None and command.category not in self.banks.categories(language):
            reply(self._no_category(command.category, language))
            return
        game_id = f"{self.jid.partition('@')[0]}-{int(wall)}-{self._rng.randrange(1 << 32):08x}"
        # A host view opens games for the room but never plays in them (docs/quiz.md, the host view).
        occupant = self.occupants.get(sender.nick)
        opener_plays = occupant is None or not occupant.host
        self.lobby = Lobby(mode=command.mode, count=command.count or DEFAULT_QUESTION_COUNT,
                           category=command.category, language=language, opener=sender.player,
                           opener_nick=sender.nick, game_id=game_id,
                           players={sender.player: sender.nick} if opener_plays else {})
        self._opener, self._opener_nick = sender.player, sender.nick
        self._stop_votes = set()
        self._lobby_pacer.reset()  # a new lobby's joins are paced afresh
        names = render.LANGUAGE_NAMES[self.language]
        orders.say(self.jid, render.say(self.language, "lobby", nick=sender.nick, mode=command.mode.value,
                                        count=self.lobby.count, language=names[language],
                                        category=f", {command.category}" if command.category else ""),
                   self._lobby_state(), groupchat=True)

    def _no_category(self, category: str, language: str) -> str:
        """Not "no questions": which categories this question language has, and where the asked one lives."""
        names = render.LANGUAGE_NAMES[self.language]
        here = ", ".join(self.banks.categories(language)) or "-"
        elsewhere = [other for other in names if other != language and category in self.banks.categories(other)]
        if elsewhere:
            return render.say(self.language, "no-category-elsewhere", category=category, other=names[elsewhere[0]],
                              language=names[language], categories=here)
        return render.say(self.language, "no-category", category=category, language=names[language],
                          categories=here)

    def _lobby_text(self) -> str:
        assert self.lobby is not None
        return render.joined_text(self.language, self._lobby_joiner, list(self.lobby.players.values()),
                                  board_size=self._board_size)

    def _announce_lobby(self, now: float, orders: Orders) -> None:
        if self.lobby is None:
            return  # started or stopped meanwhile: the game's own announcements say who plays
        self._lobby_pacer.sent(now, len(self.lobby.players))
        orders.say(self.jid, self._lobby_text(), self._lobby_state(), groupchat=True)

    def _lobby_later(self, now: float, orders: Orders) -> None:
        if self._lobby_pacer.now_or_later(now):
            self._announce_lobby(now, orders)

    def _lobby_state(self) -> etree._Element:
        lobby = self.lobby
        assert lobby is not None
        return payload.game_state(game_id=lobby.game_id, state="lobby", mode=lobby.mode.value, language=lobby.language,
                                  total=lobby.count, opener=lobby.opener_nick, category=lobby.category,
                                  players=[payload.PlayerView(nick=nick, points=0) for nick in lobby.players.values()],
                                  board_size=self._board_size, room=self.view)

    def _start(self, now: float, wall: float, orders: Orders) -> None:
        lobby = self.lobby
        assert lobby is not None
        kinds = [QuestionKind.CHOICE] if lobby.mode is Mode.SIXBREAK else None
        recent = frozenset(self._recent)
        questions = self.banks.pick(lobby.count, language=lobby.language, rng=self._rng, category=lobby.category,
                                    kinds=kinds, exclude_ids=recent)
        if len(questions) < lobby.count:  # too few fresh ones: repeats are better than no game
            questions = self.banks.pick(lobby.count, language=lobby.language, rng=self._rng,
                                        category=lobby.category, kinds=kinds)
        if not questions:
            orders.say(self.jid, render.say(self.language, "no-questions", language=lobby.language,
                                            category=f", {lobby.category}" if lobby.category else ""),
                       groupchat=True)
            return
        self.game = QuizGame(mode=lobby.mode, questions=questions, settings=self._settings, rng=self._rng)
        self.game_id = lobby.game_id
        self._game_language = lobby.language
        orders.items.append(RecordGameStarted(game_id=self.game_id, room=self.jid, mode=lobby.mode.value,
                                              language=lobby.language, opener=lobby.opener, wall=wall))
        for player, nick in lobby.players.items():
            self.game.handle(PlayerJoined(player=player, nick=nick), now)
        if lobby.mode is not Mode.SIXBREAK:  # live and classic: everyone in the room plays, no !join needed
            for occupant in self.occupants.values():
                if not occupant.host:
                    self.game.handle(PlayerJoined(player=occupant.player, nick=occupant.nick), now)
        self.lobby = None
        actions = self.game.handle(Begin(), now)
        text = render.say(self.language, "start", mode=self.game.mode.value, count=len(questions))
        ready: tuple[etree._Element, ...] = ()
        for action in actions:
            if isinstance(action, GetReady):  # one message says both: each is a response to every BOSH player
                seconds = action.until - now
                text += " " + render.say(self.language, "get-ready", seconds=render.seconds_text(seconds))
                ready = (payload.ready(until_wall=wall + seconds, seconds=seconds),)
        orders.say(self.jid, text, self._game_state("running"), *ready, groupchat=True)
        self._perform(actions, now, wall, orders)
        # After the first question, not before it: with thousands of players, their pings and pongs would hold the
        # question up (the pongs are back long before anyone has read and answered it). With a get-ready pause they
        # follow the start message, and are back before the first question, whose answers they then credit too;
        # in a large game the question waits for them (FIRST_QUESTION_WAIT_SECONDS).
        pinged = self._ping_players(orders, everyone=True)
        game = self.game
        pause_ends = game.next_deadline() if game is not None and game.current_question is None else None
        # Cleared for every game: an earlier one stopped during its pause must not hold this one's question.
        self._first_question_wait.clear()
        if pause_ends is not None and len(pinged) > PING_ALL_PLAYERS:
            self._first_question_wait.start(pinged, pause_ends)

    def _stop(self, sender: Sender, direct: bool, now: float, wall: float, orders: Orders,
              reply: Callable[[str], None]) -> None:
        if self.lobby is not None and (direct or sender.player == self.lobby.opener):
            game_id, self.lobby = self.lobby.game_id, None
            self._opener = None
            orders.say(self.jid, render.say(self.language, "end-stopped"),
                       payload.game_state(game_id=game_id, state="none", mode="", language=self.language, total=0,
                                          opener=None, players=[], board_size=self._board_size, room=self.view),
                       groupchat=True)
            return
        if self.game is None:
            reply(render.say(self.language, "no-game"))
            return
        if not direct:
            self._stop_votes.add(sender.player)
            players = max(1, len(self.game.scores()))
            needed = (players + 1) // 2
            if len(self._stop_votes) < needed:
                reply(render.say(self.language, "stop-vote", nick=sender.nick, votes=len(self._stop_votes),
                                 needed=needed))
                return
        self._perform(self.game.handle(StopRequested(), now), now, wall, orders)

    def stop_by_admin(self, now: float, wall: float, orders: Orders) -> None:
        if self.game is not None:
            self._perform(self.game.handle(StopRequested(), now), now, wall, orders)
        self.lobby = None

    def resume(self, game_id: str, snapshot: dict[str, object], questions: dict[str, Question], *, language: str,
               now: float, wall: float, orders: Orders) -> None:
        """A game that was running when the bot stopped: same players, same points, next question soon."""
        self.game = QuizGame.restore(snapshot, questions=questions, settings=self._settings, rng=self._rng,
                                     now=now)
        self.game_id = game_id
        self._game_language = language
        orders.say(self.jid, render.say(self.language, "resumed",
                                        seconds=render.seconds_text(self._settings.reveal_seconds)),
                   self._game_state("running"), groupchat=True)
        self._ping_players(orders, everyone=True)

    # --- game orders to messages ------------------------------------------------------------------

    def _perform(self, actions: list[GameAction], now: float, wall: float, orders: Orders, *,
                 after_break: bool = False) -> None:
        game = self.game
        if game is None or not actions:
            return
        for action in actions:
            match action:
                case GetReady():
                    pass  # the start message says it (`_start`)
                case AskQuestion():
                    question = game.current_question
                    assert question is not None
                    self._last_question, self._last_ask = question, action
                    self._progress.reset()
                    self._first_question_wait.clear()  # asked (a !skip in the pause too): nothing waits now
                    self._ask_deadline_wall = wall + action.duration_seconds
                    self._recent.append(action.question_id)
                    orders.items.append(RecordQuestionAsked(game_id=self.game_id or "", question_id=action.question_id,
                                                            position=action.index, wall=wall))
                    # After a sixbreak pause the game runs again: say so beside the question.
                    extra = (self._game_state("running"),) if after_break else ()
                    self._say_question(action, orders, to=self.jid, extra=extra)
                case ShowHint():
                    orders.say(self.jid, render.hint_text(self.language, action), payload.hint(action),
                               groupchat=True)
                case AwardPoints():
                    question_id = self._last_question.id if self._last_question else ""
                    orders.items.append(RecordAnswer(game_id=self.game_id or "", question_id=question_id,
                                                     player=action.player, correct=True, points=action.points,
                                                     seconds=action.seconds, wall=wall))
                    orders.items.append(RecordPoints(player=action.player, nick=action.nick, points=action.points,
                                                     wall=wall, game_id=self.game_id, why="answer"))
                case Eliminate():
                    orders.say(self.jid, render.say(self.language, "eliminated", nick=action.nick),
                               payload.eliminated(question_id=self._last_question.id if self._last_question else "",
                                                  nick=action.nick), groupchat=True)
                case RevealAnswer():
                    self._progress.cancel()
                    standings = [(nick, points) for _player, nick, points in game.scores()]
                    # Live and sixbreak: the final "N of M answered" rides with the reveal (when the last player
                    # answered, M of M) instead of a message of its own.
                    answered, players = game.progress()
                    counts = (payload.progress(question_id=action.question_id, answered=answered, players=players),
                              ) if game.mode is not Mode.CLASSIC else ()
                    board = self._board_size
                    orders.say(self.jid, render.reveal_text(self.language, action, board_size=board),
                               payload.reveal(action, choices=self._last_ask.choices if self._last_ask else (),
                                              board_size=board),
                               payload.scores(game_id=self.game_id or "", standings=standings, final=False,
                                              board_size=board), *counts,
                               groupchat=True)
                    self._tell_each(game.scores(), final=False, revealed=action, orders=orders)
                    self._ping_players(orders, everyone=False)
                case Pause():
                    seconds = round(action.until - now)
                    orders.say(self.jid, render.say(self.language, "pause", seconds=seconds),
                               payload.pause(until_wall=wall + (action.until - now)), self._game_state("paused"),
                               groupchat=True)
                case GameEnded():
                    self._finish(action, wall, orders)
                    return
        if self.game_id is None:
            return
        # A restart during the get-ready pause resumes the game before its first question.
        if any(isinstance(a, GetReady | AskQuestion | RevealAnswer | Pause) for a in actions):
            orders.items.append(SaveSnapshot(game_id=self.game_id, snapshot=game.snapshot()))
        else:
            for action in actions:
                if isinstance(action, AwardPoints | Eliminate):
                    orders.items.append(SavePlayer(game_id=self.game_id, player=action.player,
                                                   state=game.player_snapshot(action.player)))

    def _say_question(self, ask: AskQuestion, orders: Orders, *, to: str,
                      extra: tuple[etree._Element, ...] = ()) -> None:
        game = self.game
        assert game is not None
        text = render.question_text(self.language, ask, live=game.mode is Mode.LIVE)
        orders.say(to, text, *extra,
                   payload.question(ask, game_id=self.game_id or "", deadline_wall=self._ask_deadline_wall),
                   groupchat=to == self.jid)

    def _finish(self, ended: GameEnded, wall: float, orders: Orders) -> None:
        reason_key = f"end-{ended.reason}"
        standings = [(nick, points) for _player, nick, points in ended.scores]
        parts = [render.say(self.language, reason_key, count=self._settings.unanswered_limit),
                 render.scores_text(self.language, standings, board_size=self._board_size, final=True)]
        orders.say(self.jid, " ".join(parts),
                   payload.scores(game_id=self.game_id or "", standings=standings, final=True,
                                  board_size=self._board_size, reason=ended.reason),
                   self._game_state("ended"), groupchat=True)
        self._tell_each(ended.scores, final=True, revealed=None, orders=orders)
        if self.game_id is not None:
            orders.items.append(RecordGameEnded(game_id=self.game_id, reason=ended.reason, wall=wall))
        self.game = None
        self.game_id = None
        self._progress.cancel()
        self._opener = None
        self._stop_votes = set()

    def _game_state(self, state: str) -> etree._Element:
        game = self.game
        assert game is not None
        players = [payload.PlayerView(nick=nick, points=points, eliminated=game.is_eliminated(player))
                   for player, nick, points in game.scores()]
        return payload.game_state(game_id=self.game_id or "", state=state, mode=game.mode.value,
                                  language=self._game_language, total=game.question_count, opener=self._opener_nick,
                                  players=players, board_size=self._board_size, room=self.view)

    def _scores(self, reply_to: str, orders: Orders) -> None:
        groupchat = reply_to == self.jid
        if self.game is None:
            orders.say(reply_to, render.say(self.language, "no-game"), groupchat=groupchat)
            return
        standings = [(nick, points) for _player, nick, points in self.game.scores()]
        orders.say(reply_to, render.scores_text(self.language, standings, board_size=self._board_size, final=False),
                   payload.scores(game_id=self.game_id or "", standings=standings, final=False,
                                  board_size=self._board_size),
                   groupchat=groupchat)

    def _tell_each(self, scores: Sequence[tuple[str, str, int]], *, final: bool, revealed: RevealAnswer | None,
                   orders: Orders) -> None:
        """Beside a <scores/> to the room: to each player of the game in the room, privately (where <received/>
        goes), its own place, and after a live or sixbreak reveal its own result first — also to the many the
        room's board leaves out."""
        game_id = self.game_id or ""
        verdicts = revealed.verdicts if revealed is not None else {}
        awards = {award.player: award for award in revealed.scorers} if revealed is not None else {}
        ranked = payload.ranks([points for _player, _nick, points in scores])
        for (player, _nick, points), rank in zip(scores, ranked, strict=True):
            occupant = self.occupant_for_player(player)
            if occupant is None or occupant.host:
                continue  # gone: nowhere to say it (its points stay on the board)
            elements: list[etree._Element] = []
            verdict = verdicts.get(player)
            if revealed is not None and verdict is not None:
                award = awards.get(player) if verdict else None
                elements.append(payload.result(
                    question_id=revealed.question_id, game_id=game_id, correct=verdict,
                    streak=award.streak if award is not None else 0,
                    points=award.points if award is not None else None,
                    seconds=award.seconds if award is not None else None))
            elements.append(payload.standing(game_id=game_id, total=points, rank=rank, players=len(scores),
                                             final=final))
            # No body: ordinary clients show nothing; the room's text already told them.
            orders.say(self.private_address(occupant.nick), "", *elements)

    def _ping_players(self, orders: Orders, *, everyone: bool) -> list[str]:
        """Round trips for the latency credit, measured through the room like the questions travel: of every
        player (`everyone`), or after a reveal of a large game those asked longest ago (PING_ROUNDS). Returns the
        players asked."""
        if self.game is None or self.game.mode is Mode.CLASSIC:
            return []
        present = [(player, occupant.nick) for player, _nick, _points in self.game.scores()
                   if (occupant := self.occupant_for_player(player)) is not None]
        if everyone:
            self._pinged.clear()  # a new game or a resumed one: only its players are kept
        elif len(present) > PING_ALL_PLAYERS:
            # Never asked (a late joiner) first, then the oldest round; a stable sort keeps the board's order.
            present.sort(key=lambda player_nick: self._pinged.get(player_nick[0], -1))
            present = present[:math.ceil(len(present) / PING_ROUNDS)]
        for player, nick in present:
            self._pinged[player] = self._ping_round
            orders.items.append(Ping(room=self.jid, nick=nick))
        self._ping_round += 1
        return [player for player, _nick in present]
