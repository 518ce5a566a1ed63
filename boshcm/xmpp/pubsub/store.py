"""Where PEP nodes, their items, affiliations and subscriptions live: `MemoryPepStore` (unit tests, and the PEP
service's view in memory of the accounts it holds), `SqlitePepStore` (pep.sqlite) for the server; both satisfy
`PepStore`. `perform` applies one PEP storage order (xmpp/orders.py) to either: the service to its view, the
router's adapter to pep.sqlite, so the two make the same change.

Every method may raise `StorageFull` / `StorageUnavailable` (boshcm/database.py); a failed write leaves what
was stored before (each write is one statement or one transaction). Items are kept in publication order; a
re-published item id moves to the end (XEP-0060 §7.1.2: it replaces the old item). The items of a node
configured with `pubsub#persist_items` false are kept in memory only (XEP-0060 §16.4): served while the
server runs, gone after a restart; the node itself, its affiliations and subscriptions are stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boshcm.database import Migration, open_database, storage_errors, transaction
from boshcm.xmpp.orders import (
    DeletePepNode,
    DeletePepUser,
    PepOrder,
    PublishPepItem,
    PurgePepNode,
    PutPepNode,
    RetractPepItem,
    SetPepAffiliation,
    SetPepSubscription,
)
from boshcm.xmpp.pubsub.node import NodeConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredItem:
    id: str
    payload: bytes                      # the serialised <item/> children (one payload element)
    published_at: float | None = None   # wall-clock seconds; None for items stored before it was kept


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerPep:
    """Everything one account keeps in PEP, read at once (`PepStore.snapshot`); keyed by node."""

    nodes: dict[str, NodeConfig]
    items: dict[str, list[StoredItem]]
    affiliations: dict[str, dict[str, str]]
    subscriptions: dict[str, list[str]]


class PepSource(Protocol):
    def snapshot(self, owner: str, nodes: Collection[str] | None = None) -> OwnerPep:
        """`owner`'s nodes (only those named in `nodes`, when given) with their items (oldest first), affiliations
        and subscriptions."""


class PepStore(PepSource, Protocol):
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
    def affiliations(self, owner: str, node: str) -> dict[str, str]:
        """Bare JID -> affiliation, for the affiliations other than the owner's own."""
    def set_affiliation(self, owner: str, node: str, jid: str, affiliation: str | None) -> None:
        """Set or (None) remove one entity's affiliation."""
    def subscriptions(self, owner: str, node: str) -> list[str]:
        """The subscribed JIDs (bare or full), oldest first."""
    def set_subscription(self, owner: str, node: str, jid: str, subscribed: bool) -> bool:
        """Subscribe or unsubscribe `jid`; whether anything changed."""
    def delete_user(self, owner: str) -> None:
        """The account's nodes, and every affiliation and subscription of the account at other accounts."""


def _is_of_user(jid: str, owner: str) -> bool:
    return jid.startswith(f"{owner}@")


def perform(store: PepStore, order: PepOrder) -> None:
    """Make the change `order` names in `store` (raises what the store raises)."""
    match order:
        case PutPepNode(owner=owner, node=node, config=config, keep=keep):
            store.put_node(owner, node, config, keep=keep)
        case DeletePepNode(owner=owner, node=node):
            store.delete_node(owner, node)
        case PublishPepItem(owner=owner, node=node, item=item, keep=keep):
            store.publish(owner, node, item, keep=keep)
        case RetractPepItem(owner=owner, node=node, item_id=item_id):
            store.retract(owner, node, item_id)
        case PurgePepNode(owner=owner, node=node):
            store.purge(owner, node)
        case SetPepAffiliation(owner=owner, node=node, jid=jid, affiliation=affiliation):
            store.set_affiliation(owner, node, jid, affiliation)
        case SetPepSubscription(owner=owner, node=node, jid=jid, subscribed=subscribed):
            store.set_subscription(owner, node, jid, subscribed)
        case DeletePepUser(owner=owner):
            store.delete_user(owner)


