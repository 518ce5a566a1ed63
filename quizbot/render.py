"""The human-readable side of every bot message, in German and English.

One table per language with the same keys; a test checks both tables have the same keys and placeholders.
This is also the one place where text that users chose (nicks, command words, arguments) is made fit to be
repeated: without control or format characters (a U+202E would turn the rest of the line around) and at most
`ECHO_CHARS` long.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from quizbot.commands import UsageError
from quizbot.game import CHOICE_KEYS, AskQuestion, AwardPoints, RevealAnswer, ShowHint

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "help": "Quiz commands: !quiz [classic|live|sixbreak] [N] [category] [de|en] opens a game, !join, !start "
        "(opener), !stop, !skip, !hint, !repeat, !score, !top [day|week|all] [N], !stats, !categories [de|en], "
        "!lang de|en, !report TEXT, !submit QUESTION | ANSWER | WRONG1 | WRONG2 | WRONG3 | SOURCE-URL. "
        "Privately to me: !newgame [NAME] (your own room), !invite JID..., !pin NNNNNN (find a game). "
        "Answer by just typing it (in live games also privately to me).",
        "usage": "Usage: {hint}",
        "usage-range": "N from {low} to {high}",
        "usage-chars": "at most {count} characters",
        "usage-at-most": "at most {count}",
        "usage-jid": "JID like name@host",
        "usage-id": "ID: a number from !admin review",
        "usage-submit": "question up to {question} characters, answers up to {answer}, the URL up to {url}",
        "usage-no-arguments": "!{command} takes no arguments",
        "unknown": "Unknown command {command}; try !help",
        "slow-down": "Please slow down: at most {count} commands in {seconds} s.",
        "not-allowed": "Sorry, only the game's opener, room moderators or bot admins may do that.",
        "not-admin": "Sorry, only bot administrators may do that.",
        "banned": "Sorry, you are not allowed to play here.",
        "lobby": "{nick} opened a {mode} quiz: {count} questions{category}, {language}. Type !join to play; "
        "{nick} starts it with !start.",
        "game-running": "A game is already running; !stop ends it.",
        "no-game": "No game is running; open one with !quiz.",
        "no-lobby": "There is no game waiting for players; open one with !quiz.",
        "no-question": "No question is open right now.",
        "no-hints": "This game gives no hints; only classic games do.",
        "no-more-hints": "No more hints for this question.",
        "joined": "{nick} is in. Players: {players}.",
        "joined-first": "{nick} is in. {count} players: {players} and more.",
        "already-joined": "{nick}, you are already in.",
        "no-questions": "No questions for that choice ({language}{category}); see !categories.",
        "no-category": "There is no category {category} in {language}. Categories in {language}: {categories}.",
        "no-category-elsewhere": "{category} is a category in {other}, not in {language}. Categories in "
        "{language}: {categories}.",
        "start": "The {mode} quiz starts: {count} questions. Good luck!",
        "get-ready": "Get ready: the first question comes in {seconds} s.",
        "question": "Question {index}/{total} [{category}] ({seconds} s): {text}",
        "question-live": "Question {index}/{total} [{category}] ({seconds} s, fast answers score more; "
        "you may answer privately to me): {text}",
        "hint": "Hint: {pattern} (now {points} points)",
        "reveal": "The answer was: {answer}.",
        "reveal-none": "Nobody got it.",
        "reveal-scorers": "Points: {scorers}.",
        "reveal-scorers-first": "Points ({count} scored, the first {shown}): {scorers}.",
        "source": "Source: {source}",
        "eliminated": "{nick} is out!",
        "pause": "Break! The next question comes in {seconds} s.",
        "resumed": "The quiz is back after a restart; scores are kept. Next question in {seconds} s.",
        "end-finished": "Game over!",
        "end-stopped": "The game was stopped.",
        "end-unanswered": "The game stopped itself: nobody answered {count} questions in a row.",
        "end-last-standing": "Game over: the last player standing wins!",
        "end-interrupted": "The game was interrupted.",
        "final": "Final scores: {standings}",
        "final-top": "Final scores ({count} players, the top {shown}): {standings}",
        "scores": "Scores: {standings}",
        "scores-top": "Scores ({count} players, the top {shown}): {standings}",
        "scores-none": "No points yet.",
        "top": "Top {count} ({period}): {standings}",
        "top-none": "No scores yet ({period}).",
        "period-day": "today",
        "period-week": "this week",
        "period-all": "all time",
        "stats": "Questions: {questions} in {categories} categories ({language}). Games played: {games}. "
        "Answers given: {answers}, correct: {correct}.",
        "categories": "Categories ({language}): {categories}",
        "lang": "I will speak English in this room.",
        "report-thanks": "Thanks, the report on question {question} is recorded.",
        "report-nothing": "There is no question to report yet.",
        "submit-thanks": "Thanks! Your question is #{id} in the review queue.",
        "skip-vote": "Your vote to skip counts: {votes} of {needed} votes.",
        "stop-vote": "{nick} wants to stop the game ({votes} of {needed} votes).",
        "newgame": "Your room {name} is ready: {room}, game PIN {pin} (you are its owner). Invite friends with "
        "!invite JID... or give them the PIN.",
        "newgame-limit": "You already have a room: {name}, {room}, game PIN {pin}.",
        "room-name": "{nick}'s quiz",
        "public-room-name": "Quiz",
        "pin-found": "Game PIN {pin}: {name}, {room}",
        "pin-unknown": "No game has the PIN {pin}.",
        "invite-sent": "Invited {jids} to {room}.",
        "invite-no-room": "Create your room first with !newgame.",
        "invite-limit": "Too many invitations; please wait a little.",
        "invitation": "{nick} invites you to a quiz in {room}.",
        "private-only": "Please send that to me privately.",
        "room-only": "That command works in a quiz room.",
        "admin-done": "Done: {what}",
        "admin-rooms": "Rooms: {rooms}",
        "admin-banks": "Banks: {banks}",
        "admin-stats": "Rooms: {rooms}, running games: {games}, questions: {questions}, pending submissions: "
        "{pending}, open reports: {reports}.",
        "admin-review": "Pending: {items}",
        "admin-review-none": "No pending submissions.",
        "admin-unknown": "Nothing with that id.",
    },
    "de": {
        "help": "Quiz-Befehle: !quiz [classic|live|sixbreak] [N] [Kategorie] [de|en] eröffnet ein Spiel, "
        "!mitmachen, !los (Eröffner), !stopp, !weiter, !tipp, !nochmal, !punkte, !bestenliste [tag|woche|alle] "
        "[N], !statistik, !kategorien [de|en], !sprache de|en, !melden TEXT, !einreichen FRAGE | ANTWORT | FALSCH1 | "
        "FALSCH2 | FALSCH3 | QUELLEN-URL. Privat an mich: !neuesspiel [NAME] (eigener Raum), !einladen JID..., "
        "!spielpin NNNNNN (ein Spiel finden). "
        "Antworten einfach eintippen (im Live-Spiel auch privat an mich).",
        "usage": "Aufruf: {hint}",
        "usage-range": "N von {low} bis {high}",
        "usage-chars": "höchstens {count} Zeichen",
        "usage-at-most": "höchstens {count}",
        "usage-jid": "JID wie name@host",
        "usage-id": "ID: eine Nummer aus !admin review",
        "usage-submit": "Frage bis {question} Zeichen, Antworten bis {answer}, die URL bis {url}",
        "usage-no-arguments": "!{command} braucht keine Argumente",
        "unknown": "Unbekannter Befehl {command}; siehe !hilfe",
        "slow-down": "Bitte langsamer: höchstens {count} Befehle in {seconds} s.",
        "not-allowed": "Das dürfen nur der Eröffner des Spiels, Raum-Moderatoren oder Bot-Admins.",
        "not-admin": "Das dürfen nur Bot-Administratoren.",
        "banned": "Du darfst hier leider nicht mitspielen.",
        "lobby": "{nick} eröffnet ein {mode}-Quiz: {count} Fragen{category}, {language}. Mit !mitmachen bist du "
        "dabei; {nick} startet mit !los.",
        "game-running": "Es läuft schon ein Spiel; !stopp beendet es.",
        "no-game": "Es läuft kein Spiel; eröffne eins mit !quiz.",
        "no-lobby": "Kein Spiel wartet auf Mitspieler; eröffne eins mit !quiz.",
        "no-question": "Gerade ist keine Frage offen.",
        "no-hints": "Dieses Spiel gibt keine Tipps; nur klassische Spiele tun das.",
        "no-more-hints": "Für diese Frage gibt es keine Tipps mehr.",
        "joined": "{nick} ist dabei. Mitspieler: {players}.",
        "joined-first": "{nick} ist dabei. {count} Mitspieler: {players} und weitere.",
        "already-joined": "{nick}, du bist schon dabei.",
        "no-questions": "Keine Fragen für diese Wahl ({language}{category}); siehe !kategorien.",
        "no-category": "Die Kategorie {category} gibt es auf {language} nicht. Kategorien auf {language}: "
        "{categories}.",
        "no-category-elsewhere": "{category} ist eine Kategorie auf {other}, nicht auf {language}. Kategorien auf "
        "{language}: {categories}.",
        "start": "Das {mode}-Quiz beginnt: {count} Fragen. Viel Glück!",
        "get-ready": "Gleich geht's los: Die erste Frage kommt in {seconds} s.",
        "question": "Frage {index}/{total} [{category}] ({seconds} s): {text}",
        "question-live": "Frage {index}/{total} [{category}] ({seconds} s, schnelle Antworten zählen mehr; "
        "du kannst mir auch privat antworten): {text}",
        "hint": "Tipp: {pattern} (jetzt {points} Punkte)",
        "reveal": "Die Antwort war: {answer}.",
        "reveal-none": "Niemand wusste es.",
        "reveal-scorers": "Punkte: {scorers}.",
        "reveal-scorers-first": "Punkte ({count} richtig, die ersten {shown}): {scorers}.",
        "source": "Quelle: {source}",
        "eliminated": "{nick} ist raus!",
        "pause": "Pause! Die nächste Frage kommt in {seconds} s.",
        "resumed": "Das Quiz geht nach einem Neustart weiter; die Punkte bleiben. Nächste Frage in {seconds} s.",
        "end-finished": "Spiel vorbei!",
        "end-stopped": "Das Spiel wurde beendet.",
        "end-unanswered": "Das Spiel hat sich selbst beendet: {count} Fragen in Folge blieben unbeantwortet.",
        "end-last-standing": "Spiel vorbei: wer als Letzter übrig ist, gewinnt!",
        "end-interrupted": "Das Spiel wurde unterbrochen.",
        "final": "Endstand: {standings}",
        "final-top": "Endstand ({count} Spieler, die besten {shown}): {standings}",
        "scores": "Punktestand: {standings}",
        "scores-top": "Punktestand ({count} Spieler, die besten {shown}): {standings}",
        "scores-none": "Noch keine Punkte.",
        "top": "Top {count} ({period}): {standings}",
        "top-none": "Noch keine Punkte ({period}).",
        "period-day": "heute",
        "period-week": "diese Woche",
        "period-all": "ewige Bestenliste",
        "stats": "Fragen: {questions} in {categories} Kategorien ({language}). Gespielte Spiele: {games}. "
        "Antworten: {answers}, davon richtig: {correct}.",
        "categories": "Kategorien ({language}): {categories}",
        "lang": "Ich spreche in diesem Raum jetzt Deutsch.",
        "report-thanks": "Danke, die Meldung zu Frage {question} ist notiert.",
        "report-nothing": "Es gibt noch keine Frage zum Melden.",
        "submit-thanks": "Danke! Deine Frage ist Nr. {id} in der Prüfwarteschlange.",
        "skip-vote": "Deine Stimme zum Überspringen zählt: {votes} von {needed} Stimmen.",
        "stop-vote": "{nick} möchte das Spiel beenden ({votes} von {needed} Stimmen).",
        "newgame": "Dein Raum {name} ist bereit: {room}, Spiel-PIN {pin} (du bist Besitzer). Lade Freunde ein "
        "mit !einladen JID... oder gib ihnen die PIN.",
        "newgame-limit": "Du hast schon einen Raum: {name}, {room}, Spiel-PIN {pin}.",
        "room-name": "Quiz von {nick}",
        "public-room-name": "Quiz",
        "pin-found": "Spiel-PIN {pin}: {name}, {room}",
        "pin-unknown": "Kein Spiel hat die PIN {pin}.",
        "invite-sent": "{jids} eingeladen in {room}.",
        "invite-no-room": "Erstelle zuerst deinen Raum mit !neuesspiel.",
        "invite-limit": "Zu viele Einladungen; bitte warte etwas.",
        "invitation": "{nick} lädt dich zu einem Quiz in {room} ein.",
        "private-only": "Bitte schick mir das privat.",
        "room-only": "Dieser Befehl funktioniert in einem Quiz-Raum.",
        "admin-done": "Erledigt: {what}",
        "admin-rooms": "Räume: {rooms}",
        "admin-banks": "Fragenkataloge: {banks}",
        "admin-stats": "Räume: {rooms}, laufende Spiele: {games}, Fragen: {questions}, offene Einreichungen: "
        "{pending}, offene Meldungen: {reports}.",
        "admin-review": "Offen: {items}",
        "admin-review-none": "Keine offenen Einreichungen.",
        "admin-unknown": "Dazu gibt es nichts mit dieser Nummer.",
    },
}

# Command lines for usage hints in German (English ones are the hints from quizbot/commands.py).
USAGE_DE = {
    "quiz": "!quiz [classic|live|sixbreak] [N] [Kategorie] [de|en]",
    "top": "!bestenliste [tag|woche|alle] [N]",
    "lang": "!sprache de|en",
    "report": "!melden TEXT",
    "submit": "!einreichen FRAGE | ANTWORT | FALSCH1 | FALSCH2 | FALSCH3 | QUELLEN-URL",
    "invite": "!einladen JID [JID ...]",
    "pin": "!spielpin NNNNNN",
    "newgame": "!neuesspiel [NAME]",
    "categories": "!kategorien [de|en]",
    "admin": "!admin rooms|join RAUM|leave RAUM|stop RAUM|banks|reload|stats|ban JID|unban JID|review|accept ID|"
    "reject ID|give JID N",
}

LANGUAGE_NAMES = {"en": {"en": "English", "de": "German"}, "de": {"en": "Englisch", "de": "Deutsch"}}


ECHO_CHARS = 60
# Placeholders that carry what a user typed or chose; every other value is ours (or already `shown`).
_USER_VALUES = frozenset({"nick", "command", "what", "category"})
_UNPRINTABLE = frozenset({"Cc", "Cf"})  # controls (NUL, BEL, newlines) and format characters (bidi overrides)


def printable(text: str) -> str:
    """`text` without control and format characters."""
    return "".join(char for char in text if unicodedata.category(char) not in _UNPRINTABLE)


def shown(text: str, limit: int = ECHO_CHARS) -> str:
    """User text as the bot repeats it: printable, and at most `limit` characters (an ellipsis marks a cut)."""
    clean = printable(text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def say(language: str, key: str, /, **values: object) -> str:
    table = TEXTS.get(language, TEXTS["en"])
    clean = {name: (shown(value) if name in _USER_VALUES else printable(value)) if isinstance(value, str) else value
             for name, value in values.items()}
    return table[key].format(**clean)


def usage(language: str, error: UsageError) -> str:
    """The one-line usage hint for a malformed command, in the room's language."""
    if language != "de":
        return say(language, "usage", hint=error.hint)
    note = say(language, error.note, **dict(error.values)) if error.note is not None else None
    line = USAGE_DE.get(error.command) if error.note != "usage-no-arguments" else None
    hint = f"{line} ({note})" if line and note else line or note or error.hint
    return say(language, "usage", hint=hint)


