"""Roster items and the subscription state transitions of RFC 6121 §3, over the rosters the router keeps in memory.

Both ends are local users of this server, so one RosterBook plays the user's server (`outbound`) and the
contact's server (`inbound`). Items the contact never added but who asked to subscribe are kept unlisted
(pending_in) so the request survives until the contact logs in (RFC 6121 §3.1.3).

Reads are of the cache: a user's roster is read from server.sqlite once (`RosterSource`, the one synchronous
read left) when a resource binds or a contact's roster is first needed, and forgotten when the user's last
resource goes. Writes change the cache and come out as `SaveRosterItem`/`RemoveRosterItem` orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from boshcm.jid import JID
from boshcm.stanza import NS_ROSTER, Element, element, sub
from boshcm.xmpp.orders import RemoveRosterItem, RosterOrder, SaveRosterItem
from boshcm.xmpp.storage import RosterItem


class RosterSource(Protocol):
    def roster_items(self, user: str) -> list[RosterItem]: ...


_GAIN_TO = {"none": "to", "from": "both"}
_GAIN_FROM = {"none": "from", "to": "both"}
_LOSE_TO = {"to": "none", "both": "from"}
_LOSE_FROM = {"from": "none", "both": "to"}


@dataclass(frozen=True, slots=True)
class Outcome:
    item: RosterItem | None      # changed and listed: push it to the owner's interested resources
    deliver: bool                # route the presence on to the owner
    auto_reply: str | None = None
    orders: list[RosterOrder] = field(default_factory=list)


class RosterBook:
    def __init__(self, source: RosterSource) -> None:
        self._source = source
        self._rosters: dict[str, dict[JID, RosterItem]] = {}

    # --- the cache ----------------------------------------------------------------------------------

    def _roster(self, user: str) -> dict[JID, RosterItem]:
        roster = self._rosters.get(user)
        if roster is None:
            roster = self._rosters[user] = {item.jid: item for item in self._source.roster_items(user)}
        return roster

    def load(self, user: str) -> None:
        """A resource of `user` binds: its roster is read now, not on its first stanza."""
        self._roster(user)

    def forget(self, user: str) -> None:
        """The user's last resource went, or a write was refused: the next read comes from the disk."""
        self._rosters.pop(user, None)

    def roster_items(self, user: str) -> list[RosterItem]:
        return list(self._roster(user).values())

    def roster_item(self, user: str, jid: JID) -> RosterItem | None:
        return self._roster(user).get(jid)

    # --- changes -------------------------------------------------------------------------------------

    def outbound(self, user: str, contact: JID, presence_type: str,
                 request: Element) -> tuple[RosterItem | None, list[RosterOrder]]:
        """The user sent a subscription presence to `contact`; returns the item to push, if it changed."""
        item = self.roster_item(user, contact)
        if presence_type == "subscribe":
            current = item or RosterItem(jid=contact)
            updated = current if current.subscription in ("to", "both") else current.replace(ask=True)
            updated = updated.replace(listed=True)
        elif item is None:
            return None, []
        elif presence_type == "subscribed":
            if not item.pending_in:
                return None, []  # RFC 6121 §3.4: no pre-approvals
            updated = item.replace(subscription=_GAIN_FROM.get(item.subscription, item.subscription),
                                   pending_in=False, listed=True)
        elif presence_type == "unsubscribe":
            updated = item.replace(subscription=_LOSE_TO.get(item.subscription, item.subscription), ask=False)
        else:  # unsubscribed
            updated = item.replace(subscription=_LOSE_FROM.get(item.subscription, item.subscription),
                                   pending_in=False)
        return self._save(user, item, updated, request)

    def inbound(self, owner: str, sender: JID, presence_type: str, request: Element) -> Outcome:
        """A subscription presence from `sender` reached the local user `owner`."""
        item = self.roster_item(owner, sender)
        if presence_type == "subscribe":
            if item is not None and item.subscription in ("from", "both"):
                return Outcome(item=None, deliver=False, auto_reply="subscribed")
            current = item or RosterItem(jid=sender, listed=False)
            _pushed, orders = self._save(owner, item, current.replace(pending_in=True), request)
            return Outcome(item=None, deliver=True, orders=orders)
        if item is None:
            return Outcome(item=None, deliver=False)
        if presence_type == "subscribed":
            if not item.ask:
                return Outcome(item=None, deliver=False)
            updated = item.replace(subscription=_GAIN_TO.get(item.subscription, item.subscription), ask=False)
        elif presence_type == "unsubscribe":
            if item.subscription not in ("from", "both") and not item.pending_in:
                return Outcome(item=None, deliver=False)
            updated = item.replace(subscription=_LOSE_FROM.get(item.subscription, item.subscription),
                                   pending_in=False)
        else:  # unsubscribed
            if item.subscription not in ("to", "both") and not item.ask:
                return Outcome(item=None, deliver=False)
            updated = item.replace(subscription=_LOSE_TO.get(item.subscription, item.subscription), ask=False)
        pushed, orders = self._save(owner, item, updated, request)
        return Outcome(item=pushed, deliver=True, orders=orders)

    def update(self, user: str, contact: JID, name: str | None, groups: tuple[str, ...],
               request: Element) -> tuple[RosterItem, list[RosterOrder]]:
        """RFC 6121 §2.3: roster set adds or changes name and groups; subscription is the server's."""
        current = self.roster_item(user, contact) or RosterItem(jid=contact)
        updated = current.replace(name=name, groups=groups, listed=True)
        self._roster(user)[contact] = updated
        return updated, [SaveRosterItem(user=user, item=updated, request=request)]

    def remove(self, user: str, contact: JID,
               request: Element) -> tuple[RosterItem | None, list[str], list[RosterOrder]]:
        """RFC 6121 §2.5.3: removal cancels subscriptions both ways; returns (item to push, presences to send)."""
        item = self.roster_item(user, contact)
        if item is None or not item.listed:
            return None, [], []
        notices = []
        if item.subscription in ("to", "both") or item.ask:
            notices.append("unsubscribe")
        if item.subscription in ("from", "both") or item.pending_in:
            notices.append("unsubscribed")
        del self._roster(user)[contact]
        return (item.replace(subscription="remove", ask=False), notices,
                [RemoveRosterItem(user=user, jid=contact, request=request)])

    def _save(self, user: str, before: RosterItem | None, after: RosterItem,
              request: Element) -> tuple[RosterItem | None, list[RosterOrder]]:
        if after == before:
            return None, []
        roster = self._roster(user)
        order: RosterOrder
        if not after.listed and after.subscription == "none" and not after.pending_in and not after.ask:
            roster.pop(after.jid, None)
            order = RemoveRosterItem(user=user, jid=after.jid, request=request)
        else:
            roster[after.jid] = after
            order = SaveRosterItem(user=user, item=after, request=request)
        return (after if after.listed else None), [order]


def item_element(item: RosterItem) -> Element:
    attrs = {"jid": str(item.jid), "subscription": item.subscription}
    if item.name:
        attrs["name"] = item.name
    if item.ask:
        attrs["ask"] = "subscribe"
    result = element(NS_ROSTER, "item", attrs)
    for group in item.groups:
        sub(result, NS_ROSTER, "group", text=group)
    return result
