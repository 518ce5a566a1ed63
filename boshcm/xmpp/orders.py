"""The router's orders: deliver a stanza to a bound full JID, close a session (the hub performs these), and
the storage orders for server.sqlite, blocklist.sqlite, vcard.sqlite, private.sqlite and mam.sqlite (`Router`,
the router's storage adapter, performs those).

Every job of the router (routing, presence, roster, offline storage, server iqs) answers with these, so they
live apart from all of them; `boshcm.xmpp.router` re-exports them for the hub and the sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element, addressed_copy
from boshcm.xmpp.storage import RosterItem

if TYPE_CHECKING:
    from boshcm.xmpp.mam.store import ArchivedMessage  # mam/service.py makes these orders: no import cycle


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """Put `stanza` on the session bound to the full JID `to`."""

    to: JID
    stanza: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    """Close the session bound to `jid` with a stream error."""

    jid: JID
    condition: StreamErrorCondition


RouterAction = Deliver | Disconnect


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreOffline:
    """XEP-0160: keep `stanza` (already stamped with its XEP-0203 delay) for the account `user`.

    The performer answers a refusal (quota used up, disk full) with `RouterMachine.offline_refused`: the sender
    gets the error, as when the write was the router's own."""

    user: str
    stanza: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchOffline:
    """A read: the stored messages of `jid`'s account go to `jid` (its first available resource), then are deleted."""

    jid: JID


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveRosterItem:
    """Write `item` in `user`'s roster (the router's cache already holds it).

    `request` is the stanza that caused it: when the write is refused it gets the storage error, the rest of
    that stanza's orders are dropped and the router's cache forgets the rosters involved (the disk is the truth)."""

    user: str
    item: RosterItem
    request: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveRosterItem:
    """Delete `jid` from `user`'s roster (the router's cache already forgot it); refusals as `SaveRosterItem`."""

    user: str
    jid: JID
    request: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetUser:
    """A guest's last resource is gone: what it kept on the server (a roster) goes with it."""

    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveBlock:
    """XEP-0191: add `jids` to `user`'s blocklist in blocklist.sqlite (the router's copy already holds them).

    Refusals as `SaveRosterItem`: `request` gets the storage error, the rest of its orders are dropped and the
    router's copy of the list is read again from the disk."""

    user: str
    jids: tuple[JID, ...]
    request: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveBlock:
    """XEP-0191: remove `jids` (None: every item) from `user`'s blocklist; refusals as `SaveBlock`."""

    user: str
    jids: tuple[JID, ...] | None
    request: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveVCard:
    """XEP-0054: `vcard` (serialised) is now `user`'s vCard in vcard.sqlite.

    `request` is the account's vCard set, or None for the XEP-0398 copy of a PEP avatar. Once written the
    performer tells the machine (`RouterMachine.vcard_saved`): the request gets its result and the XEP-0398
    `publishes` run as the account. A refusal (`RouterMachine.vcard_refused`) gets the request the storage
    error, and nothing else happens."""

    user: str
    vcard: bytes
    request: Element | None
    publishes: tuple[Element, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SavePrivate:
    """XEP-0049: keep `xml` under (`user`, `key`) in private.sqlite; refusals as `SaveRosterItem`."""

    user: str
    key: str
    xml: bytes
    request: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveMessage:
    """XEP-0313: append `messages` (the same message in each party's archive, under one id) to mam.sqlite in one
    transaction; each archive then keeps its `keep` newest that fit in `keep_bytes`.

    A refusal loses only the archive copy: the message still goes, and the performer tells the machine
    (`RouterMachine.archive_refused`), which takes the XEP-0359 stanza-id naming it off what follows."""

    messages: tuple[ArchivedMessage, ...]
    keep: int
    keep_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryArchive:
    """XEP-0313 §4, a read the performer answers: the owner's `iq` on `archive`, with the wall-clock time
    `wall` (retention); the results, then the iq result or error, go to `requester` if it is still bound."""

    archive: JID
    requester: JID
    iq: Element
    wall: float


StorageOrder = (StoreOffline | FetchOffline | SaveRosterItem | RemoveRosterItem | ForgetUser | SaveBlock
                | RemoveBlock | SaveVCard | SavePrivate | ArchiveMessage | QueryArchive)
BlockOrder = SaveBlock | RemoveBlock
RosterOrder = SaveRosterItem | RemoveRosterItem
RouterOrder = RouterAction | StorageOrder


def fan_out(stanza: Element, recipients: Iterable[JID]) -> list[RouterOrder]:
    """One copy of `stanza` for each recipient, addressed to it."""
    return [Deliver(to=jid, stanza=addressed_copy(stanza, jid)) for jid in recipients]
