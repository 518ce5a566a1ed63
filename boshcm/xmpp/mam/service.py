"""XEP-0313 message archive management (urn:xmpp:mam:2) with XEP-0059 result set paging: one machine for every
archive, an account's or a room's.

Theory of operation. The router (for accounts) and the conference service (for rooms) decide *what* is
archived and *who* may query; this machine does the rest. `entry()` turns one routed message into the order
that stores it in one or more archives (one transaction) under one id (new and unguessable unless the caller has
one), which the caller puts on the live message as a XEP-0359 `<stanza-id by=archive>` so that a client can later
page from it; `perform()` writes that order. `handle_iq()` answers a query
with the orders to send: the matching messages as `<result/>` messages to the requester, each wrapping the
original in a XEP-0297 `<forwarded/>` with its XEP-0203 delay, followed by the iq result carrying
`<fin/>` with the page's first and last ids, the total count and `complete` when no page lies beyond.

Limits (docs/security.md, "Mobile clients"): pages hold at most `max_page` messages, whatever the client asks;
each archive keeps its `max_messages_per_archive` newest and, of those, the newest that fit in
`max_bytes_per_archive` (a message larger than that is not archived); what is older than `retention_days` is
deleted when its archive is queried and by `purge_expired()` (start-up, daily).

Pure: the wall-clock time arrives as `wall`. The router (for accounts) and the conference registry (for rooms)
only take `entry()` (an `ArchiveMessage` order, xmpp/orders.py) and turn queries into `QueryArchive` reads; their
adapters (`Router`, `MucService`) call `perform()` and `handle_iq()` on the store.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lxml import etree

from boshcm.database import StorageError
from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_DATA_FORMS,
    NS_DELAY,
    Element,
    clone,
    element,
    error_reply,
    first_child,
    iq_result,
    make_stanza,
    qname,
    sub,
)
from boshcm.timestamps import xep0082
from boshcm.xmpp.mam.store import ArchivedMessage, ArchiveStore, Filter
from boshcm.xmpp.orders import ArchiveMessage

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_STANZA_ID = "urn:xmpp:sid:0"
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
_DAY_SECONDS = 86_400.0


def remove_stanza_id(stanza: Element, archived_id: str) -> None:
    """Take off the XEP-0359 stanza-id naming `archived_id`: that entry was not archived (refused, or too large),
    and no id may name an entry that is not there (XEP-0359 §4)."""
    for stamp in list(stanza.iter(qname(NS_STANZA_ID, "stanza-id"))):
        if stamp.get("id") == archived_id and (parent := stamp.getparent()) is not None:
            parent.remove(stamp)


@dataclass(frozen=True, slots=True, kw_only=True)
class MamLimits:
    retention_days: float = 365.0          # 0: keep until the per-archive caps push them out
    max_messages_per_archive: int = 10_000
    max_bytes_per_archive: int = 10_485_760  # serialised stanzas; the oldest go first
    max_page: int = 250                    # XEP-0059 §2.1: the server may return fewer than asked
    default_page: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """One archive a message goes into, and who the other party is from that archive's point of view."""

    archive: JID
    peer: JID


class _BadQuery(Exception):
    def __init__(self, condition: StanzaErrorCondition, text: str) -> None:
        super().__init__(text)
        self.condition, self.text = condition, text


