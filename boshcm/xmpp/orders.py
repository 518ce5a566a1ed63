"""The router's orders: deliver a stanza to a bound full JID, close a session (the hub performs these), and
the storage orders for server.sqlite (`Router`, the router's storage adapter, performs those).

Every job of the router (routing, presence, roster, offline storage, server iqs) answers with these, so they
live apart from all of them; `boshcm.xmpp.router` re-exports them for the hub and the sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element, addressed_copy
from boshcm.xmpp.storage import RosterItem


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


StorageOrder = StoreOffline | FetchOffline | SaveRosterItem | RemoveRosterItem | ForgetUser
RosterOrder = SaveRosterItem | RemoveRosterItem
RouterOrder = RouterAction | StorageOrder


def fan_out(stanza: Element, recipients: Iterable[JID]) -> list[RouterOrder]:
    """One copy of `stanza` for each recipient, addressed to it."""
    return [Deliver(to=jid, stanza=addressed_copy(stanza, jid)) for jid in recipients]
