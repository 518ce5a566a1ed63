"""What the XMPP adapter tells the bot (facts) and what the bot tells the adapter to do (orders).

Storage is an order too: `StorageOrder`s are written by the adapter (quizbot/store.py `QuizStore.perform`), `Read`s
are answered from the store and come back as facts (`LeaderboardRead`, ...); `BotMemory` is what the store
gives the bot once, at start.

Facts carry only what the protocol proved: the real bare JID of an occupant is present only when the room
disclosed it (the bot is a moderator, or the room is non-anonymous); the occupant-id only when the room
supports XEP-0421.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from quizbot.payload import AnswerPayload
from quizbot.questions import Question, QuestionKind

# --- facts ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomEntered:
    """The bot's own join completed (self-presence, status 110)."""

    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomLeft:
    """The bot is out of the room (kicked, banned, room destroyed, or the connection dropped)."""

    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OccupantPresence:
    room: str
    nick: str
    available: bool
    real_jid: str | None = None  # bare
    occupant_id: str | None = None
    role: str = "participant"
    affiliation: str = "none"
    new_nick: str | None = None  # status 303: the occupant is now known under this nick
    host: bool = False  # a <host/> quiz payload in its presence: a projector's host view watches, never plays


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMessage:
    room: str
    nick: str
    body: str
    answer: AnswerPayload | None = None
    own: bool = False
    reflected_question: str | None = None  # the id in our own <question/>, seen coming back from the room
    quiz_payloads: tuple[str, ...] = ()  # local names of the urn:boshcm:quiz:0 elements it carries
    command: str | None = None  # a <command/> payload as typed after the prefix: "quiz live 10"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateMessage:
    """A direct chat message. `room`/`nick` are set when it came through a room (a MUC private message)."""

    sender: str  # full JID as it arrived
    body: str
    answer: AnswerPayload | None = None
    room: str | None = None
    nick: str | None = None
    occupant_id: str | None = None  # XEP-0421, set by the room on a message through it
    quiz_payloads: tuple[str, ...] = ()  # local names of the urn:boshcm:quiz:0 elements it carries
    command: str | None = None  # a <command/> payload as typed after the prefix: "score"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTrip:
    room: str
    nick: str
    seconds: float


# --- what the bot remembered: read once at start, then kept in memory --------------------------------

RECENT_QUESTIONS = 500  # question ids remembered per room, so the next quiz there asks fresh ones


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    id: int
    submitter: str
    language: str
    question: str
    answer: str
    wrong: tuple[str, ...]
    source: str

    def as_question(self) -> Question:
        return Question(id=f"sub-{self.id}", language=self.language, category="community", difficulty=2,
                        kind=QuestionKind.CHOICE, question=self.question, answer=self.answer, wrong=self.wrong,
                        source=self.source)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredGame:
    id: str
    room: str
    snapshot: dict[str, Any]
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedRoom:
    """A room joined by `!admin join` or made by `!newgame`: rejoined after a restart."""

    room: str
    language: str
    owner: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BotMemory:
    """Everything the bot needs from its store, read once before it starts (QuizStore.memory()); from then on the
    bot keeps it in memory and tells the store what changed with storage orders."""

    banned: frozenset[str] = frozenset()
    rooms: tuple[SavedRoom, ...] = ()
    pins: tuple[tuple[str, str, str], ...] = ()  # (room, pin, name)
    running: tuple[StoredGame, ...] = ()  # games a restart interrupted, resumed when their room is entered
    accepted: tuple[Submission, ...] = ()  # community questions asked beside the banks
    next_submission: int = 1
    recent: dict[str, tuple[str, ...]] = field(default_factory=dict)  # room -> question ids asked lately, newest last


# --- reads answered: the adapter asked the store (a Read* order) and feeds back what it found ----------


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderboardRead:
    query: ReadLeaderboard
    board: tuple[tuple[str, str, int], ...]  # (player, latest nick, points), best first


