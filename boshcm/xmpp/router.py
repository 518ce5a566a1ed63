"""The embedded server's router: bound resources and the RFC 6120 §8 / RFC 6121 §8.5 delivery rules.

Theory of operation. Sessions of every transport are known here only by their bound full JID. A session
hands in each stanza it receives (`handle_stanza(sender, stanza, now)`); the router stamps `from`, decides
who gets what and returns orders (xmpp/orders.py): `Deliver(to=<bound full JID>, stanza)` and, on resource
conflicts, `Disconnect(jid)`. The hub performs them. Components (the MUC service, upload) are plugged in by
domain; they answer with stanzas that go through the same local delivery rules.

`RouterMachine` keeps its working state in memory (bound resources, the rosters and blocklists of users online)
and answers with storage orders too: `StoreOffline`, `FetchOffline` (a read), `SaveRosterItem`,
`RemoveRosterItem`, `ForgetUser`, `SaveBlock`, `RemoveBlock`, `SaveVCard`, `SavePrivate`, `ArchiveMessage`,
`QueryArchive` (a read) and PEP's changes (`PutPepNode`, `PublishPepItem`, ...; PEP keeps a view in memory).
`Router` is its adapter for server.sqlite, blocklist.sqlite, vcard.sqlite, private.sqlite, mam.sqlite and
pep.sqlite, the object the sessions and the hub know: it performs the storage orders in the order given,
synchronously (sessions call the router synchronously), feeds refusals and answers back to the machine (a bounce
to the sender) and passes `Deliver`/`Disconnect` on. Still synchronous in the machine: the reads that
docs/architecture.md lists (rosters and blocklists when first needed, vCard and private-storage reads, an
account's PEP when first needed).

The router is the façade the hub and the sessions use, and the host its jobs share (as a Prosody host is
its modules'): this file owns the table of bound resources, which address gets a stanza, the XEP-0191 check
on every delivery path and the error replies. Each other job is its own module, given the router:
presence and subscriptions (presence.py), roster iqs and pushes (roster_iq.py), offline messages
(offline.py), messages between accounts with their archive and carbons (messages.py), and the iqs the
server answers itself (server_iqs.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence, Set
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
    Addressed,
    Element,
    Outgoing,
    addressed_copy,
    clone,
    error_reply,
    for_recipient,
    local_name,
    make_stanza,
    qname,
    sub,
)
from boshcm.timestamps import xep0082
from boshcm.xmpp.blocking import Blocklists, blocked_error
from boshcm.xmpp.carbons import Carbons
from boshcm.xmpp.mam import ArchiveService
from boshcm.xmpp.messages import Messages
from boshcm.xmpp.offline import OfflineMessages, stored_messages, worth_storing
from boshcm.xmpp.orders import (
    PEP_ORDERS,
    ArchiveMessage,
    DeletePepNode,
    DeletePepUser,
    Deliver,
    Disconnect,
    FetchOffline,
    ForgetUser,
    PepOrder,
    PublishPepItem,
    PurgePepNode,
    PutPepNode,
    QueryArchive,
    RemoveBlock,
    RemoveRosterItem,
    RetractPepItem,
    RouterAction,
    RouterOrder,
    SaveBlock,
    SavePrivate,
    SaveRosterItem,
    SaveVCard,
    SetPepAffiliation,
    SetPepSubscription,
    StoreOffline,
)
from boshcm.xmpp.presence import Presence
from boshcm.xmpp.private_storage import PrivateStorage
from boshcm.xmpp.pubsub import MemoryPepStore, PepLimits, PepService, PepStore, Send
from boshcm.xmpp.pubsub.store import perform as perform_pep
from boshcm.xmpp.roster import RosterBook, RosterSource
from boshcm.xmpp.roster_iq import RosterIqs
from boshcm.xmpp.server_iqs import ServerIqs
from boshcm.xmpp.storage import OfflineMessage, ServerStore
from boshcm.xmpp.vcard import VCards

__all__ = ["Component", "Deliver", "Disconnect", "Resource", "Router", "RouterAction", "RouterMachine",
           "UserDirectory"]


class UserDirectory(Protocol):
    def exists(self, username: str) -> bool: ...

    @property
    def anonymous(self) -> Set[str]:
        """Localparts of the SASL ANONYMOUS guests online now."""


class Component(Protocol):
    """A service on its own domain (e.g. conference.<domain>): stanzas in, addressed stanzas out."""

    def handle_stanza(self, stanza: Element, now: float) -> Sequence[Outgoing]: ...
    def session_ended(self, jid: JID, now: float) -> Sequence[Outgoing]: ...


@dataclass(slots=True)
class Resource:
    """What the router knows of one bound full JID."""

    available: bool = False
    priority: int = 0
    presence: Element | None = None          # the last available presence broadcast
    interested: bool = False                  # requested the roster, so gets roster pushes (RFC 6121 §2.1.6)
    directed: set[JID] = field(default_factory=set)   # RFC 6121 §4.6: gets our unavailable on logoff


class RouterMachine:
    def __init__(self, *, domain: str, users: UserDirectory, rosters: RosterSource, wall_clock: Callable[[], float],
                 server_name: str = "boshcm", server_version: str = __version__,
                 extra_features: tuple[str, ...] = (), pep_store: PepStore | None = None,
                 pep_limits: PepLimits | None = None, blocking: Blocklists | None = None,
                 vcards: VCards | None = None, private: PrivateStorage | None = None,
                 archive: ArchiveService | None = None) -> None:
        self.domain = domain
        self.users = users
        # Only for XEP-0203 delay stamps on what a session never acknowledged; routing never looks at time.
        self._wall_clock = wall_clock
        self.resources: dict[JID, Resource] = {}
        self._by_user: dict[str, set[JID]] = {}
        self.components: dict[str, tuple[Component, str]] = {}
        self.received = 0  # stanzas from bound sessions, read by boshcm/metrics.py
        # The rosters in memory (xmpp/roster.py): subscription states, read by presence, roster iqs and PEP.
        self._rosters = RosterBook(rosters)
        # XEP-0163 PEP on every account and XEP-0191 blocking: both optional, both pure (pubsub/, blocking.py).
        self._pep = None if pep_store is None else PepService(
            domain=domain, store=pep_store, roster=self._rosters, online=self.available_resources,
            limits=pep_limits, wall_clock=wall_clock, present=lambda jid: bool(self._by_user.get(jid.local or "")))
        self._blocking = blocking
        self._vcards = vcards
        # XEP-0280 carbons (always offered) and XEP-0313 account archives (optional), both pure.
        self._carbons = Carbons()
        # The jobs; each is given the router and the services it uses.
        self.presence = Presence(self, self._rosters, pep=self._pep, vcards=vcards)
        self.roster = RosterIqs(self, self._rosters)
        self.offline = OfflineMessages(self, wall_clock)
        self._messages = Messages(self, self._carbons, archive, wall_clock)
        self._iqs = ServerIqs(self, server_name=server_name, server_version=server_version,
                              extra_features=extra_features, wall_clock=wall_clock, carbons=self._carbons,
                              pep=self._pep, blocking=blocking, vcards=vcards, private=private, archive=archive)

    # --- sessions ---------------------------------------------------------------------------------

    def add_component(self, domain: str, component: Component, name: str) -> None:
        self.components[domain] = (component, name)

    def is_bound(self, jid: JID) -> bool:
        return jid in self.resources

    def bind(self, jid: JID, now: float) -> list[RouterOrder]:
        assert jid.local is not None and jid.resource is not None
        actions: list[RouterOrder] = []
        if jid in self.resources:
            # RFC 6120 §7.7.2.2: the newcomer wins; the old session is told why.
            actions.append(Disconnect(jid=jid, condition=StreamErrorCondition.CONFLICT))
        self.resources[jid] = Resource()
        self._by_user.setdefault(jid.local, set()).add(jid)
        self._rosters.load(jid.local)
        if self._blocking is not None:
            self._blocking.load(jid.local)
        return actions

    def unbind(self, jid: JID, now: float) -> list[RouterOrder]:
        resource = self.resources.pop(jid, None)
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
        actions: list[RouterOrder] = []
        if resource.available or resource.directed:
            unavailable = make_stanza("presence", {"type": "unavailable", "from": str(jid)})
            if resource.available:
                actions += self.presence.broadcast(jid, unavailable, include_self=False)
            for recipient in resource.directed:
                actions += self.presence.route_to(recipient, addressed_copy(unavailable, recipient), now)
        for component, _name in self.components.values():
            actions += self.deliver_all(component.session_ended(jid, now), now)
        gone = jid.local in self.users.anonymous or not self.users.exists(jid.local)
        if users and gone and jid.local not in self.users.anonymous:
            # XEP-0077 §3.2: the account was removed from one of its sessions; the others end too.
            actions += [Disconnect(jid=other, condition=StreamErrorCondition.NOT_AUTHORIZED) for other in users]
        if not users:
            self._rosters.forget(jid.local)  # read again from the disk at the next bind
            if self._blocking is not None:
                self._blocking.forget(jid.local)
            if gone:
                # A guest's name is never given again, and a removed account is gone: what it kept goes with it.
                actions.append(ForgetUser(user=jid.local))
                if self._pep is not None:
                    actions += self._pep.delete_user(jid.local)
                if self._vcards is not None:
                    self._vcards.forget(jid.local)
        return actions

    def pep_refused(self, owners: Set[str]) -> None:
        """A PEP write of these accounts was refused (what followed was dropped): PEP reads them again."""
        if self._pep is not None:
            self._pep.refused(owners)

    def pep_written(self) -> None:
        """Every PEP order given so far is performed: PEP may drop what it holds of accounts offline."""
        if self._pep is not None:
            self._pep.written()

    def roster_refused(self, users: Set[str]) -> None:
        """A roster write of these users was refused: their cached rosters go, the disk is read again."""
        for user in users:
            self._rosters.forget(user)

    def blocking_refused(self, user: str) -> None:
        """A blocklist write of `user` was refused: the list is read again from the disk when next needed."""
        if self._blocking is not None:
            self._blocking.refused(user)

    def archive_refused(self, order: ArchiveMessage, rest: list[RouterOrder]) -> None:
        """An archive write was refused: what follows (the message itself) goes without its stanza-id."""
        self._messages.archive_refused(order, rest)

    def vcard_saved(self, order: SaveVCard) -> list[RouterOrder]:
        """A `SaveVCard` was written: what waited for it (the iq result, XEP-0398 publishes)."""
        return self._iqs.vcard_saved(order)

    def vcard_refused(self, order: SaveVCard, exc: StorageError) -> list[RouterOrder]:
        return self._iqs.vcard_refused(order, exc)

    def take_over_unacked(self, jid: JID, stanzas: list[Element], now: float) -> list[RouterOrder]:
        """XEP-0198 §4: what a session that ended without resumption never acknowledged.

        Each stanza is handled as if it arrived now for the full JID (RFC 6121 §8.5.3.2.1), which is no longer
        bound: chat and normal messages go to the account's other resources or to offline storage, with a
        XEP-0203 delay; iq requests and groupchat messages get an error to their sender; headlines, errors,
        results and presence (stale by now) are dropped as the RFC allows.
        """
        actions: list[RouterOrder] = []
        for stanza in stanzas:
            # A shared stanza becomes the recipient's own here: it is bounced or stamped with a delay below.
            for action in self._deliver_local(for_recipient(stanza, jid), jid, now):
                if (isinstance(action, Deliver) and action.to.bare == jid.bare
                        and local_name(action.stanza) == "message" and action.stanza.get("type") != "error"
                        and action.stanza.find(qname(NS_DELAY, "delay")) is None):
                    sub(action.stanza, NS_DELAY, "delay", {"from": self.domain, "stamp": xep0082(self._wall_clock())})
                actions.append(action)
        return actions

    # --- stanzas from bound sessions --------------------------------------------------------------

    def handle_stanza(self, sender: JID, stanza: Element, now: float) -> list[RouterOrder]:
        self.received += 1
        stanza.set("from", str(sender))  # RFC 6120 §8.1.2.1: the server stamps the bound JID
        kind = local_name(stanza)
        target_text = stanza.get("to")
        try:
            target = JID.parse(target_text) if target_text else None
        except InvalidJID:
            return self.bounce(stanza, StanzaErrorCondition.JID_MALFORMED)
        if target is not None and target.bare != sender.bare and target != JID(None, self.domain, None) \
                and self.blocks(sender.local, target):
            # XEP-0191 §3.6: nothing reaches whom the user blocks; messages and iqs learn why.
            return [] if kind == "presence" or stanza.get("type") in ("error", "result") else \
                [Deliver(to=sender, stanza=blocked_error(stanza))]
        if kind == "presence":
            return self.presence.outbound(sender, stanza, target, now)
        if kind == "message" and target is not None and target.bare != sender.bare:
            return self._messages.outbound(sender, stanza, target, now)
        if target is None or target == sender.bare:
            # RFC 6120 §10.3: no 'to' means the user's own account.
            if kind == "iq":
                return self._iqs.from_account(sender, stanza)
            if target is None:
                return self._deliver_to_bare(sender.bare, addressed_copy(stanza, sender.bare))
        return self.route(stanza, target, now)

    def route(self, stanza: Element, target: JID, now: float) -> list[RouterOrder]:
        """A stanza for `target`: a component, (no server-to-server) an error, the server, or an account."""
        if target.domain in self.components:
            component, _name = self.components[target.domain]
            return self.deliver_all(component.handle_stanza(stanza, now), now)
        if target.domain != self.domain:
            # No server-to-server links (RFC 6120 §8.3.3.17).
            return self.bounce(stanza, StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND)
        if target.local is None:
            return self._iqs.for_server(stanza)
        return self._deliver_local(stanza, target, now)

    def deliver_all(self, stanzas: Iterable[Outgoing], now: float) -> list[RouterOrder]:
        """Stanzas a component addressed: those for the server's accounts are delivered locally."""
        actions: list[RouterOrder] = []
        shared_stanza: Element | None = None
        sender: JID | None = None
        for item in stanzas:
            if isinstance(item, Addressed):
                if item.stanza is not shared_stanza:   # a fan-out's recipients share one stanza: read its sender once
                    shared_stanza, sender = item.stanza, self._sender_of(item.stanza)
                actions += self._deliver_shared(item, sender, now)
                continue
            target = JID.parse(item.get("to", ""))
            if target.domain == self.domain and target.local is not None:
                actions += self._deliver_local(item, target, now)
        return actions

    def _deliver_shared(self, item: Addressed, sender: JID | None, now: float) -> list[RouterOrder]:
        """A shared stanza goes as it is to a bound session (its writer puts the JID in); anywhere else (a bounce,
        another resource, offline) the recipient gets a copy of its own and the usual rules. `sender`: the
        stanza's `from`, read once for all its recipients (None: not a JID, which no blocklist covers)."""
        target = item.to
        if target.domain != self.domain or target.local is None:
            return []
        if (target in self.resources and self.users.exists(target.local)
                and not (sender is not None and self._blocks_from(target, sender))
                and local_name(item.stanza) != "presence"):
            return [Deliver(to=target, stanza=item.stanza)]
        return self._deliver_local(for_recipient(item.stanza, target), target, now)

    # --- local delivery (RFC 6121 §8.5) -----------------------------------------------------------

    def _deliver_local(self, stanza: Element, target: JID, now: float) -> list[RouterOrder]:
        assert target.local is not None
        kind = local_name(stanza)
        if not self.users.exists(target.local):
            # RFC 6121 §8.5.1: no such user.
            if kind == "presence":
                return []
            return self.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if self.blocked_inbound(target, stanza):
            # XEP-0191 §3.5: presence is dropped silently, messages and iq requests get service-unavailable.
            return [] if kind == "presence" else self.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if kind == "presence":
            return self.presence.route_to(target, stanza, now)
        if target.is_full:
            if target in self.resources:
                return [Deliver(to=target, stanza=stanza)]
            stanza_type = stanza.get("type", "normal")
            if kind == "message" and stanza_type in ("chat", "normal"):
                return self._deliver_to_bare(target.bare, stanza)  # §8.5.3.2.1
            if kind == "message" and stanza_type in ("headline", "error"):
                return []
            return self.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        if kind == "iq":
            return self._iqs.for_account(stanza)
        return self._deliver_to_bare(target, stanza)

    def _deliver_to_bare(self, bare: JID, stanza: Element) -> list[RouterOrder]:
        """A message to a bare JID (RFC 6121 §8.5.2.1.1): the highest non-negative priority resources."""
        stanza_type = stanza.get("type", "normal")
        if stanza_type == "groupchat":
            return self.bounce(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)
        available = self.available_resources(bare)
        eligible = [jid for jid in available if self.resources[jid].priority >= 0]
        if stanza_type == "headline":
            return [Deliver(to=jid, stanza=clone(stanza)) for jid in eligible]
        if eligible:
            best = max(self.resources[jid].priority for jid in eligible)
            return [Deliver(to=jid, stanza=clone(stanza)) for jid in eligible
                    if self.resources[jid].priority == best]
        if stanza_type in ("chat", "normal") and worth_storing(stanza):
            return self.offline.store(bare, stanza)
        return []

    def available_resources(self, bare: JID) -> list[JID]:
        if bare.local is None:
            return []
        return sorted((jid for jid in self._by_user.get(bare.local, ()) if self.resources[jid].available),
                      key=str)

    def bound(self, bare: JID) -> list[JID]:
        """Every bound resource of a local account, available or not."""
        return sorted(self._by_user.get(bare.local or "", ()), key=str) if bare.domain == self.domain else []

    @property
    def pep(self) -> PepService | None:
        return self._pep

    def pep_orders(self, sends: list[Send]) -> list[RouterOrder]:
        """PEP's changes (writes the stanzas wait for), then its stanzas: to bound resources only, and never between
        a user and whom either blocks."""
        actions: list[RouterOrder] = []
        if self._pep is not None:
            # A request whose reply was left out (a conversion run as the account) hears nothing of a refusal.
            actions += [order if order.request is None or any(_answers(send, order.request) for send in sends)
                        else dataclasses.replace(order, request=None) for order in self._pep.take_orders()]
        for send in sends:
            source = JID.parse(send.stanza.get("from", self.domain))
            if send.to in self.resources and not (source.local is not None
                                                  and self.blocked_either_way(source, send.to)):
                actions.append(Deliver(to=send.to, stanza=send.stanza))
        return actions

    # --- blocking (XEP-0191), asked on every delivery path ----------------------------------------

    def blocks(self, user: str | None, jid: JID) -> bool:
        return self._blocking is not None and user is not None and self._blocking.blocks(user, jid)

    def blocked_either_way(self, one: JID, other: JID) -> bool:
        return not one.same_bare(other) and (self.blocks(one.local, other) or self.blocks(other.local, one))

    def blocked_inbound(self, target: JID, stanza: Element) -> bool:
        sender = self._sender_of(stanza)
        return sender is not None and self._blocks_from(target, sender)

    def _blocks_from(self, target: JID, sender: JID) -> bool:
        return not sender.same_bare(target) and self.blocks(target.local, sender)

    @staticmethod
    def _sender_of(stanza: Element) -> JID | None:
        try:
            return JID.parse(stanza.get("from", ""))
        except InvalidJID:
            return None

    def from_guest(self, stanza: Element) -> bool:
        sender = self._sender_of(stanza)
        return sender is not None and sender.domain == self.domain and sender.local in self.users.anonymous

    # --- replies ----------------------------------------------------------------------------------

    def iq_problem(self, iq: Element) -> list[RouterOrder] | None:
        """None for a well-formed request; otherwise what to answer (RFC 6120 §8.2.3)."""
        if iq.get("type") in ("result", "error"):
            return []  # answers to the server or to an account need no answer
        if iq.get("type") in ("get", "set") and sum(1 for child in iq if isinstance(child.tag, str)) == 1:
            return None
        return self.bounce(iq, StanzaErrorCondition.BAD_REQUEST)

    def reply(self, request: Element, reply: Element) -> list[RouterOrder]:
        target = JID.parse(request.get("from", ""))
        if reply.get("from") is None:
            reply.set("from", request.get("to") or str(target.bare))
        return [Deliver(to=target, stanza=reply)] if target in self.resources else []

    def bounce(self, stanza: Element, condition: StanzaErrorCondition, text: str | None = None) -> list[RouterOrder]:
        """An error reply to the sender, unless the stanza is itself an error (RFC 6120 §8.3.1)."""
        if stanza.get("type") in ("error", "result") or (local_name(stanza) == "presence"
                                                           and stanza.get("type") == "unavailable"):
            return []
        sender = self._sender_of(stanza)
        if sender is None:
            return []
        reply = error_reply(stanza, condition, text=text)
        if local_name(stanza) != "iq":
            # Clients match errors to what they sent by payload too (RFC 6120 §8.3.1 MAY include it).
            for child in stanza:
                if isinstance(child.tag, str) and child.tag == qname(NS_CLIENT, "body"):
                    reply.insert(0, clone(child))
        if sender in self.resources:
            return [Deliver(to=sender, stanza=reply)]
        if sender.domain == self.domain and sender.local is not None:
            return []
        return self.deliver_all([reply], 0.0)

    def storage_failed(self, stanza: Element, exc: StorageError) -> list[RouterOrder]:
        """The store could not be written (disk full, read-only): the sender may try again later."""
        text = "The server's storage is full" if isinstance(exc, StorageFull) else "The server cannot store it now"
        return self.bounce(stanza, StanzaErrorCondition.RESOURCE_CONSTRAINT, text=f"{text}; try again later")


