"""The conference service at conference.<domain>: room registry, creation, quotas, service disco, persistence.

`MucRegistry` is the pure part: stanzas to the service or its rooms and `now` in, addressed stanzas and storage
orders out — `SaveRoom`/`DeleteRoom` for persistent rooms (configuration, subject, affiliations, reserved nicks),
`DeleteArchive` for a room's archive, and the archive orders the router uses for accounts (xmpp/orders.py):
`ArchiveMessage` (from `ArchiveService.entry()`) and `QueryArchive`, a read whose answer is stanzas.
`MucService` is its adapter and the router's component: it reads the rooms and the service secret once at
start (`RoomStore`, rooms.sqlite), performs the orders in the order given and routes the stanzas. The router
calls components synchronously, so the writes are too (one small SQLite transaction per changed room).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lxml import etree

from boshcm.database import DatabaseFault, StorageError, open_database, storage_errors, transaction
from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_CLIENT,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    Addressed,
    Element,
    Outgoing,
    clone,
    element,
    error_reply,
    first_child,
    iq_result,
    local_name,
    qname,
    sub,
)
from boshcm.xmpp.mam import NS_MAM, NS_STANZA_ID, ArchiveService, Party, remove_stanza_id
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.namespaces import NS_MUC
from boshcm.xmpp.muc.roles import Affiliation
from boshcm.xmpp.muc.room import Room, RoomLimits, RoomState, room_secret
from boshcm.xmpp.orders import ArchiveMessage, QueryArchive

log = logging.getLogger(__name__)


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = (
    """CREATE TABLE IF NOT EXISTS rooms (jid TEXT PRIMARY KEY, state TEXT NOT NULL);
       CREATE TABLE IF NOT EXISTS service (key TEXT PRIMARY KEY, value BLOB NOT NULL);""",
)


class RoomStore:
    """Persistent rooms in SQLite. A save or delete that fails (disk full, read-only) is kept in memory and
    written with the next change or at close, so rooms go on working and nothing is lost once space returns."""

    def __init__(self, path: Path | str) -> None:
        self._path = path
        self._db = open_database(path, _MIGRATIONS)
        self._unsaved: dict[JID, str | None] = {}   # room -> state to write, or None: to delete
        self._failing = False

    def secret(self) -> bytes:
        row = self._db.execute("SELECT value FROM service WHERE key = 'secret'").fetchone()
        if row is not None:
            return bytes(row[0])
        value = secrets.token_bytes(32)
        try:
            with storage_errors():
                self._db.execute("INSERT INTO service VALUES ('secret', ?)", (value,))
        except StorageError as exc:
            # Only on the first start: without a stored secret, room ids would change at every restart.
            raise DatabaseFault(self._path, f"cannot write to it ({exc})", "free some space or make it writable") \
                from None
        return value

    def save(self, jid: JID, state: RoomState) -> None:
        data = {"config": state.config.to_dict(), "subject": state.subject, "subject_from": state.subject_from,
                "affiliations": {str(k): v for k, v in state.affiliations.items()},
                "nicks": {str(k): v for k, v in state.nicks.items()}}
        self._unsaved.pop(jid, None)
        self._unsaved[jid] = json.dumps(data)
        self._flush()

    def delete(self, jid: JID) -> None:
        self._unsaved.pop(jid, None)
        self._unsaved[jid] = None
        self._flush()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (tests make it full with `PRAGMA max_page_count`)."""
        return self._db

    @property
    def unsaved(self) -> int:
        """Rooms whose last change is not on disk yet."""
        return len(self._unsaved)

    def _flush(self) -> None:
        try:
            with transaction(self._db):
                for jid, text in self._unsaved.items():
                    if text is None:
                        self._db.execute("DELETE FROM rooms WHERE jid = ?", (str(jid),))
                    else:
                        self._db.execute("INSERT OR REPLACE INTO rooms VALUES (?, ?)", (str(jid), text))
        except StorageError as exc:
            if not self._failing:
                log.error("cannot save rooms to %s (%s); kept in memory and written with the next change",
                          self._path, exc)
            self._failing = True
            return
        if self._failing:
            log.warning("rooms saved to %s again", self._path)
        self._failing = False
        self._unsaved.clear()

    def load(self) -> dict[JID, RoomState]:
        rooms = {}
        for jid_text, text in self._db.execute("SELECT jid, state FROM rooms"):
            data = json.loads(text)
            rooms[JID.parse(jid_text)] = RoomState(
                config=RoomConfig.from_dict(data["config"]), subject=data["subject"],
                subject_from=data["subject_from"],
                affiliations={JID.parse(k): Affiliation(v) for k, v in data["affiliations"].items()},
                nicks={JID.parse(k): v for k, v in data.get("nicks", {}).items()})
        return rooms

    def close(self) -> None:
        if self._unsaved:
            self._flush()
            if self._unsaved:
                log.error("%d room changes could not be saved to %s", len(self._unsaved), self._path)
        self._db.close()


