"""Chat command grammar and permissions (pure): `!quiz live 10 geografie de` in, a typed command out.

A command is one of a closed union of frozen dataclasses, one per command with exactly the arguments it takes
(`Quiz(mode=Mode.LIVE, count=10, ...)`, `Admin(action=AdminGive(jid=..., points=50))`); the bot and the room
dispatch with `match` on the class and mypy checks with `assert_never` that every command is handled.

Every command has an English name and German aliases. Anything malformed or unknown becomes a `UsageError`
carrying a one-line hint, never an exception and never silence. Every argument is bounded: numbers are ASCII
digits within a range (checked on the text before any conversion, so `!top all <10,000 digits>` is a usage
hint), texts by length, JIDs by RFC 7622. Permissions are decided from the real sender (bare JID for bot
admins, room role for moderators), never from a nick.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from enum import Enum
from typing import ClassVar

from boshcm.jid import JID, InvalidJID
from quizbot.game import Mode
from quizbot.names import is_pin

LANGUAGES = ("de", "en")


class Period(Enum):
    """A leaderboard's time span; the values are the words `!top` takes and the `<top period=.../>` payload."""

    DAY = "day"
    WEEK = "week"
    ALL = "all"


PERIOD_ALIASES = {"tag": "day", "heute": "day", "woche": "week", "alle": "all", "immer": "all"}
DEFAULT_TOP_COUNT = 10
ADMIN_ACTIONS = {
    "rooms": 0,
    "join": 1,
    "leave": 1,
    "stop": 1,
    "banks": 0,
    "reload": 0,
    "stats": 0,
    "ban": 1,
    "unban": 1,
    "review": 0,
    "accept": 1,
    "reject": 1,
    "give": 2,
}

ALIASES = {
    "help": ("help", "hilfe", "?"),
    "quiz": ("quiz", "spiel"),
    "join": ("join", "mitmachen", "dabei"),
    "start": ("start", "los"),
    "stop": ("stop", "stopp", "ende"),
    "skip": ("skip", "weiter", "überspringen"),
    "hint": ("hint", "tipp", "hinweis"),
    "repeat": ("repeat", "wiederholen", "nochmal"),
    "score": ("score", "punkte", "stand"),
    "top": ("top", "bestenliste"),
    "stats": ("stats", "statistik"),
    "categories": ("categories", "kategorien"),
    "lang": ("lang", "sprache"),
    "report": ("report", "melden"),
    "submit": ("submit", "einreichen"),
    "newgame": ("newgame", "neuesspiel"),
    "invite": ("invite", "einladen"),
    "pin": ("pin", "spielpin"),
    "admin": ("admin",),
}
_BY_ALIAS = {alias: name for name, aliases in ALIASES.items() for alias in aliases}

# Bounds on arguments (docs/security.md "The quiz").
MAX_COMMAND_ECHO_CHARS = 30  # of an unknown command word, repeated in the reply
MAX_CATEGORY_CHARS = 40
MAX_REPORT_CHARS = 500
MAX_QUESTION_CHARS = 300
MAX_ANSWER_CHARS = 100  # the answer and each wrong choice of a submission
MAX_URL_CHARS = 500
MAX_INVITES = 10  # JIDs in one !invite
MAX_NAME_CHARS = 40  # the name in !newgame NAME (the room is called "NAME's quiz")
MAX_JID_CHARS = 320
MAX_GIVE_POINTS = 100_000  # |N| in !admin give
MAX_ID = 999_999_999  # submission ids in !admin accept/reject
_NUMBER = re.compile(r"-?[0-9]{1,12}")  # ASCII only: int() also reads "١٢", and "²" passes str.isdigit()

USAGE = {
    "quiz": "!quiz [classic|live|sixbreak] [N] [category] [de|en]",
    "top": "!top [day|week|all] [N]",
    "lang": "!lang de|en",
    "report": "!report TEXT",
    "submit": "!submit QUESTION | ANSWER | WRONG1 | WRONG2 | WRONG3 | SOURCE-URL",
    "invite": "!invite JID [JID ...]",
    "pin": "!pin NNNNNN",
    "newgame": "!newgame [NAME]",
    "categories": "!categories [de|en]",
    "admin": "!admin rooms|join ROOM|leave ROOM|stop ROOM|banks|reload|stats|ban JID|unban JID|review|"
    "accept ID|reject ID|give JID N",
}


