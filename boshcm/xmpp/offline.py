"""Offline messages (XEP-0160, RFC 6121 §8.5.2.2.1): kept for an account with no available resource, handed
to its first available resource of non-negative priority, then deleted.

The router asks `store` when a chat or normal message finds no resource: the answer is a `StoreOffline` order
(xmpp/orders.py), the stanza stamped with its XEP-0203 delay. Its performer (`Router` in xmpp/router.py) writes
it to server.sqlite and hands a refusal back (`refused`: quota used up, disk full), which bounces the message.
Initial presence orders `FetchOffline`, a read the performer answers with the stored messages (`stored_messages`).
Guests neither receive nor leave stored messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lxml import etree

from boshcm.database import StorageError
from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, NS_DELAY, Element, clone, qname, sub
from boshcm.timestamps import xep0082
from boshcm.xmpp.carbons import NS_HINTS
from boshcm.xmpp.orders import Deliver, RouterOrder, StoreOffline
from boshcm.xmpp.storage import OfflineMessage

if TYPE_CHECKING:
    from boshcm.xmpp.router import RouterMachine

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
_STORABLE_PAYLOADS = frozenset({qname(NS_CLIENT, "body"), qname(NS_CLIENT, "subject"), "{jabber:x:conference}x",
                                "{http://jabber.org/protocol/muc#user}x"})
# XEP-0334 §4: not to be stored, not even until its recipient comes back.
_NO_STORE = qname(NS_HINTS, "no-store")


def worth_storing(message: Element) -> bool:
    """XEP-0160: messages with content or invitations; chat states and receipts alone are not stored, nor what
    the sender marked `<no-store/>` (XEP-0334)."""
    return message.find(_NO_STORE) is None and any(child.tag in _STORABLE_PAYLOADS for child in message)


class OfflineMessages:
    def __init__(self, router: RouterMachine, wall_clock: Callable[[], float]) -> None:
        self._router = router
        # Only for XEP-0203 delay stamps on stored messages; routing never looks at time.
        self._wall_clock = wall_clock

    def store(self, bare: JID, stanza: Element) -> list[RouterOrder]:
        assert bare.local is not None
        router = self._router
        if bare.local in router.users.anonymous:
            # RFC 6121 §8.5.2.2.1: a guest never comes back for stored messages (its name dies with its
            # session), so what it cannot take now goes back to the sender.
            return router.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE,
                                 text="Guests have no offline storage")
        if router.from_guest(stanza):
            # RFC 6121 §8.5.2.2.1: the server may bounce instead of storing; guests never fill a store.
            return router.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE,
                                 text="Guests cannot leave offline messages")
        stored = clone(stanza)
        sub(stored, NS_DELAY, "delay", {"from": router.domain, "stamp": xep0082(self._wall_clock())})
        return [StoreOffline(user=bare.local, stanza=stored)]

    def refused(self, order: StoreOffline, exc: StorageError | None) -> list[RouterOrder]:
        """The performer could not keep `order.stanza`: `exc` is None for a full quota, else the disk's fault."""
        if exc is not None:
            return self._router.storage_failed(order.stanza, exc)
        # XEP-0160 §2: the recipient's quota (count or bytes) is used up: service-unavailable.
        return self._router.bounce(order.stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE,
                                   text="Offline storage is full")



def stored_messages(jid: JID, messages: list[OfflineMessage]) -> list[Deliver]:
    """XEP-0160: what `FetchOffline` read, for the resource `jid` (parsed without entities or DTDs)."""
    return [Deliver(to=jid, stanza=etree.fromstring(message.stanza, _SAFE_PARSER)) for message in messages]
