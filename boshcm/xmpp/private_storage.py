"""XEP-0049 private XML storage, with XEP-0411 bookmarks conversion to XEP-0402 PEP bookmarks (pure).

`PrivateStorage.handle_iq` answers an account's own jabber:iq:private get/set. Every namespace but one is kept
as given, per (account, element), bounded in size and number. `storage:bookmarks` (XEP-0048) is not stored
here at all: the account's XEP-0402 PEP node `urn:xmpp:bookmarks:1` is the one list of bookmarks, so that a
room bookmarked in Converse.js (private storage) shows in a XEP-0402 client and the other way round. A get
builds XEP-0048 `<storage/>` from the PEP items; a set comes back as PEP publishes and retracts (XEP-0411 §3)
that the router runs as the account, so PEP's limits and notifications apply. Other elements are written by
the router's adapter (a `SavePrivate` order, xmpp/orders.py); reads (a get, the count of elements kept) are
synchronous reads of the store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lxml import etree

from boshcm.database import StorageError, open_database, storage_errors, transaction
from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import Element, element, error_reply, first_child, iq_result, make_stanza, namespace_of, sub
from boshcm.xmpp.orders import SavePrivate
from boshcm.xmpp.pubsub.node import FORM_PUBLISH_OPTIONS, NS_PUBSUB
from boshcm.xmpp.pubsub.store import PepStore
from boshcm.xmpp.vcard import publish_iq

NS_PRIVATE = "jabber:iq:private"
NS_BOOKMARKS_LEGACY = "storage:bookmarks"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_BOOKMARKS_CONVERSION = "urn:xmpp:bookmarks-conversion:0"
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)
# XEP-0049 §3: namespaces that belong to the protocol itself are not private data.
_RESERVED = ("jabber:client", "jabber:server", "jabber:iq:private", "http://etherx.jabber.org/streams")
# XEP-0402 §3: how the bookmarks node must be configured.
BOOKMARK_OPTIONS = (("pubsub#persist_items", "true"), ("pubsub#max_items", "max"),
                    ("pubsub#send_last_published_item", "never"), ("pubsub#access_model", "whitelist"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateOutcome:
    reply: Element
    pubsub: list[Element] = field(default_factory=list)   # publishes and retracts to run as the account
    write: SavePrivate | None = None                      # the storage order, performed before the reply


class PrivateStore(Protocol):
    def fragment(self, user: str, key: str) -> bytes | None: ...
    def put_fragment(self, user: str, key: str, xml: bytes) -> None: ...
    def keys(self, user: str) -> list[str]: ...
    def delete_user(self, user: str) -> None: ...


class MemoryPrivateStore:
    def __init__(self) -> None:
        self._data: dict[tuple[str, str], bytes] = {}

    def fragment(self, user: str, key: str) -> bytes | None:
        return self._data.get((user, key))

    def put_fragment(self, user: str, key: str, xml: bytes) -> None:
        self._data[(user, key)] = xml

    def keys(self, user: str) -> list[str]:
        return [key for owner, key in self._data if owner == user]

    def delete_user(self, user: str) -> None:
        for key in self.keys(user):
            del self._data[(user, key)]


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS private (user TEXT NOT NULL, key TEXT NOT NULL, xml BLOB NOT NULL,
                                        PRIMARY KEY (user, key));
""",
)


class SqlitePrivateStore:
    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, _MIGRATIONS)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def fragment(self, user: str, key: str) -> bytes | None:
        with storage_errors():
            row = self._db.execute("SELECT xml FROM private WHERE user = ? AND key = ?", (user, key)).fetchone()
        return None if row is None else bytes(row[0])

    def put_fragment(self, user: str, key: str, xml: bytes) -> None:
        with transaction(self._db):
            self._db.execute("INSERT OR REPLACE INTO private VALUES (?, ?, ?)", (user, key, xml))

    def keys(self, user: str) -> list[str]:
        with storage_errors():
            return [row[0] for row in self._db.execute("SELECT key FROM private WHERE user = ?", (user,))]

    def delete_user(self, user: str) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM private WHERE user = ?", (user,))

    def close(self) -> None:
        self._db.close()