def number(text: str, low: int, high: int) -> int | None:
    """The integer `text` spells in ASCII digits, if it is within [low, high]; never raises."""
    if not _NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def bare_jid(text: str) -> str | None:
    """`text` as a normalised bare JID with a localpart (an account or a room), else None."""
    if len(text) > MAX_JID_CHARS:
        return None
    try:
        jid = JID.parse(text)
    except InvalidJID:
        return None
    return str(jid) if jid.local is not None and jid.resource is None else None


# --- the commands: one class each ------------------------------------------------------------------
# Languages are "de" or "en" (LANGUAGES); texts and JIDs are already bounded and normalised by `parse`.


@dataclass(frozen=True, slots=True, kw_only=True)
class Help:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Quiz:
    """Open a lobby. None: the room's language, no category, the default number of questions."""

    mode: Mode = Mode.CLASSIC
    count: int | None = None
    category: str | None = None  # casefolded
    language: str | None = None  # of the questions


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Skip:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Repeat:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Top:
    period: Period
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Categories:
    language: str | None = None  # None: the room's language


@dataclass(frozen=True, slots=True, kw_only=True)
class Lang:
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit:
    question: str
    answer: str
    wrong: tuple[str, str, str]
    source: str  # an http(s) URL


@dataclass(frozen=True, slots=True, kw_only=True)
class NewGame:
    name: str | None = None  # whom to name the room after; None: the requester's nick


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    jids: tuple[str, ...]  # bare JIDs, 1 to MAX_INVITES


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    pin: str  # six digits


# `!admin ACTION ...`: one class per action; `name` is the action word (a key of ADMIN_ACTIONS).


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminRooms:
    name: ClassVar[str] = "rooms"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminJoin:
    name: ClassVar[str] = "join"
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminLeave:
    name: ClassVar[str] = "leave"
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminStop:
    name: ClassVar[str] = "stop"
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminBanks:
    name: ClassVar[str] = "banks"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminReload:
    name: ClassVar[str] = "reload"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminStats:
    name: ClassVar[str] = "stats"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminBan:
    name: ClassVar[str] = "ban"
    jid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminUnban:
    name: ClassVar[str] = "unban"
    jid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminReview:
    name: ClassVar[str] = "review"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminAccept:
    name: ClassVar[str] = "accept"
    id: int  # a submission


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminReject:
    name: ClassVar[str] = "reject"
    id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminGive:
    name: ClassVar[str] = "give"
    jid: str
    points: int  # may be negative


AdminAction = (AdminRooms | AdminJoin | AdminLeave | AdminStop | AdminBanks | AdminReload | AdminStats | AdminBan
               | AdminUnban | AdminReview | AdminAccept | AdminReject | AdminGive)


@dataclass(frozen=True, slots=True, kw_only=True)
class Admin:
    action: AdminAction


def admin_line(action: AdminAction) -> str:
    """The action as a normalised command line after `!admin` (`give bob@localhost 50`), for replies."""
    return " ".join([action.name, *(str(getattr(action, field.name)) for field in fields(action))])


# Commands for a room (the bot hands these to quizbot/room.py), the bot's private ones, and the rest.
RoomCommand = Quiz | Join | Start | Stop | Skip | Hint | Repeat | Score | Lang | Report
PrivateCommand = NewGame | Invite | Pin
Command = Help | RoomCommand | Top | Stats | Categories | Submit | PrivateCommand | Admin

