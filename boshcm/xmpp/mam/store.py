"""Where archived messages live: `MemoryArchiveStore` for unit tests, `SqliteArchiveStore` (mam.sqlite) for the
server; both satisfy `ArchiveStore`.

An archive is named by a bare JID: an account's (its chat messages, both directions) or a room's (its
groupchat messages). Each message has a position (`seq`, increasing in archiving order) and an id unique in
its archive (the XEP-0359 stanza-id). Every method may raise `StorageFull` / `StorageUnavailable`
(boshcm/database.py); a failed write leaves what was stored before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boshcm.database import open_database, storage_errors, transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchivedMessage:
    archive: str        # the archive's bare JID
    id: str             # XEP-0359 stanza-id, unique in the archive
    at: float           # wall-clock time of archiving (seconds since the epoch)
    peer: str           # the other party's full JID (an account's contact, a room occupant's room/nick)
    peer_bare: str
    stanza: bytes       # the message as it was routed


@dataclass(frozen=True, slots=True, kw_only=True)
class Filter:
    """XEP-0313 §4.1.1 form fields: 'with' (bare: any resource; full: exactly), start, end (inclusive)."""

    with_jid: str | None = None
    with_is_bare: bool = True
    start: float | None = None
    end: float | None = None


class ArchiveStore(Protocol):
    def append(self, messages: Sequence[ArchivedMessage], *, keep: int, keep_bytes: int) -> None:
        """Archive in order (one transaction); then each touched archive keeps only its `keep` newest, and
        its newest that fit in `keep_bytes` (sizes of the stored stanzas): the oldest go first."""
    def position(self, archive: str, message_id: str) -> int | None: ...
    def page(self, archive: str, where: Filter, *, after: int | None, before: int | None, limit: int,
             newest_first: bool) -> list[tuple[int, ArchivedMessage]]:
        """Up to `limit` matches strictly between the positions, nearest to `after` (or to `before` when
        `newest_first`) first."""
    def count(self, archive: str, where: Filter) -> int: ...
    def delete_older(self, before: float, archive: str | None = None) -> None:
        """Retention: forget what was archived before `before` (in one archive, or in all)."""
    def delete_archive(self, archive: str) -> None: ...


def _matches(message: ArchivedMessage, where: Filter) -> bool:
    if where.with_jid is not None and where.with_jid != (message.peer_bare if where.with_is_bare else message.peer):
        return False
    if where.start is not None and message.at < where.start:
        return False
    return where.end is None or message.at <= where.end


class MemoryArchiveStore:
    def __init__(self) -> None:
        self._rows: list[tuple[int, ArchivedMessage]] = []
        self._seq = 0

    def append(self, messages: Sequence[ArchivedMessage], *, keep: int, keep_bytes: int) -> None:
        for message in messages:
            self._seq += 1
            self._rows.append((self._seq, message))
        for archive in {message.archive for message in messages}:
            mine = [(seq, len(row.stanza)) for seq, row in self._rows if row.archive == archive]
            dropped = {seq for seq, _size in mine[:max(0, len(mine) - keep)]}
            total = sum(size for _seq, size in mine)
            for seq, size in mine:
                if total <= keep_bytes:
                    break
                dropped.add(seq)
                total -= size
            self._rows = [(seq, row) for seq, row in self._rows if seq not in dropped]

    def position(self, archive: str, message_id: str) -> int | None:
        return next((seq for seq, row in self._rows if row.archive == archive and row.id == message_id), None)

    def page(self, archive: str, where: Filter, *, after: int | None, before: int | None, limit: int,
             newest_first: bool) -> list[tuple[int, ArchivedMessage]]:
        rows = [(seq, row) for seq, row in self._rows if row.archive == archive and _matches(row, where)
                and (after is None or seq > after) and (before is None or seq < before)]
        if newest_first:
            rows.reverse()
        return rows[:limit]

    def count(self, archive: str, where: Filter) -> int:
        return sum(1 for _seq, row in self._rows if row.archive == archive and _matches(row, where))

    def delete_older(self, before: float, archive: str | None = None) -> None:
        self._rows = [(seq, row) for seq, row in self._rows
                      if row.at >= before or (archive is not None and row.archive != archive)]

    def delete_archive(self, archive: str) -> None:
        self._rows = [(seq, row) for seq, row in self._rows if row.archive != archive]


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, archive TEXT NOT NULL,
                                         id TEXT NOT NULL, at REAL NOT NULL, peer TEXT NOT NULL,
                                         peer_bare TEXT NOT NULL, stanza BLOB NOT NULL, UNIQUE (archive, id));
    CREATE INDEX IF NOT EXISTS messages_archive ON messages (archive, seq);
    CREATE INDEX IF NOT EXISTS messages_archive_at ON messages (archive, at);
""",
)


