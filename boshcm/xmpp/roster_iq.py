"""Roster management (RFC 6121 §2): the roster get and set iqs of an account, and roster pushes.

A resource that asked for its roster is "interested" and gets every change pushed (§2.1.6); removing an item
cancels the subscriptions both ways through the presence job (§2.5.2). Items are read from the rosters
`RosterBook` (xmpp/roster.py) keeps in memory; changes come out as storage orders ahead of the reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import NS_ROSTER, Element, element, iq_result, make_stanza, qname, sub
from boshcm.xmpp.orders import Deliver, RouterOrder
from boshcm.xmpp.roster import RosterBook, item_element
from boshcm.xmpp.storage import RosterItem

if TYPE_CHECKING:
    from boshcm.xmpp.router import RouterMachine


class RosterIqs:
    def __init__(self, router: RouterMachine, roster: RosterBook) -> None:
        self._router = router
        self._roster = roster
        self._push_counter = 0

    def handle_iq(self, sender: JID, iq: Element, query: Element) -> list[RouterOrder]:
        assert sender.local is not None
        router = self._router
        if iq.get("type") == "get":
            router.resources[sender].interested = True
            result = element(NS_ROSTER, "query")
            for item in self._roster.roster_items(sender.local):
                if item.listed:
                    result.append(item_element(item))
            return router.reply(iq, iq_result(iq, result))
        items = [child for child in query if isinstance(child.tag, str)]
        if len(items) != 1 or items[0].tag != qname(NS_ROSTER, "item"):
            return router.bounce(iq, StanzaErrorCondition.BAD_REQUEST)  # RFC 6121 §2.3.3
        requested = items[0]
        try:
            contact = JID.parse(requested.get("jid", "")).bare
        except InvalidJID:
            return router.bounce(iq, StanzaErrorCondition.BAD_REQUEST)
        actions: list[RouterOrder] = []
        if requested.get("subscription") == "remove":
            removed, notices, orders = self._roster.remove(sender.local, contact, iq)
            if removed is None:
                return router.bounce(iq, StanzaErrorCondition.ITEM_NOT_FOUND)
            # The write first: when it is refused, its performer answers the iq with the error instead.
            actions += orders
            actions += router.reply(iq, iq_result(iq))
            for notice_type in notices:
                actions += router.presence.subscription(sender, make_stanza("presence",
                    {"type": notice_type, "from": str(sender.bare), "to": str(contact)}),
                    notice_type, contact, 0.0)
            return actions + self.push(sender.bare, removed)
        groups = tuple(dict.fromkeys(
            (group.text or "").strip() for group in requested.iter(qname(NS_ROSTER, "group"))))
        if any(not group for group in groups):
            return router.bounce(iq, StanzaErrorCondition.NOT_ACCEPTABLE)  # RFC 6121 §2.3.3: empty group
        updated, orders = self._roster.update(sender.local, contact, requested.get("name") or None, groups, iq)
        return [*orders, *router.reply(iq, iq_result(iq)), *self.push(sender.bare, updated)]

    def push(self, user: JID, item: RosterItem) -> list[RouterOrder]:
        """RFC 6121 §2.1.6: the changed item to each of the user's resources that requested the roster."""
        actions: list[RouterOrder] = []
        for jid in self._router.bound(user):
            if self._router.resources[jid].interested:
                self._push_counter += 1
                push = make_stanza("iq", {"type": "set", "id": f"push{self._push_counter}", "to": str(jid)})
                query = sub(push, NS_ROSTER, "query")
                query.append(item_element(item))
                actions.append(Deliver(to=jid, stanza=push))
        return actions