def seconds_text(seconds: float) -> str:
    return f"{seconds:g}"


def standings_text(standings: Sequence[tuple[str, int]]) -> str:
    """`1. Ann 20, 2. Ben 10, 2. Cat 10, 4. Dan 5`: equal points share a rank, as in the payload."""
    parts: list[str] = []
    rank = 0
    for position, (nick, points) in enumerate(standings, start=1):
        if position == 1 or points != standings[position - 2][1]:
            rank = position
        parts.append(f"{rank}. {shown(nick)} {points}")
    return ", ".join(parts)


def question_text(language: str, ask: AskQuestion, *, live: bool) -> str:
    head = say(language, "question-live" if live else "question", index=ask.index, total=ask.total,
               category=ask.category, seconds=seconds_text(ask.duration_seconds), text=ask.text)
    lines = [head, *(f"{key}) {choice}" for key, choice in zip(CHOICE_KEYS, ask.choices, strict=False))]
    return "\n".join(lines)


def hint_text(language: str, hint: ShowHint) -> str:
    return say(language, "hint", pattern=hint.pattern, points=hint.points_now)


def joined_text(language: str, nick: str, players: Sequence[str], *, board_size: int) -> str:
    """Who is in the lobby: the first `board_size` and how many in all when that is more."""
    names = ", ".join(map(shown, players[:board_size]))
    if len(players) <= board_size:
        return say(language, "joined", nick=nick, players=names)
    return say(language, "joined-first", nick=nick, players=names, count=len(players))