_WITHOUT_ARGUMENTS: dict[str, type[Help | Join | Start | Stop | Skip | Hint | Repeat | Score | Stats]] = {
    "help": Help, "join": Join, "start": Start, "stop": Stop, "skip": Skip, "hint": Hint, "repeat": Repeat,
    "score": Score, "stats": Stats,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageError:
    command: str
    hint: str  # in English; quizbot/render.py says it in German from the command, `note` and `values`
    note: str | None = None  # a quizbot/render.py key: what was out of bounds
    values: tuple[tuple[str, int | str], ...] = ()


def parse(text: str, *, prefix: str = "!", max_count: int = 50) -> Command | UsageError | None:
    """None when the text is not a command at all (ordinary chat, or an answer)."""
    if not text.startswith(prefix) or len(text) == len(prefix):
        return None
    word, _, rest = text[len(prefix) :].strip().partition(" ")
    name = _BY_ALIAS.get(word.casefold())
    if name is None:
        return UsageError(command=word[:MAX_COMMAND_ECHO_CHARS], hint="unknown command; try !help")
    arguments = rest.split()
    match name:
        case "quiz":
            return _quiz(arguments, max_count)
        case "top":
            return _top(arguments, max_count)
        case "lang":
            if len(arguments) != 1 or arguments[0].casefold() not in LANGUAGES:
                return UsageError(command=name, hint=USAGE["lang"])
            return Lang(language=arguments[0].casefold())
        case "report":
            if not rest.strip():
                return UsageError(command=name, hint=USAGE["report"])
            if len(rest.strip()) > MAX_REPORT_CHARS:
                return UsageError(command=name, hint=f"{USAGE['report']} (at most {MAX_REPORT_CHARS} characters)",
                                  note="usage-chars", values=(("count", MAX_REPORT_CHARS),))
            return Report(text=rest.strip())
        case "submit":
            return _submit(rest)
        case "newgame":
            name_text = " ".join(arguments)
            if len(name_text) > MAX_NAME_CHARS:
                return UsageError(command=name, hint=f"{USAGE['newgame']} (at most {MAX_NAME_CHARS} characters)",
                                  note="usage-chars", values=(("count", MAX_NAME_CHARS),))
            return NewGame(name=name_text or None)
        case "pin":
            if len(arguments) != 1 or not is_pin(arguments[0]):
                return UsageError(command=name, hint=USAGE["pin"])
            return Pin(pin=arguments[0])
        case "categories":
            if len(arguments) > 1 or (arguments and arguments[0].casefold() not in LANGUAGES):
                return UsageError(command=name, hint=USAGE["categories"])
            return Categories(language=arguments[0].casefold() if arguments else None)
        case "invite":
            jids = [bare_jid(jid) for jid in arguments]
            if not arguments or len(arguments) > MAX_INVITES or None in jids:
                return UsageError(command=name, hint=USAGE["invite"] + f" (at most {MAX_INVITES})",
                                  note="usage-at-most", values=(("count", MAX_INVITES),))
            return Invite(jids=tuple(jid for jid in jids if jid is not None))
        case "admin":
            return _admin(arguments)
        case _:
            if arguments:
                return UsageError(command=name, hint=f"!{name} takes no arguments", note="usage-no-arguments",
                                  values=(("command", name),))
            return _WITHOUT_ARGUMENTS[name]()


_MODES = {mode.value: mode for mode in Mode}
_PERIODS = {period.value: period for period in Period}


def _quiz(arguments: list[str], max_count: int) -> Quiz | UsageError:
    mode: Mode | None = None
    count = category = language = None
    for argument in arguments:
        lowered = argument.casefold()
        if lowered in _MODES and mode is None:
            mode = _MODES[lowered]
        elif _looks_numeric(lowered) and count is None:
            count = number(lowered, 1, max_count)
            if count is None:
                return UsageError(command="quiz", hint=f"{USAGE['quiz']} (N from 1 to {max_count})",
                                  note="usage-range", values=(("low", 1), ("high", max_count)))
        elif lowered in LANGUAGES and language is None:
            language = lowered
        elif (category is None and not _looks_numeric(lowered) and lowered not in _MODES and lowered not in LANGUAGES
              and len(lowered) <= MAX_CATEGORY_CHARS):
            category = lowered
        else:
            return UsageError(command="quiz", hint=USAGE["quiz"])
    return Quiz(mode=mode or Mode.CLASSIC, count=count, category=category, language=language)


def _top(arguments: list[str], max_count: int) -> Top | UsageError:
    period: Period | None = None
    count = None
    for argument in arguments:
        lowered = PERIOD_ALIASES.get(argument.casefold(), argument.casefold())
        if lowered in _PERIODS and period is None:
            period = _PERIODS[lowered]
        elif count is None and (wanted := number(lowered, 1, max_count)) is not None:
            count = wanted
        else:
            return UsageError(command="top", hint=f"{USAGE['top']} (N from 1 to {max_count})", note="usage-range",
                              values=(("low", 1), ("high", max_count)))
    return Top(period=period or Period.ALL, count=count or DEFAULT_TOP_COUNT)


_ADMIN_PLAIN: dict[str, type[AdminRooms | AdminBanks | AdminReload | AdminStats | AdminReview]] = {
    cls.name: cls for cls in (AdminRooms, AdminBanks, AdminReload, AdminStats, AdminReview)
}


def _admin(arguments: list[str]) -> Admin | UsageError:
    if not arguments or arguments[0].casefold() not in ADMIN_ACTIONS:
        return UsageError(command="admin", hint=USAGE["admin"])
    word, rest = arguments[0].casefold(), arguments[1:]
    if len(rest) != ADMIN_ACTIONS[word]:
        return UsageError(command="admin", hint=USAGE["admin"])
    if word in _ADMIN_PLAIN:
        return Admin(action=_ADMIN_PLAIN[word]())
    if word in ("accept", "reject"):
        submission = number(rest[0], 1, MAX_ID)
        if submission is None:
            return UsageError(command="admin", hint=f"!admin {word} ID (a number from !admin review)",
                              note="usage-id")
        return Admin(action=AdminAccept(id=submission) if word == "accept" else AdminReject(id=submission))
    jid = bare_jid(rest[0])
    if jid is None:
        return UsageError(command="admin", hint=f"!admin {word} JID (like name@host)", note="usage-jid")
    action: AdminAction
    match word:
        case "join":
            action = AdminJoin(room=jid)
        case "leave":
            action = AdminLeave(room=jid)
        case "stop":
            action = AdminStop(room=jid)
        case "ban":
            action = AdminBan(jid=jid)
        case "unban":
            action = AdminUnban(jid=jid)
        case _:  # give, the only action left
            points = number(rest[1], -MAX_GIVE_POINTS, MAX_GIVE_POINTS)
            if points is None:
                return UsageError(command="admin", note="usage-range", values=(("low", -MAX_GIVE_POINTS),
                                                                                ("high", MAX_GIVE_POINTS)),
                                  hint=f"!admin give JID N (N from -{MAX_GIVE_POINTS} to {MAX_GIVE_POINTS})")
            action = AdminGive(jid=jid, points=points)
    return Admin(action=action)


def _looks_numeric(text: str) -> bool:
    """Meant as a number (so not a category), whether or not it is one we accept."""
    return any(char.isdigit() for char in text) and not any(char.isalpha() for char in text)


def _submit(rest: str) -> Submit | UsageError:
    parts = tuple(part.strip() for part in rest.split("|"))
    if len(parts) != 6 or not all(parts) or not parts[5].startswith(("http://", "https://")):
        return UsageError(command="submit", hint=USAGE["submit"])
    limits = (MAX_QUESTION_CHARS, *(MAX_ANSWER_CHARS,) * 4, MAX_URL_CHARS)
    if any(len(part) > limit for part, limit in zip(parts, limits, strict=True)):
        return UsageError(command="submit", note="usage-submit", values=(
            ("question", MAX_QUESTION_CHARS), ("answer", MAX_ANSWER_CHARS), ("url", MAX_URL_CHARS)),
                          hint=f"!submit (question up to {MAX_QUESTION_CHARS} characters, "
                          f"answers up to {MAX_ANSWER_CHARS}, the URL up to {MAX_URL_CHARS})")
    question, answer, wrong1, wrong2, wrong3, source = parts
    return Submit(question=question, answer=answer, wrong=(wrong1, wrong2, wrong3), source=source)


# Who may run what. Opener: who opened the current game; moderator: room role; admin: bot admin by bare JID.


def may_run(command: Command, *, is_admin: bool, is_opener: bool, is_moderator: bool) -> bool:
    match command:
        case Admin():
            return is_admin
        case Start():
            return is_opener or is_moderator or is_admin
        case _:
            return True  # stop and skip by others become votes; the game machine counts them


def skip_is_direct(*, is_admin: bool, is_opener: bool, is_moderator: bool) -> bool:
    """`!skip`/`!stop` act at once for the opener, room moderators and bot admins; others vote (50 %)."""
    return is_admin or is_opener or is_moderator
