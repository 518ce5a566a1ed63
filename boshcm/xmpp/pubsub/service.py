"""The PEP service (XEP-0163) of every account: the XEP-0060 subset PEP clients use, as a pure machine.

Theory of operation. The router hands in iqs in the pubsub namespaces addressed to an account (`handle_iq`),
available presences (`presence_available`), answers to the capability questions this service asked
(`iq_answer`) and departures (`resource_gone`); each returns `Send` orders, fully addressed stanzas for the
router to deliver by its ordinary rules (blocking included), and what each online resource is interested in
is kept here (caps.py).

Storage. Every rule reads and changes a view in memory (a `MemoryPepStore`) of the accounts' nodes, configurations,
items, affiliations and subscriptions, so that the requests of one stanza (a bookmark list's publishes, a vCard
photo's two) see each other's changes; each change is also an order (xmpp/orders.py: `PutPepNode`,
`PublishPepItem`, ...) that waits in `take_orders()` for the router's adapter to write to pep.sqlite, in order,
before the stanzas that followed from it go out. An account's PEP is read whole from the store the first time a
rule needs it (the one synchronous read left); the view keeps the accounts with a resource bound and drops the
others once their orders are written (`written`), and drops an account whose write was refused (`refused`), so
that it is read again from the disk, which is the truth.

Subscriptions are implicit (XEP-0163 §4): an account's own resources and its contacts with a presence
subscription (from/both) get notifications, filtered by the `<node>+notify` features of their entity
capabilities (XEP-0115). A resource that newly shows interest in a node (initial presence, or caps that add
`+notify`) gets the node's last item unless the node says never. Explicit XEP-0060 subscriptions (§6.1) are
offered too, to whoever the access model lets read the node: they get every notification without `+notify`,
and the last item when they subscribe. Last items carry the time they were published (XEP-0203 delay).

Access models: `presence` (default: the owner and contacts with subscription from/both), `open` (anyone),
`whitelist` (the owner and the JIDs the owner made members, XEP-0060 §8.9). An `outcast` affiliation keeps a
JID out whatever the model. Subscriptions of an entity that may no longer read the node (affiliation or access
model changed) are cancelled. Quotas (`PepLimits`) answer with the XEP-0060 errors listed in
docs/security.md, "PEP and blocking".

Time: the wall clock is injected (`wall_clock`) and read only to stamp a published item.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from boshcm.database import StorageError, StorageFull
from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_DELAY,
    NS_DISCO_INFO,
    Element,
    element,
    error_reply,
    iq_result,
    local_name,
    make_stanza,
    namespace_of,
    qname,
    sub,
)
from boshcm.timestamps import xep0082
from boshcm.xmpp.orders import (
    DeletePepNode,
    DeletePepUser,
    PepOrder,
    PublishPepItem,
    PurgePepNode,
    PutPepNode,
    RetractPepItem,
    SetPepAffiliation,
    SetPepSubscription,
)
from boshcm.xmpp.pubsub.caps import CapsBook
from boshcm.xmpp.pubsub.node import (
    FORM_NODE_CONFIG,
    FORM_PUBLISH_OPTIONS,
    NS_PUBSUB,
    NS_PUBSUB_ERRORS,
    NS_PUBSUB_EVENT,
    NS_PUBSUB_OWNER,
    AccessModel,
    InvalidConfig,
    NodeConfig,
    SendLast,
    config_form,
    form_values,
    matches,
    parse_options,
)
from boshcm.xmpp.pubsub.store import MemoryPepStore, OwnerPep, PepSource, StoredItem, perform
from boshcm.xmpp.storage import RosterItem

PUBSUB_NAMESPACES = frozenset({NS_PUBSUB, NS_PUBSUB_OWNER})

# What the account's bare JID advertises (XEP-0163 §1.1, XEP-0060 §10 feature names).
FEATURES = (NS_PUBSUB, *(f"{NS_PUBSUB}#{name}" for name in (
    "access-open", "access-presence", "access-whitelist", "auto-create", "auto-subscribe", "config-node",
    "config-node-max",  # pubsub#max_items "max" (XEP-0060 §16.4.4.1): Converse.js checks it for XEP-0402
    "create-and-configure", "create-nodes", "delete-items", "delete-nodes", "filtered-notifications", "item-ids",
    "last-published", "manage-subscriptions", "member-affiliation", "modify-affiliations", "outcast-affiliation",
    "persistent-items", "presence-notifications", "publish", "publish-options", "purge-nodes", "retract-items",
    "retrieve-affiliations", "retrieve-default", "retrieve-items", "retrieve-subscriptions", "subscribe")))

OWNER, MEMBER, OUTCAST, NONE = "owner", "member", "outcast", "none"
# XEP-0060 §4.1: the affiliations other than the owner's own that a PEP owner may give (publishing stays the
# owner's, XEP-0163 §3); `none` removes one.
_GRANTABLE = frozenset({MEMBER, OUTCAST, NONE})
_AFFILIATIONS = frozenset({OWNER, "publisher", "publish-only", MEMBER, NONE, OUTCAST})


@dataclass(frozen=True, slots=True, kw_only=True)
class PepLimits:
    max_nodes_per_account: int = 64
    max_items_per_node: int = 256
    max_item_bytes: int = 65_536
    max_account_bytes: int = 4_194_304
    max_caps_entries: int = 1024
    max_affiliations_per_node: int = 256
    max_subscriptions_per_node: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Deliver `stanza` (addressed, `from` set) to the bound full JID `to`."""

    to: JID
    stanza: Element


