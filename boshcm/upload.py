"""XEP-0363 HTTP file upload: the slot machine (pure), the upload component (pure) and the HTTP adapter.

Theory of operation. A client asks the upload component (`upload.<domain>`, listed in the server's disco
items) for a slot: `UploadService.handle_stanza` checks the request against `UploadSlots`, which decides
everything (size limit, per-account quota, pending slots, expiry, each slot used once) with `now` passed in,
and answers with a PUT and a GET URL that are the same: `<base>/upload/<slot id>/<file name>`. The slot id is
128 random bits; it is the only secret and the only thing on disk (`<data_dir>/upload/<slot id>`), so no name
a client chooses ever becomes a path. `UploadHttp` is the thin aiohttp adapter: it asks the machine whether a
PUT may start, streams the body in bounded chunks to a temporary file, renames it into place and tells the
machine; it serves GET for finished uploads only, with headers that keep a browser from running what it gets.
Finished uploads are recorded in `<data_dir>/upload.sqlite` so quotas and expiry survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from aiohttp import web

from boshcm.database import open_database, storage_errors, transaction
from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_DATA_FORMS,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
    Element,
    element,
    error_reply,
    first_child,
    iq_result,
    local_name,
    qname,
    sub,
)
from boshcm.web import Cors

NS_UPLOAD = "urn:xmpp:http:upload:0"
UPLOAD_PATH = "/upload"
CHUNK_BYTES = 65_536
# Shown inline by browsers; anything else (HTML, SVG with scripts, ...) is served as an attachment.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}$")
_SLOT_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLimits:
    max_file_bytes: int = 10_485_760
    quota_bytes: int = 104_857_600           # per account: stored files plus open slots
    slot_seconds: float = 300.0              # an unused slot is forgotten after this
    file_seconds: float = 2_592_000.0        # a finished upload is deleted after this
    max_pending_slots: int = 16              # per account


class SlotState(Enum):
    OPEN = "open"          # granted, waiting for its PUT
    WRITING = "writing"    # a PUT is streaming into it
    STORED = "stored"      # uploaded; served by GET until it expires


@dataclass(slots=True, kw_only=True)
class Slot:
    id: str
    owner: str                               # the account's bare JID
    filename: str
    size: int
    content_type: str
    expires_at: float
    state: SlotState = SlotState.OPEN


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """A slot request the service declines: the XEP-0363 §4 error and its text."""

    condition: StanzaErrorCondition
    text: str
    error_type: StanzaErrorType | None = None
    max_file_bytes: int | None = None        # set for file-too-large


class PutVerdict(Enum):
    """What the HTTP adapter answers a PUT before reading its body (the HTTP status)."""

    ACCEPT = 201
    NOT_FOUND = 404          # unknown, expired, or the name differs from the slot's
    CONFLICT = 409           # the slot was used already, or is being written
    LENGTH_REQUIRED = 411
    WRONG_SIZE = 413         # Content-Length is not the size the slot was granted for


@dataclass(slots=True)
class UploadSlots:
    """Every slot and stored file, by id; the rules of XEP-0363 and of our limits. Pure: `now` comes in."""

    limits: UploadLimits
    new_id: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(16))
    _slots: dict[str, Slot] = field(default_factory=dict)

    def request(self, owner: str, filename: str, size: int, content_type: str, now: float) -> Slot | Refused:
        if size > self.limits.max_file_bytes:
            # XEP-0363 §4: file-too-large, with the limit.
            return Refused(condition=StanzaErrorCondition.NOT_ACCEPTABLE, error_type=StanzaErrorType.MODIFY,
                           text=f"Files are limited to {self.limits.max_file_bytes} bytes",
                           max_file_bytes=self.limits.max_file_bytes)
        mine = [slot for slot in self._slots.values() if slot.owner == owner]
        if sum(slot.state is not SlotState.STORED for slot in mine) >= self.limits.max_pending_slots:
            return Refused(condition=StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.WAIT,
                           text=f"At most {self.limits.max_pending_slots} uploads may be pending")
        if sum(slot.size for slot in mine) + size > self.limits.quota_bytes:
            # XEP-0363 §4: quota reached.
            return Refused(condition=StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.WAIT,
                           text=f"Each account may store {self.limits.quota_bytes} bytes of uploads")
        slot = Slot(id=self.new_id(), owner=owner, filename=filename, size=size, content_type=content_type,
                    expires_at=now + self.limits.slot_seconds)
        self._slots[slot.id] = slot
        return slot

    def begin_put(self, slot_id: str, filename: str, content_length: int | None, now: float) -> PutVerdict:
        slot = self._slots.get(slot_id)
        if slot is None or slot.filename != filename or (slot.state is SlotState.OPEN and now >= slot.expires_at):
            return PutVerdict.NOT_FOUND
        if slot.state is not SlotState.OPEN:
            return PutVerdict.CONFLICT                       # a slot is usable once
        if content_length is None:
            return PutVerdict.LENGTH_REQUIRED
        if content_length != slot.size:
            return PutVerdict.WRONG_SIZE
        slot.state = SlotState.WRITING
        return PutVerdict.ACCEPT

    def put_failed(self, slot_id: str) -> None:
        """The body was short, too long or the write failed: the slot is spent (no second try on one URL)."""
        self._slots.pop(slot_id, None)

    def put_done(self, slot_id: str, now: float) -> Slot:
        slot = self._slots[slot_id]
        slot.state, slot.expires_at = SlotState.STORED, now + self.limits.file_seconds
        return slot

    def restore(self, slot: Slot) -> None:
        """A stored upload read back at start-up."""
        self._slots[slot.id] = slot

    def stored(self, slot_id: str, filename: str, now: float) -> Slot | None:
        slot = self._slots.get(slot_id)
        if slot is None or slot.state is not SlotState.STORED or slot.filename != filename or now >= slot.expires_at:
            return None
        return slot

    def expire(self, now: float) -> list[Slot]:
        """Forget what is past its time; the stored ones returned are for the adapter to delete."""
        gone = [slot for slot in self._slots.values() if slot.state is not SlotState.WRITING and now >= slot.expires_at]
        for slot in gone:
            del self._slots[slot.id]
        return [slot for slot in gone if slot.state is SlotState.STORED]

    def next_deadline(self) -> float | None:
        return min((slot.expires_at for slot in self._slots.values() if slot.state is not SlotState.WRITING),
                   default=None)


def clean_filename(name: str) -> str | None:
    """The last path segment without control characters, at most 128 characters; None if nothing is left."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in ("", ".", ".."):
        return None
    return name[-128:]