@dataclass(frozen=True, slots=True, kw_only=True)
class CountsRead:
    query: ReadCounts
    counts: dict[str, int]  # games, answers, correct, pending, reports


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionsRead:
    query: ReadSubmissions
    pending: tuple[Submission, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionReviewed:
    query: ReviewSubmission
    submission: Submission | None  # None: no pending submission has that id


Fact = (RoomEntered | RoomLeft | OccupantPresence | RoomMessage | PrivateMessage | RoundTrip
        | LeaderboardRead | CountsRead | SubmissionsRead | SubmissionReviewed)

# --- orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    to: str  # a room's bare JID (groupchat) or a full/bare JID or room/nick (chat)
    body: str
    payload: tuple[etree._Element, ...] = ()
    groupchat: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinRoom:
    room: str
    public: bool = True  # configuration to apply if the join creates the room
    owner: str | None = None  # bare JID made owner once the bot is in (rooms made by !newgame)
    name: str = "Quiz"  # muc#roomconfig_roomname, if the join creates the room


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveRoom:
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    """Both kinds: XEP-0249 direct (to the invitee) and XEP-0045 §7.8.2 mediated (through the room)."""

    room: str
    jid: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """Measure an occupant's round trip through the room (XEP-0199 ping to room/nick); answer with RoundTrip."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadBanks:
    """Read the question banks again; the adapter calls QuizBot.set_banks with the result."""

    reply_to: str


# --- storage orders: what must survive a restart; the adapter writes them (QuizStore.perform) ---------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordGameStarted:
    game_id: str
    room: str
    mode: str
    language: str
    opener: str | None
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordQuestionAsked:
    game_id: str
    question_id: str
    position: int
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordAnswer:
    """One row per player and question, the first counted attempt (the store ignores a repeat)."""

    game_id: str
    question_id: str
    player: str
    correct: bool
    points: int
    seconds: float | None
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPoints:
    """A line in the points ledger, which the leaderboards sum. `nick` None: the nick the ledger last knew for
    the player, else the JID's localpart (`!admin give` to someone not in a room)."""

    player: str
    nick: str | None
    points: int
    wall: float
    game_id: str | None
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveSnapshot:
    """The whole running game, at question boundaries; it supersedes the player rows saved since."""

    game_id: str
    snapshot: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SavePlayer:
    """One player's standing after an answer: O(1) per answer instead of the whole game."""

    game_id: str
    player: str
    state: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordGameEnded:
    game_id: str
    reason: str
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordSubmission:
    submission: Submission
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReport:
    reporter: str
    question_id: str
    text: str
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveBan:
    jid: str
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveBan:
    jid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveRoom:
    room: SavedRoom
    wall: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveRoom:
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SavePin:
    """A room's game PIN and readable name, kept for the room's life (across restarts)."""

    room: str
    pin: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemovePin:
    room: str


StorageOrder = (RecordGameStarted | RecordQuestionAsked | RecordAnswer | RecordPoints | SaveSnapshot | SavePlayer
                | RecordGameEnded | RecordSubmission | RecordReport | SaveBan | RemoveBan | SaveRoom | RemoveRoom
                | SavePin | RemovePin)

# --- reads: the store's answer comes back as a fact (LeaderboardRead, ...) with the reply's address ----


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """Where and in which language the answer to a read goes."""

    to: str
    language: str
    groupchat: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLeaderboard:
    """`!top`: the ledger summed over a period (answered with LeaderboardRead)."""

    period: str
    count: int
    wall: float
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadCounts:
    """`!stats` and `!admin stats` (answered with CountsRead)."""

    reply: Reply
    admin: bool = False
    room: str | None = None  # `!stats` in or through a room: its question pool, community questions included


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadSubmissions:
    """`!admin review`: the pending submissions (answered with SubmissionsRead)."""

    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewSubmission:
    """`!admin accept|reject N`: a write whose answer matters (SubmissionReviewed: the submission, if pending)."""

    id: int
    accept: bool
    what: str  # "accept 3", for the reply
    reply: Reply


Read = ReadLeaderboard | ReadCounts | ReadSubmissions | ReviewSubmission

Order = Send | JoinRoom | LeaveRoom | Invite | Ping | ReloadBanks | StorageOrder | Read


@dataclass(slots=True)
class Orders:
    items: list[Order] = field(default_factory=list)

    def say(self, to: str, body: str, *payload: etree._Element, groupchat: bool = False) -> None:
        self.items.append(Send(to=to, body=body, payload=payload, groupchat=groupchat))