class SqliteArchiveStore:
    """`trim_every`: an archive's count cap is enforced every this many messages archived in it, so the hot
    path is one INSERT; an archive may hold up to `trim_every - 1` messages over its count cap in between.
    The byte cap is exact: each archive's total is known (summed once, then kept up to date), so only a
    message that would take an archive over its cap costs a look at the oldest rows and a DELETE."""

    def __init__(self, path: Path | str, *, trim_every: int = 64) -> None:
        self._db = open_database(path, _MIGRATIONS)
        self._trim_every = trim_every
        # Messages archived since the archive was last trimmed; an archive leaves the table when trimmed.
        self._since_trim: dict[str, int] = {}
        # Bytes of stored stanzas per archive, for archives touched since start-up; dropped when unsure.
        self._bytes: dict[str, int] = {}

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def append(self, messages: Sequence[ArchivedMessage], *, keep: int, keep_bytes: int) -> None:
        added: dict[str, int] = {}
        for message in messages:
            added[message.archive] = added.get(message.archive, 0) + len(message.stanza)
        totals: dict[str, int] = {}
        with transaction(self._db):
            for archive in added:
                # Before the INSERT, so that a total summed now does not count the new rows twice.
                totals[archive] = self._total_bytes(archive) + added[archive]
            self._db.executemany(
                "INSERT INTO messages (archive, id, at, peer, peer_bare, stanza) VALUES (?, ?, ?, ?, ?, ?)",
                [(m.archive, m.id, m.at, m.peer, m.peer_bare, m.stanza) for m in messages])
            for archive, total in totals.items():
                if total > keep_bytes:
                    totals[archive] = self._trim_bytes(archive, total, keep_bytes)
            due = []
            for message in messages:
                count = self._since_trim.get(message.archive, 0) + 1
                if count >= self._trim_every:
                    due.append(message.archive)
                self._since_trim[message.archive] = count
            for archive in due:
                # Everything at or below the (keep+1)-th newest position goes, and its bytes leave the total: a few
                # dozen rows summed, not the whole archive again at the next message.
                cutoff = self._db.execute("SELECT seq FROM messages WHERE archive = ? ORDER BY seq DESC LIMIT 1 "
                                          "OFFSET ?", (archive, keep)).fetchone()
                if cutoff is not None:
                    (removed,) = self._db.execute("SELECT COALESCE(SUM(length(stanza)), 0) FROM messages "
                                                  "WHERE archive = ? AND seq <= ?", (archive, cutoff[0])).fetchone()
                    self._db.execute("DELETE FROM messages WHERE archive = ? AND seq <= ?", (archive, cutoff[0]))
                    totals[archive] -= int(removed)
        # Only once the transaction is in: a failed write leaves the old rows and so the old totals.
        self._bytes.update(totals)
        for archive in due:
            self._since_trim.pop(archive, None)

    def _total_bytes(self, archive: str) -> int:
        if (known := self._bytes.get(archive)) is not None:
            return known
        row = self._db.execute("SELECT COALESCE(SUM(length(stanza)), 0) FROM messages WHERE archive = ?",
                               (archive,)).fetchone()
        return int(row[0])

    def _trim_bytes(self, archive: str, total: int, keep_bytes: int) -> int:
        """Delete the oldest rows of `archive` until its `total` fits in `keep_bytes`; the new total."""
        last = None
        rows = self._db.execute("SELECT seq, length(stanza) FROM messages WHERE archive = ? ORDER BY seq",
                                (archive,))
        for seq, size in rows:
            if total <= keep_bytes:
                break
            last, total = seq, total - int(size)
        rows.close()
        if last is not None:
            self._db.execute("DELETE FROM messages WHERE archive = ? AND seq <= ?", (archive, last))
        return total

    def position(self, archive: str, message_id: str) -> int | None:
        with storage_errors():
            row = self._db.execute("SELECT seq FROM messages WHERE archive = ? AND id = ?",
                                   (archive, message_id)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _where(archive: str, where: Filter) -> tuple[str, list[object]]:
        clauses, params = ["archive = ?"], list[object]([archive])
        if where.with_jid is not None:
            clauses.append("peer_bare = ?" if where.with_is_bare else "peer = ?")
            params.append(where.with_jid)
        if where.start is not None:
            clauses.append("at >= ?")
            params.append(where.start)
        if where.end is not None:
            clauses.append("at <= ?")
            params.append(where.end)
        return " AND ".join(clauses), params

    def page(self, archive: str, where: Filter, *, after: int | None, before: int | None, limit: int,
             newest_first: bool) -> list[tuple[int, ArchivedMessage]]:
        sql, params = self._where(archive, where)
        if after is not None:
            sql += " AND seq > ?"
            params.append(after)
        if before is not None:
            sql += " AND seq < ?"
            params.append(before)
        order = "DESC" if newest_first else "ASC"
        with storage_errors():
            rows = self._db.execute(f"SELECT seq, archive, id, at, peer, peer_bare, stanza FROM messages WHERE {sql} "
                                    f"ORDER BY seq {order} LIMIT ?", (*params, limit)).fetchall()
        return [(int(row[0]), ArchivedMessage(archive=row[1], id=row[2], at=float(row[3]), peer=row[4],
                                              peer_bare=row[5], stanza=bytes(row[6]))) for row in rows]

    def count(self, archive: str, where: Filter) -> int:
        sql, params = self._where(archive, where)
        with storage_errors():
            row = self._db.execute(f"SELECT COUNT(*) FROM messages WHERE {sql}", params).fetchone()
        return int(row[0])

    def delete_older(self, before: float, archive: str | None = None) -> None:
        if archive is None:
            self._bytes.clear()
        else:
            self._bytes.pop(archive, None)
        with storage_errors():
            if archive is None:
                self._db.execute("DELETE FROM messages WHERE at < ?", (before,))
            else:
                self._db.execute("DELETE FROM messages WHERE archive = ? AND at < ?", (archive, before))

    def delete_archive(self, archive: str) -> None:
        self._bytes.pop(archive, None)
        with storage_errors():
            self._db.execute("DELETE FROM messages WHERE archive = ?", (archive,))

    def close(self) -> None:
        self._db.close()
