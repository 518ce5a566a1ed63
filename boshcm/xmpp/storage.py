"""Server-side state that outlives sessions: rosters with subscription states, and offline messages.

`MemoryStore` for unit tests, `SqliteStore` for the server; both satisfy `ServerStore`.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boshcm.jid import JID

MAX_OFFLINE_PER_USER = 500


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


class ServerStore(Protocol):
    def roster_items(self, user: str) -> list[RosterItem]: ...
    def roster_item(self, user: str, jid: JID) -> RosterItem | None: ...
    def put_roster_item(self, user: str, item: RosterItem) -> None: ...
    def remove_roster_item(self, user: str, jid: JID) -> None: ...
    def store_offline(self, user: str, stanza_xml: bytes) -> bool:
        """False when the user's offline queue is full."""
    def pop_offline(self, user: str) -> list[bytes]: ...
    def delete_user(self, user: str) -> None: ...


class MemoryStore:
    def __init__(self, *, max_offline_per_user: int = MAX_OFFLINE_PER_USER) -> None:
        self._rosters: dict[str, dict[JID, RosterItem]] = {}
        self._offline: dict[str, list[bytes]] = {}
        self._max_offline = max_offline_per_user

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
        if len(queue) >= self._max_offline:
            return False
        queue.append(stanza_xml)
        return True

    def pop_offline(self, user: str) -> list[bytes]:
        return self._offline.pop(user, [])

    def delete_user(self, user: str) -> None:
        self._rosters.pop(user, None)
        self._offline.pop(user, None)


class SqliteStore:
    def __init__(self, path: Path | str, *, max_offline_per_user: int = MAX_OFFLINE_PER_USER) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._max_offline = max_offline_per_user
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS roster (user TEXT NOT NULL, jid TEXT NOT NULL, item TEXT NOT NULL,
                                               PRIMARY KEY (user, jid));
            CREATE TABLE IF NOT EXISTS offline (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
                                                stanza BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS offline_user ON offline (user, id);
        """)

    def roster_items(self, user: str) -> list[RosterItem]:
        rows = self._db.execute("SELECT item FROM roster WHERE user = ? ORDER BY jid", (user,))
        return [_item_from_json(row[0]) for row in rows]

    def roster_item(self, user: str, jid: JID) -> RosterItem | None:
        row = self._db.execute("SELECT item FROM roster WHERE user = ? AND jid = ?", (user, str(jid))).fetchone()
        return None if row is None else _item_from_json(row[0])

    def put_roster_item(self, user: str, item: RosterItem) -> None:
        self._db.execute("INSERT OR REPLACE INTO roster VALUES (?, ?, ?)", (user, str(item.jid), _item_to_json(item)))

    def remove_roster_item(self, user: str, jid: JID) -> None:
        self._db.execute("DELETE FROM roster WHERE user = ? AND jid = ?", (user, str(jid)))

    def store_offline(self, user: str, stanza_xml: bytes) -> bool:
        (count,) = self._db.execute("SELECT COUNT(*) FROM offline WHERE user = ?", (user,)).fetchone()
        if count >= self._max_offline:
            return False
        self._db.execute("INSERT INTO offline (user, stanza) VALUES (?, ?)", (user, stanza_xml))
        return True

    def pop_offline(self, user: str) -> list[bytes]:
        with self._db:
            self._db.execute("BEGIN")
            rows = self._db.execute("SELECT stanza FROM offline WHERE user = ? ORDER BY id", (user,)).fetchall()
            self._db.execute("DELETE FROM offline WHERE user = ?", (user,))
        return [bytes(row[0]) for row in rows]

    def delete_user(self, user: str) -> None:
        with self._db:
            self._db.execute("BEGIN")
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
