"""XEP-0054 vcard-temp storage, the XEP-0153 photo hash in presence and XEP-0398 avatar conversion (pure).

`VCards.handle_iq` answers an account's own vCard get/set and anyone's get of another account's vCard. A
vCard set with a PHOTO comes back with the PEP publishes (XEP-0084 data, then metadata) that make the same
picture the account's PEP avatar (XEP-0398 §3); the router feeds them to the PEP service as if the account had
sent them, so notifications and limits are PEP's own. The other way, `avatar_published` is told of a
successful publish to the avatar metadata node and writes the picture into the vCard PHOTO. `stamp_presence`
adds the photo hash to an account's broadcast presence (XEP-0153 §4.1, XEP-0398 §4) so that clients which
only know vCard avatars see the new picture.

Writes are `SaveVCard` orders (xmpp/orders.py) the router's adapter performs; the photo hashes are kept in a
bounded cache. Reads stay synchronous reads of the store: a vCard get (one's own or another account's), the
current card when a PEP avatar is copied into it, and a photo hash not cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lxml import etree

from boshcm.database import StorageError, open_database, storage_errors, transaction
from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID
from boshcm.stanza import Element, element, error_reply, first_child, iq_result, make_stanza, qname, sub
from boshcm.xmpp.orders import SaveVCard
from boshcm.xmpp.pubsub.node import NS_PUBSUB
from boshcm.xmpp.pubsub.store import PepStore

NS_VCARD = "vcard-temp"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_AVATAR_DATA = "urn:xmpp:avatar:data"
NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata"
NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0"
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class VCardOutcome:
    reply: Element
    publishes: list[Element] = field(default_factory=list)   # pubsub iqs to run as the account (XEP-0398 §3)
    write: SaveVCard | None = None       # a set: the storage order; its result and publishes follow once written


class VCardStore(Protocol):
    def vcard(self, user: str) -> bytes | None: ...
    def put_vcard(self, user: str, vcard: bytes) -> None: ...
    def delete_user(self, user: str) -> None: ...


class MemoryVCardStore:
    def __init__(self) -> None:
        self._cards: dict[str, bytes] = {}

    def vcard(self, user: str) -> bytes | None:
        return self._cards.get(user)

    def put_vcard(self, user: str, vcard: bytes) -> None:
        self._cards[user] = vcard

    def delete_user(self, user: str) -> None:
        self._cards.pop(user, None)


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = ("CREATE TABLE IF NOT EXISTS vcards (user TEXT PRIMARY KEY, vcard BLOB NOT NULL);",)


class SqliteVCardStore:
    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, _MIGRATIONS)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def vcard(self, user: str) -> bytes | None:
        with storage_errors():
            row = self._db.execute("SELECT vcard FROM vcards WHERE user = ?", (user,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_vcard(self, user: str, vcard: bytes) -> None:
        with transaction(self._db):
            self._db.execute("INSERT OR REPLACE INTO vcards VALUES (?, ?)", (user, vcard))

    def delete_user(self, user: str) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM vcards WHERE user = ?", (user,))

    def close(self) -> None:
        self._db.close()


def _photo(vcard: Element) -> tuple[str, bytes] | None:
    """(type, image bytes) of the vCard's PHOTO/BINVAL, or None."""
    binval = vcard.findtext(f"{qname(NS_VCARD, 'PHOTO')}/{qname(NS_VCARD, 'BINVAL')}")
    if not binval:
        return None
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    media = (vcard.findtext(f"{qname(NS_VCARD, 'PHOTO')}/{qname(NS_VCARD, 'TYPE')}") or "image/png").strip()
    return media, data


def publish_iq(sender: JID, node: str, item_id: str, payload: Element, *, request_id: str) -> Element:
    """An XEP-0060 publish from `sender` to its own PEP node."""
    iq = make_stanza("iq", {"type": "set", "id": request_id, "from": str(sender), "to": str(sender.bare)})
    publish = sub(sub(iq, NS_PUBSUB, "pubsub"), NS_PUBSUB, "publish", {"node": node})
    sub(publish, NS_PUBSUB, "item", {"id": item_id}).append(payload)
    return iq