class UploadService:
    """The upload component (XEP-0363 §3-§4): disco and slot requests, stanzas in, stanzas out."""

    def __init__(self, *, domain: str, slots: UploadSlots, base_url: Callable[[], str],
                 wall_clock: Callable[[], float], is_guest: Callable[[JID], bool], server_domain: str) -> None:
        self.domain = domain
        self.slots = slots
        self._base_url, self._wall_clock = base_url, wall_clock
        self._is_guest, self._server_domain = is_guest, server_domain

    def handle_stanza(self, stanza: Element, now: float) -> list[Element]:
        if local_name(stanza) != "iq" or stanza.get("type") not in ("get", "set"):
            return []
        payload = first_child(stanza)
        if payload is None:
            return [error_reply(stanza, StanzaErrorCondition.BAD_REQUEST)]
        if stanza.get("type") == "get" and payload.tag == qname(NS_DISCO_INFO, "query"):
            if payload.get("node"):
                return [error_reply(stanza, StanzaErrorCondition.ITEM_NOT_FOUND)]  # XEP-0030 §3.1: no nodes here
            return [iq_result(stanza, self.disco_info())]
        if stanza.get("type") == "get" and payload.tag == qname(NS_DISCO_ITEMS, "query"):
            return [iq_result(stanza, element(NS_DISCO_ITEMS, "query"))]
        if stanza.get("type") == "get" and payload.tag == qname(NS_UPLOAD, "request"):
            return [self._slot_request(stanza, payload)]
        if stanza.get("type") == "get" and payload.tag == qname(NS_PING, "ping"):
            return [iq_result(stanza)]  # XEP-0199 §4.3: a component answers pings like a server
        return [error_reply(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)]

    def session_ended(self, jid: JID, now: float) -> list[Element]:
        return []

    def disco_info(self) -> Element:
        info = element(NS_DISCO_INFO, "query")
        sub(info, NS_DISCO_INFO, "identity", {"category": "store", "type": "file", "name": "HTTP File Upload"})
        # XEP-0030 §3.1: every entity lists disco#info itself; XEP-0363 §2: the upload feature.
        for feature in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_UPLOAD):
            sub(info, NS_DISCO_INFO, "feature", {"var": feature})
        # XEP-0363 §2: the size limit, as an extended disco form (XEP-0128).
        form = sub(info, NS_DATA_FORMS, "x", {"type": "result"})
        sub(sub(form, NS_DATA_FORMS, "field", {"var": "FORM_TYPE", "type": "hidden"}), NS_DATA_FORMS, "value",
            text=NS_UPLOAD)
        sub(sub(form, NS_DATA_FORMS, "field", {"var": "max-file-size"}), NS_DATA_FORMS, "value",
            text=str(self.slots.limits.max_file_bytes))
        return info

    def _slot_request(self, iq: Element, request: Element) -> Element:
        try:
            requester = JID.parse(iq.get("from", ""))
        except InvalidJID:
            return error_reply(iq, StanzaErrorCondition.BAD_REQUEST)
        if requester.domain != self._server_domain or requester.local is None or self._is_guest(requester):
            return error_reply(iq, StanzaErrorCondition.NOT_ALLOWED,
                               text="Only accounts of this server may upload files")
        filename = clean_filename(request.get("filename", ""))
        size_text = request.get("size", "")
        if filename is None or not size_text.isdigit() or len(size_text) > 15 or int(size_text) == 0:
            return error_reply(iq, StanzaErrorCondition.BAD_REQUEST, text="A slot needs a file name and a size")
        content_type = request.get("content-type", "")
        if not _CONTENT_TYPE.match(content_type):
            content_type = "application/octet-stream"
        outcome = self.slots.request(str(requester.bare), filename, int(size_text), content_type.lower(),
                                     self._wall_clock())
        if isinstance(outcome, Refused):
            reply = error_reply(iq, outcome.condition, error_type=outcome.error_type, text=outcome.text)
            if outcome.max_file_bytes is not None:
                error = reply.find("{jabber:client}error")
                assert error is not None
                too_large = sub(error, NS_UPLOAD, "file-too-large")
                sub(too_large, NS_UPLOAD, "max-file-size", text=str(outcome.max_file_bytes))
            return reply
        url = f"{self._base_url().rstrip('/')}{UPLOAD_PATH}/{outcome.id}/{urllib.parse.quote(filename, safe='')}"
        slot = element(NS_UPLOAD, "slot")
        sub(slot, NS_UPLOAD, "put", {"url": url})
        sub(slot, NS_UPLOAD, "get", {"url": url})
        return iq_result(iq, slot)


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS uploads (id TEXT PRIMARY KEY, owner TEXT NOT NULL, filename TEXT NOT NULL,
        size INTEGER NOT NULL, content_type TEXT NOT NULL, expires_at REAL NOT NULL);
