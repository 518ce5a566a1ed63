"""Offline messages (XEP-0160, RFC 6121 §8.5.2.2.1): kept for an account with no available resource, handed
to its first available resource of non-negative priority, then deleted.

The router asks `store` when a chat or normal message finds no resource and `deliver` on initial presence.
Guests neither receive nor leave stored messages; a full quota or a failing disk bounces the message.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from lxml import etree

from boshcm.database import StorageError
from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, NS_DELAY, Element, qname, sub
from boshcm.timestamps import xep0082
from boshcm.xmpp.orders import Deliver, RouterAction
from boshcm.xmpp.storage import OfflineMessage, ServerStore

if TYPE_CHECKING:
    from boshcm.xmpp.router import Router

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
_STORABLE_PAYLOADS = frozenset({qname(NS_CLIENT, "body"), qname(NS_CLIENT, "subject"), "{jabber:x:conference}x",
                                "{http://jabber.org/protocol/muc#user}x"})


def worth_storing(message: Element) -> bool:
    """XEP-0160: messages with content or invitations; chat states and receipts alone are not stored."""
    return any(child.tag in _STORABLE_PAYLOADS for child in message)


class OfflineMessages:
    def __init__(self, router: Router, store: ServerStore, wall_clock: Callable[[], float]) -> None:
        self._router = router
        self._store = store
        # Only for XEP-0203 delay stamps on stored messages; routing never looks at time.
        self._wall_clock = wall_clock

    def store(self, bare: JID, stanza: Element) -> list[RouterAction]:
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
        stored = copy.deepcopy(stanza)
        sub(stored, NS_DELAY, "delay", {"from": router.domain, "stamp": xep0082(self._wall_clock())})
        try:
            accepted = self._store.store_offline(bare.local, etree.tostring(stored))
        except StorageError as exc:
            return router.storage_failed(stanza, exc)
        if accepted:
            return []
        # XEP-0160 §2: the recipient's quota (count or bytes) is used up: service-unavailable.
        return router.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE, text="Offline storage is full")

    def deliver(self, jid: JID) -> list[RouterAction]:
        """XEP-0160: stored messages go to the first available resource, then are deleted.

        Deleting is a separate write after reading: when it fails (disk full, read-only), the messages stay
        stored and come again at the next login (at-least-once) — the login itself never depends on it.
        """
        assert jid.local is not None
        messages: list[OfflineMessage] = []
        try:
            messages = self._store.offline_messages(jid.local)
            if messages:
                self._store.delete_offline(jid.local, up_to=messages[-1].id)
        except StorageError:
            pass  # read failed: nothing delivered now; delete failed: delivered again next time
        return [Deliver(to=jid, stanza=etree.fromstring(message.stanza, _SAFE_PARSER)) for message in messages]