class MemoryPepStore:
    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, NodeConfig]] = {}
        self._items: dict[tuple[str, str], list[StoredItem]] = {}
        self._affiliations: dict[tuple[str, str], dict[str, str]] = {}
        self._subscriptions: dict[tuple[str, str], list[str]] = {}

    def snapshot(self, owner: str, nodes: Collection[str] | None = None) -> OwnerPep:
        held = {name: config for name, config in self._nodes.get(owner, {}).items() if nodes is None or name in nodes}
        return OwnerPep(nodes=held, items={node: self.items(owner, node) for node in held},
                        affiliations={node: self.affiliations(owner, node) for node in held},
                        subscriptions={node: self.subscriptions(owner, node) for node in held})

    def load(self, owner: str, snapshot: OwnerPep) -> None:
        """Hold `owner`'s PEP as read elsewhere (the PEP service's view of pep.sqlite)."""
        self.forget(owner)
        self._nodes[owner] = dict(snapshot.nodes)
        for node in snapshot.nodes:
            self._items[(owner, node)] = list(snapshot.items.get(node, []))
            self._affiliations[(owner, node)] = dict(snapshot.affiliations.get(node, {}))
            self._subscriptions[(owner, node)] = list(snapshot.subscriptions.get(node, []))

    def forget(self, owner: str) -> None:
        """Drop `owner`'s nodes (not its affiliations and subscriptions at other accounts' nodes)."""
        for node in self._nodes.pop(owner, {}):
            for table in (self._items, self._affiliations, self._subscriptions):
                table.pop((owner, node), None)

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
        for table in (self._items, self._affiliations, self._subscriptions):
            table.pop((owner, node), None)

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
        # Items live under the owner's nodes (publish creates a node first), so only these are counted.
        return sum(len(item.payload) for node in self._nodes.get(owner, {})
                   for item in self._items.get((owner, node), []))

    def affiliations(self, owner: str, node: str) -> dict[str, str]:
        return dict(self._affiliations.get((owner, node), {}))

    def set_affiliation(self, owner: str, node: str, jid: str, affiliation: str | None) -> None:
        table = self._affiliations.setdefault((owner, node), {})
        if affiliation is None:
            table.pop(jid, None)
        else:
            table[jid] = affiliation

    def subscriptions(self, owner: str, node: str) -> list[str]:
        return list(self._subscriptions.get((owner, node), []))

    def set_subscription(self, owner: str, node: str, jid: str, subscribed: bool) -> bool:
        table = self._subscriptions.setdefault((owner, node), [])
        if subscribed == (jid in table):
            return False
        if subscribed:
            table.append(jid)
        else:
            table.remove(jid)
        return True

    def delete_user(self, owner: str) -> None:
        self._nodes.pop(owner, None)
        for key in [key for key in self._items if key[0] == owner]:
            del self._items[key]
        for affiliations in self._affiliations.values():
            for jid in [jid for jid in affiliations if _is_of_user(jid, owner)]:
                del affiliations[jid]
        for subscribers in self._subscriptions.values():
            subscribers[:] = [jid for jid in subscribers if not _is_of_user(jid, owner)]
        for key in [key for key in (*self._affiliations, *self._subscriptions) if key[0] == owner]:
            self._affiliations.pop(key, None)
            self._subscriptions.pop(key, None)