def scores_text(language: str, standings: Sequence[tuple[str, int]], *, board_size: int, final: bool) -> str:
    """The top `board_size` of `standings` (best first), and how many are ranked when that is not all of them."""
    if not standings:
        return say(language, "scores-none")
    top = standings_text(standings[:board_size])
    if len(standings) <= board_size:
        return say(language, "final" if final else "scores", standings=top)
    return say(language, "final-top" if final else "scores-top", count=len(standings), shown=board_size, standings=top)


def reveal_text(language: str, revealed: RevealAnswer, *, board_size: int) -> str:
    """The answer and the first `board_size` scorers (with how many scored in all when that is more)."""
    parts = [say(language, "reveal", answer=revealed.answer)]
    first = ", ".join(_scorer(a) for a in revealed.scorers[:board_size])
    if len(revealed.scorers) > board_size:
        parts.append(say(language, "reveal-scorers-first", count=len(revealed.scorers), shown=board_size,
                         scorers=first))
    elif revealed.scorers:
        parts.append(say(language, "reveal-scorers", scorers=first))
    else:
        parts.append(say(language, "reveal-none"))
    parts.append(say(language, "source", source=revealed.source))
    return " ".join(parts)


def _scorer(award: AwardPoints) -> str:
    return f"{shown(award.nick)} +{award.points} ({award.seconds:.1f} s)"
