"""Messages an account sends to another address: archived (XEP-0313), routed, then copied (XEP-0280).

For a chat or normal message with a body between accounts, one archive write covers both parties and the
recipient's copy is stamped with its XEP-0359 id; the router then routes it by the ordinary rules, and the
sender's other resources and the recipient's resources that did not get it see carbon copies.
`Carbons` (xmpp/carbons.py) knows who enabled them; `ArchiveService` (xmpp/mam/) keeps the archives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, Element, local_name, qname, sub
from boshcm.xmpp.carbons import NS_HINTS, Carbons, carbon_copy
from boshcm.xmpp.carbons import eligible as carbons_eligible
from boshcm.xmpp.mam import NS_STANZA_ID, ArchiveService, Party, remove_stanza_id
from boshcm.xmpp.orders import ArchiveMessage, Deliver, RouterOrder, StoreOffline

if TYPE_CHECKING:
    from boshcm.xmpp.router import RouterMachine

# XEP-0334 §4: the sender asks that the message be kept in no archive (as Prosody's and ejabberd's MAM honour it).
_NOT_ARCHIVED = (qname(NS_HINTS, "no-permanent-store"), qname(NS_HINTS, "no-store"))


class Messages:
    def __init__(self, router: RouterMachine, carbons: Carbons, archive: ArchiveService | None,
                 wall_clock: Callable[[], float]) -> None:
        self._router = router
        self._carbons = carbons
        self._archive = archive
        self._wall_clock = wall_clock

    def outbound(self, sender: JID, stanza: Element, target: JID, now: float) -> list[RouterOrder]:
        """A message from the bound resource `sender` to `target`, another account or service."""
        router = self._router
        archiving: list[RouterOrder] = []
        if target.domain == router.domain and target.local is not None and self._archive is not None:
            archiving = self._archive_chat(sender, stanza, target)
        routed = router.route(stanza, target, now)
        if not carbons_eligible(stanza):
            return archiving + routed
        actions = archiving + routed
        # XEP-0280 §6: the sender's other resources see what it sent ...
        for jid in self._carbons.copies_to(router.bound(sender.bare), skip={sender}):
            actions.append(Deliver(to=jid, stanza=carbon_copy("sent", sender, jid, stanza)))
        # ... and the recipient's resources that did not get the message itself see what arrived (§5).
        delivered = [action for action in routed if isinstance(action, Deliver) and action.to.bare == target.bare
                     and local_name(action.stanza) == "message" and action.stanza.get("type") != "error"]
        if delivered:
            for jid in self._carbons.copies_to(router.bound(target.bare), skip={action.to for action in delivered}):
                actions.append(Deliver(to=jid, stanza=carbon_copy("received", target, jid, delivered[0].stanza)))
        return actions

    def _archive_chat(self, sender: JID, stanza: Element, target: JID) -> list[RouterOrder]:
        """XEP-0313 §5.1.1: a chat or normal message with a body goes into both parties' archives (one
        `ArchiveMessage` order, before the message's own), and the recipient's copy says under which id
        (XEP-0359); unless it carries a XEP-0334 `<no-permanent-store/>` or `<no-store/>` hint."""
        assert self._archive is not None and target.local is not None
        users = self._router.users
        for claimed in stanza.findall(qname(NS_STANZA_ID, "stanza-id")):
            if claimed.get("by") in (str(sender.bare), str(target.bare)):
                stanza.remove(claimed)  # XEP-0359 §3.1: only the archive itself says what its ids are
        if stanza.get("type", "normal") not in ("chat", "normal") or stanza.find(qname(NS_CLIENT, "body")) is None:
            return []
        if any(stanza.find(hint) is not None for hint in _NOT_ARCHIVED):
            return []
        if not users.exists(target.local) or self._router.blocked_inbound(target, stanza):
            return []
        # Guests' archives would outlive them: only accounts keep one.
        parties = [Party(archive=owner.bare, peer=peer) for owner, peer in ((sender, target), (target, sender))
                   if owner.local not in users.anonymous]
        if not parties:
            return []
        archived_id, order = self._archive.entry(parties, stanza, self._wall_clock())
        if order is None:
            return []
        if target.local not in users.anonymous:
            # XEP-0359 §4: the id names an entry in the recipient's archive; a guest has none.
            sub(stanza, NS_STANZA_ID, "stanza-id", {"id": archived_id, "by": str(target.bare)})
        return [order]

    @staticmethod
    def archive_refused(order: ArchiveMessage, rest: Sequence[RouterOrder]) -> None:
        """The archive write was refused: the message still goes, but no stanza-id names an entry that is
        not there (XEP-0359 §4), in the copies routed, stored offline or carbon-copied."""
        if not order.messages:
            return
        for later in rest:
            if isinstance(later, Deliver | StoreOffline):
                remove_stanza_id(later.stanza, order.messages[0].id)
