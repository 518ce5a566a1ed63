"""The embedded server's router: bound resources, RFC 6121 delivery rules, presence, roster, offline store.

Theory of operation. Sessions of every transport are known here only by their bound full JID. A session
hands in each stanza it receives (`handle_stanza(sender, stanza, now)`); the router stamps `from`, decides
who gets what and returns orders: `Deliver(to=<bound full JID>, stanza)` and, on resource conflicts,
`Disconnect(jid)`. The hub performs them. Components (the MUC service) are plugged in by domain; they
answer with stanzas that go through the same local delivery rules.

Subscription bookkeeping lives in xmpp/roster.py; this file owns routing and presence.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from typing import Protocol

from lxml import etree

from boshcm import __version__
from boshcm.database import StorageError, StorageFull
from boshcm.errors import StanzaErrorCondition, StreamErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_CLIENT,
    NS_DELAY,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
    NS_ROSTER,
    NS_VERSION,
    Element,
    addressed_copy,
    element,
    error_reply,
    first_child,
    iq_result,
    local_name,
    make_stanza,
    qname,
    sub,
)
from boshcm.timestamps import xep0082
from boshcm.xmpp.blocking import NS_BLOCKING, Blocklists, blocked_error
from boshcm.xmpp.blocking import matches as block_matches
from boshcm.xmpp.carbons import NS_CARBONS, Carbons, carbon_copy
from boshcm.xmpp.carbons import eligible as carbons_eligible
from boshcm.xmpp.mam import NS_MAM, NS_STANZA_ID, ArchiveService, Party
from boshcm.xmpp.private_storage import NS_BOOKMARKS, NS_BOOKMARKS_CONVERSION, NS_PRIVATE, PrivateStorage
from boshcm.xmpp.pubsub import PUBSUB_NAMESPACES, PepLimits, PepService, PepStore, Send
from boshcm.xmpp.pubsub.node import NS_PUBSUB
from boshcm.xmpp.pubsub.service import account_identity
from boshcm.xmpp.roster import RosterBook, item_element
from boshcm.xmpp.storage import OfflineMessage, RosterItem, ServerStore
from boshcm.xmpp.vcard import NS_AVATAR_METADATA, NS_CONVERSION, NS_VCARD, VCards

SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})
NS_BOOKMARKS_COMPAT = f"{NS_BOOKMARKS}#compat"  # XEP-0402 §5.3
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)


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


class UserDirectory(Protocol):
    def exists(self, username: str) -> bool: ...

    @property
    def anonymous(self) -> Set[str]:
        """Localparts of the SASL ANONYMOUS guests online now."""


class Component(Protocol):
    """A service on its own domain (e.g. conference.<domain>): stanzas in, addressed stanzas out."""

    def handle_stanza(self, stanza: Element, now: float) -> list[Element]: ...
    def session_ended(self, jid: JID, now: float) -> list[Element]: ...


@dataclass(slots=True)
class _Resource:
    available: bool = False
    priority: int = 0
    presence: Element | None = None          # the last available presence broadcast
    interested: bool = False                  # requested the roster, so gets roster pushes (RFC 6121 §2.1.6)
    directed: set[JID] = field(default_factory=set)   # RFC 6121 §4.6: gets our unavailable on logoff


class Router:
    def __init__(self, *, domain: str, users: UserDirectory, store: ServerStore, wall_clock: Callable[[], float],
                 server_name: str = "boshcm", server_version: str = __version__,
                 extra_features: tuple[str, ...] = (), pep_store: PepStore | None = None,
                 pep_limits: PepLimits | None = None, blocking: Blocklists | None = None,
                 vcards: VCards | None = None, private: PrivateStorage | None = None,
                 archive: ArchiveService | None = None) -> None:
        self.domain = domain
        self._users = users
        self._store = store
        # Only for XEP-0203 delay stamps on stored messages; routing never looks at time.
        self._wall_clock = wall_clock
        self._server_name, self._server_version = server_name, server_version
        self._extra_features = extra_features
        self._resources: dict[JID, _Resource] = {}
        self._by_user: dict[str, set[JID]] = {}
        self._components: dict[str, tuple[Component, str]] = {}
        self._roster = RosterBook(store)
        self._push_counter = 0
        self.received = 0  # stanzas from bound sessions, read by boshcm/metrics.py
        # XEP-0163 PEP on every account and XEP-0191 blocking: both optional, both pure (pubsub/, blocking.py).
        self._pep = None if pep_store is None else PepService(
            domain=domain, store=pep_store, roster=store, online=self._available_resources, limits=pep_limits,
            wall_clock=wall_clock)
        self._blocking = blocking
        # XEP-0280 carbons (always offered) and XEP-0313 account archives (optional), both pure.
        self._carbons = Carbons()
        self._archive = archive
        # XEP-0054/0153/0398 vCards and XEP-0049/0411 private storage: optional, pure (vcard.py, private_storage.py).
        self._vcards, self._private = vcards, private

    # --- sessions ---------------------------------------------------------------------------------

    def add_component(self, domain: str, component: Component, name: str) -> None:
        self._components[domain] = (component, name)

    def is_bound(self, jid: JID) -> bool:
        return jid in self._resources

    def bind(self, jid: JID, now: float) -> list[RouterAction]:
        assert jid.local is not None and jid.resource is not None
        actions: list[RouterAction] = []
        if jid in self._resources:
            # RFC 6120 §7.7.2.2: the newcomer wins; the old session is told why.
            actions.append(Disconnect(jid=jid, condition=StreamErrorCondition.CONFLICT))
        self._resources[jid] = _Resource()
        self._by_user.setdefault(jid.local, set()).add(jid)
        return actions

    def unbind(self, jid: JID, now: float) -> list[RouterAction]:
        resource = self._resources.pop(jid, None)
        if resource is None:
            return []
        if self._pep is not None:
            self._pep.resource_gone(jid)
        if self._blocking is not None:
            self._blocking.resource_gone(jid)
        self._carbons.resource_gone(jid)
        assert jid.local is not None
        users = self._by_user.get(jid.local, set())
        users.discard(jid)
        if not users:
            self._by_user.pop(jid.local, None)
        actions: list[RouterAction] = []
        if resource.available or resource.directed:
            unavailable = make_stanza("presence", {"type": "unavailable", "from": str(jid)})
            if resource.available:
                actions += self._broadcast_presence(jid, unavailable, include_self=False)
            for recipient in resource.directed:
                actions += self._route_presence_to(recipient, addressed_copy(unavailable, recipient), now)
        for component, _name in self._components.values():
            actions += self._deliver_all(component.session_ended(jid, now), now)
        if not users and jid.local in self._users.anonymous:
            # A guest's name is never given again: what it kept on the server (a roster) goes with it.
            with contextlib.suppress(StorageError):
                self._store.delete_user(jid.local)
        return actions

    def take_over_unacked(self, jid: JID, stanzas: list[Element], now: float) -> list[RouterAction]:
        """XEP-0198 §4: what a session that ended without resumption never acknowledged.

        Each stanza is handled as if it arrived now for the full JID (RFC 6121 §8.5.3.2.1), which is no longer
        bound: chat and normal messages go to the account's other resources or to offline storage, with a
        XEP-0203 delay; iq requests and groupchat messages get an error to their sender; headlines, errors,
        results and presence (stale by now) are dropped as the RFC allows.
        """
        actions: list[RouterAction] = []
        for stanza in stanzas:
            for action in self._deliver_local(stanza, jid, now):
                if (isinstance(action, Deliver) and action.to.bare == jid.bare
                        and local_name(action.stanza) == "message" and action.stanza.get("type") != "error"
                        and action.stanza.find(qname(NS_DELAY, "delay")) is None):
                    sub(action.stanza, NS_DELAY, "delay", {"from": self.domain, "stamp": xep0082(self._wall_clock())})
                actions.append(action)
        return actions

    # --- stanzas from bound sessions --------------------------------------------------------------

    def handle_stanza(self, sender: JID, stanza: Element, now: float) -> list[RouterAction]:
        self.received += 1
        stanza.set("from", str(sender))  # RFC 6120 §8.1.2.1: the server stamps the bound JID
        kind = local_name(stanza)
        target_text = stanza.get("to")
        try:
            target = JID.parse(target_text) if target_text else None
        except InvalidJID:
            return self._bounce(stanza, StanzaErrorCondition.JID_MALFORMED)
        if target is not None and target.bare != sender.bare and target != JID(None, self.domain, None) \
                and self._blocks(sender.local, target):
            # XEP-0191 §3.6: nothing reaches whom the user blocks; messages and iqs learn why.
            return [] if kind == "presence" or stanza.get("type") in ("error", "result") else \
                [Deliver(to=sender, stanza=blocked_error(stanza))]
        if kind == "presence":
            return self._outbound_presence(sender, stanza, target, now)
        if kind == "message" and target is not None and target.bare != sender.bare:
            return self._outbound_message(sender, stanza, target, now)
        if target is None or target == sender.bare:
            # RFC 6120 §10.3: no 'to' means the user's own account.
            if kind == "iq":
                return self._account_iq(sender, stanza, now)
            if target is None:
                return self._deliver_to_bare(sender.bare, addressed_copy(stanza, sender.bare), now)
        return self._route(stanza, target, now)

    def _route(self, stanza: Element, target: JID, now: float) -> list[RouterAction]:
        if target.domain in self._components:
            component, _name = self._components[target.domain]
            return self._deliver_all(component.handle_stanza(stanza, now), now)
        if target.domain != self.domain:
            # No server-to-server links (RFC 6120 §8.3.3.17).
            return self._bounce(stanza, StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND)
        if target.local is None:
            return self._server_stanza(stanza, now)
        return self._deliver_local(stanza, target, now)

    # --- messages between accounts: archive (XEP-0313) and carbons (XEP-0280) ----------------------

    def _outbound_message(self, sender: JID, stanza: Element, target: JID, now: float) -> list[RouterAction]:
        if target.domain == self.domain and target.local is not None and self._archive is not None:
            self._archive_chat(sender, stanza, target)
        routed = self._route(stanza, target, now)
        if not carbons_eligible(stanza):
            return routed
        actions = list(routed)
        # XEP-0280 §6: the sender's other resources see what it sent ...
        for jid in self._carbons.copies_to(self._bound(sender.bare), skip={sender}):
            actions.append(Deliver(to=jid, stanza=carbon_copy("sent", sender, jid, stanza)))
        # ... and the recipient's resources that did not get the message itself see what arrived (§5).
        delivered = [action for action in routed if isinstance(action, Deliver) and action.to.bare == target.bare
                     and local_name(action.stanza) == "message" and action.stanza.get("type") != "error"]
        if delivered:
            for jid in self._carbons.copies_to(self._bound(target.bare), skip={action.to for action in delivered}):
                actions.append(Deliver(to=jid, stanza=carbon_copy("received", target, jid, delivered[0].stanza)))
        return actions

    def _bound(self, bare: JID) -> list[JID]:
        return sorted(self._by_user.get(bare.local or "", ()), key=str) if bare.domain == self.domain else []

    def _archive_chat(self, sender: JID, stanza: Element, target: JID) -> None:
        """XEP-0313 §5.1.1: a chat or normal message with a body goes into both parties' archives (one
        write), and the recipient's copy says under which id (XEP-0359)."""
        assert self._archive is not None and target.local is not None
        for claimed in stanza.findall(qname(NS_STANZA_ID, "stanza-id")):
            if claimed.get("by") in (str(sender.bare), str(target.bare)):
                stanza.remove(claimed)  # XEP-0359 §3.1: only the archive itself says what its ids are
        if stanza.get("type", "normal") not in ("chat", "normal") or stanza.find(qname(NS_CLIENT, "body")) is None:
            return
        if not self._users.exists(target.local) or self._blocked_inbound(target, stanza):
            return
        # Guests' archives would outlive them: only accounts keep one.
        parties = [Party(archive=owner.bare, peer=peer) for owner, peer in ((sender, target), (target, sender))
                   if owner.local not in self._users.anonymous]
        if not parties:
            return
        try:
            archived_id = self._archive.archive(parties, stanza, self._wall_clock())
        except StorageError:
            return  # the message itself still goes; only its archive copy is missing
        if target.local not in self._users.anonymous:
            # XEP-0359 §4: the id names an entry in the recipient's archive; a guest has none.
            sub(stanza, NS_STANZA_ID, "stanza-id", {"id": archived_id, "by": str(target.bare)})

    def _deliver_all(self, stanzas: list[Element], now: float) -> list[RouterAction]:
        actions: list[RouterAction] = []
        for stanza in stanzas:
            target = JID.parse(stanza.get("to", ""))
            if target.domain == self.domain and target.local is not None:
                actions += self._deliver_local(stanza, target, now)
        return actions

    # --- local delivery (RFC 6121 §8.5) -----------------------------------------------------------

    def _deliver_local(self, stanza: Element, target: JID, now: float) -> list[RouterAction]:
        assert target.local is not None
        kind = local_name(stanza)
        if not self._users.exists(target.local):
            # RFC 6121 §8.5.1: no such user.
            if kind == "presence":
                return []
            return self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if self._blocked_inbound(target, stanza):
            # XEP-0191 §3.5: presence is dropped silently, messages and iq requests get service-unavailable.
            return [] if kind == "presence" else self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if kind == "presence":
            return self._route_presence_to(target, stanza, now)
        if target.is_full:
            if target in self._resources:
                return [Deliver(to=target, stanza=stanza)]
            stanza_type = stanza.get("type", "normal")
            if kind == "message" and stanza_type in ("chat", "normal"):
                return self._deliver_to_bare(target.bare, stanza, now)  # §8.5.3.2.1
            if kind == "message" and stanza_type in ("headline", "error"):
                return []
            return self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if kind == "iq":
            return self._iq_for_bare_account(stanza)
        return self._deliver_to_bare(target, stanza, now)

    def _deliver_to_bare(self, bare: JID, stanza: Element, now: float) -> list[RouterAction]:
        """A message to a bare JID (RFC 6121 §8.5.2.1.1): the highest non-negative priority resources."""
        stanza_type = stanza.get("type", "normal")
        if stanza_type == "groupchat":
            return self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        available = self._available_resources(bare)
        eligible = [jid for jid in available if self._resources[jid].priority >= 0]
        if stanza_type == "headline":
            return [Deliver(to=jid, stanza=copy.deepcopy(stanza)) for jid in eligible]
        if eligible:
            best = max(self._resources[jid].priority for jid in eligible)
            return [Deliver(to=jid, stanza=copy.deepcopy(stanza)) for jid in eligible
                    if self._resources[jid].priority == best]
        if stanza_type in ("chat", "normal") and _worth_storing(stanza):
            return self._store_offline(bare, stanza)
        return []

    def _store_offline(self, bare: JID, stanza: Element) -> list[RouterAction]:
        assert bare.local is not None
        if bare.local in self._users.anonymous:
            # RFC 6121 §8.5.2.2.1: a guest never comes back for stored messages (its name dies with its
            # session), so what it cannot take now goes back to the sender.
            return self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE,
                                text="Guests have no offline storage")
        if self._from_guest(stanza):
            # RFC 6121 §8.5.2.2.1: the server may bounce instead of storing; guests never fill a store.
            return self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE,
                                text="Guests cannot leave offline messages")
        stored = copy.deepcopy(stanza)
        sub(stored, NS_DELAY, "delay", {"from": self.domain, "stamp": xep0082(self._wall_clock())})
        try:
            accepted = self._store.store_offline(bare.local, etree.tostring(stored))
        except StorageError as exc:
            return self._storage_failed(stanza, exc)
        if accepted:
            return []
        # XEP-0160 §2: the recipient's quota (count or bytes) is used up: service-unavailable.
        return self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE, text="Offline storage is full")

    def _from_guest(self, stanza: Element) -> bool:
        try:
            sender = JID.parse(stanza.get("from", ""))
        except InvalidJID:
            return False
        return sender.domain == self.domain and sender.local in self._users.anonymous

    def _storage_failed(self, stanza: Element, exc: StorageError) -> list[RouterAction]:
        """The store could not be written (disk full, read-only): the sender may try again later."""
        text = "The server's storage is full" if isinstance(exc, StorageFull) else "The server cannot store it now"
        return self._bounce(stanza, StanzaErrorCondition.RESOURCE_CONSTRAINT, text=f"{text}; try again later")

    def _deliver_offline(self, jid: JID) -> list[RouterAction]:
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

    def _available_resources(self, bare: JID) -> list[JID]:
        if bare.local is None:
            return []
        return sorted((jid for jid in self._by_user.get(bare.local, ()) if self._resources[jid].available),
                      key=str)

    # --- presence (RFC 6121 §4) -------------------------------------------------------------------

    def _outbound_presence(self, sender: JID, stanza: Element, target: JID | None,
                           now: float) -> list[RouterAction]:
        presence_type = stanza.get("type")
        if presence_type in SUBSCRIPTION_TYPES:
            if target is None or (target.local is None and target.domain == self.domain):
                return []
            stanza.set("from", str(sender.bare))  # RFC 6121 §3.1.2: subscriptions are between accounts
            stanza.set("to", str(target.bare))
            return self._subscription(sender, stanza, presence_type, target.bare, now)
        if presence_type == "probe":
            return []
        if target is not None:
            # Directed presence (RFC 6121 §4.6).
            resource = self._resources[sender]
            if presence_type == "unavailable":
                resource.directed.discard(target)
            elif presence_type is None:
                resource.directed.add(target)
            if target.domain == self.domain and target.local is None:
                return []
            return self._route(stanza, target, now)
        if presence_type not in (None, "unavailable"):
            return []
        return self._broadcast_own_presence(sender, stanza, now)

    def _broadcast_own_presence(self, sender: JID, stanza: Element, now: float) -> list[RouterAction]:
        resource = self._resources[sender]
        if stanza.get("type") == "unavailable":
            was_available = resource.available
            resource.available, resource.presence = False, None
            if self._pep is not None:
                self._pep.resource_gone(sender)
            actions = self._broadcast_presence(sender, stanza, include_self=True) if was_available else []
            for recipient in resource.directed:
                actions += self._route_presence_to(recipient, addressed_copy(stanza, recipient), now)
            resource.directed.clear()
            return actions
        initial = not resource.available
        resource.available, resource.presence = True, copy.deepcopy(stanza)
        resource.priority = _priority(stanza)
        if self._vcards is not None and sender.local is not None:
            self._vcards.stamp_presence(sender.local, stanza)  # XEP-0153 §4.1, XEP-0398 §4
            resource.presence = copy.deepcopy(stanza)
        actions = self._broadcast_presence(sender, stanza, include_self=True)
        if initial:
            actions += self._initial_presence_extras(sender)
        if self._pep is not None:
            # XEP-0163 §4.3.2, XEP-0115: learn the resource's +notify interests; last items for new ones.
            actions += self._pep_orders(self._pep.presence_available(sender, stanza, initial=initial))
        return actions

    def _initial_presence_extras(self, sender: JID) -> list[RouterAction]:
        """Probes answered locally, pending subscription requests, offline messages (XEP-0160)."""
        assert sender.local is not None
        actions: list[RouterAction] = []
        for item in self._store.roster_items(sender.local):
            if item.subscription in ("to", "both"):
                for contact in self._available_resources(item.jid):
                    presence = self._resources[contact].presence
                    if presence is not None and not self._blocked_either_way(sender, contact):
                        actions.append(Deliver(to=sender, stanza=addressed_copy(presence, sender)))
            if item.pending_in:
                actions.append(Deliver(to=sender, stanza=make_stanza("presence",
                    {"type": "subscribe", "from": str(item.jid), "to": str(sender.bare)})))
        if self._resources[sender].priority >= 0:
            actions += self._deliver_offline(sender)
        return actions

    def _broadcast_presence(self, sender: JID, stanza: Element, *, include_self: bool) -> list[RouterAction]:
        """To contacts subscribed to the user (from/both) and to the user's own resources."""
        assert sender.local is not None
        recipients = [jid for jid in self._available_resources(sender.bare) if include_self or jid != sender]
        for item in self._store.roster_items(sender.local):
            if item.subscription in ("from", "both") and item.jid.domain == self.domain:
                recipients += [contact for contact in self._available_resources(item.jid)
                               if not self._blocked_either_way(sender, contact)]
        return _fan_out(stanza, recipients)

    def _route_presence_to(self, target: JID, stanza: Element, now: float) -> list[RouterAction]:
        if target.domain in self._components:
            component, _name = self._components[target.domain]
            return self._deliver_all(component.handle_stanza(stanza, now), now)
        if target.domain != self.domain or target.local is None:
            return []
        if target.is_full:
            return [Deliver(to=target, stanza=stanza)] if target in self._resources else []
        return _fan_out(stanza, self._available_resources(target))

    # --- subscriptions (RFC 6121 §3) --------------------------------------------------------------

    def _subscription(self, sender: JID, stanza: Element, presence_type: str, contact: JID,
                      now: float) -> list[RouterAction]:
        assert sender.local is not None
        user = sender.bare
        actions: list[RouterAction] = []
        try:
            changed = self._roster.outbound(sender.local, contact, presence_type)
        except StorageError as exc:
            return self._storage_failed(stanza, exc)
        if changed is not None:
            actions += self._roster_push(user, changed)
        if contact.domain in self._components:
            component, _name = self._components[contact.domain]
            return actions + self._deliver_all(component.handle_stanza(stanza, now), now)
        if contact.domain != self.domain:
            return actions + self._bounce(stanza, StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND)
        if contact.local is None or not self._users.exists(contact.local):
            return actions
        if self._blocks(contact.local, sender):
            return actions  # XEP-0191 §3.5: subscription requests from the blocked go nowhere, silently
        try:
            outcome = self._roster.inbound(contact.local, user, presence_type)
        except StorageError as exc:
            return actions + self._storage_failed(stanza, exc)
        if outcome.item is not None:
            actions += self._roster_push(contact, outcome.item)
        if outcome.deliver:
            actions += _fan_out(stanza, self._available_resources(contact))
        if outcome.auto_reply is not None:
            # The contact already approved us: its server answers for it (RFC 6121 §3.1.3).
            actions += self._subscription(JID(contact.local, contact.domain, None), make_stanza("presence",
                {"type": outcome.auto_reply, "from": str(contact), "to": str(user)}), outcome.auto_reply, user, now)
        if presence_type == "subscribed" and changed is not None:
            # RFC 6121 §3.1.5: the approving user's presence goes to the new subscriber.
            for jid in self._available_resources(user):
                presence = self._resources[jid].presence
                if presence is not None:
                    actions += [Deliver(to=contact_resource, stanza=addressed_copy(presence, contact_resource))
                                for contact_resource in self._available_resources(contact)]
        if presence_type in ("unsubscribed",) and changed is not None:
            for jid in self._available_resources(user):
                actions += [Deliver(to=contact_resource, stanza=addressed_copy(
                    make_stanza("presence", {"type": "unavailable", "from": str(jid)}), contact_resource))
                    for contact_resource in self._available_resources(contact)]
        return actions

    def _roster_push(self, user: JID, item: RosterItem) -> list[RouterAction]:
        actions: list[RouterAction] = []
        for jid in sorted(self._by_user.get(user.local or "", ()), key=str):
            if self._resources[jid].interested:
                self._push_counter += 1
                push = make_stanza("iq", {"type": "set", "id": f"push{self._push_counter}", "to": str(jid)})
                query = sub(push, NS_ROSTER, "query")
                query.append(item_element(item))
                actions.append(Deliver(to=jid, stanza=push))
        return actions

    # --- iqs --------------------------------------------------------------------------------------

    def _account_iq(self, sender: JID, iq: Element, now: float) -> list[RouterAction]:
        if (problem := self._iq_problem(iq)) is not None:
            return problem
        payload = first_child(iq)
        assert payload is not None
        if payload.tag == qname(NS_ROSTER, "query"):
            return self._roster_iq(sender, iq, payload)
        if self._carbons.handles(iq):
            return self._reply(iq, self._carbons.handle_iq(sender, iq))
        if self._blocking is not None and etree.QName(payload).namespace == NS_BLOCKING:
            return self._blocking_iq(sender, iq)
        return self._iq_for_bare_account(iq)

    def _iq_for_bare_account(self, iq: Element) -> list[RouterAction]:
        """RFC 6121 §8.5.2.1.3: the server answers iqs to an account's bare JID on its behalf."""
        if (problem := self._iq_problem(iq)) is not None:
            return problem
        payload = first_child(iq)
        assert payload is not None
        requester = JID.parse(iq.get("from", ""))
        owner = JID.parse(iq.get("to") or str(requester.bare)).bare
        if self._pep is not None and etree.QName(payload).namespace in PUBSUB_NAMESPACES:
            sends = self._pep.handle_iq(owner, iq, guest=self._from_guest(iq))
            if self._vcards is not None and owner.local is not None and sends[0].stanza.get("type") == "result" \
                    and (metadata := _published(iq, NS_AVATAR_METADATA)) is not None:
                self._vcards.avatar_published(owner.local, metadata)  # XEP-0398 §3: PEP avatar to vCard
            return self._pep_orders(sends)
        if self._archive is not None and etree.QName(payload).namespace == NS_MAM:
            if requester.bare != owner:
                return self._bounce(iq, StanzaErrorCondition.FORBIDDEN)  # XEP-0313 §4: the owner only
            return [Deliver(to=requester, stanza=answer) for answer in
                    self._archive.handle_iq(owner, iq, self._wall_clock())] if requester in self._resources else []
        if payload.tag in (qname(NS_VCARD, "vCard"), qname(NS_PRIVATE, "query")) and iq.get("type") == "set" \
                and self._from_guest(iq) and (self._vcards is not None or self._private is not None):
            return self._bounce(iq, StanzaErrorCondition.FORBIDDEN, text="Guests cannot store profile data")
        if self._vcards is not None and payload.tag == qname(NS_VCARD, "vCard") and owner.local is not None:
            outcome = self._vcards.handle_iq(requester, owner, iq)
            return self._reply(iq, outcome.reply) + self._as_account(outcome.publishes)
        if self._private is not None and payload.tag == qname(NS_PRIVATE, "query") and requester.local is not None:
            private = self._private.handle_iq(requester, iq)
            return self._reply(iq, private.reply) + self._as_account(private.pubsub)
        if iq.get("type") == "get" and payload.tag == qname(NS_DISCO_INFO, "query") and not payload.get("node"):
            return self._reply(iq, iq_result(iq, self._account_disco_info(
                own=requester.bare == owner and not self._from_guest(iq))))
        if iq.get("type") == "get" and payload.tag == qname(NS_DISCO_ITEMS, "query") and self._pep is not None \
                and not payload.get("node"):
            items = element(NS_DISCO_ITEMS, "query")
            for node in self._pep.disco_items(owner, requester):
                sub(items, NS_DISCO_ITEMS, "item", {"jid": str(owner), "node": node})
            return self._reply(iq, iq_result(iq, items))
        if iq.get("type") == "get" and payload.tag == qname(NS_PING, "ping"):
            return self._reply(iq, iq_result(iq))
        return self._bounce(iq, StanzaErrorCondition.SERVICE_UNAVAILABLE)

    def _roster_iq(self, sender: JID, iq: Element, query: Element) -> list[RouterAction]:
        assert sender.local is not None
        if iq.get("type") == "get":
            self._resources[sender].interested = True
            result = element(NS_ROSTER, "query")
            for item in self._store.roster_items(sender.local):
                if item.listed:
                    result.append(item_element(item))
            return self._reply(iq, iq_result(iq, result))
        items = [child for child in query if isinstance(child.tag, str)]
        if len(items) != 1 or items[0].tag != qname(NS_ROSTER, "item"):
            return self._bounce(iq, StanzaErrorCondition.BAD_REQUEST)  # RFC 6121 §2.3.3
        requested = items[0]
        try:
            contact = JID.parse(requested.get("jid", "")).bare
        except InvalidJID:
            return self._bounce(iq, StanzaErrorCondition.BAD_REQUEST)
        actions: list[RouterAction] = []
        if requested.get("subscription") == "remove":
            try:
                removed, notices = self._roster.remove(sender.local, contact)
            except StorageError as exc:
                return self._storage_failed(iq, exc)
            if removed is None:
                return self._bounce(iq, StanzaErrorCondition.ITEM_NOT_FOUND)
            actions += self._reply(iq, iq_result(iq))
            for notice_type in notices:
                actions += self._subscription(sender, make_stanza("presence",
                    {"type": notice_type, "from": str(sender.bare), "to": str(contact)}),
                    notice_type, contact, 0.0)
            return actions + self._roster_push(sender.bare, removed)
        groups = tuple(dict.fromkeys(
            (group.text or "").strip() for group in requested.iter(qname(NS_ROSTER, "group"))))
        if any(not group for group in groups):
            return self._bounce(iq, StanzaErrorCondition.NOT_ACCEPTABLE)  # RFC 6121 §2.3.3: empty group
        try:
            updated = self._roster.update(sender.local, contact, requested.get("name") or None, groups)
        except StorageError as exc:
            return self._storage_failed(iq, exc)
        return self._reply(iq, iq_result(iq)) + self._roster_push(sender.bare, updated)

    def _server_stanza(self, stanza: Element, now: float) -> list[RouterAction]:
        if local_name(stanza) != "iq":
            return []  # messages and presence to the server itself have no recipient
        if self._pep is not None and stanza.get("type") in ("result", "error") \
                and (answered := self._pep.iq_answer(stanza)) is not None:
            return self._pep_orders(answered)  # XEP-0115 §6.2: a client told us its capabilities
        if (problem := self._iq_problem(stanza)) is not None:
            return problem
        payload = first_child(stanza)
        assert payload is not None
        if stanza.get("type") == "get":
            if payload.tag == qname(NS_DISCO_INFO, "query") and not payload.get("node"):
                return self._reply(stanza, iq_result(stanza, self._disco_info()))
            if payload.tag == qname(NS_DISCO_ITEMS, "query") and not payload.get("node"):
                items = element(NS_DISCO_ITEMS, "query")
                for domain, (_component, name) in sorted(self._components.items()):
                    sub(items, NS_DISCO_ITEMS, "item", {"jid": domain, "name": name})
                return self._reply(stanza, iq_result(stanza, items))
            if payload.tag == qname(NS_PING, "ping"):
                return self._reply(stanza, iq_result(stanza))
            if payload.tag == qname(NS_VERSION, "query"):
                version = element(NS_VERSION, "query")
                sub(version, NS_VERSION, "name", text=self._server_name)
                sub(version, NS_VERSION, "version", text=self._server_version)
                return self._reply(stanza, iq_result(stanza, version))
        return self._bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)

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

    # --- PEP and blocking (XEP-0163, XEP-0191) -----------------------------------------------------

    def _pep_orders(self, sends: list[Send]) -> list[RouterAction]:
        """PEP's stanzas go to bound resources only, and never between a user and whom either blocks."""
        actions: list[RouterAction] = []
        for send in sends:
            source = JID.parse(send.stanza.get("from", self.domain))
            if send.to in self._resources and not (source.local is not None
                                                   and self._blocked_either_way(source, send.to)):
                actions.append(Deliver(to=send.to, stanza=send.stanza))
        return actions

    def _as_account(self, requests: list[Element]) -> list[RouterAction]:
        """XEP-0398/XEP-0411 conversions: pubsub requests run as the account; only their notifications go out."""
        actions: list[RouterAction] = []
        for request in requests:
            if self._pep is None:
                break
            sender = JID.parse(request.get("from", ""))
            sends = self._pep.handle_iq(sender.bare, request)
            actions += self._pep_orders([send for send in sends if send.stanza.get("id") != request.get("id")
                                         or send.stanza.tag != request.tag])
        return actions

    def _blocks(self, user: str | None, jid: JID) -> bool:
        return self._blocking is not None and user is not None and self._blocking.blocks(user, jid)

    def _blocked_either_way(self, one: JID, other: JID) -> bool:
        return one.bare != other.bare and (self._blocks(one.local, other) or self._blocks(other.local, one))

    def _blocked_inbound(self, target: JID, stanza: Element) -> bool:
        try:
            sender = JID.parse(stanza.get("from", ""))
        except InvalidJID:
            return False
        return sender.bare != target.bare and self._blocks(target.local, sender)

    def _blocking_iq(self, sender: JID, iq: Element) -> list[RouterAction]:
        assert self._blocking is not None and sender.local is not None
        outcome = self._blocking.handle_iq(sender, iq)
        actions = self._reply(iq, outcome.reply)
        actions += [Deliver(to=jid, stanza=push) for jid, push in outcome.pushes if jid in self._resources]
        if not outcome.blocked and not outcome.unblocked:
            return actions
        # XEP-0191 §3.3/§3.4: the newly blocked see the user go offline; the unblocked see it (and are seen) again.
        own = self._available_resources(sender.bare)
        for item in self._store.roster_items(sender.local):
            if item.jid.domain != self.domain or item.jid.local is None:
                continue
            for contact in self._available_resources(item.jid):
                if any(block_matches(blocked, contact) for blocked in outcome.blocked):
                    if item.subscription in ("from", "both"):
                        actions += [Deliver(to=contact, stanza=make_stanza("presence", {
                            "type": "unavailable", "from": str(jid), "to": str(contact)})) for jid in own]
                elif any(block_matches(unblocked, contact) for unblocked in outcome.unblocked) \
                        and not self._blocked_either_way(sender, contact):
                    if item.subscription in ("from", "both"):
                        actions += [Deliver(to=contact, stanza=addressed_copy(presence, contact)) for jid in own
                                    if (presence := self._resources[jid].presence) is not None]
                    if item.subscription in ("to", "both") \
                            and (presence := self._resources[contact].presence) is not None:
                        actions += [Deliver(to=jid, stanza=addressed_copy(presence, jid)) for jid in own]
        return actions

    # --- replies ----------------------------------------------------------------------------------

    def _iq_problem(self, iq: Element) -> list[RouterAction] | None:
        """None for a well-formed request; otherwise what to answer (RFC 6120 §8.2.3)."""
        if iq.get("type") in ("result", "error"):
            return []  # answers to the server or to an account need no answer
        if iq.get("type") in ("get", "set") and sum(1 for child in iq if isinstance(child.tag, str)) == 1:
            return None
        return self._bounce(iq, StanzaErrorCondition.BAD_REQUEST)

    def _reply(self, request: Element, reply: Element) -> list[RouterAction]:
        target = JID.parse(request.get("from", ""))
        if reply.get("from") is None:
            reply.set("from", request.get("to") or str(target.bare))
        return [Deliver(to=target, stanza=reply)] if target in self._resources else []

    def _bounce(self, stanza: Element, condition: StanzaErrorCondition, text: str | None = None) -> list[RouterAction]:
        """An error reply to the sender, unless the stanza is itself an error (RFC 6120 §8.3.1)."""
        if stanza.get("type") in ("error", "result") or (local_name(stanza) == "presence"
                                                           and stanza.get("type") == "unavailable"):
            return []
        try:
            sender = JID.parse(stanza.get("from", ""))
        except InvalidJID:
            return []
        reply = error_reply(stanza, condition, text=text)
        if local_name(stanza) != "iq":
            # Clients match errors to what they sent by payload too (RFC 6120 §8.3.1 MAY include it).
            for child in stanza:
                if isinstance(child.tag, str) and child.tag == qname(NS_CLIENT, "body"):
                    reply.insert(0, copy.deepcopy(child))
        if sender in self._resources:
            return [Deliver(to=sender, stanza=reply)]
        if sender.domain == self.domain and sender.local is not None:
            return []
        return self._deliver_all([reply], 0.0)