def retract_iq(sender: JID, node: str, item_id: str, *, request_id: str) -> Element:
    """An XEP-0060 §7.2 retract from `sender` of an item of its own PEP node, contacts told."""
    iq = make_stanza("iq", {"type": "set", "id": request_id, "from": str(sender), "to": str(sender.bare)})
    retract = sub(sub(iq, NS_PUBSUB, "pubsub"), NS_PUBSUB, "retract", {"node": node, "notify": "true"})
    sub(retract, NS_PUBSUB, "item", {"id": item_id})
    return iq


class VCards:
    def __init__(self, store: VCardStore, *, pep_store: PepStore | None = None, max_bytes: int = 131_072,
                 max_cached: int = 4096) -> None:
        self._pep = pep_store
        self.store = store  # written by the router's adapter; read here
        self._max_bytes, self._max_cached = max_bytes, max_cached
        self._hashes: OrderedDict[str, str] = OrderedDict()   # user -> SHA-1 of the photo, "" for none
        self._counter = 0

    def handle_iq(self, sender: JID, owner: JID, iq: Element) -> VCardOutcome:
        """A get or set of `owner`'s vCard (XEP-0054 §3.1-§3.3)."""
        assert owner.local is not None
        try:
            if iq.get("type") == "get":
                stored = self.store.vcard(owner.local)
                card = etree.fromstring(stored, _SAFE_PARSER) if stored else element(NS_VCARD, "vCard")
                return VCardOutcome(reply=iq_result(iq, card))
            if sender.bare != owner:
                # XEP-0054 §3.2: only the account itself may publish its vCard.
                return VCardOutcome(reply=error_reply(iq, StanzaErrorCondition.FORBIDDEN))
            new_card = first_child(iq)
            assert new_card is not None
            serialised = etree.tostring(new_card)
            if len(serialised) > self._max_bytes:
                return VCardOutcome(reply=error_reply(
                    iq, StanzaErrorCondition.NOT_ACCEPTABLE, error_type=StanzaErrorType.MODIFY,
                    text=f"A vCard is limited to {self._max_bytes} bytes"))
            before = self.photo_hash(owner.local)
            photo = _photo(new_card)
            self._remember(owner.local, hashlib.sha1(photo[1]).hexdigest() if photo else "")
            publishes = self._to_pep(sender, photo, before)
            return VCardOutcome(reply=iq_result(iq), publishes=publishes, write=SaveVCard(
                user=owner.local, vcard=serialised, request=iq, publishes=tuple(publishes)))
        except StorageError:
            return VCardOutcome(reply=error_reply(iq, StanzaErrorCondition.RESOURCE_CONSTRAINT,
                                                  text="The server cannot store it now; try again later"))

    def _to_pep(self, sender: JID, photo: tuple[str, bytes] | None, before: str) -> list[Element]:
        """XEP-0398 §3: a new vCard photo becomes the PEP avatar; a removed one disables it (XEP-0084 §4.6) and
        its picture is retracted too: whoever removes a photo expects nobody to read it any more."""
        if self._pep is None:
            return []
        metadata = element(NS_AVATAR_METADATA, "metadata")
        if photo is None:
            if not before:
                return []
            self._counter += 1
            return [self._publish(sender, NS_AVATAR_METADATA, "current", metadata),
                    retract_iq(sender, NS_AVATAR_DATA, before, request_id=f"vcard-pep{self._counter}")]
        media, data = photo
        digest = hashlib.sha1(data).hexdigest()
        if digest == before:
            return []
        sub(metadata, NS_AVATAR_METADATA, "info", {"id": digest, "bytes": str(len(data)), "type": media})
        blob = element(NS_AVATAR_DATA, "data", text=base64.b64encode(data).decode("ascii"))
        return [self._publish(sender, NS_AVATAR_DATA, digest, blob),
                self._publish(sender, NS_AVATAR_METADATA, digest, metadata)]

    def _publish(self, sender: JID, node: str, item_id: str, payload: Element) -> Element:
        self._counter += 1
        return publish_iq(sender, node, item_id, payload, request_id=f"vcard-pep{self._counter}")

    def avatar_published(self, user: str, metadata: Element) -> SaveVCard | None:
        """XEP-0398 §3: the account published avatar metadata to PEP; its vCard PHOTO follows (the order)."""
        info = metadata.find(qname(NS_AVATAR_METADATA, "info"))
        try:
            stored = self.store.vcard(user)
            card = etree.fromstring(stored, _SAFE_PARSER) if stored else element(NS_VCARD, "vCard")
            for old in card.findall(qname(NS_VCARD, "PHOTO")):
                card.remove(old)
            digest = ""
            if info is not None:
                data = self._avatar_data(user, info.get("id", ""))
                if data is None:
                    return None  # the picture lives elsewhere (XEP-0084 §4.3 url): nothing to copy
                photo = sub(card, NS_VCARD, "PHOTO")
                sub(photo, NS_VCARD, "TYPE", text=info.get("type", "image/png"))
                sub(photo, NS_VCARD, "BINVAL", text=base64.b64encode(data).decode("ascii"))
                digest = hashlib.sha1(data).hexdigest()
            serialised = etree.tostring(card)
            if len(serialised) > self._max_bytes:
                return None
        except StorageError:
            return None  # the vCard keeps its old photo; the PEP avatar is already published
        self._remember(user, digest)
        return SaveVCard(user=user, vcard=serialised, request=None)

    def _avatar_data(self, user: str, item_id: str) -> bytes | None:
        if self._pep is None or not item_id:
            return None
        for item in self._pep.items(user, NS_AVATAR_DATA):
            if item.id == item_id:
                text = etree.fromstring(item.payload, _SAFE_PARSER).text or ""
                try:
                    return base64.b64decode("".join(text.split()), validate=True)
                except (binascii.Error, ValueError):
                    return None
        return None

    def photo_hash(self, user: str) -> str:
        """SHA-1 of the account's vCard photo, "" when it has none (a failed read: none)."""
        if (cached := self._hashes.get(user)) is not None:
            self._hashes.move_to_end(user)
            return cached
        try:
            stored = self.store.vcard(user)
        except StorageError:
            return ""
        photo = _photo(etree.fromstring(stored, _SAFE_PARSER)) if stored else None
        digest = hashlib.sha1(photo[1]).hexdigest() if photo else ""
        self._remember(user, digest)
        return digest

    def stamp_presence(self, user: str, presence: Element) -> None:
        """XEP-0153 §4.1, XEP-0398 §4: broadcast presence carries the photo hash the server knows.

        A client's own non-empty hash is kept; an empty or missing one (a client that has not fetched the
        vCard, or that only knows PEP avatars) gets the server's."""
        x = presence.find(qname(NS_VCARD_UPDATE, "x"))
        if x is None:
            x = sub(presence, NS_VCARD_UPDATE, "x")
        photo = x.find(qname(NS_VCARD_UPDATE, "photo"))
        if photo is not None and (photo.text or "").strip():
            return
        if photo is None:
            photo = sub(x, NS_VCARD_UPDATE, "photo")
        photo.text = self.photo_hash(user) or None

    def refused(self, user: str) -> None:
        """A `SaveVCard` of `user` was refused: the photo hash is read again from the disk."""
        self.forget(user)

    def forget(self, user: str) -> None:
        self._hashes.pop(user, None)

    def _remember(self, user: str, digest: str) -> None:
        self._hashes[user] = digest
        self._hashes.move_to_end(user)
        while len(self._hashes) > self._max_cached:
            self._hashes.popitem(last=False)
