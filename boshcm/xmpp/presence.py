"""Presence (RFC 6121 §4) and presence subscriptions (RFC 6121 §3) between the server's accounts.

Owns what a presence stanza from a bound resource does: broadcast to the subscribers and the user's own
resources, directed presence remembered for logoff (§4.6), what an initial presence brings (the contacts'
presence, pending subscription requests, offline messages), subscription requests and answers through the
roster (`xmpp/roster.py`), and how presence follows a blocklist change (XEP-0191 §3.3, §3.4).
The subscription state itself is `RosterBook`'s; the record of each resource is the router's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, Element, addressed_copy, clone, make_stanza, qname
from boshcm.xmpp.blocking import matches as block_matches
from boshcm.xmpp.orders import Deliver, FetchOffline, RouterOrder, fan_out
from boshcm.xmpp.pubsub import PepService
from boshcm.xmpp.roster import RosterBook
from boshcm.xmpp.vcard import VCards

if TYPE_CHECKING:
    from boshcm.xmpp.router import RouterMachine

SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})


class Presence:
    def __init__(self, router: RouterMachine, roster: RosterBook, *, pep: PepService | None,
                 vcards: VCards | None) -> None:
        self._router = router
        self._roster = roster
        self._pep = pep
        self._vcards = vcards

    def outbound(self, sender: JID, stanza: Element, target: JID | None, now: float) -> list[RouterOrder]:
        """A presence stanza from the bound resource `sender`."""
        router = self._router
        presence_type = stanza.get("type")
        if presence_type in SUBSCRIPTION_TYPES:
            if target is None or (target.local is None and target.domain == router.domain):
                return []
            stanza.set("from", str(sender.bare))  # RFC 6121 §3.1.2: subscriptions are between accounts
            stanza.set("to", str(target.bare))
            return self.subscription(sender, stanza, presence_type, target.bare, now)
        if presence_type == "probe":
            return []
        if target is not None:
            # Directed presence (RFC 6121 §4.6).
            resource = router.resources[sender]
            if presence_type == "unavailable":
                resource.directed.discard(target)
            elif presence_type is None:
                resource.directed.add(target)
            if target.domain == router.domain and target.local is None:
                return []
            return router.route(stanza, target, now)
        if presence_type not in (None, "unavailable"):
            return []
        return self._broadcast_own_presence(sender, stanza, now)

    def _broadcast_own_presence(self, sender: JID, stanza: Element, now: float) -> list[RouterOrder]:
        resource = self._router.resources[sender]
        if stanza.get("type") == "unavailable":
            was_available = resource.available
            resource.available, resource.presence = False, None
            if self._pep is not None:
                self._pep.resource_gone(sender)
            actions = self.broadcast(sender, stanza, include_self=True) if was_available else []
            for recipient in resource.directed:
                actions += self.route_to(recipient, addressed_copy(stanza, recipient), now)
            resource.directed.clear()
            return actions
        initial = not resource.available
        resource.available, resource.presence = True, clone(stanza)
        resource.priority = _priority(stanza)
        if self._vcards is not None and sender.local is not None:
            self._vcards.stamp_presence(sender.local, stanza)  # XEP-0153 §4.1, XEP-0398 §4
            resource.presence = clone(stanza)
        actions = self.broadcast(sender, stanza, include_self=True)
        if initial:
            actions += self._initial_presence_extras(sender)
        if self._pep is not None:
            # XEP-0163 §4.3.2, XEP-0115: learn the resource's +notify interests; last items for new ones.
            actions += self._router.pep_orders(self._pep.presence_available(sender, stanza, initial=initial))
        return actions

    def _initial_presence_extras(self, sender: JID) -> list[RouterOrder]:
        """Probes answered locally, pending subscription requests, offline messages (XEP-0160)."""
        assert sender.local is not None
        router = self._router
        actions: list[RouterOrder] = []
        for item in self._roster.roster_items(sender.local):
            if item.subscription in ("to", "both"):
                for contact in router.available_resources(item.jid):
                    presence = router.resources[contact].presence
                    if presence is not None and not router.blocked_either_way(sender, contact):
                        actions.append(Deliver(to=sender, stanza=addressed_copy(presence, sender)))
            if item.pending_in:
                actions.append(Deliver(to=sender, stanza=make_stanza("presence",
                    {"type": "subscribe", "from": str(item.jid), "to": str(sender.bare)})))
        if router.resources[sender].priority >= 0:
            actions.append(FetchOffline(jid=sender))  # XEP-0160: a read its performer answers
        return actions

    def broadcast(self, sender: JID, stanza: Element, *, include_self: bool) -> list[RouterOrder]:
        """To contacts subscribed to the user (from/both) and to the user's own resources."""
        assert sender.local is not None
        router = self._router
        recipients = [jid for jid in router.available_resources(sender.bare) if include_self or jid != sender]
        for item in self._roster.roster_items(sender.local):
            if item.subscription in ("from", "both") and item.jid.domain == router.domain:
                recipients += [contact for contact in router.available_resources(item.jid)
                               if not router.blocked_either_way(sender, contact)]
        return fan_out(stanza, recipients)

    def route_to(self, target: JID, stanza: Element, now: float) -> list[RouterOrder]:
        """A presence for `target`: a component, a bound full JID, or every available resource of an account."""
        router = self._router
        if target.domain in router.components:
            component, _name = router.components[target.domain]
            return router.deliver_all(component.handle_stanza(stanza, now), now)
        if target.domain != router.domain or target.local is None:
            return []
        if target.is_full:
            return [Deliver(to=target, stanza=stanza)] if target in router.resources else []
        return fan_out(stanza, router.available_resources(target))

    # --- subscriptions (RFC 6121 §3) --------------------------------------------------------------

    def subscription(self, sender: JID, stanza: Element, presence_type: str, contact: JID,
                     now: float) -> list[RouterOrder]:
        assert sender.local is not None
        router = self._router
        user = sender.bare
        # Each roster write comes before what follows from it: a refused write drops the rest (router.py).
        changed, orders = self._roster.outbound(sender.local, contact, presence_type, stanza)
        actions: list[RouterOrder] = list(orders)
        if changed is not None:
            actions += router.roster.push(user, changed)
        if contact.domain in router.components:
            component, _name = router.components[contact.domain]
            return actions + router.deliver_all(component.handle_stanza(stanza, now), now)
        if contact.domain != router.domain:
            return actions + router.bounce(stanza, StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND)
        if contact.local is None or not router.users.exists(contact.local):
            return actions
        if router.blocks(contact.local, sender):
            return actions  # XEP-0191 §3.5: subscription requests from the blocked go nowhere, silently
        outcome = self._roster.inbound(contact.local, user, presence_type, stanza)
        actions += outcome.orders
        if outcome.item is not None:
            actions += router.roster.push(contact, outcome.item)
        if outcome.deliver:
            actions += fan_out(stanza, router.available_resources(contact))
        if outcome.auto_reply is not None:
            # The contact already approved us: its server answers for it (RFC 6121 §3.1.3).
            actions += self.subscription(JID(contact.local, contact.domain, None), make_stanza("presence",
                {"type": outcome.auto_reply, "from": str(contact), "to": str(user)}), outcome.auto_reply, user, now)
        if presence_type == "subscribed" and changed is not None:
            # RFC 6121 §3.1.5: the approving user's presence goes to the new subscriber.
            for jid in router.available_resources(user):
                presence = router.resources[jid].presence
                if presence is not None:
                    actions += [Deliver(to=contact_resource, stanza=addressed_copy(presence, contact_resource))
                                for contact_resource in router.available_resources(contact)]
        if presence_type in ("unsubscribed",) and changed is not None:
            for jid in router.available_resources(user):
                actions += [Deliver(to=contact_resource, stanza=addressed_copy(
                    make_stanza("presence", {"type": "unavailable", "from": str(jid)}), contact_resource))
                    for contact_resource in router.available_resources(contact)]
        return actions

    # --- blocking (XEP-0191) ----------------------------------------------------------------------

    def blocking_changed(self, sender: JID, blocked: tuple[JID, ...], unblocked: tuple[JID, ...]) -> list[RouterOrder]:
        """XEP-0191 §3.3/§3.4: the newly blocked see the user go offline; the unblocked see it (and are seen) again."""
        assert sender.local is not None
        router = self._router
        actions: list[RouterOrder] = []
        own = router.available_resources(sender.bare)
        for item in self._roster.roster_items(sender.local):
            if item.jid.domain != router.domain or item.jid.local is None:
                continue
            for contact in router.available_resources(item.jid):
                if any(block_matches(entry, contact) for entry in blocked):
                    if item.subscription in ("from", "both"):
                        actions += [Deliver(to=contact, stanza=make_stanza("presence", {
                            "type": "unavailable", "from": str(jid), "to": str(contact)})) for jid in own]
                elif any(block_matches(entry, contact) for entry in unblocked) \
                        and not router.blocked_either_way(sender, contact):
                    if item.subscription in ("from", "both"):
                        actions += [Deliver(to=contact, stanza=addressed_copy(presence, contact)) for jid in own
                                    if (presence := router.resources[jid].presence) is not None]
                    if item.subscription in ("to", "both") \
                            and (presence := router.resources[contact].presence) is not None:
                        actions += [Deliver(to=jid, stanza=addressed_copy(presence, jid)) for jid in own]
        return actions


def _priority(presence: Element) -> int:
    text = presence.findtext(qname(NS_CLIENT, "priority"))
    try:
        return max(-128, min(127, int(text))) if text else 0
    except ValueError:
        return 0