class RosterSource(Protocol):
    def roster_item(self, user: str, jid: JID) -> RosterItem | None: ...
    def roster_items(self, user: str) -> list[RosterItem]: ...


class _Refusal(Exception):
    """A request this service answers with an error; carries the XEP-0060 condition and pubsub#errors child."""

    def __init__(self, condition: StanzaErrorCondition, app: str | None = None, *, text: str | None = None,
                 feature: str | None = None, error_type: StanzaErrorType | None = None) -> None:
        super().__init__(condition.value)
        self.condition, self.app, self.text, self.feature, self.error_type = condition, app, text, feature, error_type


class PepService:
    def __init__(self, *, domain: str, store: PepSource, roster: RosterSource,
                 online: Callable[[JID], list[JID]], limits: PepLimits | None = None,
                 id_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
                 wall_clock: Callable[[], float] = time.time,
                 present: Callable[[JID], bool] | None = None) -> None:
        self.domain = domain
        self.limits = limits or PepLimits()
        self._roster, self._online = roster, online
        # Whose view stays in memory: accounts with a resource bound (available or not).
        self._present = present if present is not None else (lambda jid: bool(online(jid)))
        # The view every rule reads and changes. A `MemoryPepStore` given is memory already: it is the view, whole
        # (nothing to read or drop). Any other store is read one account at a time, at first need (`_of`).
        self._view = store if isinstance(store, MemoryPepStore) else MemoryPepStore()
        self._source: PepSource | None = None if isinstance(store, MemoryPepStore) else store
        self._loaded: set[str] = set()
        self._to_check: set[str] = set()      # loaded accounts that may have no resource bound: see `written`
        self._orders: list[PepOrder] = []    # changes made, not yet taken by the router
        self._request: Element | None = None  # the iq being handled: who hears of a refused write
        self._wall_clock = wall_clock
        self._caps = CapsBook(domain=domain, max_entries=self.limits.max_caps_entries)
        self._new_id = id_factory
        self._counter = 0

    # --- facts from the router --------------------------------------------------------------------

    def handle_iq(self, owner: JID, iq: Element, *, guest: bool = False) -> list[Send]:
        """An iq get/set whose payload is in a pubsub namespace, addressed to `owner`'s bare JID.

        The changes it makes wait in `take_orders()`, to be written before the stanzas returned go out."""
        requester = JID.parse(iq.get("from", ""))
        payload = next(child for child in iq if isinstance(child.tag, str))
        self._request = iq
        try:
            if namespace_of(payload) == NS_PUBSUB_OWNER:
                reply, sends = self._owner_request(owner, requester, iq, payload)
            else:
                reply, sends = self._request_in(owner, requester, iq, payload, guest=guest)
        except _Refusal as refusal:
            return [Send(to=requester, stanza=_error(iq, owner, refusal))]
        except StorageError as exc:  # reading the account's PEP (`_of`) failed
            text = "The server's storage is full" if isinstance(exc, StorageFull) else "The server cannot store it now"
            return [Send(to=requester, stanza=_error(iq, owner, _Refusal(
                StanzaErrorCondition.RESOURCE_CONSTRAINT, text=f"{text}; try again later")))]
        finally:
            self._request = None
        reply.set("from", str(owner))
        return [Send(to=requester, stanza=reply), *sends]

    def presence_available(self, jid: JID, presence: Element, *, initial: bool) -> list[Send]:
        """An available presence from a bound resource: learn its caps; last items for new interests."""
        before = frozenset() if initial else self._caps.interests(jid)
        query = self._caps.presence(jid, presence)
        sends = [Send(to=query.to, stanza=query.iq)] if query is not None else []
        return sends + self._last_items(jid, self._caps.interests(jid) - before)

    def iq_answer(self, iq: Element) -> list[Send] | None:
        """An iq result/error sent to the server; None when it answers nothing this service asked."""
        before_jid = iq.get("from", "")
        try:
            before = self._caps.interests(JID.parse(before_jid))
        except InvalidJID:
            return None
        jid = self._caps.answer(iq)
        if jid is None:
            return None
        return self._last_items(jid, self._caps.interests(jid) - before)

    def resource_gone(self, jid: JID) -> None:
        self._caps.forget(jid)
        if jid.local in self._loaded:
            self._to_check.add(jid.local)  # perhaps its last: its PEP may go at `written`

    def delete_user(self, owner: str) -> list[PepOrder]:
        """The account is gone: its nodes, and its memberships and subscriptions at others' nodes (the order)."""
        order = DeletePepUser(owner=owner)
        perform(self._view, order)
        self._forget(owner)
        return [order]

    # --- storage: the view in memory, the orders out ------------------------------------------------

    def take_orders(self) -> list[PepOrder]:
        """The changes made since last asked, in the order made: the router performs them before the stanzas
        that followed from them."""
        orders, self._orders = self._orders, []
        return orders

    def written(self) -> None:
        """Every order taken is performed: the views of accounts with no resource bound and no change waiting
        are dropped (memory holds the PEP of the accounts online; an offline account's is read again when next
        needed). Only the accounts read or left since the last call are looked at."""
        pending = {order.owner for order in self._orders}
        checked, self._to_check = self._to_check, set()
        for owner in checked:
            if owner in pending:
                self._to_check.add(owner)
            elif not self._present(JID(owner, self.domain, None)):
                self._forget(owner)

    def refused(self, owners: Iterable[str]) -> None:
        """A write for these accounts was refused: what followed was not written; their PEP is read again."""
        for owner in owners:
            self._forget(owner)

    @property
    def loaded(self) -> frozenset[str]:
        """The accounts whose PEP is held in memory, read from the store."""
        return frozenset(self._loaded)

    def _of(self, owner: str) -> MemoryPepStore:
        """The view, holding `owner`'s PEP: read from the store at first need (the one synchronous read)."""
        if self._source is not None and owner not in self._loaded:
            self._view.load(owner, self._source.snapshot(owner))
            self._loaded.add(owner)
            self._to_check.add(owner)
        return self._view

    def _peek(self, owner: str, nodes: frozenset[str]) -> OwnerPep:
        """`owner`'s `nodes`, only to read them: from the view if held, else from the store without keeping them
        (a login reads the last items of every contact's interesting nodes; the contacts' other items can stay on
        the disk). Nothing waits to be written for an account not held, so the store is up to date for it."""
        if self._source is None or owner in self._loaded:
            return self._view.snapshot(owner, nodes)
        return self._source.snapshot(owner, nodes)

    def _change(self, order: PepOrder) -> None:
        perform(self._view, order)
        self._orders.append(order)

    def _forget(self, owner: str) -> None:
        if self._source is not None:
            self._view.forget(owner)
            self._loaded.discard(owner)
            self._to_check.discard(owner)

    # --- service discovery ------------------------------------------------------------------------

    def disco_items(self, owner: JID, requester: JID) -> list[str]:
        """Nodes of `owner` that `requester` may read (XEP-0163 §? discovering nodes, XEP-0060 §5.2)."""
        assert owner.local is not None
        try:
            nodes = self._of(owner.local).nodes(owner.local)
            return [name for name, config in nodes.items()
                    if self._may_read(owner, requester, config, self._affiliations(owner, name))]
        except StorageError:
            return []

    # --- requests in the pubsub namespace ---------------------------------------------------------

    def _request_in(self, owner: JID, requester: JID, iq: Element, pubsub: Element,
                 *, guest: bool) -> tuple[Element, list[Send]]:
        if pubsub.tag != qname(NS_PUBSUB, "pubsub"):
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST)
        children = [child for child in pubsub if isinstance(child.tag, str)]
        if not children:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST)
        verb, action = iq.get("type"), local_name(children[0])
        if verb == "set" and action == "publish":
            return self._publish(owner, requester, iq, pubsub, children[0], guest=guest)
        if verb == "set" and action == "retract":
            return self._retract(owner, requester, iq, children[0])
        if verb == "set" and action == "create":
            return self._create(owner, requester, iq, pubsub, children[0], guest=guest)
        if verb == "get" and action == "items":
            return self._items(owner, requester, iq, children[0])
        if verb == "set" and action == "subscribe":
            return self._subscribe(owner, requester, iq, children[0], guest=guest)
        if verb == "set" and action == "unsubscribe":
            return self._unsubscribe(owner, requester, iq, children[0])
        if verb == "get" and action == "subscriptions":
            return self._own_subscriptions(owner, requester, iq, children[0])
        if verb == "get" and action == "affiliations":
            return self._own_affiliations(owner, requester, iq, children[0])
        raise _Refusal(StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, "unsupported", feature=_FEATURE_OF.get(
            action, action))

    def _publish(self, owner: JID, requester: JID, iq: Element, pubsub: Element, publish: Element,
                 *, guest: bool) -> tuple[Element, list[Send]]:
        node = self._own_node(owner, requester, publish, guest=guest)
        items = [child for child in publish if isinstance(child.tag, str)]
        if not items:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "item-required")       # XEP-0060 §7.1.3.6
        if len(items) > 1 or items[0].tag != qname(NS_PUBSUB, "item"):
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "invalid-payload")     # XEP-0060 §7.1.3.5
        payloads = [child for child in items[0] if isinstance(child.tag, str)]
        if not payloads:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "payload-required")    # XEP-0060 §7.1.3.6
        if len(payloads) > 1:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "invalid-payload")
        payload = etree.tostring(payloads[0])
        if len(payload) > self.limits.max_item_bytes:
            raise _Refusal(StanzaErrorCondition.NOT_ACCEPTABLE, "payload-too-big",   # XEP-0060 §7.1.3.4
                           text=f"Items are limited to {self.limits.max_item_bytes} bytes")
        item_id = items[0].get("id") or self._new_id()
        if len(item_id) > 256:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "invalid-payload", text="Item id too long")
        options_form = _form_in(pubsub.find(qname(NS_PUBSUB, "publish-options")))
        try:
            changes = parse_options(form_values(options_form), NodeConfig(),
                                    form_type=FORM_PUBLISH_OPTIONS) if options_form is not None else {}
        except InvalidConfig as exc:
            # XEP-0060 §7.1.5: options this service cannot meet are unmet preconditions.
            raise _Refusal(StanzaErrorCondition.CONFLICT, "precondition-not-met", text=str(exc)) from None
        assert owner.local is not None
        config = self._of(owner.local).node(owner.local, node)
        if config is None:
            config = self._new_node(owner.local, node, changes, conflict=True)  # XEP-0163 §3: auto-create
        elif not matches(config, changes):
            raise _Refusal(StanzaErrorCondition.CONFLICT, "precondition-not-met",
                           text="The node's configuration differs from the publish-options")
        old = next((item for item in self._of(owner.local).items(owner.local, node) if item.id == item_id), None)
        growth = len(payload) - (len(old.payload) if old is not None else 0)
        if self._of(owner.local).usage_bytes(owner.local) + growth > self.limits.max_account_bytes:
            raise _Refusal(StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.CANCEL,
                           text=f"Each account may store {self.limits.max_account_bytes} bytes of PEP items")
        self._change(PublishPepItem(owner=owner.local, node=node, keep=self._keep(config), request=self._request,
                                    item=StoredItem(id=item_id, payload=payload, published_at=self._wall_clock())))
        result = element(NS_PUBSUB, "pubsub")
        sub(sub(result, NS_PUBSUB, "publish", {"node": node}), NS_PUBSUB, "item", {"id": item_id})
        notification = _items_event(node)
        notification[0].append(_item_element(NS_PUBSUB_EVENT, item_id, payload))
        return iq_result(iq, result), self._notify(owner, node, config, notification)

    def _retract(self, owner: JID, requester: JID, iq: Element, retract: Element) -> tuple[Element, list[Send]]:
        node = self._own_node(owner, requester, retract)
        assert owner.local is not None
        config = self._existing(owner, node)
        item = retract.find(qname(NS_PUBSUB, "item"))
        if item is None or not item.get("id"):
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "item-required")       # XEP-0060 §7.2.3.3
        item_id = item.get("id", "")
        if all(item.id != item_id for item in self._of(owner.local).items(owner.local, node)):
            raise _Refusal(StanzaErrorCondition.ITEM_NOT_FOUND)                      # XEP-0060 §7.2.3.5
        self._change(RetractPepItem(owner=owner.local, node=node, item_id=item_id, request=self._request))
        sends: list[Send] = []
        if retract.get("notify") in ("1", "true") or config.notify_retract:
            notification = _items_event(node)
            sub(notification[0], NS_PUBSUB_EVENT, "retract", {"id": item_id})
            sends = self._notify(owner, node, config, notification)
        return iq_result(iq), sends

    def _create(self, owner: JID, requester: JID, iq: Element, pubsub: Element, create: Element,
                *, guest: bool) -> tuple[Element, list[Send]]:
        if not create.get("node"):
            raise _Refusal(StanzaErrorCondition.NOT_ACCEPTABLE, "nodeid-required")  # XEP-0060 §8.1.2: no instant nodes
        node = self._own_node(owner, requester, create, guest=guest)
        assert owner.local is not None
        if self._of(owner.local).node(owner.local, node) is not None:
            raise _Refusal(StanzaErrorCondition.CONFLICT)                              # XEP-0060 §8.1.3
        form = _form_in(pubsub.find(qname(NS_PUBSUB, "configure")))
        try:
            changes = parse_options(form_values(form), NodeConfig(),
                                    form_type=FORM_NODE_CONFIG) if form is not None else {}
        except InvalidConfig as exc:
            raise _Refusal(StanzaErrorCondition.NOT_ACCEPTABLE, text=str(exc)) from None
        self._new_node(owner.local, node, changes, conflict=False)
        return iq_result(iq), []

    def _items(self, owner: JID, requester: JID, iq: Element, items: Element) -> tuple[Element, list[Send]]:
        node = items.get("node")
        if not node:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "nodeid-required")
        assert owner.local is not None
        self._readable(owner, requester, node)
        stored = self._of(owner.local).items(owner.local, node)
        wanted = {item.get("id") for item in items.iter(qname(NS_PUBSUB, "item")) if item.get("id")}
        if wanted:
            stored = [item for item in stored if item.id in wanted]
        limit = items.get("max_items")
        if limit is not None:
            if not limit.isdigit():
                raise _Refusal(StanzaErrorCondition.BAD_REQUEST)
            stored = stored[max(0, len(stored) - int(limit)):] if int(limit) else []
        result = element(NS_PUBSUB, "pubsub")
        listing = sub(result, NS_PUBSUB, "items", {"node": node})
        for item in stored:
            listing.append(_item_element(NS_PUBSUB, item.id, item.payload))
        return iq_result(iq, result), []

    def _subscribe(self, owner: JID, requester: JID, iq: Element, request: Element,
                   *, guest: bool) -> tuple[Element, list[Send]]:
        node, jid = self._subscriber(requester, request, mismatch=StanzaErrorCondition.BAD_REQUEST)
        if guest:
            raise _Refusal(StanzaErrorCondition.FORBIDDEN, text="Guests cannot subscribe")  # XEP-0060 §6.1.3.6
        config = self._readable(owner, requester, node)
        self._add_subscription(owner, node, jid)
        result = element(NS_PUBSUB, "pubsub")
        sub(result, NS_PUBSUB, "subscription", {"node": node, "jid": str(jid), "subscription": "subscribed"})
        # XEP-0060 §6.1.7: the last item goes to the new subscriber (after the result, as Prosody does).
        sends: list[Send] = []
        if config.send_last_published_item is not SendLast.NEVER and config.deliver_notifications:
            assert owner.local is not None
            if items := self._of(owner.local).items(owner.local, node):
                sends = [self._last_item_message(owner, to, node, items[-1]) for to in self._targets(jid)]
        return iq_result(iq, result), sends

    def _unsubscribe(self, owner: JID, requester: JID, iq: Element, request: Element) -> tuple[Element, list[Send]]:
        node, jid = self._subscriber(requester, request, mismatch=StanzaErrorCondition.FORBIDDEN)  # §6.2.3.3
        assert owner.local is not None
        if self._of(owner.local).node(owner.local, node) is None:
            self._check_read(owner, requester, NodeConfig(), {})
            raise _Refusal(StanzaErrorCondition.ITEM_NOT_FOUND)                         # XEP-0060 §6.2.3.4
        if str(jid) not in self._of(owner.local).subscriptions(owner.local, node):
            raise _Refusal(StanzaErrorCondition.UNEXPECTED_REQUEST, "not-subscribed")   # XEP-0060 §6.2.3.2
        self._change(SetPepSubscription(owner=owner.local, node=node, jid=str(jid), subscribed=False,
                                        request=self._request))
        result = element(NS_PUBSUB, "pubsub")
        sub(result, NS_PUBSUB, "subscription", {"node": node, "jid": str(jid), "subscription": "none"})
        return iq_result(iq, result), []

    def _own_subscriptions(self, owner: JID, requester: JID, iq: Element,
                           request: Element) -> tuple[Element, list[Send]]:
        """XEP-0060 §5.6: the requester's own subscriptions at this account's PEP service."""
        result = element(NS_PUBSUB, "pubsub")
        listing = sub(result, NS_PUBSUB, "subscriptions")
        for node in self._nodes_named(owner, request.get("node")):
            assert owner.local is not None
            for jid in self._of(owner.local).subscriptions(owner.local, node):
                if JID.parse(jid).bare == requester.bare:
                    sub(listing, NS_PUBSUB, "subscription", {"node": node, "jid": jid, "subscription": "subscribed"})
        return iq_result(iq, result), []

    def _own_affiliations(self, owner: JID, requester: JID, iq: Element,
                          request: Element) -> tuple[Element, list[Send]]:
        """XEP-0060 §5.7: the requester's own affiliations at this account's PEP service."""
        result = element(NS_PUBSUB, "pubsub")
        listing = sub(result, NS_PUBSUB, "affiliations")
        for node in self._nodes_named(owner, request.get("node")):
            affiliation = self._affiliation_of(owner, requester, self._affiliations(owner, node))
            if affiliation != NONE:
                sub(listing, NS_PUBSUB, "affiliation", {"node": node, "affiliation": affiliation})
        return iq_result(iq, result), []

    def _subscriber(self, requester: JID, request: Element, *, mismatch: StanzaErrorCondition) -> tuple[str, JID]:
        node = request.get("node")
        if not node:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "nodeid-required")
        try:
            jid = JID.parse(request.get("jid", ""))
        except InvalidJID:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "invalid-jid") from None
        if jid.bare != requester.bare:
            # XEP-0060 §6.1.3.1 / §6.2.3.3: one subscribes and unsubscribes only oneself.
            raise _Refusal(mismatch, "invalid-jid" if mismatch is StanzaErrorCondition.BAD_REQUEST else None)
        return node, jid

    def _nodes_named(self, owner: JID, node: str | None) -> list[str]:
        assert owner.local is not None
        nodes = self._of(owner.local).nodes(owner.local)
        return [node] if node is not None and node in nodes else [] if node is not None else sorted(nodes)

    def _add_subscription(self, owner: JID, node: str, jid: JID) -> None:
        assert owner.local is not None
        subscribers = self._of(owner.local).subscriptions(owner.local, node)
        if str(jid) in subscribers:
            return                                               # XEP-0060 §6.1.6: one subscription per JID
        if len(subscribers) >= self.limits.max_subscriptions_per_node:
            raise _Refusal(StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.CANCEL,
                           text=f"A node has at most {self.limits.max_subscriptions_per_node} subscriptions")
        self._change(SetPepSubscription(owner=owner.local, node=node, jid=str(jid), subscribed=True,
                                        request=self._request))

    # --- requests in the pubsub#owner namespace ---------------------------------------------------

    def _owner_request(self, owner: JID, requester: JID, iq: Element,
                       pubsub: Element) -> tuple[Element, list[Send]]:
        children = [child for child in pubsub if isinstance(child.tag, str)]
        if pubsub.tag != qname(NS_PUBSUB_OWNER, "pubsub") or not children:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST)
        verb, request = iq.get("type"), children[0]
        action = local_name(request)
        if verb == "get" and action == "default":
            result = element(NS_PUBSUB_OWNER, "pubsub")
            sub(result, NS_PUBSUB_OWNER, "default").append(config_form(NodeConfig()))
            return iq_result(iq, result), []
        if action not in ("configure", "delete", "purge", "affiliations", "subscriptions") \
                or (verb == "get" and action in ("delete", "purge")):
            raise _Refusal(StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, "unsupported",
                           feature=_FEATURE_OF.get(action, action))
        node = self._own_node(owner, requester, request)
        assert owner.local is not None
        config = self._existing(owner, node)
        if action == "affiliations":
            return self._owner_affiliations(owner, iq, node, config, request)
        if action == "subscriptions":
            return self._owner_subscriptions(owner, iq, node, config, request)
        if action == "configure" and verb == "get":
            result = element(NS_PUBSUB_OWNER, "pubsub")
            sub(result, NS_PUBSUB_OWNER, "configure", {"node": node}).append(config_form(config))
            return iq_result(iq, result), []
        if action == "configure":
            form = _form_in(request)
            if form is None:
                raise _Refusal(StanzaErrorCondition.BAD_REQUEST)
            if form.get("type") == "cancel":
                return iq_result(iq), []
            try:
                changes = parse_options(form_values(form), config, form_type=FORM_NODE_CONFIG)
            except InvalidConfig as exc:
                raise _Refusal(StanzaErrorCondition.NOT_ACCEPTABLE, text=str(exc)) from None  # XEP-0060 §8.2.5.3
            updated = self._configured(config, changes)
            self._change(PutPepNode(owner=owner.local, node=node, config=updated, keep=self._keep(updated),
                                    request=self._request))
            self._prune_subscriptions(owner, node, updated)  # e.g. presence -> whitelist
            return iq_result(iq), []
        notification = element(NS_PUBSUB_EVENT, "event")
        sub(notification, NS_PUBSUB_EVENT, action, {"node": node})
        # Who hears of it is decided before the node is gone (XEP-0060 §8.4.2, §8.5.2).
        sends = self._notify(owner, node, config, notification) if action == "purge" or config.notify_delete else []
        if action == "delete":
            self._change(DeletePepNode(owner=owner.local, node=node, request=self._request))
        else:
            self._change(PurgePepNode(owner=owner.local, node=node, request=self._request))
        return iq_result(iq), sends

    def _owner_affiliations(self, owner: JID, iq: Element, node: str, config: NodeConfig,
                            request: Element) -> tuple[Element, list[Send]]:
        """XEP-0060 §8.9: the owner lists or changes who is a member (whitelist) or an outcast."""
        assert owner.local is not None
        current = self._of(owner.local).affiliations(owner.local, node)
        if iq.get("type") == "get":
            result = element(NS_PUBSUB_OWNER, "pubsub")
            listing = sub(result, NS_PUBSUB_OWNER, "affiliations", {"node": node})
            sub(listing, NS_PUBSUB_OWNER, "affiliation", {"jid": str(owner), "affiliation": OWNER})
            for member, affiliation in current.items():
                sub(listing, NS_PUBSUB_OWNER, "affiliation", {"jid": member, "affiliation": affiliation})
            return iq_result(iq, result), []
        changes: dict[str, str] = {}
        for entry in request.iter(qname(NS_PUBSUB_OWNER, "affiliation")):
            affiliation = entry.get("affiliation", "")
            try:
                jid = JID.parse(entry.get("jid", "")).bare
            except InvalidJID:
                raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "invalid-jid") from None
            if affiliation not in _AFFILIATIONS:
                raise _Refusal(StanzaErrorCondition.BAD_REQUEST, text=f"No affiliation {affiliation!r}")
            if jid == owner:
                if affiliation != OWNER:
                    # XEP-0060 §8.9.2: a node keeps its owner; PEP nodes have exactly one (the account).
                    raise _Refusal(StanzaErrorCondition.NOT_ACCEPTABLE, text="The account owns its PEP nodes")
                continue
            if affiliation not in _GRANTABLE:
                raise _Refusal(StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, "unsupported",
                               feature=f"{affiliation}-affiliation")
            changes[str(jid)] = affiliation
        after = {**current, **changes}
        if sum(affiliation != NONE for affiliation in after.values()) > self.limits.max_affiliations_per_node:
            raise _Refusal(StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.CANCEL,
                           text=f"A node has at most {self.limits.max_affiliations_per_node} affiliations")
        for member, affiliation in changes.items():
            self._change(SetPepAffiliation(owner=owner.local, node=node, jid=member, request=self._request,
                                           affiliation=None if affiliation == NONE else affiliation))
        self._prune_subscriptions(owner, node, config)           # XEP-0060 §8.9.2: outcasts lose subscriptions
        return iq_result(iq), []

    def _owner_subscriptions(self, owner: JID, iq: Element, node: str, config: NodeConfig,
                             request: Element) -> tuple[Element, list[Send]]:
        """XEP-0060 §8.8: the owner lists the node's subscriptions, adds allowed ones or removes any."""
        assert owner.local is not None
        if iq.get("type") == "get":
            result = element(NS_PUBSUB_OWNER, "pubsub")
            listing = sub(result, NS_PUBSUB_OWNER, "subscriptions", {"node": node})
            for subscriber in self._of(owner.local).subscriptions(owner.local, node):
                sub(listing, NS_PUBSUB_OWNER, "subscription", {"jid": subscriber, "subscription": "subscribed"})
            return iq_result(iq, result), []
        wanted: list[tuple[JID, bool]] = []
        for entry in request.iter(qname(NS_PUBSUB_OWNER, "subscription")):
            try:
                jid = JID.parse(entry.get("jid", ""))
            except InvalidJID:
                raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "invalid-jid") from None
            state = entry.get("subscription")
            if state not in ("subscribed", "none"):
                # XEP-0060 §8.8.2: pending and unconfigured states need approval and options, not offered here.
                raise _Refusal(StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, "unsupported",
                               feature="subscription-options" if state == "unconfigured" else "manage-subscriptions")
            if state == "subscribed":
                self._check_read(owner, jid, config, self._affiliations(owner, node))
            wanted.append((jid, state == "subscribed"))
        for jid, subscribed in wanted:
            if subscribed:
                self._add_subscription(owner, node, jid)
            elif str(jid) in self._of(owner.local).subscriptions(owner.local, node):
                self._change(SetPepSubscription(owner=owner.local, node=node, jid=str(jid), subscribed=False,
                                                request=self._request))
        return iq_result(iq), []

    # --- rules ------------------------------------------------------------------------------------

    def _own_node(self, owner: JID, requester: JID, request: Element, *, guest: bool = False) -> str:
        """The node a modifying request names; only the account itself may modify its PEP nodes."""
        if requester.bare != owner:
            raise _Refusal(StanzaErrorCondition.FORBIDDEN)                           # XEP-0060 §7.1.3.1
        if guest:
            raise _Refusal(StanzaErrorCondition.FORBIDDEN, text="Guests cannot store PEP data")
        node = request.get("node")
        if not node:
            raise _Refusal(StanzaErrorCondition.BAD_REQUEST, "nodeid-required")
        if len(node) > 256:
            raise _Refusal(StanzaErrorCondition.NOT_ACCEPTABLE, text="Node names are limited to 256 characters")
        return node

    def _existing(self, owner: JID, node: str) -> NodeConfig:
        assert owner.local is not None
        config = self._of(owner.local).node(owner.local, node)
        if config is None:
            raise _Refusal(StanzaErrorCondition.ITEM_NOT_FOUND)
        return config

    def _new_node(self, owner: str, node: str, changes: dict[str, object], *, conflict: bool) -> NodeConfig:
        if len(self._of(owner).nodes(owner)) >= self.limits.max_nodes_per_account:
            raise _Refusal(StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.CANCEL,
                           text=f"Each account may have {self.limits.max_nodes_per_account} PEP nodes")
        config = self._configured(NodeConfig(), changes)
        self._change(PutPepNode(owner=owner, node=node, config=config, keep=self._keep(config),
                                request=self._request))
        return config

    def _configured(self, config: NodeConfig, changes: dict[str, object]) -> NodeConfig:
        max_items = changes.get("max_items", config.max_items)
        if isinstance(max_items, int) and max_items > self.limits.max_items_per_node:
            raise _Refusal(StanzaErrorCondition.POLICY_VIOLATION,
                           text=f"Nodes keep at most {self.limits.max_items_per_node} items; ask for 'max'")
        return NodeConfig(**{**config.to_json(), **changes})  # type: ignore[arg-type]

    def _keep(self, config: NodeConfig) -> int:
        return min(config.max_items or self.limits.max_items_per_node, self.limits.max_items_per_node)

    def _affiliations(self, owner: JID, node: str) -> dict[str, str]:
        assert owner.local is not None
        return self._of(owner.local).affiliations(owner.local, node)

    @staticmethod
    def _affiliation_of(owner: JID, jid: JID, affiliations: Mapping[str, str]) -> str:
        return OWNER if jid.bare == owner else affiliations.get(str(jid.bare), NONE)

    def _may_read(self, owner: JID, requester: JID, config: NodeConfig, affiliations: Mapping[str, str]) -> bool:
        affiliation = self._affiliation_of(owner, requester, affiliations)
        if affiliation in (OWNER, MEMBER):
            return True
        if affiliation == OUTCAST:
            return False                                           # XEP-0060 §4.1: whatever the access model
        if config.access_model is AccessModel.OPEN:
            return True
        if config.access_model is AccessModel.PRESENCE:
            assert owner.local is not None
            item = self._roster.roster_item(owner.local, requester.bare)
            return item is not None and item.subscription in ("from", "both")
        return False

    def _check_read(self, owner: JID, requester: JID, config: NodeConfig, affiliations: Mapping[str, str]) -> None:
        if self._may_read(owner, requester, config, affiliations):
            return
        if self._affiliation_of(owner, requester, affiliations) == OUTCAST:
            raise _Refusal(StanzaErrorCondition.FORBIDDEN)                                           # §6.1.3.8
        if config.access_model is AccessModel.PRESENCE:
            raise _Refusal(StanzaErrorCondition.NOT_AUTHORIZED, "presence-subscription-required")  # §6.5.3
        raise _Refusal(StanzaErrorCondition.NOT_ALLOWED, "closed-node")                            # §6.5.4

    def _readable(self, owner: JID, requester: JID, node: str) -> NodeConfig:
        """The node's configuration if `requester` may read it; the XEP-0060 refusal otherwise."""
        assert owner.local is not None
        config = self._of(owner.local).node(owner.local, node)
        # Whether a node exists is itself private: a missing node is refused as a default node would be.
        self._check_read(owner, requester, config or NodeConfig(), self._affiliations(owner, node) if config else {})
        if config is None:
            raise _Refusal(StanzaErrorCondition.ITEM_NOT_FOUND)
        return config

    def _prune_subscriptions(self, owner: JID, node: str, config: NodeConfig) -> None:
        """Subscriptions of entities that may no longer read the node are cancelled."""
        assert owner.local is not None
        affiliations = self._affiliations(owner, node)
        for jid in self._of(owner.local).subscriptions(owner.local, node):
            if not self._may_read(owner, JID.parse(jid), config, affiliations):
                self._change(SetPepSubscription(owner=owner.local, node=node, jid=jid, subscribed=False,
                                                request=self._request))

    def _targets(self, subscriber: JID) -> list[JID]:
        """The online resources an explicit subscription reaches: all for a bare JID, else that one."""
        if subscriber.domain != self.domain or subscriber.local is None:
            return []  # no server-to-server: only local accounts are reachable
        online = self._online(subscriber.bare)
        return online if subscriber.resource is None else [jid for jid in online if jid == subscriber]

    # --- notifications ----------------------------------------------------------------------------

    def _notify(self, owner: JID, node: str, config: NodeConfig, event: Element) -> list[Send]:
        """XEP-0163 §4.3: to the owner's and subscribed contacts' resources that asked with +notify."""
        if not config.deliver_notifications:
            return []
        assert owner.local is not None
        affiliations = self._affiliations(owner, node)
        implicit = list(self._online(owner)) + [
            jid for contact in self._roster.roster_items(owner.local)
            if contact.subscription in ("from", "both") and contact.jid != owner
            and self._may_read(owner, contact.jid, config, affiliations) for jid in self._online(contact.jid)]
        audience = [jid for jid in implicit if node in self._caps.interests(jid)]
        for subscriber in self._of(owner.local).subscriptions(owner.local, node):  # explicit: no +notify needed
            jid = JID.parse(subscriber)
            if self._may_read(owner, jid, config, affiliations):
                audience += [to for to in self._targets(jid) if to not in audience]
        return [self._message(owner, jid, event) for jid in audience]

    def _last_items(self, jid: JID, nodes: Iterable[str]) -> list[Send]:
        """The last item of each interesting node of every account `jid` sees the presence of, and its own."""
        interesting = frozenset(nodes)
        if not interesting or jid.local is None:
            return []
        owners = [jid.bare] + [item.jid for item in self._roster.roster_items(jid.local)
                               if item.subscription in ("to", "both") and item.jid.domain == self.domain
                               and item.jid.local is not None and item.jid != jid.bare]
        sends: list[Send] = []
        try:
            for owner in owners:
                assert owner.local is not None
                pep = self._peek(owner.local, interesting)
                for node, config in pep.nodes.items():
                    if config.send_last_published_item is SendLast.NEVER or not config.deliver_notifications \
                            or not self._may_read(owner, jid, config, pep.affiliations.get(node, {})):
                        continue
                    if items := pep.items.get(node):
                        sends.append(self._last_item_message(owner, jid, node, items[-1]))
        except StorageError:
            pass  # the last items come with the next presence; nothing else depends on them
        return sends

    def _last_item_message(self, owner: JID, to: JID, node: str, item: StoredItem) -> Send:
        event = _items_event(node)
        event[0].append(_item_element(NS_PUBSUB_EVENT, item.id, item.payload))
        send = self._message(owner, to, event)
        if item.published_at is not None:
            # XEP-0060 §6.1.7: the last item is stamped with the time it was published (XEP-0203).
            sub(send.stanza, NS_DELAY, "delay", {"from": str(owner), "stamp": xep0082(item.published_at)})
        return send

    def _message(self, owner: JID, to: JID, event: Element) -> Send:
        self._counter += 1
        message = make_stanza("message", {"from": str(owner), "to": str(to), "type": "headline",
                                          "id": f"pep{self._counter}"})
        message.append(_copy(event))
        return Send(to=to, stanza=message)


