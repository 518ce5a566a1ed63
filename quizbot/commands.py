"""Chat command grammar and permissions (pure): `!quiz live 10 geografie de` in, a typed command out.

Every command has an English name and German aliases. Anything malformed or unknown becomes a `UsageError`
carrying a one-line hint, never an exception and never silence. Permissions are decided from the real
sender (bare JID for bot admins, room role for moderators), never from a nick.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("classic", "live", "sixbreak")
LANGUAGES = ("de", "en")
PERIODS = ("day", "week", "all")
PERIOD_ALIASES = {"tag": "day", "heute": "day", "woche": "week", "alle": "all", "immer": "all"}
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
    "admin": ("admin",),
}
_BY_ALIAS = {alias: name for name, aliases in ALIASES.items() for alias in aliases}

USAGE = {
    "quiz": "!quiz [classic|live|sixbreak] [N] [category] [de|en]",
    "top": "!top [day|week|all] [N]",
    "lang": "!lang de|en",
    "report": "!report TEXT",
    "submit": "!submit QUESTION | ANSWER | WRONG1 | WRONG2 | WRONG3 | SOURCE-URL",
    "invite": "!invite JID [JID ...]",
    "admin": "!admin rooms|join ROOM|leave ROOM|stop ROOM|banks|reload|stats|ban JID|unban JID|review|"
    "accept ID|reject ID|give JID N",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    name: str  # the canonical English name
    mode: str | None = None  # quiz
    count: int | None = None  # quiz, top
    category: str | None = None  # quiz
    language: str | None = None  # quiz, lang
    period: str | None = None  # top
    text: str | None = None  # report
    fields: tuple[str, ...] = ()  # submit: question, answer, three wrong choices, source
    jids: tuple[str, ...] = ()  # invite
    action: str | None = None  # admin
    arguments: tuple[str, ...] = ()  # admin


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageError:
    command: str
    hint: str


def parse(text: str, *, prefix: str = "!", max_count: int = 50) -> Command | UsageError | None:
    """None when the text is not a command at all (ordinary chat, or an answer)."""
    if not text.startswith(prefix) or len(text) == len(prefix):
        return None
    word, _, rest = text[len(prefix) :].strip().partition(" ")
    name = _BY_ALIAS.get(word.casefold())
    if name is None:
        return UsageError(command=word, hint="unknown command; try !help")
    arguments = rest.split()
    match name:
        case "quiz":
            return _quiz(arguments, max_count)
        case "top":
            return _top(arguments, max_count)
        case "lang":
            if len(arguments) != 1 or arguments[0].casefold() not in LANGUAGES:
                return UsageError(command=name, hint=USAGE["lang"])
            return Command(name=name, language=arguments[0].casefold())
        case "report":
            return (
                Command(name=name, text=rest.strip())
                if rest.strip()
                else UsageError(command=name, hint=USAGE["report"])
            )
        case "submit":
            fields = tuple(field.strip() for field in rest.split("|"))
            if len(fields) != 6 or not all(fields) or not fields[5].startswith(("http://", "https://")):
                return UsageError(command=name, hint=USAGE["submit"])
            return Command(name=name, fields=fields)
        case "invite":
            if not arguments or not all("@" in jid and "/" not in jid for jid in arguments):
                return UsageError(command=name, hint=USAGE["invite"])
            return Command(name=name, jids=tuple(arguments))
        case "admin":
            return _admin(arguments)
        case _:
            if arguments:
                return UsageError(command=name, hint=f"!{name} takes no arguments")
            return Command(name=name)


def _quiz(arguments: list[str], max_count: int) -> Command | UsageError:
    mode = count = category = language = None
    for argument in arguments:
        lowered = argument.casefold()
        if lowered in MODES and mode is None:
            mode = lowered
        elif lowered.isdigit() and count is None:
            count = int(lowered)
            if not 1 <= count <= max_count:
                return UsageError(command="quiz", hint=f"between 1 and {max_count} questions")
        elif lowered in LANGUAGES and language is None:
            language = lowered
        elif category is None and not lowered.isdigit() and lowered not in MODES and lowered not in LANGUAGES:
            category = lowered
        else:
            return UsageError(command="quiz", hint=USAGE["quiz"])
    return Command(name="quiz", mode=mode or "classic", count=count, category=category, language=language)


def _top(arguments: list[str], max_count: int) -> Command | UsageError:
    period = count = None
    for argument in arguments:
        lowered = PERIOD_ALIASES.get(argument.casefold(), argument.casefold())
        if lowered in PERIODS and period is None:
            period = lowered
        elif lowered.isdigit() and count is None and 1 <= int(lowered) <= max_count:
            count = int(lowered)
        else:
            return UsageError(command="top", hint=USAGE["top"])
    return Command(name="top", period=period or "all", count=count or 10)


def _admin(arguments: list[str]) -> Command | UsageError:
    if not arguments or arguments[0].casefold() not in ADMIN_ACTIONS:
        return UsageError(command="admin", hint=USAGE["admin"])
    action, rest = arguments[0].casefold(), tuple(arguments[1:])
    if len(rest) != ADMIN_ACTIONS[action] or (action == "give" and not rest[1].lstrip("-").isdigit()):
        return UsageError(command="admin", hint=USAGE["admin"])
    return Command(name="admin", action=action, arguments=rest)


# Who may run what. Opener: who opened the current game; moderator: room role; admin: bot admin by bare JID.
_PRIVILEGED_GAME_COMMANDS = frozenset({"start"})


def may_run(command: Command, *, is_admin: bool, is_opener: bool, is_moderator: bool) -> bool:
    if command.name == "admin":
        return is_admin
    if command.name in _PRIVILEGED_GAME_COMMANDS:
        return is_opener or is_moderator or is_admin
    return True  # stop and skip by others become votes; the game machine counts them


def skip_is_direct(*, is_admin: bool, is_opener: bool, is_moderator: bool) -> bool:
    """`!skip`/`!stop` act at once for the opener, room moderators and bot admins; others vote (50 %)."""
    return is_admin or is_opener or is_moderator
