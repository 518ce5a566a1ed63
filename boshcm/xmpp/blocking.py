"""XEP-0191 blocking command: each account's blocklist, its iqs and pushes (pure), and where lists are stored.

`Blocklists.handle_iq` answers the account's own get/block/unblock requests and orders the pushes to its
resources that asked for the list (XEP-0191 §3.3). `blocks(user, jid)` is the question the router asks on
every stanza between a local account and anyone else: the router drops and bounces (§3.5, §3.6) and sends
the presence changes a block or unblock implies. Lists live in a `BlocklistStore`: `Blocklists` keeps those
of the users online in memory (read at bind) and the most recently used others in a bounded cache, so that
routing does not read SQLite for every stanza; block and unblock are `SaveBlock`/`RemoveBlock` orders
(xmpp/orders.py) the router's adapter performs.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from boshcm.database import StorageError, open_database, storage_errors, transaction
from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import Element, element, error_reply, iq_result, make_stanza, qname, sub
from boshcm.xmpp.orders import BlockOrder, RemoveBlock, SaveBlock

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"


def matches(item: JID, jid: JID) -> bool:
    """XEP-0191 §3.? JID matching, as for privacy lists (XEP-0016 §2.1): full, bare, domain/resource, domain."""
    if item.local is not None:
        return jid == item if item.resource is not None else jid.bare == item
    if item.resource is not None:
        return jid.local is None and jid.domain == item.domain and jid.resource == item.resource
    return jid.domain == item.domain


def blocked_error(stanza: Element) -> Element:
    """XEP-0191 §3.6: what a user gets for a message or iq to someone they block."""
    reply = error_reply(stanza, StanzaErrorCondition.NOT_ACCEPTABLE, error_type=StanzaErrorType.CANCEL)
    error = reply.find("{jabber:client}error")
    assert error is not None
    sub(error, NS_BLOCKING_ERRORS, "blocked")
    return reply


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockingOutcome:
    reply: Element                                            # the iq result or error for the requester
    pushes: list[tuple[JID, Element]] = field(default_factory=list)
    blocked: tuple[JID, ...] = ()                             # items added to the list
    unblocked: tuple[JID, ...] = ()                           # items removed from the list
    write: BlockOrder | None = None                           # the storage order, performed before the reply


class BlocklistStore(Protocol):
    def blocklist(self, user: str) -> list[JID]: ...
    def block(self, user: str, jids: list[JID]) -> None: ...
    def unblock(self, user: str, jids: list[JID] | None) -> None:
        """Remove `jids`, or every item when None."""
    def delete_user(self, user: str) -> None: ...


class MemoryBlocklistStore:
    def __init__(self) -> None:
        self._lists: dict[str, list[JID]] = {}
        self.reads = 0

    def blocklist(self, user: str) -> list[JID]:
        self.reads += 1
        return list(self._lists.get(user, []))

    def block(self, user: str, jids: list[JID]) -> None:
        current = self._lists.setdefault(user, [])
        current += [jid for jid in jids if jid not in current]

    def unblock(self, user: str, jids: list[JID] | None) -> None:
        if jids is None:
            self._lists.pop(user, None)
        else:
            self._lists[user] = [jid for jid in self._lists.get(user, []) if jid not in jids]

    def delete_user(self, user: str) -> None:
        self._lists.pop(user, None)


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS blocklist (user TEXT NOT NULL, jid TEXT NOT NULL, PRIMARY KEY (user, jid));
""",
)


class SqliteBlocklistStore:
    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, _MIGRATIONS)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def blocklist(self, user: str) -> list[JID]:
        with storage_errors():
            rows = self._db.execute("SELECT jid FROM blocklist WHERE user = ? ORDER BY rowid", (user,)).fetchall()
        return [JID.parse(row[0]) for row in rows]

    def block(self, user: str, jids: list[JID]) -> None:
        with transaction(self._db):
            self._db.executemany("INSERT OR IGNORE INTO blocklist VALUES (?, ?)", [(user, str(jid)) for jid in jids])

    def unblock(self, user: str, jids: list[JID] | None) -> None:
        with transaction(self._db):
            if jids is None:
                self._db.execute("DELETE FROM blocklist WHERE user = ?", (user,))
            else:
                self._db.executemany("DELETE FROM blocklist WHERE user = ? AND jid = ?",
                                     [(user, str(jid)) for jid in jids])

    def delete_user(self, user: str) -> None:
        self.unblock(user, None)

    def close(self) -> None:
        self._db.close()


