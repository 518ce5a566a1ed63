"""The bot's memory in SQLite (WAL): games, questions asked, answers, the points ledger, submissions, reports,
bans, rooms and running-game snapshots.

Points are written the moment they are awarded, so the leaderboards never lose a point to a crash. A running
game is saved whole at every question boundary and player by player after every answer, so a restarted bot
resumes it with every point.
Leaderboards sum the ledger by player over a UTC calendar day, ISO week (from Monday) or all time.

The bot never calls it (quizbot/bot.py is pure): `memory()` is read once before the bot starts, the adapter
(quizbot/client.py) performs the bot's storage orders with `perform()` and answers its reads (`!top`, `!stats`,
`!admin review|accept|reject`) with `read()`, whose fact it feeds back to the bot.

A write the disk refuses (full, read-only) is not lost and does not stop the game: it is kept in memory, in
order, and written with the next write once space returns (at most MAX_UNSAVED writes; reads meanwhile do
not see them).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, assert_never

from boshcm.database import StorageError, open_database, transaction
from quizbot.events import (
    RECENT_QUESTIONS,
    BotMemory,
    CountsRead,
    LeaderboardRead,
    Read,
    ReadCounts,
    ReadLeaderboard,
    ReadSubmissions,
    RecordAnswer,
    RecordGameEnded,
    RecordGameStarted,
    RecordPoints,
    RecordQuestionAsked,
    RecordReport,
    RecordSubmission,
    RemoveBan,
    RemovePin,
    RemoveRoom,
    ReviewSubmission,
    SaveBan,
    SavedRoom,
    SavePin,
    SavePlayer,
    SaveRoom,
    SaveSnapshot,
    StorageOrder,
    StoredGame,
    Submission,
    SubmissionReviewed,
    SubmissionsRead,
)

__all__ = ["MAX_UNSAVED", "PERIODS", "QuizStore", "StoredGame", "Submission", "period_start"]

log = logging.getLogger(__name__)

MAX_UNSAVED = 10_000
_Write = tuple[str, tuple[object, ...]]

# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
MIGRATIONS = ("""
CREATE TABLE IF NOT EXISTS games (
    id TEXT PRIMARY KEY, room TEXT NOT NULL, mode TEXT NOT NULL, language TEXT NOT NULL, opener TEXT,
    started_at REAL NOT NULL, ended_at REAL, reason TEXT, snapshot TEXT);
