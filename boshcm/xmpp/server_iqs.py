"""The iqs the server answers itself: to its domain, and to an account's bare JID on the account's behalf.

To the domain (RFC 6120 §8.5.3, no local part): disco#info and #items (XEP-0030), ping (XEP-0199), version
(XEP-0092), and clients' answers to the PEP service's capability queries (XEP-0115 §6.2). From an account to
itself: roster (RFC 6121 §2), carbons (XEP-0280) and blocking (XEP-0191). To an account's bare JID from anyone
(RFC 6121 §8.5.2.1.3): PEP (XEP-0163), the archive (XEP-0313, the owner only), vCards (XEP-0054), private
storage (XEP-0049), disco and ping. The services are pure and optional; this file only picks which one gets
the iq, and runs the pubsub requests of the vCard and bookmark conversions as the account (XEP-0398, XEP-0411).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lxml import etree

from boshcm.database import StorageError
from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID
from boshcm.stanza import (
    NS_DELAY,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
    NS_ROSTER,
    NS_VERSION,
    Element,
    element,
    first_child,
    iq_result,
    local_name,
    qname,
    sub,
)
from boshcm.xmpp.blocking import NS_BLOCKING, Blocklists
from boshcm.xmpp.carbons import NS_CARBONS, Carbons
from boshcm.xmpp.mam import NS_MAM, NS_STANZA_ID, ArchiveService
from boshcm.xmpp.orders import Deliver, QueryArchive, RouterOrder, SaveVCard
from boshcm.xmpp.private_storage import NS_BOOKMARKS, NS_BOOKMARKS_CONVERSION, NS_PRIVATE, PrivateStorage
from boshcm.xmpp.pubsub import PUBSUB_NAMESPACES, PepService
from boshcm.xmpp.pubsub.node import NS_PUBSUB
from boshcm.xmpp.pubsub.service import account_identity
from boshcm.xmpp.vcard import NS_AVATAR_METADATA, NS_CONVERSION, NS_VCARD, VCards

if TYPE_CHECKING:
    from boshcm.xmpp.router import RouterMachine

NS_BOOKMARKS_COMPAT = f"{NS_BOOKMARKS}#compat"  # XEP-0402 §5.3


class ServerIqs:
    def __init__(self, router: RouterMachine, *, server_name: str, server_version: str, extra_features: tuple[str, ...],
                 wall_clock: Callable[[], float], carbons: Carbons, pep: PepService | None,
                 blocking: Blocklists | None, vcards: VCards | None, private: PrivateStorage | None,
                 archive: ArchiveService | None) -> None:
        self._router = router
        self._server_name, self._server_version = server_name, server_version
        self._extra_features = extra_features
        self._wall_clock = wall_clock  # the archive's "now" (XEP-0313 queries by time)
        self._carbons = carbons
        self._pep, self._blocking, self._archive = pep, blocking, archive
        self._vcards, self._private = vcards, private

    # --- iqs to the server's own domain -----------------------------------------------------------

    def for_server(self, stanza: Element) -> list[RouterOrder]:
        router = self._router
        if local_name(stanza) != "iq":
            return []  # messages and presence to the server itself have no recipient
        if self._pep is not None and stanza.get("type") in ("result", "error") \
                and (answered := self._pep.iq_answer(stanza)) is not None:
            return router.pep_orders(answered)  # XEP-0115 §6.2: a client told us its capabilities
        if (problem := router.iq_problem(stanza)) is not None:
            return problem
        payload = first_child(stanza)
        assert payload is not None
        if stanza.get("type") == "get":
            if payload.tag == qname(NS_DISCO_INFO, "query") and not payload.get("node"):
                return router.reply(stanza, iq_result(stanza, self._disco_info()))
            if payload.tag == qname(NS_DISCO_ITEMS, "query") and not payload.get("node"):
                items = element(NS_DISCO_ITEMS, "query")
                for domain, (_component, name) in sorted(router.components.items()):
                    sub(items, NS_DISCO_ITEMS, "item", {"jid": domain, "name": name})
                return router.reply(stanza, iq_result(stanza, items))
            if payload.tag == qname(NS_PING, "ping"):
                return router.reply(stanza, iq_result(stanza))
            if payload.tag == qname(NS_VERSION, "query"):
                version = element(NS_VERSION, "query")
                sub(version, NS_VERSION, "name", text=self._server_name)
                sub(version, NS_VERSION, "version", text=self._server_version)
                return router.reply(stanza, iq_result(stanza, version))
        return router.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _disco_info(self) -> Element:
        info = element(NS_DISCO_INFO, "query")
        sub(info, NS_DISCO_INFO, "identity", {"category": "server", "type": "im", "name": self._server_name})
        features = [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION, NS_ROSTER, "msgoffline", NS_DELAY, NS_CARBONS,
                    *([NS_BLOCKING] if self._blocking is not None else []),
                    *([NS_VCARD] if self._vcards is not None else []),
                    *([NS_PRIVATE] if self._private is not None else []), *self._extra_features]
        for feature in sorted(set(features)):
            sub(info, NS_DISCO_INFO, "feature", {"var": feature})
        return info

    # --- iqs from an account to itself, and to an account's bare JID ------------------------------

    def from_account(self, sender: JID, iq: Element) -> list[RouterOrder]:
        """An iq from the bound resource `sender` with no 'to' or to its own bare JID (RFC 6120 §10.3)."""
        router = self._router
        if (problem := router.iq_problem(iq)) is not None:
            return problem
        payload = first_child(iq)
        assert payload is not None
        if payload.tag == qname(NS_ROSTER, "query"):
            return router.roster.handle_iq(sender, iq, payload)
        if self._carbons.handles(iq):
            return router.reply(iq, self._carbons.handle_iq(sender, iq))
        if self._blocking is not None and etree.QName(payload).namespace == NS_BLOCKING:
            return self._blocking_iq(sender, iq)
        return self.for_account(iq)

    def for_account(self, iq: Element) -> list[RouterOrder]:
        """RFC 6121 §8.5.2.1.3: the server answers iqs to an account's bare JID on its behalf."""
        router = self._router
        if (problem := router.iq_problem(iq)) is not None:
            return problem
        payload = first_child(iq)
        assert payload is not None
        requester = JID.parse(iq.get("from", ""))
        owner = JID.parse(iq.get("to") or str(requester.bare)).bare
        if self._pep is not None and etree.QName(payload).namespace in PUBSUB_NAMESPACES:
            sends = self._pep.handle_iq(owner, iq, guest=router.from_guest(iq))
            if self._vcards is not None and owner.local is not None and sends[0].stanza.get("type") == "result" \
                    and (metadata := _published(iq, NS_AVATAR_METADATA)) is not None:
                # XEP-0398 §3: PEP avatar to vCard, written after the publish's own orders.
                copied = self._vcards.avatar_published(owner.local, metadata)
                return router.pep_orders(sends) + ([] if copied is None else [copied])
            return router.pep_orders(sends)
        if self._archive is not None and etree.QName(payload).namespace == NS_MAM:
            if requester.bare != owner:
                return router.bounce(iq, StanzaErrorCondition.FORBIDDEN)  # XEP-0313 §4: the owner only
            # A read the adapter answers (the results, then the iq).
            return [QueryArchive(archive=owner, requester=requester, iq=iq, wall=self._wall_clock())] \
                if requester in router.resources else []
        if payload.tag in (qname(NS_VCARD, "vCard"), qname(NS_PRIVATE, "query")) and iq.get("type") == "set" \
                and router.from_guest(iq) and (self._vcards is not None or self._private is not None):
            return router.bounce(iq, StanzaErrorCondition.FORBIDDEN, text="Guests cannot store profile data")
        if self._vcards is not None and payload.tag == qname(NS_VCARD, "vCard") and owner.local is not None:
            outcome = self._vcards.handle_iq(requester, owner, iq)
            if outcome.write is not None:
                return [outcome.write]  # the result and the XEP-0398 publishes follow once written (vcard_saved)
            return router.reply(iq, outcome.reply) + self._as_account(outcome.publishes)
        if self._private is not None and payload.tag == qname(NS_PRIVATE, "query") and requester.local is not None:
            private = self._private.handle_iq(requester, iq)
            return ([] if private.write is None else [private.write]) + router.reply(iq, private.reply) \
                + self._as_account(private.pubsub)
        if iq.get("type") == "get" and payload.tag == qname(NS_DISCO_INFO, "query") and not payload.get("node"):
            return router.reply(iq, iq_result(iq, self._account_disco_info(
                own=requester.bare == owner and not router.from_guest(iq))))
        if iq.get("type") == "get" and payload.tag == qname(NS_DISCO_ITEMS, "query") and self._pep is not None \
                and not payload.get("node"):
            items = element(NS_DISCO_ITEMS, "query")
            for node in self._pep.disco_items(owner, requester):
                sub(items, NS_DISCO_ITEMS, "item", {"jid": str(owner), "node": node})
            return router.reply(iq, iq_result(iq, items))
        if iq.get("type") == "get" and payload.tag == qname(NS_PING, "ping"):
            return router.reply(iq, iq_result(iq))
        return router.bounce(iq, StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _account_disco_info(self, *, own: bool) -> Element:
        """XEP-0030 on an account's bare JID: what the server does for that account, and nothing else."""
        info = element(NS_DISCO_INFO, "query")
        sub(info, NS_DISCO_INFO, "identity", {"category": "account", "type": "registered"})
        features = [NS_DISCO_INFO]
        # XEP-0313 §2.3.1: the archive is on the owner's bare JID, and only the owner queries it and gets the
        # XEP-0359 stanza-ids it stamps (so it advertises urn:xmpp:sid:0). Guests keep no archive.
        if self._archive is not None and own:
            features += [NS_MAM, NS_STANZA_ID]
        if self._pep is not None:
            account_identity(info)  # XEP-0163 §1.1: pubsub/pep and the PEP service's features
            features.append(NS_DISCO_ITEMS)  # the account's PEP nodes
            if self._vcards is not None:
                features.append(NS_CONVERSION)  # XEP-0398 §5
            if self._private is not None:
                # XEP-0411 §2 and XEP-0402 §5.3: storage:bookmarks in private storage is the bookmarks node.
                features += [NS_BOOKMARKS_CONVERSION, NS_BOOKMARKS_COMPAT]
        for feature in features:
            sub(info, NS_DISCO_INFO, "feature", {"var": feature})
        return info

    def vcard_saved(self, order: SaveVCard) -> list[RouterOrder]:
        """A `SaveVCard` was written: its request gets the result, then the XEP-0398 publishes run."""
        if order.request is None:
            return []
        return self._router.reply(order.request, iq_result(order.request)) + self._as_account(list(order.publishes))

    def vcard_refused(self, order: SaveVCard, exc: StorageError) -> list[RouterOrder]:
        """A `SaveVCard` was refused: the cached photo hash goes, the request gets the storage error."""
        assert self._vcards is not None
        self._vcards.refused(order.user)
        return [] if order.request is None else self._router.storage_failed(order.request, exc)

    def _as_account(self, requests: list[Element]) -> list[RouterOrder]:
        """XEP-0398/XEP-0411 conversions: pubsub requests run as the account; only their notifications go out."""
        actions: list[RouterOrder] = []
        for request in requests:
            if self._pep is None:
                break
            sender = JID.parse(request.get("from", ""))
            sends = self._pep.handle_iq(sender.bare, request)
            actions += self._router.pep_orders([send for send in sends if send.stanza.get("id") != request.get("id")
                                                or send.stanza.tag != request.tag])
        return actions

    def _blocking_iq(self, sender: JID, iq: Element) -> list[RouterOrder]:
        assert self._blocking is not None and sender.local is not None
        router = self._router
        outcome = self._blocking.handle_iq(sender, iq)
        # The write first: when the adapter is refused it, the reply, pushes and presence that follow are not sent.
        actions: list[RouterOrder] = [] if outcome.write is None else [outcome.write]
        actions += router.reply(iq, outcome.reply)
        actions += [Deliver(to=jid, stanza=push) for jid, push in outcome.pushes if jid in router.resources]
        if not outcome.blocked and not outcome.unblocked:
            return actions
        return actions + router.presence.blocking_changed(sender, outcome.blocked, outcome.unblocked)


def _published(iq: Element, node: str) -> Element | None:
    """The payload of an XEP-0060 publish to `node` in this iq, if it is one."""
    if iq.get("type") != "set":
        return None
    publish = iq.find(f"{qname(NS_PUBSUB, 'pubsub')}/{qname(NS_PUBSUB, 'publish')}")
    if publish is None or publish.get("node") != node:
        return None
    return next((child for item in publish for child in item if isinstance(child.tag, str)), None)