class PrivateStorage:
    def __init__(self, store: PrivateStore, *, pep_store: PepStore | None = None, max_bytes: int = 65_536,
                 max_items: int = 64) -> None:
        self.store = store  # written by the router's adapter; read here
        self._pep = pep_store
        self._max_bytes, self._max_items = max_bytes, max_items
        self._counter = 0

    def handle_iq(self, sender: JID, iq: Element) -> PrivateOutcome:
        """A jabber:iq:private get or set from one of the account's resources, to its own account."""
        assert sender.local is not None
        target = iq.get("to")
        if target and JID.parse(target).bare != sender.bare:
            return PrivateOutcome(reply=error_reply(iq, StanzaErrorCondition.FORBIDDEN))   # XEP-0049 §3
        query = first_child(iq)
        assert query is not None
        children = [child for child in query if isinstance(child.tag, str)]
        if len(children) != 1 or namespace_of(children[0]) in (None, *_RESERVED):
            return PrivateOutcome(reply=error_reply(iq, StanzaErrorCondition.NOT_ACCEPTABLE,
                                                    error_type=StanzaErrorType.MODIFY))  # XEP-0049 §3
        fragment = children[0]
        try:
            if namespace_of(fragment) == NS_BOOKMARKS_LEGACY and self._pep is not None:
                return self._bookmarks(sender, iq, fragment)
            return self._plain(sender.local, iq, fragment)
        except StorageError:
            return PrivateOutcome(reply=error_reply(iq, StanzaErrorCondition.RESOURCE_CONSTRAINT,
                                                    text="The server cannot store it now; try again later"))

    def _plain(self, user: str, iq: Element, fragment: Element) -> PrivateOutcome:
        key = str(fragment.tag)
        if iq.get("type") == "get":
            stored = self.store.fragment(user, key)
            result = element(NS_PRIVATE, "query")
            result.append(etree.fromstring(stored, _SAFE_PARSER) if stored else element(
                namespace_of(fragment) or "", etree.QName(fragment).localname))
            return PrivateOutcome(reply=iq_result(iq, result))
        serialised = etree.tostring(fragment)
        if len(serialised) > self._max_bytes:
            return PrivateOutcome(reply=error_reply(iq, StanzaErrorCondition.NOT_ACCEPTABLE,
                                                    error_type=StanzaErrorType.MODIFY,
                                                    text=f"Private data is limited to {self._max_bytes} bytes"))
        kept = self.store.keys(user)  # one read, not two
        if key not in kept and len(kept) >= self._max_items:
            return PrivateOutcome(reply=error_reply(
                iq, StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.CANCEL,
                text=f"Each account may store {self._max_items} private elements"))
        return PrivateOutcome(reply=iq_result(iq), write=SavePrivate(user=user, key=key, xml=serialised, request=iq))

    def _bookmarks(self, sender: JID, iq: Element, storage: Element) -> PrivateOutcome:
        assert sender.local is not None and self._pep is not None
        current = {item.id: etree.fromstring(item.payload, _SAFE_PARSER)
                   for item in self._pep.items(sender.local, NS_BOOKMARKS)} \
            if self._pep.node(sender.local, NS_BOOKMARKS) is not None else {}
        if iq.get("type") == "get":
            result = element(NS_PRIVATE, "query")
            legacy = sub(result, NS_BOOKMARKS_LEGACY, "storage")
            for room, conference in current.items():
                legacy.append(_legacy_conference(room, conference))
            return PrivateOutcome(reply=iq_result(iq, result))
        if len(etree.tostring(storage)) > self._max_bytes:
            return PrivateOutcome(reply=error_reply(iq, StanzaErrorCondition.NOT_ACCEPTABLE,
                                                    error_type=StanzaErrorType.MODIFY,
                                                    text=f"Private data is limited to {self._max_bytes} bytes"))
        wanted: dict[str, Element] = {}
        for conference in storage.iter(f"{{{NS_BOOKMARKS_LEGACY}}}conference"):
            try:
                room_jid = JID.parse(conference.get("jid", ""))
            except InvalidJID:
                return PrivateOutcome(reply=error_reply(iq, StanzaErrorCondition.JID_MALFORMED))
            if room_jid.local is None or room_jid.resource is not None:
                return PrivateOutcome(reply=error_reply(iq, StanzaErrorCondition.BAD_REQUEST,
                                                        text="A bookmark names a room's bare JID"))
            wanted[str(room_jid)] = _pep_conference(conference)
        orders = []
        # XEP-0411 §3: each room becomes one item (id = room JID); rooms no longer listed are retracted.
        for room, conference in wanted.items():
            if room in current and etree.tostring(current[room]) == etree.tostring(conference):
                continue
            self._counter += 1
            publish = publish_iq(sender, NS_BOOKMARKS, room, conference, request_id=f"bm-pep{self._counter}")
            _add_options(publish)
            orders.append(publish)
        for room in current.keys() - wanted.keys():
            self._counter += 1
            retract = make_stanza("iq", {"type": "set", "id": f"bm-pep{self._counter}", "from": str(sender),
                                         "to": str(sender.bare)})
            pubsub = sub(retract, NS_PUBSUB, "pubsub")
            sub(sub(pubsub, NS_PUBSUB, "retract", {"node": NS_BOOKMARKS, "notify": "true"}), NS_PUBSUB, "item",
                {"id": room})
            orders.append(retract)
        return PrivateOutcome(reply=iq_result(iq), pubsub=orders)


def _add_options(publish: Element) -> None:
    pubsub = publish[0]
    form = sub(sub(pubsub, NS_PUBSUB, "publish-options"), "jabber:x:data", "x", {"type": "submit"})
    for var, value in (("FORM_TYPE", FORM_PUBLISH_OPTIONS), *BOOKMARK_OPTIONS):
        sub(sub(form, "jabber:x:data", "field", {"var": var}), "jabber:x:data", "value", text=value)


def _pep_conference(legacy: Element) -> Element:
    """XEP-0411 §2 mapping: XEP-0048 <conference jid name autojoin><nick/><password/> to XEP-0402's."""
    conference = element(NS_BOOKMARKS, "conference")
    if legacy.get("name"):
        conference.set("name", legacy.get("name", ""))
    if legacy.get("autojoin") in ("1", "true"):
        conference.set("autojoin", "true")
    for tag in ("nick", "password"):
        text = legacy.findtext(f"{{{NS_BOOKMARKS_LEGACY}}}{tag}")
        if text:
            sub(conference, NS_BOOKMARKS, tag, text=text)
    return conference


def _legacy_conference(room: str, conference: Element) -> Element:
    legacy = element(NS_BOOKMARKS_LEGACY, "conference", {"jid": room})
    if conference.get("name"):
        legacy.set("name", conference.get("name", ""))
    legacy.set("autojoin", "true" if conference.get("autojoin") in ("1", "true") else "false")
    for tag in ("nick", "password"):
        text = conference.findtext(f"{{{NS_BOOKMARKS}}}{tag}")
        if text:
            sub(legacy, NS_BOOKMARKS_LEGACY, tag, text=text)
    return legacy