def _add_published_at(db: sqlite3.Connection) -> None:
    """2: publication times (XEP-0060 delay stamps on last items); a pep.sqlite of the release before
    versions were kept may already have the column."""
    if "published_at" not in {row[1] for row in db.execute("PRAGMA table_info(items)")}:
        db.execute("ALTER TABLE items ADD COLUMN published_at REAL")


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE IF NOT EXISTS nodes (owner TEXT NOT NULL, node TEXT NOT NULL, config TEXT NOT NULL,
                                      PRIMARY KEY (owner, node));
    CREATE TABLE IF NOT EXISTS items (seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
                                      node TEXT NOT NULL, id TEXT NOT NULL, payload BLOB NOT NULL,
                                      UNIQUE (owner, node, id));
    CREATE INDEX IF NOT EXISTS items_node ON items (owner, node, seq);
    CREATE TABLE IF NOT EXISTS affiliations (owner TEXT NOT NULL, node TEXT NOT NULL, jid TEXT NOT NULL,
                                             affiliation TEXT NOT NULL, PRIMARY KEY (owner, node, jid));
    CREATE TABLE IF NOT EXISTS subscriptions (seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
                                              node TEXT NOT NULL, jid TEXT NOT NULL, UNIQUE (owner, node, jid));
    """,
    _add_published_at,
)


def _user_pattern(owner: str) -> str:
    """A LIKE pattern for every JID of the account `owner` (local parts may hold % and _)."""
    return owner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "@%"


class SqlitePepStore:
    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, _MIGRATIONS)
        # (owner, node) -> items of nodes with persist_items false: in memory only, empty after a restart.
        self._volatile: dict[tuple[str, str], list[StoredItem]] = {}
        for owner, node, config in self._db.execute("SELECT owner, node, config FROM nodes"):
            if not NodeConfig.from_json(json.loads(config)).persist_items:
                self._volatile[(owner, node)] = []

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (tests set `PRAGMA max_page_count` on it to make the store full)."""
        return self._db

    def snapshot(self, owner: str, nodes: Collection[str] | None = None) -> OwnerPep:
        """One read per table (the PEP service reads an account's PEP at once, see PepService)."""
        with storage_errors():
            rows = self._db.execute("SELECT node, config FROM nodes WHERE owner = ? ORDER BY node", (owner,))
            held = {node: NodeConfig.from_json(json.loads(config)) for node, config in rows
                    if nodes is None or node in nodes}
            # Only the nodes asked for (at most the account's node count), or all of them.
            where, args = ("", (owner,)) if nodes is None else (
                f" AND node IN ({', '.join('?' * len(held))})", (owner, *held))
            items: dict[str, list[StoredItem]] = {node: [] for node in held}
            affiliations: dict[str, dict[str, str]] = {node: {} for node in held}
            subscriptions: dict[str, list[str]] = {node: [] for node in held}
            # Rows of no node (a file from before nodes were kept with their items) are left out.
            if held:
                for node, item_id, payload, published_at in self._db.execute(
                        f"SELECT node, id, payload, published_at FROM items WHERE owner = ?{where} ORDER BY seq", args):
                    if node in held:
                        items[node].append(StoredItem(id=item_id, payload=bytes(payload), published_at=published_at))
                for node, jid, affiliation in self._db.execute(
                        f"SELECT node, jid, affiliation FROM affiliations WHERE owner = ?{where} ORDER BY jid", args):
                    if node in held:
                        affiliations[node][jid] = affiliation
                for node, jid in self._db.execute(
                        f"SELECT node, jid FROM subscriptions WHERE owner = ?{where} ORDER BY seq", args):
                    if node in held:
                        subscriptions[node].append(jid)
        for node in held:
            if (volatile := self._volatile.get((owner, node))) is not None:
                items[node] = list(volatile)
        return OwnerPep(nodes=held, items=items, affiliations=affiliations, subscriptions=subscriptions)

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
        key, moved = (owner, node), list[StoredItem]()
        with transaction(self._db):
            self._db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)",
                             (owner, node, json.dumps(config.to_json())))
            if config.persist_items and key in self._volatile:
                # Asked to persist from now on: what is in memory goes to disk.
                for item in self._volatile[key]:
                    self._insert(owner, node, item)
            elif not config.persist_items and key not in self._volatile:
                # Asked not to persist: what is on disk moves to memory.
                moved = self._rows(owner, node)
                self._db.execute("DELETE FROM items WHERE owner = ? AND node = ?", (owner, node))
            self._trim(owner, node, keep)
        if config.persist_items:
            self._volatile.pop(key, None)
        elif key not in self._volatile:
            self._volatile[key] = moved
        if key in self._volatile:
            del self._volatile[key][:max(0, len(self._volatile[key]) - keep)]

    def delete_node(self, owner: str, node: str) -> None:
        with transaction(self._db):
            for table in ("items", "affiliations", "subscriptions", "nodes"):
                self._db.execute(f"DELETE FROM {table} WHERE owner = ? AND node = ?", (owner, node))
        self._volatile.pop((owner, node), None)

    def items(self, owner: str, node: str) -> list[StoredItem]:
        if (owner, node) in self._volatile:
            return list(self._volatile[(owner, node)])
        with storage_errors():
            return self._rows(owner, node)

    def _rows(self, owner: str, node: str) -> list[StoredItem]:
        rows = self._db.execute("SELECT id, payload, published_at FROM items WHERE owner = ? AND node = ? "
                                "ORDER BY seq", (owner, node)).fetchall()
        return [StoredItem(id=row[0], payload=bytes(row[1]), published_at=row[2]) for row in rows]

    def publish(self, owner: str, node: str, item: StoredItem, *, keep: int) -> None:
        if (volatile := self._volatile.get((owner, node))) is not None:
            volatile[:] = [old for old in volatile if old.id != item.id] + [item]
            del volatile[:max(0, len(volatile) - keep)]
            return
        with transaction(self._db):
            self._insert(owner, node, item)
            self._trim(owner, node, keep)

    def _insert(self, owner: str, node: str, item: StoredItem) -> None:
        self._db.execute("DELETE FROM items WHERE owner = ? AND node = ? AND id = ?", (owner, node, item.id))
        self._db.execute("INSERT INTO items (owner, node, id, payload, published_at) VALUES (?, ?, ?, ?, ?)",
                         (owner, node, item.id, item.payload, item.published_at))

    def _trim(self, owner: str, node: str, keep: int) -> None:
        self._db.execute("DELETE FROM items WHERE owner = ? AND node = ? AND seq NOT IN "
                         "(SELECT seq FROM items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?)",
                         (owner, node, owner, node, keep))

    def retract(self, owner: str, node: str, item_id: str) -> bool:
        if (volatile := self._volatile.get((owner, node))) is not None:
            remaining = [item for item in volatile if item.id != item_id]
            changed = len(remaining) != len(volatile)
            volatile[:] = remaining
            return changed
        with storage_errors():
            cursor = self._db.execute("DELETE FROM items WHERE owner = ? AND node = ? AND id = ?",
                                      (owner, node, item_id))
        return cursor.rowcount > 0

    def purge(self, owner: str, node: str) -> None:
        if (volatile := self._volatile.get((owner, node))) is not None:
            volatile.clear()
            return
        with storage_errors():
            self._db.execute("DELETE FROM items WHERE owner = ? AND node = ?", (owner, node))

    def usage_bytes(self, owner: str) -> int:
        with storage_errors():
            row = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM items WHERE owner = ?",
                                   (owner,)).fetchone()
            nodes = [node for (node,) in self._db.execute("SELECT node FROM nodes WHERE owner = ?", (owner,))]
        # The owner's in-memory items, found by its nodes: not a walk over every account's at each publish.
        in_memory = sum(len(item.payload) for node in nodes for item in self._volatile.get((owner, node), ()))
        return int(row[0]) + in_memory

    def affiliations(self, owner: str, node: str) -> dict[str, str]:
        with storage_errors():
            rows = self._db.execute("SELECT jid, affiliation FROM affiliations WHERE owner = ? AND node = ? "
                                    "ORDER BY jid", (owner, node)).fetchall()
        return {row[0]: row[1] for row in rows}

    def set_affiliation(self, owner: str, node: str, jid: str, affiliation: str | None) -> None:
        with storage_errors():
            if affiliation is None:
                self._db.execute("DELETE FROM affiliations WHERE owner = ? AND node = ? AND jid = ?",
                                 (owner, node, jid))
            else:
                self._db.execute("INSERT OR REPLACE INTO affiliations VALUES (?, ?, ?, ?)",
                                 (owner, node, jid, affiliation))

    def subscriptions(self, owner: str, node: str) -> list[str]:
        with storage_errors():
            rows = self._db.execute("SELECT jid FROM subscriptions WHERE owner = ? AND node = ? ORDER BY seq",
                                    (owner, node)).fetchall()
        return [row[0] for row in rows]

    def set_subscription(self, owner: str, node: str, jid: str, subscribed: bool) -> bool:
        with storage_errors():
            if subscribed:
                cursor = self._db.execute("INSERT OR IGNORE INTO subscriptions (owner, node, jid) VALUES (?, ?, ?)",
                                          (owner, node, jid))
            else:
                cursor = self._db.execute("DELETE FROM subscriptions WHERE owner = ? AND node = ? AND jid = ?",
                                          (owner, node, jid))
        return cursor.rowcount > 0

    def delete_user(self, owner: str) -> None:
        pattern = _user_pattern(owner)
        with transaction(self._db):
            for table in ("items", "nodes", "affiliations", "subscriptions"):
                self._db.execute(f"DELETE FROM {table} WHERE owner = ?", (owner,))
            for table in ("affiliations", "subscriptions"):
                self._db.execute(f"DELETE FROM {table} WHERE jid LIKE ? ESCAPE '\\'", (pattern,))
        for key in [key for key in self._volatile if key[0] == owner]:
            del self._volatile[key]

    def close(self) -> None:
        self._db.close()