CREATE TABLE IF NOT EXISTS asked (
    game_id TEXT NOT NULL, question_id TEXT NOT NULL, position INTEGER NOT NULL, asked_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    game_id TEXT NOT NULL, question_id TEXT NOT NULL, player TEXT NOT NULL, correct INTEGER NOT NULL,
    points INTEGER NOT NULL, seconds REAL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS answers_by_player ON answers (game_id, question_id, player);
CREATE TABLE IF NOT EXISTS ledger (
    player TEXT NOT NULL, nick TEXT NOT NULL, points INTEGER NOT NULL, at REAL NOT NULL, game_id TEXT,
    why TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, submitter TEXT NOT NULL, language TEXT NOT NULL, question TEXT NOT NULL,
    answer TEXT NOT NULL, wrong TEXT NOT NULL, source TEXT NOT NULL, at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending');
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, reporter TEXT NOT NULL, question_id TEXT NOT NULL, text TEXT NOT NULL,
    at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'open');
CREATE TABLE IF NOT EXISTS game_players (
    game_id TEXT NOT NULL, player TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (game_id, player));
CREATE TABLE IF NOT EXISTS bans (jid TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rooms (
    jid TEXT PRIMARY KEY, language TEXT NOT NULL, owner TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pins (room TEXT PRIMARY KEY, pin TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
""",)

PERIODS = ("day", "week", "all")


def period_start(period: str, wall: float) -> float:
    """Start of the UTC calendar day, of the ISO week (Monday 00:00 UTC), or 0 for all time."""
    if period == "all":
        return 0.0
    day = datetime.fromtimestamp(wall, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=day.weekday())
    return day.timestamp()


class QuizStore:
    def __init__(self, path: Path | str) -> None:
        self._path = path
        self._db = open_database(path, MIGRATIONS, check_same_thread=True)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._unsaved: deque[tuple[_Write, ...]] = deque()
        self._failing = False
        (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM submissions").fetchone()
        self._next_submission = int(last) + 1   # known before the row is written, so a kept write has its id

    def close(self) -> None:
        if not self._flush():
            log.error("quizbot: %d writes could not be saved to %s", len(self._unsaved), self._path)
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (tests make it full with `PRAGMA max_page_count`)."""
        return self._db

    @property
    def unsaved(self) -> int:
        """Writes kept in memory because the disk refused them."""
        return len(self._unsaved)

    def _write(self, *statements: _Write) -> None:
        """One transaction, after every write kept before it."""
        if len(self._unsaved) >= MAX_UNSAVED:
            self._unsaved.popleft()
            log.error("quizbot: more than %d writes kept for %s; the oldest is dropped", MAX_UNSAVED, self._path)
        self._unsaved.append(statements)
        try:
            self._flush()
        except BaseException:
            self._unsaved.pop()  # a bug in this write (e.g. a constraint), not a full disk: do not keep it
            raise

    def _flush(self) -> bool:
        if not self._unsaved:
            return True
        try:
            with transaction(self._db):
                for statements in self._unsaved:
                    for sql, parameters in statements:
                        self._db.execute(sql, parameters)
        except StorageError as exc:
            if not self._failing:
                log.error("quizbot: cannot write to %s (%s); kept in memory and retried with the next write",
                          self._path, exc)
            self._failing = True
            return False
        if self._failing:
            log.warning("quizbot: %d kept writes saved to %s", len(self._unsaved), self._path)
        self._failing = False
        self._unsaved.clear()
        return True

    # --- the bot's side: memory at start, orders, reads ------------------------------------------------

    def memory(self) -> BotMemory:
        """What the bot keeps in memory, read before it starts."""
        recent: defaultdict[str, list[str]] = defaultdict(list)
        rows = self._db.execute(
            "SELECT room, question_id FROM (SELECT games.room AS room, asked.question_id AS question_id, "
            "ROW_NUMBER() OVER (PARTITION BY games.room ORDER BY asked_at DESC) AS age "
            "FROM asked JOIN games ON games.id = asked.game_id) WHERE age <= ? ORDER BY age DESC",
            (RECENT_QUESTIONS,))
        for room, question_id in rows:
            recent[room].append(question_id)
        return BotMemory(banned=self.banned(),
                         rooms=tuple(SavedRoom(room=room, language=language, owner=owner)
                                     for room, language, owner in self.rooms()),
                         pins=tuple(self.pins()), running=tuple(self.running_games()),
                         accepted=tuple(self.submissions("accepted")), next_submission=self._next_submission,
                         recent={room: tuple(ids) for room, ids in recent.items()})

    def perform(self, order: StorageOrder) -> None:
        """Write what the bot ordered."""
        match order:
            case RecordGameStarted():
                self.game_started(game_id=order.game_id, room=order.room, mode=order.mode, language=order.language,
                                  opener=order.opener, wall=order.wall)
            case RecordQuestionAsked():
                self.question_asked(game_id=order.game_id, question_id=order.question_id, position=order.position,
                                    wall=order.wall)
            case RecordAnswer():
                self.answer(game_id=order.game_id, question_id=order.question_id, player=order.player,
                            correct=order.correct, points=order.points, seconds=order.seconds, wall=order.wall)
            case RecordPoints():
                self.award(player=order.player, nick=order.nick, points=order.points, wall=order.wall,
                           game_id=order.game_id, why=order.why)
            case SaveSnapshot():
                self.save_snapshot(order.game_id, order.snapshot)
            case SavePlayer():
                self.save_player(order.game_id, order.player, order.state)
            case RecordGameEnded():
                self.game_ended(order.game_id, reason=order.reason, wall=order.wall)
            case RecordSubmission(submission=submission):
                self.submit(submission, wall=order.wall)
            case RecordReport():
                self.report(reporter=order.reporter, question_id=order.question_id, text=order.text, wall=order.wall)
            case SaveBan():
                self.ban(order.jid, wall=order.wall)
            case RemoveBan():
                self.unban(order.jid)
            case SaveRoom(room=room):
                self.add_room(room.room, language=room.language, owner=room.owner, wall=order.wall)
            case RemoveRoom():
                self.remove_room(order.room)
            case SavePin():
                self.set_pin(order.room, pin=order.pin, name=order.name)
            case RemovePin():
                self.remove_pin(order.room)
            case _:
                assert_never(order)

    def read(self, query: Read) -> LeaderboardRead | CountsRead | SubmissionsRead | SubmissionReviewed:
        """Answer one of the bot's reads; the adapter feeds the answer back to the bot."""
        match query:
            case ReadLeaderboard():
                board = self.leaderboard(query.period, wall=query.wall, limit=query.count)
                return LeaderboardRead(query=query, board=tuple(board))
            case ReadCounts():
                return CountsRead(query=query, counts=self.counts())
            case ReadSubmissions():
                return SubmissionsRead(query=query, pending=tuple(self.submissions()))
            case ReviewSubmission():
                return SubmissionReviewed(query=query, submission=self.review(query.id, accept=query.accept))
            case _:
                assert_never(query)

    # --- games ------------------------------------------------------------------------------------

    def game_started(self, *, game_id: str, room: str, mode: str, language: str, opener: str | None,
                     wall: float) -> None:
        self._write(("INSERT INTO games (id, room, mode, language, opener, started_at) VALUES (?,?,?,?,?,?)",
                     (game_id, room, mode, language, opener, wall)))

    def save_snapshot(self, game_id: str, snapshot: dict[str, Any]) -> None:
        """The whole game, at question boundaries; it supersedes the per-player rows saved since."""
        self._write(("UPDATE games SET snapshot = ? WHERE id = ?", (json.dumps(snapshot), game_id)),
                    ("DELETE FROM game_players WHERE game_id = ?", (game_id,)))

    def save_player(self, game_id: str, player: str, state: dict[str, Any]) -> None:
        """One player's standing after an answer: O(1) per answer instead of the whole game."""
        self._write(("INSERT OR REPLACE INTO game_players VALUES (?, ?, ?)", (game_id, player, json.dumps(state))))

    def game_ended(self, game_id: str, *, reason: str, wall: float) -> None:
        self._write(("UPDATE games SET ended_at = ?, reason = ?, snapshot = NULL WHERE id = ?",
                     (wall, reason, game_id)),
                    ("DELETE FROM game_players WHERE game_id = ?", (game_id,)))

    def running_games(self) -> list[StoredGame]:
        games = []
        rows = self._db.execute(
            "SELECT id, room, snapshot, language FROM games WHERE ended_at IS NULL AND snapshot IS NOT NULL")
        for game_id, room, snapshot_text, language in rows.fetchall():
            snapshot = json.loads(snapshot_text)
            for player, state in self._db.execute("SELECT player, state FROM game_players WHERE game_id = ?",
                                                  (game_id,)):
                snapshot["players"][player] = json.loads(state)
            games.append(StoredGame(id=game_id, room=room, snapshot=snapshot, language=language))
        return games

    def question_asked(self, *, game_id: str, question_id: str, position: int, wall: float) -> None:
        self._write(("INSERT INTO asked VALUES (?,?,?,?)", (game_id, question_id, position, wall)))

    def recently_asked(self, room: str, limit: int = 500) -> frozenset[str]:
        """Question ids asked lately in a room, so the next quiz there is fresh."""
        rows = self._db.execute(
            "SELECT question_id FROM asked JOIN games ON games.id = asked.game_id WHERE games.room = ? "
            "ORDER BY asked_at DESC LIMIT ?", (room, limit))
        return frozenset(r[0] for r in rows)

    # --- answers and points -----------------------------------------------------------------------

    def answer(self, *, game_id: str, question_id: str, player: str, correct: bool, points: int,
               seconds: float | None, wall: float) -> None:
        """One row per player and question, the first counted attempt: a repeat writes nothing."""
        self._write(("INSERT INTO answers SELECT ?,?,?,?,?,?,? WHERE NOT EXISTS "
                     "(SELECT 1 FROM answers WHERE game_id = ? AND question_id = ? AND player = ?)",
                     (game_id, question_id, player, int(correct), points, seconds, wall, game_id, question_id,
                      player)))

    def award(self, *, player: str, nick: str | None, points: int, wall: float, game_id: str | None,
              why: str) -> None:
        """A ledger line; without a nick, the one the ledger last knew for the player, else the JID's localpart."""
        if nick is not None:
            self._write(("INSERT INTO ledger VALUES (?,?,?,?,?,?)", (player, nick, points, wall, game_id, why)))
            return
        self._write(("INSERT INTO ledger SELECT ?, COALESCE((SELECT nick FROM ledger WHERE player = ? "
                     "ORDER BY at DESC LIMIT 1), ?), ?, ?, ?, ?",
                     (player, player, player.partition("@")[0], points, wall, game_id, why)))

    def leaderboard(self, period: str, *, wall: float, limit: int = 10) -> list[tuple[str, str, int]]:
        """(player, latest nick, points), best first."""
        rows = self._db.execute(
            "SELECT player, (SELECT nick FROM ledger AS l2 WHERE l2.player = ledger.player ORDER BY at DESC LIMIT 1),"
            " SUM(points) AS total FROM ledger WHERE at >= ? GROUP BY player HAVING total != 0 "
            "ORDER BY total DESC, player LIMIT ?", (period_start(period, wall), limit))
        return [(r[0], r[1], int(r[2])) for r in rows]

    def counts(self) -> dict[str, int]:
        one = self._db.execute
        return {
            "games": one("SELECT COUNT(*) FROM games").fetchone()[0],
            "answers": one("SELECT COUNT(*) FROM answers").fetchone()[0],
            "correct": one("SELECT COUNT(*) FROM answers WHERE correct").fetchone()[0],
            "pending": one("SELECT COUNT(*) FROM submissions WHERE status = 'pending'").fetchone()[0],
            "reports": one("SELECT COUNT(*) FROM reports WHERE status = 'open'").fetchone()[0],
        }

    # --- submissions and reports ------------------------------------------------------------------

    def submit(self, submission: Submission, *, wall: float) -> None:
        """A submission under the number the bot gave it (from `memory().next_submission` on)."""
        self._next_submission = max(self._next_submission, submission.id + 1)
        self._write(("INSERT INTO submissions (id, submitter, language, question, answer, wrong, source, at) "
                     "VALUES (?,?,?,?,?,?,?,?)",
                     (submission.id, submission.submitter, submission.language, submission.question,
                      submission.answer, json.dumps(list(submission.wrong)), submission.source, wall)))

    def submissions(self, status: str = "pending") -> list[Submission]:
        rows = self._db.execute("SELECT id, submitter, language, question, answer, wrong, source FROM submissions "
                                "WHERE status = ? ORDER BY id", (status,))
        return [_submission(row) for row in rows]

    def review(self, submission_id: int, *, accept: bool) -> Submission | None:
        """Accept or reject a pending submission; None if no pending one has that id."""
        self._flush()
        row = self._db.execute("SELECT id, submitter, language, question, answer, wrong, source FROM submissions "
                               "WHERE id = ? AND status = 'pending'", (submission_id,)).fetchone()
        if row is None:
            return None
        pending = _submission(row)
        self._write(("UPDATE submissions SET status = ? WHERE id = ? AND status = 'pending'",
                     ("accepted" if accept else "rejected", submission_id)))
        return pending

    def report(self, *, reporter: str, question_id: str, text: str, wall: float) -> None:
        self._write(("INSERT INTO reports (reporter, question_id, text, at) VALUES (?,?,?,?)",
                     (reporter, question_id, text, wall)))

    def reports(self) -> list[tuple[str, str, str]]:
        rows = self._db.execute("SELECT reporter, question_id, text FROM reports WHERE status = 'open' ORDER BY id")
        return [(r[0], r[1], r[2]) for r in rows]

    # --- bans and rooms ---------------------------------------------------------------------------

    def ban(self, jid: str, *, wall: float) -> None:
        self._write(("INSERT OR REPLACE INTO bans VALUES (?, ?)", (jid, wall)))

    def unban(self, jid: str) -> bool:
        self._flush()
        if self._db.execute("SELECT 1 FROM bans WHERE jid = ?", (jid,)).fetchone() is None:
            return False
        self._write(("DELETE FROM bans WHERE jid = ?", (jid,)))
        return True

    def banned(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._db.execute("SELECT jid FROM bans"))

    def add_room(self, jid: str, *, language: str, owner: str | None, wall: float) -> None:
        self._write(("INSERT OR IGNORE INTO rooms VALUES (?,?,?,?)", (jid, language, owner, wall)))

    def remove_room(self, jid: str) -> None:
        self._write(("DELETE FROM rooms WHERE jid = ?", (jid,)))

    def set_pin(self, room: str, *, pin: str, name: str) -> None:
        """A room's game PIN and readable name, kept for the room's life (across restarts)."""
        self._write(("INSERT OR REPLACE INTO pins VALUES (?,?,?)", (room, pin, name)))

    def remove_pin(self, room: str) -> None:
        self._write(("DELETE FROM pins WHERE room = ?", (room,)))

    def pins(self) -> list[tuple[str, str, str]]:
        """(room, pin, name) of every room the bot serves or served."""
        return [(r[0], r[1], r[2]) for r in self._db.execute("SELECT room, pin, name FROM pins ORDER BY room")]

    def rooms(self) -> list[tuple[str, str, str | None]]:
        """(room, language, owner) for rooms joined by command or made by !newgame; rejoined after restarts."""
        return [(r[0], r[1], r[2]) for r in self._db.execute("SELECT jid, language, owner FROM rooms ORDER BY jid")]


def _submission(row: tuple[Any, ...]) -> Submission:
    return Submission(id=row[0], submitter=row[1], language=row[2], question=row[3], answer=row[4],
                      wrong=tuple(json.loads(row[5])), source=row[6])