# --- storage orders --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveRoom:
    """A persistent room's state changed (or it became persistent): write it."""

    jid: JID
    state: RoomState  # a copy, taken when the order was made


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteRoom:
    """The room was destroyed or is no longer persistent."""

    jid: JID


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteArchive:
    """The room is gone: a later room of the same name starts afresh."""

    room: JID


MucOrder = SaveRoom | DeleteRoom | ArchiveMessage | DeleteArchive | QueryArchive


class MucService:
    """The router's component: a `MucRegistry` with its storage (`store`). The registry is made from the store's
    service secret and persistent rooms (`MucRegistry(secret=store.secret(), rooms=store.load(), ...)`); the service
    performs its orders (rooms.sqlite, the room archive) and returns the stanzas to route."""

    def __init__(self, registry: MucRegistry, store: RoomStore) -> None:
        self.registry = registry
        self.domain = registry.domain
        self.name = registry.name
        self._store = store
        self._archive = registry.archive

    def room(self, jid: JID) -> Room | None:
        return self.registry.room(jid)

    def rooms(self) -> list[Room]:  # boshcm/metrics.py counts rooms and occupants at scrape time
        return self.registry.rooms()

    def handle_stanza(self, stanza: Element, now: float) -> list[Outgoing]:
        out, orders = self.registry.handle_stanza(stanza, now)
        return [*out, *self._perform(orders, out)]

    def session_ended(self, jid: JID, now: float) -> list[Outgoing]:
        out, orders = self.registry.session_ended(jid, now)
        return [*out, *self._perform(orders, out)]

    def _perform(self, orders: list[MucOrder], routed: Sequence[Outgoing]) -> list[Element]:
        """Write what the registry ordered (`routed`: the stanzas it made, still to go); the answers to its reads are
        stanzas to route."""
        answers: list[Element] = []
        for order in orders:
            match order:
                case SaveRoom(jid=jid, state=state):
                    self._store.save(jid, state)
                case DeleteRoom(jid=jid):
                    self._store.delete(jid)
                case ArchiveMessage():
                    assert self._archive is not None
                    # A failed write loses only the archive copy: the message itself goes to everyone, without
                    # the stanza-id that would name the missing entry.
                    try:
                        self._archive.perform(order)
                    except StorageError:
                        self.registry.not_archived(order, routed)
                case DeleteArchive(room=room):
                    assert self._archive is not None
                    try:
                        self._archive.delete_archive(room)
                    except StorageError:
                        log.error("cannot delete the archive of %s", room)
                case QueryArchive(archive=room, iq=iq, wall=wall):
                    assert self._archive is not None
                    answers += self._archive.handle_iq(room, iq, wall)
        return answers


