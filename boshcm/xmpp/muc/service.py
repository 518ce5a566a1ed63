"""The conference service at conference.<domain>: room registry, creation, persistence, service disco.

A component of the router: stanzas to the service or its rooms in, addressed stanzas out. Persistent rooms
(configuration, subject, affiliations) are kept in SQLite and come back after a restart.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    Element,
    element,
    error_reply,
    first_child,
    iq_result,
    local_name,
    sub,
)
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.room import NS_MUC, Room, RoomState, room_secret


class RoomStore:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS rooms (jid TEXT PRIMARY KEY, state TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS service (key TEXT PRIMARY KEY, value BLOB NOT NULL)")

    def secret(self) -> bytes:
        row = self._db.execute("SELECT value FROM service WHERE key = 'secret'").fetchone()
        if row is not None:
            return bytes(row[0])
        value = secrets.token_bytes(32)
        self._db.execute("INSERT INTO service VALUES ('secret', ?)", (value,))
        return value

    def save(self, jid: JID, state: RoomState) -> None:
        data = {"config": state.config.to_dict(), "subject": state.subject, "subject_from": state.subject_from,
                "affiliations": {str(k): v for k, v in state.affiliations.items()}}
        self._db.execute("INSERT OR REPLACE INTO rooms VALUES (?, ?)", (str(jid), json.dumps(data)))

    def delete(self, jid: JID) -> None:
        self._db.execute("DELETE FROM rooms WHERE jid = ?", (str(jid),))

    def load(self) -> dict[JID, RoomState]:
        rooms = {}
        for jid_text, text in self._db.execute("SELECT jid, state FROM rooms"):
            data = json.loads(text)
            rooms[JID.parse(jid_text)] = RoomState(
                config=RoomConfig.from_dict(data["config"]), subject=data["subject"],
                subject_from=data["subject_from"],
                affiliations={JID.parse(k): v for k, v in data["affiliations"].items()})
        return rooms

    def close(self) -> None:
        self._db.close()


class MucService:
    def __init__(self, *, domain: str, store: RoomStore, wall_clock: Callable[[], float],
                 name: str = "Chatrooms", lock_seconds: float = 10.0, default_config: RoomConfig | None = None,
                 id_factory: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> None:
        self.domain = domain
        self.name = name
        self._store = store
        self._wall_clock = wall_clock
        self._secret = store.secret()
        self._lock_seconds = lock_seconds
        self._default_config = default_config or RoomConfig()
        self._id_factory = id_factory
        self._rooms: dict[JID, Room] = {}
        self._locked_until: dict[JID, float] = {}
        for jid, state in store.load().items():
            self._rooms[jid] = self._new_room(jid, state)

    def _new_room(self, jid: JID, state: RoomState, *, locked: bool = False) -> Room:
        return Room(jid=jid, state=state, id_factory=self._id_factory, secret=room_secret(self._secret, jid),
                    wall_clock=self._wall_clock, locked=locked)

    def room(self, jid: JID) -> Room | None:
        return self._rooms.get(jid.bare)

    # --- Component --------------------------------------------------------------------------------

    def handle_stanza(self, stanza: Element, now: float) -> list[Element]:
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
                room = self._create(room_jid, sender, now)
            elif stanza.get("type") in ("error", "unavailable", "result"):
                return []
            else:
                return [error_reply(stanza, StanzaErrorCondition.ITEM_NOT_FOUND)]
        elif room.locked and self._locked_until.get(room_jid, 0.0) <= now:
            room.locked = False  # the creator never configured it: instant-room defaults apply
        before = (room.state.config, dict(room.state.affiliations), room.state.subject)
        out = room.handle(stanza, now)
        self._after(room, before)
        return out

    def session_ended(self, jid: JID, now: float) -> list[Element]:
        out: list[Element] = []
        for room in list(self._rooms.values()):
            before = (room.state.config, dict(room.state.affiliations), room.state.subject)
            out += room.session_ended(jid, now)
            self._after(room, before)
        return out

    # --- rooms ------------------------------------------------------------------------------------

    def _create(self, jid: JID, creator: JID, now: float) -> Room:
        state = RoomState(config=self._default_config, affiliations={creator.bare: "owner"})
        room = self._rooms[jid] = self._new_room(jid, state, locked=True)
        room.mark_created()
        self._locked_until[jid] = now + self._lock_seconds
        return room

    def _after(self, room: Room, before: tuple[object, ...]) -> None:
        if room.destroyed:
            del self._rooms[room.jid]
            self._store.delete(room.jid)
            return
        if room.config.persistent:
            if before != (room.state.config, room.state.affiliations, room.state.subject):
                self._store.save(room.jid, room.state)
        else:
            if before[0] != room.state.config:
                self._store.delete(room.jid)  # no longer persistent
            if room.empty:
                del self._rooms[room.jid]
                self._locked_until.pop(room.jid, None)

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