class ArchiveService:
    def __init__(self, *, store: ArchiveStore, limits: MamLimits | None = None,
                 id_factory: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> None:
        self._store = store
        self._limits = limits or MamLimits()
        self._id_factory = id_factory

    # --- archiving --------------------------------------------------------------------------------

    def entry(self, parties: Sequence[Party], message: Element, wall: float,
              message_id: str | None = None) -> tuple[str, ArchiveMessage | None]:
        """The id `message` gets and the order that archives it (None: too large to keep), writing nothing."""
        archived_id = message_id or self._id_factory()
        stored = clone(message)
        for child in stored.findall(qname(NS_STANZA_ID, "stanza-id")):
            stored.remove(child)
        data = etree.tostring(stored)
        limits = self._limits
        if len(data) > limits.max_bytes_per_archive:
            # It could only be kept by emptying the archive: one message must not wipe someone's history.
            return archived_id, None
        return archived_id, ArchiveMessage(
            messages=tuple(ArchivedMessage(archive=str(party.archive.bare), id=archived_id, at=wall,
                                           peer=str(party.peer), peer_bare=str(party.peer.bare), stanza=data)
                           for party in parties),
            keep=limits.max_messages_per_archive, keep_bytes=limits.max_bytes_per_archive)

    def perform(self, order: ArchiveMessage) -> None:
        """Write an `entry` (the router's and the conference service's adapters call this); StorageError passes
        up."""
        self._store.append(list(order.messages), keep=order.keep, keep_bytes=order.keep_bytes)

    def purge_expired(self, wall: float) -> None:
        if self._limits.retention_days > 0:
            self._store.delete_older(wall - self._limits.retention_days * _DAY_SECONDS)

    def delete_archive(self, archive: JID) -> None:
        self._store.delete_archive(str(archive.bare))

    # --- queries (XEP-0313 §4) --------------------------------------------------------------------

    def handle_iq(self, archive: JID, iq: Element, wall: float) -> list[Element]:
        """Answer a urn:xmpp:mam:2 iq to `archive` (the requester is already allowed): results, then the iq."""
        query = first_child(iq)
        assert query is not None
        if iq.get("type") == "get":
            return [iq_result(iq, _fields_form())] if etree.QName(query).localname == "query" else \
                [error_reply(iq, StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED)]
        if etree.QName(query).localname != "query":
            # Archiving preferences (§7) are not offered: everything eligible is archived.
            return [error_reply(iq, StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED)]
        try:
            return self._query(archive, iq, query, wall)
        except _BadQuery as bad:
            return [error_reply(iq, bad.condition, text=bad.text)]
        except StorageError:
            return [error_reply(iq, StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.WAIT,
                                text="The archive cannot be read now; try again later")]

    def _query(self, archive: JID, iq: Element, query: Element, wall: float) -> list[Element]:
        name = str(archive.bare)
        if self._limits.retention_days > 0:
            self._store.delete_older(wall - self._limits.retention_days * _DAY_SECONDS, name)
        where, after_id, before_id = _parse_form(query)
        limit, after_text, before_text = self._parse_rsm(query)
        after_id = after_text if after_text is not None else after_id
        before_id = before_text if before_text is not None else before_id
        after = self._position(name, after_id)
        before = self._position(name, before_id)
        total = self._store.count(name, where)
        # XEP-0059 §2.5: <before/> (even empty) pages backwards, from the newest.
        backwards = before_id is not None and after_id is None
        rows = [] if limit == 0 else self._store.page(name, where, after=after, before=before, limit=limit + 1,
                                                      newest_first=backwards)
        complete = (len(rows) <= limit and limit > 0) or total == 0
        rows = rows[:limit]
        if backwards:
            rows.reverse()  # XEP-0313 §4.3: results are in chronological order either way
        requester, query_id = iq.get("from", ""), query.get("queryid")
        out = [self._result(archive, requester, query_id, message) for _seq, message in rows]
        fin = element(NS_MAM, "fin", {"complete": "true"} if complete else None)
        rsm = sub(fin, NS_RSM, "set")
        if rows:
            sub(rsm, NS_RSM, "first", text=rows[0][1].id)
            sub(rsm, NS_RSM, "last", text=rows[-1][1].id)
        sub(rsm, NS_RSM, "count", text=str(total))
        out.append(iq_result(iq, fin))
        return out

    def _position(self, archive: str, message_id: str | None) -> int | None:
        if not message_id:
            return None
        position = self._store.position(archive, message_id)
        if position is None:
            # XEP-0313 §6.2: an id the archive does not have (any more).
            raise _BadQuery(StanzaErrorCondition.ITEM_NOT_FOUND, "No such message in the archive")
        return position

    def _parse_rsm(self, query: Element) -> tuple[int, str | None, str | None]:
        rsm = query.find(qname(NS_RSM, "set"))
        limit = min(self._limits.default_page, self._limits.max_page)
        if rsm is None:
            return limit, None, None
        max_text = rsm.findtext(qname(NS_RSM, "max"))
        if max_text is not None:
            try:
                limit = int(max_text.strip())
            except ValueError:
                raise _BadQuery(StanzaErrorCondition.BAD_REQUEST, "<max/> must be a number") from None
            if limit < 0:
                raise _BadQuery(StanzaErrorCondition.BAD_REQUEST, "<max/> must not be negative")
        after = rsm.find(qname(NS_RSM, "after"))
        before = rsm.find(qname(NS_RSM, "before"))
        return (min(limit, self._limits.max_page), None if after is None else (after.text or "").strip(),
                None if before is None else (before.text or "").strip())

    @staticmethod
    def _result(archive: JID, requester: str, query_id: str | None, message: ArchivedMessage) -> Element:
        wrapper = make_stanza("message", {"from": str(archive.bare), "to": requester})
        result = sub(wrapper, NS_MAM, "result", {"id": message.id})
        if query_id is not None:
            result.set("queryid", query_id)
        forwarded = sub(result, NS_FORWARD, "forwarded")
        sub(forwarded, NS_DELAY, "delay", {"stamp": xep0082(message.at)})
        forwarded.append(etree.fromstring(message.stanza, _SAFE_PARSER))
        return wrapper


def _fields_form() -> Element:
    """XEP-0313 §4.1.1: the fields a query may use."""
    query = element(NS_MAM, "query")
    form = sub(query, NS_DATA_FORMS, "x", {"type": "form"})
    hidden = sub(form, NS_DATA_FORMS, "field", {"var": "FORM_TYPE", "type": "hidden"})
    sub(hidden, NS_DATA_FORMS, "value", text=NS_MAM)
    for var, field_type in (("with", "jid-single"), ("start", "text-single"), ("end", "text-single"),
                            ("after-id", "text-single"), ("before-id", "text-single")):
        sub(form, NS_DATA_FORMS, "field", {"var": var, "type": field_type})
    return query


def _parse_form(query: Element) -> tuple[Filter, str | None, str | None]:
    form = query.find(qname(NS_DATA_FORMS, "x"))
    values: dict[str, str] = {}
    if form is not None:
        for field in form.findall(qname(NS_DATA_FORMS, "field")):
            values[field.get("var", "")] = (field.findtext(qname(NS_DATA_FORMS, "value")) or "").strip()
    values.pop("FORM_TYPE", None)
    unknown = set(values) - {"with", "start", "end", "after-id", "before-id"}
    if unknown:
        raise _BadQuery(StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, f"Unknown field {sorted(unknown)[0]!r}")
    with_jid: JID | None = None
    if values.get("with"):
        try:
            with_jid = JID.parse(values["with"])
        except InvalidJID:
            raise _BadQuery(StanzaErrorCondition.BAD_REQUEST, "'with' is not a JID") from None
    where = Filter(with_jid=None if with_jid is None else str(with_jid), with_is_bare=with_jid is None
                   or with_jid.resource is None, start=_parse_stamp(values.get("start"), "start"),
                   end=_parse_stamp(values.get("end"), "end"))
    return where, values.get("after-id") or None, values.get("before-id") or None


def _parse_stamp(text: str | None, name: str) -> float | None:
    """XEP-0082 date-time; with a zone (Z or an offset), as XEP-0313 requires."""
    if not text:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise _BadQuery(StanzaErrorCondition.BAD_REQUEST, f"'{name}' is not a XEP-0082 date-time") from None
    if stamp.tzinfo is None:
        raise _BadQuery(StanzaErrorCondition.BAD_REQUEST, f"'{name}' needs a time zone")
    return stamp.timestamp()


