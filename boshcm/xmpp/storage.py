"""Server-side state that outlives sessions: rosters with subscription states, and offline messages.

`MemoryStore` for unit tests, `SqliteStore` for the server; both satisfy `ServerStore`. Every method may
raise `StorageFull` / `StorageUnavailable` (boshcm/database.py) when the disk is full or the file cannot be
written; what was stored before stays stored.

Offline messages are read and deleted in two steps (`offline_messages`, then `delete_offline` up to the
last id read), so a delete that fails means the messages are delivered again at the next login, not lost.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boshcm.database import open_database, storage_errors, transaction
from boshcm.jid import JID

# Per recipient, so no sender can fill anyone's store (server.max_offline_messages / max_offline_bytes).
MAX_OFFLINE_MESSAGES = 100
MAX_OFFLINE_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class RosterItem:
    """RFC 6121 §2.1.2 item, plus the server's private subscription bookkeeping."""

    jid: JID
    name: str | None = None
    subscription: str = "none"      # none | to | from | both
    ask: bool = False               # our subscription request is pending (RFC 6121 §3.1.2 "ask")
    pending_in: bool = False        # the contact asked to subscribe to us and awaits approval
    listed: bool = True             # in the user's roster; False for a bare pending inbound request
    groups: tuple[str, ...] = ()

    def replace(self, **changes: object) -> RosterItem:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineMessage:
    id: int                         # increasing per store; `delete_offline(user, up_to=id)` removes it
    stanza: bytes


class ServerStore(Protocol):
    def roster_items(self, user: str) -> list[RosterItem]: ...
    def roster_item(self, user: str, jid: JID) -> RosterItem | None: ...
    def put_roster_item(self, user: str, item: RosterItem) -> None: ...
    def remove_roster_item(self, user: str, jid: JID) -> None: ...
    def store_offline(self, user: str, stanza_xml: bytes) -> bool:
        """False when the user's offline quota (count or bytes) is used up."""
    def offline_messages(self, user: str) -> list[OfflineMessage]:
        """The user's stored messages, oldest first; nothing is deleted."""
    def delete_offline(self, user: str, up_to: int) -> None:
        """Delete the user's stored messages with id <= up_to (those already read)."""
    def delete_user(self, user: str) -> None: ...


class MemoryStore:
    def __init__(self, *, max_offline_messages: int = MAX_OFFLINE_MESSAGES,
                 max_offline_bytes: int = MAX_OFFLINE_BYTES) -> None:
        self._rosters: dict[str, dict[JID, RosterItem]] = {}
        self._offline: dict[str, list[OfflineMessage]] = {}
        self._max_messages, self._max_bytes = max_offline_messages, max_offline_bytes
        self._next_id = 1

    def roster_items(self, user: str) -> list[RosterItem]:
        return list(self._rosters.get(user, {}).values())

    def roster_item(self, user: str, jid: JID) -> RosterItem | None:
        return self._rosters.get(user, {}).get(jid)

    def put_roster_item(self, user: str, item: RosterItem) -> None:
        self._rosters.setdefault(user, {})[item.jid] = item

    def remove_roster_item(self, user: str, jid: JID) -> None:
        self._rosters.get(user, {}).pop(jid, None)

    def store_offline(self, user: str, stanza_xml: bytes) -> bool:
        queue = self._offline.setdefault(user, [])
        if len(queue) >= self._max_messages or \
                sum(len(message.stanza) for message in queue) + len(stanza_xml) > self._max_bytes:
            return False
        queue.append(OfflineMessage(id=self._next_id, stanza=stanza_xml))
        self._next_id += 1
        return True

    def offline_messages(self, user: str) -> list[OfflineMessage]:
        return list(self._offline.get(user, []))

    def delete_offline(self, user: str, up_to: int) -> None:
        remaining = [message for message in self._offline.get(user, []) if message.id > up_to]
        if remaining:
            self._offline[user] = remaining
        else:
            self._offline.pop(user, None)

    def delete_user(self, user: str) -> None:
        self._rosters.pop(user, None)
        self._offline.pop(user, None)


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS roster (user TEXT NOT NULL, jid TEXT NOT NULL, item TEXT NOT NULL,
                                       PRIMARY KEY (user, jid));
    CREATE TABLE IF NOT EXISTS offline (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
                                        stanza BLOB NOT NULL);
    CREATE INDEX IF NOT EXISTS offline_user ON offline (user, id);
""",
)


class SqliteStore:
    def __init__(self, path: Path | str, *, max_offline_messages: int = MAX_OFFLINE_MESSAGES,
                 max_offline_bytes: int = MAX_OFFLINE_BYTES) -> None:
        self._db = open_database(path, _MIGRATIONS)
        self._max_messages, self._max_bytes = max_offline_messages, max_offline_bytes

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (tests set `PRAGMA max_page_count` on it to make the store full)."""
        return self._db

    def roster_items(self, user: str) -> list[RosterItem]:
        with storage_errors():
            rows = self._db.execute("SELECT item FROM roster WHERE user = ? ORDER BY jid", (user,)).fetchall()
        return [_item_from_json(row[0]) for row in rows]

    def roster_item(self, user: str, jid: JID) -> RosterItem | None:
        with storage_errors():
            row = self._db.execute("SELECT item FROM roster WHERE user = ? AND jid = ?",
                                   (user, str(jid))).fetchone()
        return None if row is None else _item_from_json(row[0])

    def put_roster_item(self, user: str, item: RosterItem) -> None:
        with storage_errors():
            self._db.execute("INSERT OR REPLACE INTO roster VALUES (?, ?, ?)",
                             (user, str(item.jid), _item_to_json(item)))

    def remove_roster_item(self, user: str, jid: JID) -> None:
        with storage_errors():
            self._db.execute("DELETE FROM roster WHERE user = ? AND jid = ?", (user, str(jid)))

    def store_offline(self, user: str, stanza_xml: bytes) -> bool:
        with transaction(self._db):
            count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(stanza)), 0) FROM offline "
                                           "WHERE user = ?", (user,)).fetchone()
            if count >= self._max_messages or size + len(stanza_xml) > self._max_bytes:
                return False
            self._db.execute("INSERT INTO offline (user, stanza) VALUES (?, ?)", (user, stanza_xml))
        return True

    def offline_messages(self, user: str) -> list[OfflineMessage]:
        with storage_errors():
            rows = self._db.execute("SELECT id, stanza FROM offline WHERE user = ? ORDER BY id", (user,)).fetchall()
        return [OfflineMessage(id=row[0], stanza=bytes(row[1])) for row in rows]

    def delete_offline(self, user: str, up_to: int) -> None:
        with storage_errors():
            self._db.execute("DELETE FROM offline WHERE user = ? AND id <= ?", (user, up_to))

    def delete_user(self, user: str) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM roster WHERE user = ?", (user,))
            self._db.execute("DELETE FROM offline WHERE user = ?", (user,))

    def close(self) -> None:
        self._db.close()


def _item_to_json(item: RosterItem) -> str:
    fields = dataclasses.asdict(item)
    fields["jid"] = str(item.jid)
    return json.dumps(fields)


def _item_from_json(text: str) -> RosterItem:
    fields = json.loads(text)
    return RosterItem(jid=JID.parse(fields.pop("jid")), groups=tuple(fields.pop("groups")), **fields)