_FEATURE_OF = {"options": "subscription-options"}


def _copy(event: Element) -> Element:
    return etree.fromstring(etree.tostring(event))


def _items_event(node: str) -> Element:
    event = element(NS_PUBSUB_EVENT, "event")
    sub(event, NS_PUBSUB_EVENT, "items", {"node": node})
    return event


def _item_element(namespace: str, item_id: str, payload: bytes) -> Element:
    item = element(namespace, "item", {"id": item_id})
    item.append(etree.fromstring(payload, _SAFE_PARSER))
    return item


_SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)


def _form_in(container: Element | None) -> Element | None:
    if container is None:
        return None
    return container.find("{jabber:x:data}x")


def _error(iq: Element, owner: JID, refusal: _Refusal) -> Element:
    reply = error_reply(iq, refusal.condition, error_type=refusal.error_type, text=refusal.text)
    reply.set("from", str(owner))
    if refusal.app is not None:
        error = reply.find("{jabber:client}error")
        assert error is not None
        attrs = {"feature": refusal.feature} if refusal.feature else None
        sub(error, NS_PUBSUB_ERRORS, refusal.app, attrs)
    return reply


def account_identity(info: Element) -> None:
    """XEP-0163 §1.1: the account's bare JID is a PEP service."""
    sub(info, NS_DISCO_INFO, "identity", {"category": "pubsub", "type": "pep"})
    for feature in FEATURES:
        sub(info, NS_DISCO_INFO, "feature", {"var": feature})