class Router:
    """`RouterMachine` with its storage: performs its storage orders on server.sqlite (`ServerStore`)."""

    def __init__(self, *, domain: str, users: UserDirectory, store: ServerStore, wall_clock: Callable[[], float],
                 server_name: str = "boshcm", server_version: str = __version__,
                 extra_features: tuple[str, ...] = (), pep_store: PepStore | None = None,
                 pep_limits: PepLimits | None = None, blocking: Blocklists | None = None,
                 vcards: VCards | None = None, private: PrivateStorage | None = None,
                 archive: ArchiveService | None = None, before_stanza: Callable[[], None] = lambda: None) -> None:
        self.store = store
        # Called before each routed stanza: boshcm/metrics.py's CollectorHold, so that no collection lands
        # between the first and the last recipient of a fan-out.
        self._before_stanza = before_stanza
        # The stores the machine's services only read; this adapter writes them.
        self._blocklists = None if blocking is None else blocking.store
        self._vcards = None if vcards is None else vcards.store
        self._private = None if private is None else private.store
        self._archive = archive  # the machine takes only its `entry()`; writes and queries are performed here
        # A `MemoryPepStore` is PEP's view itself (tests): its orders are already made there, nothing to write.
        self._pep_store = None if isinstance(pep_store, MemoryPepStore) else pep_store
        self.machine = RouterMachine(
            domain=domain, users=users, rosters=store, wall_clock=wall_clock, server_name=server_name,
            server_version=server_version, extra_features=extra_features, pep_store=pep_store,
            pep_limits=pep_limits, blocking=blocking, vcards=vcards, private=private, archive=archive)

    @property
    def received(self) -> int:  # read by boshcm/metrics.py
        return self.machine.received

    def add_component(self, domain: str, component: Component, name: str) -> None:
        self.machine.add_component(domain, component, name)

    def is_bound(self, jid: JID) -> bool:
        return self.machine.is_bound(jid)

    def bound(self, bare: JID) -> list[JID]:
        return self.machine.bound(bare)

    def bind(self, jid: JID, now: float) -> list[RouterAction]:
        return self._settled(self._perform(self.machine.bind(jid, now)))

    def unbind(self, jid: JID, now: float) -> list[RouterAction]:
        return self._settled(self._perform(self.machine.unbind(jid, now)))

    def handle_stanza(self, sender: JID, stanza: Element, now: float) -> list[RouterAction]:
        self._before_stanza()
        return self._settled(self._perform(self.machine.handle_stanza(sender, stanza, now)))

    def take_over_unacked(self, jid: JID, stanzas: list[Element], now: float) -> list[RouterAction]:
        return self._settled(self._perform(self.machine.take_over_unacked(jid, stanzas, now)))

    def _settled(self, actions: list[RouterAction]) -> list[RouterAction]:
        self.machine.pep_written()  # everything ordered is written now
        return actions

    def _perform(self, orders: list[RouterOrder]) -> list[RouterAction]:
        """Storage orders in the order given; what is left for the hub comes back."""
        actions: list[RouterAction] = []
        for index, order in enumerate(orders):
            match order:
                case Deliver() | Disconnect():
                    actions.append(order)
                case StoreOffline(user=user, stanza=stanza):
                    try:
                        accepted = self.store.store_offline(user, etree.tostring(stanza))
                    except StorageError as exc:
                        actions += self._perform(self.machine.offline.refused(order, exc))
                    else:
                        if not accepted:
                            actions += self._perform(self.machine.offline.refused(order, None))
                case FetchOffline(jid=jid):
                    actions += self._fetch_offline(jid)
                case SaveRosterItem() | RemoveRosterItem():
                    try:
                        if isinstance(order, SaveRosterItem):
                            self.store.put_roster_item(order.user, order.item)
                        else:
                            self.store.remove_roster_item(order.user, order.jid)
                    except StorageError as exc:
                        # What followed from the change (reply, pushes, the presence) is not sent; the rosters
                        # involved are read again from the disk, which still holds them as they were.
                        rest = orders[index:]
                        self.machine.roster_refused({later.user for later in rest
                                                     if isinstance(later, SaveRosterItem | RemoveRosterItem)})
                        return actions + self._perform(self.machine.storage_failed(order.request, exc))
                case SaveBlock() | RemoveBlock():
                    try:
                        self._perform_block(order)
                    except StorageError as exc:
                        # As for rosters: nothing that followed from the change is sent, the disk is the truth.
                        self.machine.blocking_refused(order.user)
                        return actions + self._perform(self.machine.storage_failed(order.request, exc))
                case SaveVCard():
                    assert self._vcards is not None  # the machine orders these only when it has vCards
                    try:
                        self._vcards.put_vcard(order.user, order.vcard)
                    except StorageError as exc:
                        return actions + self._perform(self.machine.vcard_refused(order, exc))
                    actions += self._perform(self.machine.vcard_saved(order))
                case SavePrivate():
                    assert self._private is not None
                    try:
                        self._private.put_fragment(order.user, order.key, order.xml)
                    except StorageError as exc:
                        return actions + self._perform(self.machine.storage_failed(order.request, exc))
                case ArchiveMessage():
                    assert self._archive is not None
                    try:
                        self._archive.perform(order)
                    except StorageError:
                        self.machine.archive_refused(order, orders[index + 1:])
                case QueryArchive(archive=archive, requester=requester, iq=iq, wall=wall):
                    assert self._archive is not None
                    answers = self._archive.handle_iq(archive, iq, wall)  # reads; retention deletes
                    if self.machine.is_bound(requester):
                        actions += [Deliver(to=requester, stanza=answer) for answer in answers]
                case ForgetUser(user=user):
                    self._forget_user(user)
                case (PutPepNode() | DeletePepNode() | PublishPepItem() | RetractPepItem() | PurgePepNode()
                      | SetPepAffiliation() | SetPepSubscription() | DeletePepUser()):
                    try:
                        if self._pep_store is not None:
                            perform_pep(self._pep_store, order)
                    except StorageError as exc:
                        return actions + self._pep_refused(order, orders[index:], exc)
        return actions

    def _forget_user(self, user: str) -> None:
        """Each store on its own: one that refuses does not keep the others' data (`boshcm deluser` can finish)."""
        deletions: list[Callable[[], None]] = [lambda: self.store.delete_user(user)]
        for store in (self._blocklists, self._vcards, self._private):
            if store is not None:
                deletions.append(functools.partial(store.delete_user, user))
        if self._archive is not None:
            deletions.append(functools.partial(self._archive.delete_archive, JID.make(user, self.machine.domain)))
        for delete in deletions:
            with contextlib.suppress(StorageError):
                delete()

    def _pep_refused(self, order: PepOrder, rest: list[RouterOrder], exc: StorageError) -> list[RouterAction]:
        """As for rosters: nothing that followed is sent or written; PEP reads the accounts involved again."""
        self.machine.pep_refused({later.owner for later in rest if isinstance(later, PEP_ORDERS)})
        for later in rest:
            if isinstance(later, SaveVCard) and later.request is None:
                self.machine.vcard_refused(later, exc)  # an avatar's vCard copy: its cached photo hash goes
        return [] if order.request is None else self._perform(self.machine.storage_failed(order.request, exc))

    def _perform_block(self, order: SaveBlock | RemoveBlock) -> None:
        assert self._blocklists is not None  # the machine orders these only when it has blocklists
        if isinstance(order, SaveBlock):
            self._blocklists.block(order.user, list(order.jids))
        else:
            self._blocklists.unblock(order.user, None if order.jids is None else list(order.jids))

    def _fetch_offline(self, jid: JID) -> list[RouterAction]:
        """XEP-0160: stored messages go to the first available resource, then are deleted.

        Deleting is a separate write after reading: when it fails (disk full, read-only), the messages stay
        stored and come again at the next login (at-least-once) — the login itself never depends on it.
        """
        assert jid.local is not None
        messages: list[OfflineMessage] = []
        try:
            messages = self.store.offline_messages(jid.local)
            if messages:
                self.store.delete_offline(jid.local, up_to=messages[-1].id)
        except StorageError:
            pass  # read failed: nothing delivered now; delete failed: delivered again next time
        return list(stored_messages(jid, messages))


def _answers(send: Send, request: Element) -> bool:
    """Whether `send` is the reply to the iq `request`."""
    return local_name(send.stanza) == "iq" and send.stanza.get("id") == request.get("id") \
        and str(send.to) == request.get("from")
