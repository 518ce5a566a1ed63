"""The router's orders: deliver a stanza to a bound full JID, close a session (the hub performs these), and
the storage orders for server.sqlite, blocklist.sqlite, vcard.sqlite, private.sqlite, mam.sqlite and pep.sqlite
(`Router`, the router's storage adapter, performs those).

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
    from boshcm.xmpp.pubsub.node import NodeConfig  # pubsub/service.py makes the PEP orders: likewise
    from boshcm.xmpp.pubsub.store import StoredItem


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
    """The last resource of a guest, or of an account removed meanwhile (XEP-0077 §3.2, `boshcm deluser`), is gone:
    what it kept on the server goes with it — roster, offline messages, blocklist, vCard, private storage and its
    message archive (its PEP goes by `DeletePepUser`)."""

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
    transaction; each archive then keeps its `keep` newest that fit in `keep_bytes`. Made by
    `ArchiveService.entry()` for the router (a message between accounts) and the conference registry (a room's
    message, once, not per occupant's copy).

    A refusal loses only the archive copy: the message still goes. The router's performer tells the machine
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


# --- PEP (XEP-0163) on pep.sqlite: `PepService` changes its view in memory and orders the same change written.
# Every one is refused as `SaveRosterItem`: `request` (None when nobody is to hear of it: a XEP-0398/XEP-0411
# conversion the server ran as the account) gets the storage error, the rest of the orders are dropped and PEP
# reads the owners involved again from pep.sqlite (`RouterMachine.pep_refused`).

@dataclass(frozen=True, slots=True, kw_only=True)
class PutPepNode:
    """Create or reconfigure `owner`'s `node`, keeping its `keep` newest items."""

    owner: str
    node: str
    config: NodeConfig
    keep: int
    request: Element | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletePepNode:
    """Delete `owner`'s `node` with its items, affiliations and subscriptions."""

    owner: str
    node: str
    request: Element | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishPepItem:
    """Add or replace `item` (XEP-0060 §7.1.2), then keep the node's `keep` newest items."""

    owner: str
    node: str
    item: StoredItem
    keep: int
    request: Element | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetractPepItem:
    owner: str
    node: str
    item_id: str
    request: Element | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgePepNode:
    owner: str
    node: str
    request: Element | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPepAffiliation:
    """Set (or, None, remove) the affiliation of the bare JID `jid` with `owner`'s `node`."""

    owner: str
    node: str
    jid: str
    affiliation: str | None
    request: Element | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPepSubscription:
    owner: str
    node: str
    jid: str
    subscribed: bool
    request: Element | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletePepUser:
    """`owner`'s nodes, and its affiliations and subscriptions at other accounts' nodes."""

    owner: str
    request: Element | None = None


PepOrder = (PutPepNode | DeletePepNode | PublishPepItem | RetractPepItem | PurgePepNode | SetPepAffiliation
            | SetPepSubscription | DeletePepUser)
PEP_ORDERS = (PutPepNode, DeletePepNode, PublishPepItem, RetractPepItem, PurgePepNode, SetPepAffiliation,
              SetPepSubscription, DeletePepUser)


StorageOrder = (StoreOffline | FetchOffline | SaveRosterItem | RemoveRosterItem | ForgetUser | SaveBlock
                | RemoveBlock | SaveVCard | SavePrivate | ArchiveMessage | QueryArchive | PepOrder)
BlockOrder = SaveBlock | RemoveBlock
RosterOrder = SaveRosterItem | RemoveRosterItem
RouterOrder = RouterAction | StorageOrder


def fan_out(stanza: Element, recipients: Iterable[JID]) -> list[RouterOrder]:
    """One copy of `stanza` for each recipient, addressed to it."""
    return [Deliver(to=jid, stanza=addressed_copy(stanza, jid)) for jid in recipients]
