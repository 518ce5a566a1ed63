"""Roster items and the subscription state transitions of RFC 6121 §3 (pure over a ServerStore).

Both ends are local users of this server, so one RosterBook plays the user's server (`outbound`) and the
contact's server (`inbound`). Items the contact never added but who asked to subscribe are kept unlisted
(pending_in) so the request survives until the contact logs in (RFC 6121 §3.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from boshcm.jid import JID
from boshcm.stanza import NS_ROSTER, Element, element, sub
from boshcm.xmpp.storage import RosterItem, ServerStore

_GAIN_TO = {"none": "to", "from": "both"}
_GAIN_FROM = {"none": "from", "to": "both"}
_LOSE_TO = {"to": "none", "both": "from"}
_LOSE_FROM = {"from": "none", "both": "to"}


@dataclass(frozen=True, slots=True)
class Outcome:
    item: RosterItem | None      # changed and listed: push it to the owner's interested resources
    deliver: bool                # route the presence on to the owner
    auto_reply: str | None = None


class RosterBook:
    def __init__(self, store: ServerStore) -> None:
        self._store = store

    def outbound(self, user: str, contact: JID, presence_type: str) -> RosterItem | None:
        """The user sent a subscription presence to `contact`; returns the item to push, if it changed."""
        item = self._store.roster_item(user, contact)
        if presence_type == "subscribe":
            current = item or RosterItem(jid=contact)
            updated = current if current.subscription in ("to", "both") else current.replace(ask=True)
            updated = updated.replace(listed=True)
        elif item is None:
            return None
        elif presence_type == "subscribed":
            if not item.pending_in:
                return None  # RFC 6121 §3.4: no pre-approvals
            updated = item.replace(subscription=_GAIN_FROM.get(item.subscription, item.subscription),
                                   pending_in=False, listed=True)
        elif presence_type == "unsubscribe":
            updated = item.replace(subscription=_LOSE_TO.get(item.subscription, item.subscription), ask=False)
        else:  # unsubscribed
            updated = item.replace(subscription=_LOSE_FROM.get(item.subscription, item.subscription),
                                   pending_in=False)
        return self._save(user, item, updated)

    def inbound(self, owner: str, sender: JID, presence_type: str) -> Outcome:
        """A subscription presence from `sender` reached the local user `owner`."""
        item = self._store.roster_item(owner, sender)
        if presence_type == "subscribe":
            if item is not None and item.subscription in ("from", "both"):
                return Outcome(item=None, deliver=False, auto_reply="subscribed")
            current = item or RosterItem(jid=sender, listed=False)
            self._save(owner, item, current.replace(pending_in=True))
            return Outcome(item=None, deliver=True)
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
        return Outcome(item=self._save(owner, item, updated), deliver=True)

    def update(self, user: str, contact: JID, name: str | None, groups: tuple[str, ...]) -> RosterItem:
        """RFC 6121 §2.3: roster set adds or changes name and groups; subscription is the server's."""
        current = self._store.roster_item(user, contact) or RosterItem(jid=contact)
        updated = current.replace(name=name, groups=groups, listed=True)
        self._store.put_roster_item(user, updated)
        return updated

    def remove(self, user: str, contact: JID) -> tuple[RosterItem | None, list[str]]:
        """RFC 6121 §2.5.3: removal cancels subscriptions both ways; returns (item to push, presences to send)."""
        item = self._store.roster_item(user, contact)
        if item is None or not item.listed:
            return None, []
        notices = []
        if item.subscription in ("to", "both") or item.ask:
            notices.append("unsubscribe")
        if item.subscription in ("from", "both") or item.pending_in:
            notices.append("unsubscribed")
        self._store.remove_roster_item(user, contact)
        return item.replace(subscription="remove", ask=False), notices

    def _save(self, user: str, before: RosterItem | None, after: RosterItem) -> RosterItem | None:
        if after == before:
            return None
        if not after.listed and after.subscription == "none" and not after.pending_in and not after.ask:
            self._store.remove_roster_item(user, after.jid)
        else:
            self._store.put_roster_item(user, after)
        return after if after.listed else None


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