class MucRegistry:
    """Quotas (docs/security.md, "Rooms"): an account may own at most `max_rooms_per_account` rooms, temporary
    or persistent (0: no limit; accounts in `quota_exempt` have none); the service holds at most `max_rooms`;
    a guest (`is_guest`: anonymous login) may create temporary rooms only. Per-room limits (`max_occupants`,
    the iq table, affiliations) are `RoomLimits`."""

    def __init__(self, *, domain: str, secret: bytes, rooms: dict[JID, RoomState] | None = None,
                 wall_clock: Callable[[], float], name: str = "Chatrooms", lock_seconds: float = 10.0,
                 default_config: RoomConfig | None = None,
                 id_factory: Callable[[], str] = lambda: secrets.token_urlsafe(12),
                 max_occupants: int = 5_000, max_rooms_per_account: int = 10,
                 quota_exempt: frozenset[JID] = frozenset(), is_guest: Callable[[JID], bool] = lambda _jid: False,
                 max_pending_iqs: int = 10_000, iq_timeout_seconds: float = 60.0,
                 max_affiliations: int = 10_000, max_rooms: int = 10_000,
                 archive: ArchiveService | None = None) -> None:
        self.domain = domain
        self.name = name
        # Rooms stamp their messages with the wall clock themselves (muc/room.py); the registry reads it only to
        # date archive entries and queries (retention).
        self._wall_clock = wall_clock
        self._secret = secret
        self._lock_seconds = lock_seconds
        self._default_config = default_config or RoomConfig()
        self._id_factory = id_factory
        self._limits = RoomLimits(max_occupants=max_occupants, max_pending_iqs=max_pending_iqs,
                                  iq_timeout_seconds=iq_timeout_seconds, max_affiliations=max_affiliations)
        self._max_rooms = max_rooms
        self._max_rooms_per_account = max_rooms_per_account
        self._quota_exempt = frozenset(jid.bare for jid in quota_exempt)
        self._is_guest = is_guest
        self._rooms: dict[JID, Room] = {}
        self._owned: dict[JID, set[JID]] = {}   # account -> rooms it owns, for the quota
        self._locked_until: dict[JID, float] = {}
        # XEP-0313: persistent rooms keep an archive of their groupchat messages (docs/protocol.md). The registry
        # takes only its `entry()`, an order; `MucService` performs the writes and the reads, as the router does.
        self._archive = archive
        for jid, state in (rooms or {}).items():
            self._rooms[jid] = self._new_room(jid, state)
            self._count_owners(jid, {}, state.affiliations)

    def _new_room(self, jid: JID, state: RoomState, *, locked: bool = False) -> Room:
        return Room(jid=jid, state=state, id_factory=self._id_factory, secret=room_secret(self._secret, jid),
                    wall_clock=self._wall_clock, locked=locked, limits=self._limits, is_guest=self._is_guest)

    @property
    def archive(self) -> ArchiveService | None:
        return self._archive

    def room(self, jid: JID) -> Room | None:
        return self._rooms.get(jid.bare)

    def rooms(self) -> list[Room]:  # boshcm/metrics.py counts rooms and occupants at scrape time
        return list(self._rooms.values())

    # --- Component --------------------------------------------------------------------------------

    def handle_stanza(self, stanza: Element, now: float) -> tuple[Sequence[Outgoing], list[MucOrder]]:
        """The stanzas to route and the storage orders to perform, in order."""
        orders: list[MucOrder] = []
        return self._handle(stanza, now, orders), orders

    def _handle(self, stanza: Element, now: float, orders: list[MucOrder]) -> Sequence[Outgoing]:
        try:
            to = JID.parse(stanza.get("to", ""))
            sender = JID.parse(stanza.get("from", ""))
        except InvalidJID:
            return []
        if to.local is None:
            return self._service_stanza(stanza)
        room_jid = to.bare
        room = self._rooms.get(room_jid)
        if room is None:
            if local_name(stanza) == "presence" and to.resource and stanza.get("type") is None \
                    and stanza.find(f"{{{NS_MUC}}}x") is not None:
                if (refusal := self._may_create(sender)) is not None:
                    # XEP-0045 §10.1.1: room creation restricted.
                    reply = error_reply(stanza, StanzaErrorCondition.NOT_ALLOWED, text=refusal)
                    sub(reply, NS_MUC, "x")
                    return [reply]
                room = self._create(room_jid, sender, now)
            elif stanza.get("type") in ("error", "unavailable", "result"):
                return []
            else:
                return [error_reply(stanza, StanzaErrorCondition.ITEM_NOT_FOUND)]
        elif room.locked and self._locked_until.get(room_jid, 0.0) <= now:
            room.locked = False  # the creator never configured it: instant-room defaults apply
        if self._archive is not None and to.resource is None and local_name(stanza) == "iq" \
                and (payload := first_child(stanza)) is not None and etree.QName(payload).namespace == NS_MAM:
            return self._archive_query(room, sender, stanza, orders)
        before = _snapshot(room)
        out = room.handle(stanza, now)
        if self._archive is not None and room.config.persistent:
            self._archive_hooks(room, stanza, out, orders)
        self._after(room, before, orders)
        return out

    # --- the room archive (XEP-0313 §5.1.2) -------------------------------------------------------

    def _archive_hooks(self, room: Room, stanza: Element, out: Sequence[Outgoing], orders: list[MucOrder]) -> None:
        """One archive entry per room message (not per occupant's copy), under the room's stanza-id."""
        kind, stanza_type = local_name(stanza), stanza.get("type")
        if kind == "iq" and stanza_type == "get":
            for reply in map(_stanza_of, out):
                info = reply.find(qname(NS_DISCO_INFO, "query"))
                if reply.get("type") == "result" and info is not None and not info.get("node"):
                    sub(info, NS_DISCO_INFO, "feature", {"var": NS_MAM})
            return
        if kind != "message" or stanza_type != "groupchat" or stanza.find(qname(NS_CLIENT, "body")) is None:
            return
        for reflection in map(_stanza_of, out):
            stanza_id = reflection.find(qname(NS_STANZA_ID, "stanza-id"))
            if reflection.get("type") == "groupchat" and stanza_id is not None \
                    and stanza_id.get("by") == str(room.jid) and reflection.find(qname(NS_CLIENT, "body")) is not None:
                assert self._archive is not None
                archived = clone(reflection)
                archived.attrib.pop("to", None)
                with contextlib.suppress(InvalidJID):
                    party = Party(archive=room.jid, peer=JID.parse(reflection.get("from", "")))
                    archived_id, order = self._archive.entry([party], archived, self._wall_clock(),
                                                             message_id=stanza_id.get("id"))
                    if order is not None:
                        orders.append(order)
                    else:  # too large to keep
                        _unstamp(room, archived_id, out)
                return

    def not_archived(self, order: ArchiveMessage, routed: Sequence[Outgoing]) -> None:
        """The room archive refused `order`: its stanza-id goes off the copies still to be routed and the history."""
        if order.messages and (room := self.room(JID.parse(order.messages[0].archive))) is not None:
            _unstamp(room, order.messages[0].id, routed)

    def _archive_query(self, room: Room, sender: JID, iq: Element, orders: list[MucOrder]) -> list[Element]:
        if not room.config.persistent:
            return [error_reply(iq, StanzaErrorCondition.SERVICE_UNAVAILABLE, text="This room keeps no archive")]
        affiliation = room.affiliation(sender)
        closed = room.config.members_only or bool(room.config.password)
        if affiliation == Affiliation.OUTCAST or (closed and affiliation.rank < Affiliation.MEMBER.rank
                                                  and not room.has_session(sender)):
            # XEP-0313 §5.1.2: whoever could not join may not read what was said either.
            return [error_reply(iq, StanzaErrorCondition.FORBIDDEN)]
        orders.append(QueryArchive(archive=room.jid, requester=sender, iq=iq, wall=self._wall_clock()))
        return []

    def session_ended(self, jid: JID, now: float) -> tuple[list[Element], list[MucOrder]]:
        out: list[Element] = []
        orders: list[MucOrder] = []
        for room in list(self._rooms.values()):
            if not room.has_session(jid):
                continue
            before = _snapshot(room)
            out += room.session_ended(jid, now)
            self._after(room, before, orders)
        return out, orders

    # --- rooms ------------------------------------------------------------------------------------

    def _may_create(self, creator: JID) -> str | None:
        """Why this account may not create a room now, or None."""
        if self._default_config.persistent and self._is_guest(creator):
            return "Guests may only create temporary rooms"
        if len(self._rooms) >= self._max_rooms and creator.bare not in self._quota_exempt:
            return "The service holds as many rooms as it may"
        owned = self._owned.get(creator.bare, ())
        if self._max_rooms_per_account and len(owned) >= self._max_rooms_per_account \
                and creator.bare not in self._quota_exempt:
            return f"You own {len(owned)} rooms already, the most one account may"
        return None

    def _create(self, jid: JID, creator: JID, now: float) -> Room:
        state = RoomState(config=self._default_config, affiliations={creator.bare: Affiliation.OWNER})
        room = self._rooms[jid] = self._new_room(jid, state, locked=True)
        self._count_owners(jid, {}, state.affiliations)
        room.mark_created()
        self._locked_until[jid] = now + self._lock_seconds
        return room

    def _after(self, room: Room, before: _Snapshot, orders: list[MucOrder]) -> None:
        if room.destroyed:
            self._forget(room, orders)
            orders.append(DeleteRoom(jid=room.jid))
            return
        if before.affiliations != room.state.affiliations:
            self._count_owners(room.jid, before.affiliations, room.state.affiliations)
        if room.config.persistent:
            if before != _snapshot(room):
                state = room.state
                orders.append(SaveRoom(jid=room.jid, state=replace(state, affiliations=dict(state.affiliations),
                                                                   nicks=dict(state.nicks))))
        else:
            if before.config != room.state.config:
                orders.append(DeleteRoom(jid=room.jid))  # no longer persistent
            if room.empty:
                self._forget(room, orders)

    def _forget(self, room: Room, orders: list[MucOrder]) -> None:
        if self._archive is not None:
            orders.append(DeleteArchive(room=room.jid))  # a later room of the same name starts afresh
        del self._rooms[room.jid]
        self._locked_until.pop(room.jid, None)
        self._count_owners(room.jid, room.state.affiliations, {})

    def _count_owners(self, room: JID, before: dict[JID, Affiliation], after: dict[JID, Affiliation]) -> None:
        for account in {jid for jid, held in before.items() if held == Affiliation.OWNER}:
            if after.get(account) != Affiliation.OWNER:
                owned = self._owned.get(account)
                if owned is not None:
                    owned.discard(room)
                    if not owned:
                        del self._owned[account]
        for account, held in after.items():
            if held == Affiliation.OWNER:
                self._owned.setdefault(account, set()).add(room)

    # --- the service itself (XEP-0045 §6) ---------------------------------------------------------

    def _service_stanza(self, stanza: Element) -> list[Element]:
        if local_name(stanza) != "iq" or stanza.get("type") not in ("get", "set"):
            return []
        payload = first_child(stanza)
        if stanza.get("type") == "get" and payload is not None and payload.tag == f"{{{NS_DISCO_INFO}}}query":
            info = element(NS_DISCO_INFO, "query")
            sub(info, NS_DISCO_INFO, "identity", {"category": "conference", "type": "text", "name": self.name})
            for feature in (NS_MUC, NS_DISCO_INFO, NS_DISCO_ITEMS, "urn:xmpp:occupant-id:0", "urn:xmpp:sid:0"):
                sub(info, NS_DISCO_INFO, "feature", {"var": feature})
            return [iq_result(stanza, info)]
        if stanza.get("type") == "get" and payload is not None and payload.tag == f"{{{NS_DISCO_ITEMS}}}query":
            items = element(NS_DISCO_ITEMS, "query")
            for jid, room in sorted(self._rooms.items(), key=lambda pair: str(pair[0])):
                if room.config.public and not room.locked:
                    sub(items, NS_DISCO_ITEMS, "item", {"jid": str(jid), "name": room.config.name or jid.local or ""})
            return [iq_result(stanza, items)]
        return [error_reply(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Snapshot:
    """What a stanza may change that must be saved (persistent rooms) or counted (owners)."""

    config: RoomConfig
    affiliations: dict[JID, Affiliation]
    subject: str
    nicks: dict[JID, str]


def _snapshot(room: Room) -> _Snapshot:
    state = room.state
    return _Snapshot(config=state.config, affiliations=dict(state.affiliations), subject=state.subject,
                     nicks=dict(state.nicks))


def _stanza_of(item: Outgoing) -> Element:
    """The stanza itself: a room message is one stanza shared by all its recipients (`Addressed`)."""
    return item.stanza if isinstance(item, Addressed) else item


def _unstamp(room: Room, archived_id: str, routed: Sequence[Outgoing]) -> None:
    """XEP-0359 §4: no stanza-id may name an archive entry that is not there."""
    for stanza in map(_stanza_of, routed):
        remove_stanza_id(stanza, archived_id)
    room.unstamp(archived_id)