def _fan_out(stanza: Element, recipients: Iterable[JID]) -> list[RouterAction]:
    return [Deliver(to=jid, stanza=addressed_copy(stanza, jid)) for jid in recipients]


def _published(iq: Element, node: str) -> Element | None:
    """The payload of an XEP-0060 publish to `node` in this iq, if it is one."""
    if iq.get("type") != "set":
        return None
    publish = iq.find(f"{qname(NS_PUBSUB, 'pubsub')}/{qname(NS_PUBSUB, 'publish')}")
    if publish is None or publish.get("node") != node:
        return None
    return next((child for item in publish for child in item if isinstance(child.tag, str)), None)


def _priority(presence: Element) -> int:
    text = presence.findtext(qname(NS_CLIENT, "priority"))
    try:
        return max(-128, min(127, int(text))) if text else 0
    except ValueError:
        return 0


_STORABLE_PAYLOADS = frozenset({qname(NS_CLIENT, "body"), qname(NS_CLIENT, "subject"), "{jabber:x:conference}x",
                                "{http://jabber.org/protocol/muc#user}x"})


def _worth_storing(message: Element) -> bool:
    """XEP-0160: messages with content or invitations; chat states and receipts alone are not stored."""
    return any(child.tag in _STORABLE_PAYLOADS for child in message)