class Blocklists:
    """Every blocklist the router needs, in memory; changes come out as `SaveBlock`/`RemoveBlock` orders.

    The list of a user online is read once at bind (`load`) and kept until the last logout (`forget`); a list
    asked for as somebody else's (a stanza to a user offline) is read when first needed and kept in a bounded
    cache. Those reads are the only store calls left here: `store` is written only by the router's adapter.
    """

    def __init__(self, store: BlocklistStore, *, max_items: int = 1000, max_cached: int = 4096) -> None:
        self.store = store
        self._max_items, self._max_cached = max_items, max_cached
        self._online: dict[str, tuple[JID, ...] | None] = {}   # None: not read yet (the read at bind failed)
        self._cache: OrderedDict[str, tuple[JID, ...]] = OrderedDict()
        self._interested: dict[str, set[JID]] = {}
        self._push_counter = 0

    def blocks(self, user: str, jid: JID) -> bool:
        """Whether `user`'s blocklist covers `jid` (a failed read blocks nothing: messages still flow)."""
        try:
            items = self._items(user)
        except StorageError:
            return False
        # Asked for every recipient of every fan-out, and most lists are empty: no generator for those.
        return bool(items) and any(matches(item, jid) for item in items)

    def load(self, user: str) -> None:
        """`user` is online: its list is kept in memory from now until `forget`."""
        if user not in self._online:
            self._online[user] = self._cache.pop(user, None)
        with contextlib.suppress(StorageError):  # read again when first needed
            self._items(user)

    def forget(self, user: str) -> None:
        """`user`'s last resource is gone."""
        self._online.pop(user, None)

    def refused(self, user: str) -> None:
        """A write of `user`'s list was refused: the disk is the truth, the list is read again when needed."""
        if user in self._online:
            self._online[user] = None
        self._cache.pop(user, None)

    def resource_gone(self, jid: JID) -> None:
        if jid.local is not None and (resources := self._interested.get(jid.local)) is not None:
            resources.discard(jid)
            if not resources:
                del self._interested[jid.local]

    def handle_iq(self, sender: JID, iq: Element) -> BlockingOutcome:
        """A get or set in urn:xmpp:blocking from one of the account's own resources."""
        assert sender.local is not None
        user = sender.local
        payload = next(child for child in iq if isinstance(child.tag, str))
        try:
            if iq.get("type") == "get" and payload.tag == qname(NS_BLOCKING, "blocklist"):
                self._interested.setdefault(user, set()).add(sender)   # XEP-0191 §3.2: it gets pushes now
                result = element(NS_BLOCKING, "blocklist")
                for item in self._items(user):
                    sub(result, NS_BLOCKING, "item", {"jid": str(item)})
                return BlockingOutcome(reply=iq_result(iq, result))
            if iq.get("type") == "set" and payload.tag in (qname(NS_BLOCKING, "block"), qname(NS_BLOCKING, "unblock")):
                return self._change(user, iq, payload)
        except StorageError:
            return BlockingOutcome(reply=error_reply(iq, StanzaErrorCondition.RESOURCE_CONSTRAINT,
                                                     text="The server cannot store it now; try again later"))
        return BlockingOutcome(reply=error_reply(iq, StanzaErrorCondition.BAD_REQUEST))

    def _change(self, user: str, iq: Element, payload: Element) -> BlockingOutcome:
        block = payload.tag == qname(NS_BLOCKING, "block")
        try:
            jids = list(dict.fromkeys(JID.parse(item.get("jid", ""))
                                      for item in payload.iter(qname(NS_BLOCKING, "item"))))
        except InvalidJID:
            return BlockingOutcome(reply=error_reply(iq, StanzaErrorCondition.JID_MALFORMED))  # XEP-0191 §3.3
        current = self._items(user)
        write: BlockOrder | None
        if block:
            if not jids:
                return BlockingOutcome(reply=error_reply(iq, StanzaErrorCondition.BAD_REQUEST))  # XEP-0191 §3.3
            added = [jid for jid in jids if jid not in current]
            if len(current) + len(added) > self._max_items:
                return BlockingOutcome(reply=error_reply(
                    iq, StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.CANCEL,
                    text=f"A blocklist holds at most {self._max_items} items"))
            self._keep(user, current + tuple(added))
            write = SaveBlock(user=user, jids=tuple(added), request=iq) if added else None
            changed, outcome_blocked, outcome_unblocked = added, tuple(added), tuple[JID, ...]()
        else:
            removed = [jid for jid in jids if jid in current] if jids else list(current)  # §3.5: empty = all
            self._keep(user, tuple(jid for jid in current if jid not in removed))
            write = RemoveBlock(user=user, jids=tuple(jids) or None, request=iq)
            changed, outcome_blocked, outcome_unblocked = jids, tuple[JID, ...](), tuple(removed)
        pushes = []
        for resource in sorted(self._interested.get(user, ()) if changed or not block else (), key=str):
            self._push_counter += 1
            push = make_stanza("iq", {"type": "set", "id": f"block{self._push_counter}", "to": str(resource)})
            listing = sub(push, NS_BLOCKING, "block" if block else "unblock")
            for jid in changed:
                sub(listing, NS_BLOCKING, "item", {"jid": str(jid)})
            pushes.append((resource, push))
        return BlockingOutcome(reply=iq_result(iq), pushes=pushes, blocked=outcome_blocked,
                               unblocked=outcome_unblocked, write=write)

    def _items(self, user: str) -> tuple[JID, ...]:
        if (items := self._online.get(user)) is not None:
            return items
        if (items := self._cache.get(user)) is not None:
            self._cache.move_to_end(user)
            return items
        items = tuple(self.store.blocklist(user))
        self._keep(user, items)
        return items

    def _keep(self, user: str, items: tuple[JID, ...]) -> None:
        if user in self._online:
            self._online[user] = items
            return
        self._cache[user] = items
        self._cache.move_to_end(user)
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
