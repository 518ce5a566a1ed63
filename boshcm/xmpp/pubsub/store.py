"""Where PEP nodes and their items live: `MemoryPepStore` for unit tests, `SqlitePepStore` (pep.sqlite) for the
server; both satisfy `PepStore`.

Every method may raise `StorageFull` / `StorageUnavailable` (boshcm/database.py); a failed write leaves what
was stored before (each write is one statement or one transaction). Items are kept in publication order; a
re-published item id moves to the end (XEP-0060 §7.1.2: it replaces the old item).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boshcm.database import open_database, storage_errors, transaction
from boshcm.xmpp.pubsub.node import NodeConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredItem:
    id: str
    payload: bytes          # the serialised <item/> children (one payload element)


class PepStore(Protocol):
    def nodes(self, owner: str) -> dict[str, NodeConfig]: ...
    def node(self, owner: str, node: str) -> NodeConfig | None: ...
    def put_node(self, owner: str, node: str, config: NodeConfig, *, keep: int) -> None:
        """Create or reconfigure a node, keeping only its `keep` newest items."""
    def delete_node(self, owner: str, node: str) -> None: ...
    def items(self, owner: str, node: str) -> list[StoredItem]:
        """Oldest first."""
    def publish(self, owner: str, node: str, item: StoredItem, *, keep: int) -> None:
        """Add or replace the item, then keep only the node's `keep` newest items."""
    def retract(self, owner: str, node: str, item_id: str) -> bool: ...
    def purge(self, owner: str, node: str) -> None: ...
    def usage_bytes(self, owner: str) -> int:
        """Bytes of item payloads the account stores."""
    def delete_user(self, owner: str) -> None: ...


class MemoryPepStore:
    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, NodeConfig]] = {}
        self._items: dict[tuple[str, str], list[StoredItem]] = {}

    def nodes(self, owner: str) -> dict[str, NodeConfig]:
        return dict(self._nodes.get(owner, {}))

    def node(self, owner: str, node: str) -> NodeConfig | None:
        return self._nodes.get(owner, {}).get(node)

    def put_node(self, owner: str, node: str, config: NodeConfig, *, keep: int) -> None:
        self._nodes.setdefault(owner, {})[node] = config
        items = self._items.setdefault((owner, node), [])
        del items[:max(0, len(items) - keep)]

    def delete_node(self, owner: str, node: str) -> None:
        self._nodes.get(owner, {}).pop(node, None)
        self._items.pop((owner, node), None)

    def items(self, owner: str, node: str) -> list[StoredItem]:
        return list(self._items.get((owner, node), []))

    def publish(self, owner: str, node: str, item: StoredItem, *, keep: int) -> None:
        items = [old for old in self._items.get((owner, node), []) if old.id != item.id] + [item]
        self._items[(owner, node)] = items[max(0, len(items) - keep):]

    def retract(self, owner: str, node: str, item_id: str) -> bool:
        items = self._items.get((owner, node), [])
        remaining = [item for item in items if item.id != item_id]
        self._items[(owner, node)] = remaining
        return len(remaining) != len(items)

    def purge(self, owner: str, node: str) -> None:
        self._items[(owner, node)] = []

    def usage_bytes(self, owner: str) -> int:
        return sum(len(item.payload) for (user, _node), items in self._items.items() if user == owner
                   for item in items)

    def delete_user(self, owner: str) -> None:
        self._nodes.pop(owner, None)
        for key in [key for key in self._items if key[0] == owner]:
            del self._items[key]


_SCHEMA = """
    CREATE TABLE IF NOT EXISTS nodes (owner TEXT NOT NULL, node TEXT NOT NULL, config TEXT NOT NULL,
                                      PRIMARY KEY (owner, node));
    CREATE TABLE IF NOT EXISTS items (seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
                                      node TEXT NOT NULL, id TEXT NOT NULL, payload BLOB NOT NULL,
                                      UNIQUE (owner, node, id));
    CREATE INDEX IF NOT EXISTS items_node ON items (owner, node, seq);
"""


class SqlitePepStore:
    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, _SCHEMA)

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (tests set `PRAGMA max_page_count` on it to make the store full)."""
        return self._db

    def nodes(self, owner: str) -> dict[str, NodeConfig]:
        with storage_errors():
            rows = self._db.execute("SELECT node, config FROM nodes WHERE owner = ? ORDER BY node",
                                    (owner,)).fetchall()
        return {row[0]: NodeConfig.from_json(json.loads(row[1])) for row in rows}

    def node(self, owner: str, node: str) -> NodeConfig | None:
        with storage_errors():
            row = self._db.execute("SELECT config FROM nodes WHERE owner = ? AND node = ?", (owner, node)).fetchone()
        return None if row is None else NodeConfig.from_json(json.loads(row[0]))

    def put_node(self, owner: str, node: str, config: NodeConfig, *, keep: int) -> None:
        with transaction(self._db):
            self._db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)",
                             (owner, node, json.dumps(config.to_json())))
            self._trim(owner, node, keep)

    def delete_node(self, owner: str, node: str) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM items WHERE owner = ? AND node = ?", (owner, node))
            self._db.execute("DELETE FROM nodes WHERE owner = ? AND node = ?", (owner, node))

    def items(self, owner: str, node: str) -> list[StoredItem]:
        with storage_errors():
            rows = self._db.execute("SELECT id, payload FROM items WHERE owner = ? AND node = ? ORDER BY seq",
                                    (owner, node)).fetchall()
        return [StoredItem(id=row[0], payload=bytes(row[1])) for row in rows]

    def publish(self, owner: str, node: str, item: StoredItem, *, keep: int) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM items WHERE owner = ? AND node = ? AND id = ?", (owner, node, item.id))
            self._db.execute("INSERT INTO items (owner, node, id, payload) VALUES (?, ?, ?, ?)",
                             (owner, node, item.id, item.payload))
            self._trim(owner, node, keep)

    def _trim(self, owner: str, node: str, keep: int) -> None:
        self._db.execute("DELETE FROM items WHERE owner = ? AND node = ? AND seq NOT IN "
                         "(SELECT seq FROM items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?)",
                         (owner, node, owner, node, keep))

    def retract(self, owner: str, node: str, item_id: str) -> bool:
        with storage_errors():
            cursor = self._db.execute("DELETE FROM items WHERE owner = ? AND node = ? AND id = ?",
                                      (owner, node, item_id))
        return cursor.rowcount > 0

    def purge(self, owner: str, node: str) -> None:
        with storage_errors():
            self._db.execute("DELETE FROM items WHERE owner = ? AND node = ?", (owner, node))

    def usage_bytes(self, owner: str) -> int:
        with storage_errors():
            row = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM items WHERE owner = ?",
                                   (owner,)).fetchone()
        return int(row[0])

    def delete_user(self, owner: str) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM items WHERE owner = ?", (owner,))
            self._db.execute("DELETE FROM nodes WHERE owner = ?", (owner,))

    def close(self) -> None:
        self._db.close()