""",
)


class UploadStore:
    """Finished uploads (upload.sqlite), so that quotas and expiry outlive a restart."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, _MIGRATIONS)

    def stored(self) -> Iterator[Slot]:
        with storage_errors():
            rows = self._db.execute("SELECT id, owner, filename, size, content_type, expires_at FROM uploads")
            for row in rows.fetchall():
                yield Slot(id=row[0], owner=row[1], filename=row[2], size=row[3], content_type=row[4],
                           expires_at=row[5], state=SlotState.STORED)

    def add(self, slot: Slot) -> None:
        with transaction(self._db):
            self._db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, ?)",
                             (slot.id, slot.owner, slot.filename, slot.size, slot.content_type, slot.expires_at))

    def remove(self, slot_id: str) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM uploads WHERE id = ?", (slot_id,))

    def close(self) -> None:
        self._db.close()


class UploadHttp:
    """The aiohttp adapter: PUT and GET on `/upload/<slot id>/<name>`, CORS, and the expiry sweep."""

    def __init__(self, *, slots: UploadSlots, store: UploadStore, directory: Path, cors: Cors,
                 wall_clock: Callable[[], float]) -> None:
        self._slots, self._store, self._directory, self._cors = slots, store, directory, cors
        self._wall_clock = wall_clock
        self._new_deadline = asyncio.Event()     # a stored file may expire before the sweep's next wake-up
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.part"):
            leftover.unlink()                    # a PUT cut short by a crash
        for slot in store.stored():
            slots.restore(slot)
        self._sweep()

    def routes(self) -> list[web.RouteDef]:
        path = f"{UPLOAD_PATH}/{{slot}}/{{name}}"
        return [web.put(path, self.put), web.get(path, self.get, allow_head=True),
                web.options(path, self.preflight)]

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors.headers(request)
        if headers:
            headers |= {"Access-Control-Allow-Methods": "GET, PUT, OPTIONS",
                        "Access-Control-Allow-Headers": "Content-Type",
                        "Access-Control-Max-Age": "86400"}
        return web.Response(status=200, headers=headers)

    def _slot_id(self, request: web.Request) -> str | None:
        slot_id = request.match_info["slot"]
        return slot_id if _SLOT_ID.match(slot_id) else None

    async def put(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors.headers(request)
        if not self._cors.allows(request):
            return web.Response(status=403, headers=headers)
        slot_id = self._slot_id(request)
        verdict = PutVerdict.NOT_FOUND if slot_id is None else self._slots.begin_put(
            slot_id, request.match_info["name"], request.content_length, self._wall_clock())
        if verdict is not PutVerdict.ACCEPT:
            return web.Response(status=verdict.value, headers=headers, text=verdict.name.lower().replace("_", " "))
        assert slot_id is not None and request.content_length is not None
        expected = request.content_length
        part = self._directory / f"{slot_id}.part"
        try:
            received = await self._receive(request, part, expected)
            if received != expected:
                raise ValueError("body size differs from Content-Length")
            os.replace(part, self._directory / slot_id)
            slot = self._slots.put_done(slot_id, self._wall_clock())
            self._store.add(slot)
            self._new_deadline.set()
        except BaseException:
            self._slots.put_failed(slot_id)
            with contextlib.suppress(OSError):
                part.unlink()
            with contextlib.suppress(OSError):
                (self._directory / slot_id).unlink()
            raise
        return web.Response(status=201, headers=headers)

    async def _receive(self, request: web.Request, part: Path, expected: int) -> int:
        """Bounded reads until EOF; stops at the first byte past `expected`."""
        received = 0
        with part.open("wb") as file:
            while chunk := await request.content.read(CHUNK_BYTES):
                received += len(chunk)
                if received > expected:
                    return received
                await asyncio.to_thread(file.write, chunk)
        return received

    async def get(self, request: web.Request) -> web.StreamResponse:
        headers = self._cors.headers(request) | {"X-Content-Type-Options": "nosniff",
                                                 "Content-Security-Policy": "default-src 'none'; sandbox",
                                                 "Cache-Control": "private, max-age=86400"}
        slot_id = self._slot_id(request)
        slot = None if slot_id is None else self._slots.stored(slot_id, request.match_info["name"],
                                                               self._wall_clock())
        if slot is None:
            return web.Response(status=404, headers=headers)
        quoted = urllib.parse.quote(slot.filename, safe="")
        disposition = "inline" if slot.content_type in INLINE_TYPES else "attachment"
        headers |= {"Content-Disposition": f"{disposition}; filename*=UTF-8''{quoted}",
                    "Content-Type": slot.content_type}
        return web.FileResponse(self._directory / slot.id, headers=headers)

    def _sweep(self) -> None:
        for slot in self._slots.expire(self._wall_clock()):
            with contextlib.suppress(OSError):
                (self._directory / slot.id).unlink()
            self._store.remove(slot.id)

    async def run_expiry(self) -> None:
        """Delete expired uploads; wakes at the next deadline (an upload may bring it closer), once a minute."""
        while True:
            deadline = self._slots.next_deadline()
            delay = 60.0 if deadline is None else min(60.0, max(0.0, deadline - self._wall_clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_deadline.wait(), delay + 0.01)
            self._new_deadline.clear()
            self._sweep()
