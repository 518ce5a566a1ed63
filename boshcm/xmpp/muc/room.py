"""One multi-user chat room (XEP-0045), pure: stanzas from real JIDs in, addressed stanzas out.

Theory of operation. The service hands the room every stanza addressed to it or to one of its occupant
JIDs, with `from` already stamped with the sender's real full JID by the router, and tells it when a
session ended. The room answers with fully addressed stanzas (`to` a real full JID, `from` the room or an
occupant JID); the router delivers them. Time only arrives as `now` (history ages, delay stamps).

The room keeps occupancy (who is in under which nick, from which sessions, in which role) and dispatches what
arrives; its other jobs are one module each, functions of the room (as Prosody's MUC keeps one feature per file):
`visibility.py` (who sees whose presence, §10.2 presencebroadcast), `presence_views.py` (an occupant's presence
as each recipient sees it), `moderation.py` (the muc#admin iq: kick, ban, voice, roles and affiliations),
`owner.py` (the muc#owner iq: configuration, destroy), `invitations.py` (mediated invitations), `subject.py`,
`history.py`, `disco.py` (disco#info), `iq_proxy.py` (iqs through occupant JIDs), `reserved_nicks.py` (an
affiliated account's nick kept for it), `room_ids.py` (ids only the room assigns), `roles.py`, `config.py` (the
form) and `nick.py`. The parts use the room's public methods only (queries, and the few changes that touch
occupancy: `set_role`, `remove_occupant`, `affiliation_changed`, `config_changed`, `destroy`), so occupancy's
bookkeeping (nick, key, session and moderator tables) stays in this file.

Presence order on join follows XEP-0045 §7.2.3: every current occupant's presence the joiner may see, then the
joiner's own presence (status 110, and 201 when it created the room) to those who see it, then history, then the
subject — always, even empty, because clients such as slixmpp's join_muc_wait treat it as "joined".

What a room defends (docs/security.md, "Rooms"):
- Nicknames are compared by key (`nick.py`: PRECIS Nickname + confusables skeleton), one dict lookup per join:
  a look-alike of another account's nick is a `conflict`, and so is an affiliated user's reserved nick.
- Room-assigned ids (XEP-0421 occupant-id, XEP-0359 stanza-id) are never taken from a client (`room_ids.py`).
- iqs through occupant JIDs (§7.5) go out under a fresh id kept in a bounded, expiring table, and only the
  target's answer is routed back, under the requester's own id.
- Occupants are capped by the service (`RoomLimits.max_occupants`); a room's own maximum may only lower it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lxml import etree

from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID
from boshcm.stanza import (
    NS_CLIENT,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
    Addressed,
    Element,
    Outgoing,
    addressed_copy,
    clone,
    element,
    error_reply,
    first_child,
    iq_result,
    local_name,
    make_stanza,
    qname,
    shared,
    sub,
)
from boshcm.xmpp.muc import visibility
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.disco import room_info
from boshcm.xmpp.muc.history import History
from boshcm.xmpp.muc.invitations import invitation
from boshcm.xmpp.muc.iq_proxy import IqProxy
from boshcm.xmpp.muc.moderation import admin_iq
from boshcm.xmpp.muc.namespaces import (
    NS_MUC,
    NS_MUC_ADMIN,
    NS_MUC_OWNER,
    NS_MUC_USER,
    NS_OCCUPANT_ID,
    NS_STANZA_ID,
)
from boshcm.xmpp.muc.nick import Nick, NickRefused, parse_nick
from boshcm.xmpp.muc.owner import owner_iq
from boshcm.xmpp.muc.presence_views import presence_of, presences, render, view_of
from boshcm.xmpp.muc.reserved_nicks import ReservedNicks
from boshcm.xmpp.muc.roles import Affiliation, Role
from boshcm.xmpp.muc.room_ids import clean_presence, strip_room_ids
from boshcm.xmpp.muc.subject import set_subject, subject_message


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomLimits:
    """What the service allows every room; the room's configuration can only be stricter."""

    max_occupants: int = 5_000        # occupants besides admins and owners
    max_pending_iqs: int = 10_000     # iqs forwarded through occupant JIDs and not yet answered
    iq_timeout_seconds: float = 60.0  # after this an answer is no longer routed back
    max_affiliations: int = 10_000    # affiliated accounts (each is stored, and checked on every join)


@dataclass(slots=True)
class Occupant:
    nick: str
    keys: tuple[str, str]         # comparison keys of the nick (nick.py)
    bare: JID                     # the account behind the nick
    real_jids: list[JID]          # one nick may be joined from several sessions of the same account
    role: Role
    presence: Element             # the last presence, as broadcast (without muc#user)
    oid: str = ""                 # XEP-0421 occupant-id, computed once per join (an HMAC)
    # Its presence as others see it (the real JID shown or not), built once and copied to each joiner; valid while
    # `view_of` (presence, nick, role, affiliation, the real JID shown) is what they were built from.
    views: dict[bool, Element] = field(default_factory=dict)
    view_of: tuple[Element, str, Role, Affiliation, JID | None] | None = None


@dataclass(slots=True)
class RoomState:
    config: RoomConfig
    affiliations: dict[JID, Affiliation] = field(default_factory=dict)
    subject: str = ""
    subject_from: str = ""
    # XEP-0045 §7.10-style registered nicks: the last nick of each affiliated account, reserved for it.
    nicks: dict[JID, str] = field(default_factory=dict)


class Room:
    def __init__(self, *, jid: JID, state: RoomState, id_factory: Callable[[], str], secret: bytes,
                 wall_clock: Callable[[], float], locked: bool = False, limits: RoomLimits | None = None,
                 is_guest: Callable[[JID], bool] = lambda _jid: False) -> None:
        self.jid = jid
        self.state = state
        self.locked = locked
        self.limits = limits or RoomLimits()
        self._is_guest = is_guest
        self._id_factory = id_factory
        self._secret = secret
        self._wall_clock = wall_clock
        self._occupants: dict[str, Occupant] = {}       # by nick
        self._nick_of: dict[JID, str] = {}             # real full JID -> nick
        self._by_key: dict[str, str] = {}              # nick comparison key -> nick of the occupant
        self._moderators: list[Occupant] = []          # those with role moderator: they see every occupant
        self._reserved = ReservedNicks(state.nicks, self.affiliation)
        self._iqs = IqProxy(max_pending=self.limits.max_pending_iqs, timeout_seconds=self.limits.iq_timeout_seconds,
                            id_factory=id_factory)
        self._history = History(jid)
        self.destroyed = False
        self.crowded = False  # more occupants than config.quiet_above (visibility.is_crowded)

    # --- queries ----------------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self._occupants

    @property
    def occupant_count(self) -> int:
        return len(self._occupants)

    @property
    def config(self) -> RoomConfig:
        return self.state.config

    def occupant_id(self, bare: JID) -> str:
        """XEP-0421: stable per account and room, opaque to others."""
        digest = hmac.digest(self._secret, f"{self.jid}\0{bare}".encode(), "sha256")
        return digest[:12].hex()

    def affiliation(self, jid: JID) -> Affiliation:
        return self.state.affiliations.get(jid.bare, Affiliation.NONE)

    def has_session(self, real: JID) -> bool:
        return real in self._nick_of

    def occupant_of(self, real: JID) -> Occupant | None:
        """The occupant a session (real full JID) is in the room as, if any."""
        nick = self._nick_of.get(real)
        return self._occupants[nick] if nick is not None else None

    def occupants(self) -> list[Occupant]:
        """Everyone in the room, in the order they came (a copy: the caller may change occupancy meanwhile)."""
        return list(self._occupants.values())

    def occupant_named(self, nick: str) -> Occupant | None:
        """The occupant whose nick is exactly this one (as shown)."""
        return self._occupants.get(nick)

    def moderators(self) -> list[Occupant]:
        """The occupants with role moderator (kept apart: they see every occupant, visibility.py)."""
        return list(self._moderators)

    def real_jids(self) -> list[JID]:
        """Every session in the room."""
        return [real for occupant in self._occupants.values() for real in occupant.real_jids]

    def is_guest(self, jid: JID) -> bool:
        """An anonymous login (the service decides), which may not make the room persistent."""
        return self._is_guest(jid)

    def new_id(self) -> str:
        """A fresh id for a stanza the room sends."""
        return self._id_factory()

    @property
    def max_users(self) -> int:
        """The room's own maximum, within the service's."""
        configured = self.config.max_users
        return min(configured, self.limits.max_occupants) if configured else self.limits.max_occupants

    # --- entry points -----------------------------------------------------------------------------

    def handle(self, stanza: Element, now: float) -> Sequence[Outgoing]:
        sender = JID.parse(stanza.get("from", ""))
        kind = local_name(stanza)
        to = JID.parse(stanza.get("to", ""))
        if kind == "presence":
            return self._presence(sender, to, stanza, now)
        if kind == "message":
            return self._message(sender, to, stanza, now)
        return self._iq(sender, to, stanza, now)

    def session_ended(self, real: JID, now: float) -> list[Element]:
        if real not in self._nick_of:
            return []
        return self._leave(real, None, now)

    # --- changes made by the room's parts (moderation.py, owner.py) --------------------------------

    def set_role(self, occupant: Occupant, role: Role) -> list[Element]:
        """Give an occupant a new role and tell whoever sees its presence (XEP-0045 §8.4, §9.6)."""
        was_broadcast = visibility.broadcast(self, occupant)
        was_moderator = occupant.role == Role.MODERATOR
        occupant.role = role
        if was_moderator and role != Role.MODERATOR:
            self._drop_moderator(occupant)
        elif role == Role.MODERATOR and not was_moderator:
            self._moderators.append(occupant)
        out = self._broadcast_presence(occupant, was_broadcast=was_broadcast)
        if was_moderator != (role == Role.MODERATOR):
            out += render(self, visibility.moderator_changed(self, occupant))
        return out

    def config_changed(self, previous: RoomConfig) -> list[Element]:
        """After the owner's form (XEP-0045 §10.2): whoever starts or stops seeing whom (visibility.py)."""
        was = visibility.broadcast_roles(previous, crowded=self.crowded)
        self.crowded = visibility.is_crowded(self.config, len(self._occupants), was=self.crowded)
        return render(self, visibility.broadcast_changed(self, was))

    def _crowd_changed(self, occupants: int) -> list[Element]:
        """With this many occupants, the room may have crossed `quiet_above`: whoever starts or stops seeing whom."""
        if visibility.is_crowded(self.config, occupants, was=self.crowded) == self.crowded:
            return []
        was = visibility.broadcast_roles(self.config, crowded=self.crowded)
        self.crowded = not self.crowded
        return render(self, visibility.broadcast_changed(self, was))

    def remove_occupant(self, occupant: Occupant, *, codes: tuple[str, ...], reason: str | None,
                        now: float) -> list[Element]:
        """Every session of the occupant leaves, with the status codes saying why (kicked, banned, ...)."""
        out: list[Element] = []
        for real in list(occupant.real_jids):
            out += self._leave(real, None, now, codes=codes, actor_reason=reason)
        return out

    def affiliation_changed(self, bare: JID) -> None:
        """After `bare`'s affiliation changed: its nick is reserved while it is a member or more, else released."""
        if self.affiliation(bare).rank < Affiliation.MEMBER.rank:
            self._reserved.release(bare)
        for occupant in self._occupants.values():
            if occupant.bare == bare:
                self._reserved.register(occupant.bare, occupant.nick)

    def destroy(self) -> None:
        """Everyone is gone at once (XEP-0045 §10.9); the caller has told them."""
        self._occupants.clear()
        self._moderators.clear()
        self._nick_of.clear()
        self._by_key.clear()
        self.destroyed = True

    # --- presence ---------------------------------------------------------------------------------

    def _presence(self, sender: JID, to: JID, stanza: Element, now: float) -> list[Element]:
        if stanza.get("type") == "error":
            return self._leave(sender, None, now) if sender in self._nick_of else []
        if to.resource is None:
            return [self._error(stanza, StanzaErrorCondition.JID_MALFORMED)] if stanza.get("type") != "unavailable" \
                else []
        if stanza.get("type") == "unavailable":
            return self._leave(sender, stanza, now) if sender in self._nick_of else []
        if stanza.get("type") is not None:
            return []
        try:
            nick = parse_nick(to.resource)
        except NickRefused:
            # XEP-0045 §7.2.18 / RFC 8266: not a nickname (empty, controls, invisible characters).
            return [self._error(stanza, StanzaErrorCondition.JID_MALFORMED, text="This nickname is not allowed")]
        # XEP-0045 §7.2.3: a nick the room changed (here: PRECIS enforcement) is announced with status 210.
        rewritten = ("210",) if nick.shown != to.resource else ()
        current = self._nick_of.get(sender)
        if current is None:
            return self._join(sender, nick, rewritten, stanza, now)
        if current != nick.shown:
            return self._change_nick(sender, current, nick, rewritten, stanza)
        occupant = self._occupants[current]
        occupant.presence = clean_presence(self.jid, stanza)
        return self._broadcast_presence(occupant)

    def _join(self, sender: JID, nick: Nick, rewritten: tuple[str, ...], stanza: Element,
              now: float) -> list[Element]:
        affiliation = self.affiliation(sender)
        muc = stanza.find(qname(NS_MUC, "x"))
        if self.locked and affiliation != Affiliation.OWNER:
            return [self._error(stanza, StanzaErrorCondition.ITEM_NOT_FOUND, text="The room is not configured yet")]
        if affiliation == Affiliation.OUTCAST:
            return [self._error(stanza, StanzaErrorCondition.FORBIDDEN)]
        if self.config.members_only and affiliation.rank < Affiliation.MEMBER.rank:
            return [self._error(stanza, StanzaErrorCondition.REGISTRATION_REQUIRED)]
        existing = self._holder(nick)
        if (existing is not None and existing.bare != sender.bare) or self._reserved.for_other(nick, sender.bare):
            # XEP-0045 §7.2.9: in use, or reserved by an affiliated user, under this nick or a look-alike.
            return [self._error(stanza, StanzaErrorCondition.CONFLICT)]
        if self.config.password and affiliation != Affiliation.OWNER:
            given = muc.findtext(qname(NS_MUC, "password")) if muc is not None else None
            if given != self.config.password:
                return [self._error(stanza, StanzaErrorCondition.NOT_AUTHORIZED)]
        if existing is None and len(self._occupants) >= self.max_users and affiliation.rank < Affiliation.ADMIN.rank:
            # XEP-0045 §7.2.10: admins and owners may still enter.
            return [self._error(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)]
        # XEP-0045 §7.2.3: the others' presences first (those the joiner may see, visibility.py), also for a second
        # session of an occupant already here.
        # XEP-0045 §7.2.3/§7.2.4: the joiner is not an occupant yet, so whether it sees real JIDs follows the role
        # it is about to get (an owner or admin joining a semi-anonymous room is a moderator and sees them).
        role = existing.role if existing is not None else self.default_role(affiliation)
        sees_jids = self.config.whois == "anyone" or role == Role.MODERATOR
        # A joiner who makes the room crowded finds it quiet already: the others drop each other first.
        out = self._crowd_changed(len(self._occupants) + 1) if existing is None else []
        out += [view_of(self, other, to=sender, shows_jid=sees_jids)
                for other in visibility.seen_on_joining(self, role, besides=existing)]
        if existing is not None:
            # The same account joining the same nick from another session shares the occupant.
            existing.real_jids.append(sender)
            self._nick_of[sender] = existing.nick
            occupant = existing
            rewritten = ("210",) if existing.nick != nick.shown else rewritten
        else:
            occupant = Occupant(nick=nick.shown, keys=nick.keys, bare=sender.bare, real_jids=[sender],
                                role=self.default_role(affiliation), presence=clean_presence(self.jid, stanza),
                                oid=self.occupant_id(sender.bare))
            self._occupants[nick.shown] = occupant
            self._nick_of[sender] = nick.shown
            if occupant.role == Role.MODERATOR:
                self._moderators.append(occupant)
            for key in nick.keys:
                self._by_key[key] = nick.shown
        self._reserved.register(occupant.bare, occupant.nick)
        created = self._creating
        self._creating = False
        out += self._broadcast_presence(occupant, extra_self_codes=("201", *rewritten) if created else rewritten)
        out += self._history.for_joiner(sender, muc, now)
        out.append(subject_message(self, sender))
        return out

    # --- nicknames --------------------------------------------------------------------------------

    def _holder(self, nick: Nick) -> Occupant | None:
        """The occupant whose nick is this one or a look-alike: one dict lookup per key."""
        for key in nick.keys:
            if (held := self._by_key.get(key)) is not None:
                occupant = self._occupants.get(held)
                if occupant is not None and key in occupant.keys:
                    return occupant
                del self._by_key[key]  # stale: its occupant is gone
        return None

    def unstamp(self, stanza_id: str) -> None:
        """The room archive did not keep the message with this stanza-id (xmpp/muc/service.py)."""
        self._history.unstamp(stanza_id)

    def find(self, text: str) -> Occupant | None:
        """The occupant addressed as room/text: the nick as shown, or as a client may have typed it."""
        occupant = self._occupants.get(text)
        if occupant is not None:
            return occupant
        try:
            return self._occupants.get(parse_nick(text).shown)
        except NickRefused:
            return None

    _creating = False

    def mark_created(self) -> None:
        """The next join is the creator's (XEP-0045 §10.1: status 201)."""
        self._creating = True

    def default_role(self, affiliation: Affiliation) -> Role:
        """The role an occupant with this affiliation gets on entering (XEP-0045 §5.1)."""
        if affiliation in (Affiliation.OWNER, Affiliation.ADMIN):
            return Role.MODERATOR
        if self.config.moderated and affiliation != Affiliation.MEMBER:
            return Role.VISITOR
        return Role.PARTICIPANT

    def _change_nick(self, sender: JID, old: str, nick: Nick, rewritten: tuple[str, ...],
                     stanza: Element) -> list[Element]:
        """XEP-0045 §7.6: unavailable with 303 and the new nick, then available under the new nick."""
        occupant = self._occupants[old]
        holder = self._holder(nick)
        if (holder is not None and holder is not occupant) or self._reserved.for_other(nick, sender.bare):
            return [self._error(stanza, StanzaErrorCondition.CONFLICT)]
        new = nick.shown
        out = presences(self, occupant, visibility.audience(self, occupant), selves=occupant.real_jids,
                        presence_type="unavailable", codes=("303",), new_nick=new)
        del self._occupants[old]
        for key in occupant.keys:
            self._by_key.pop(key, None)
        occupant.nick, occupant.keys = new, nick.keys
        occupant.presence = clean_presence(self.jid, stanza)
        self._occupants[new] = occupant
        for key in nick.keys:
            self._by_key[key] = new
        for real in occupant.real_jids:
            self._nick_of[real] = new
        self._reserved.register(occupant.bare, occupant.nick)
        return out + self._broadcast_presence(occupant, extra_self_codes=rewritten)

    def _leave(self, sender: JID, stanza: Element | None, now: float, *, codes: tuple[str, ...] = (),
               actor_reason: str | None = None) -> list[Element]:
        nick = self._nick_of.pop(sender)
        occupant = self._occupants[nick]
        occupant.real_jids.remove(sender)
        leaving = clean_presence(self.jid, stanza) if stanza is not None else make_stanza("presence")
        out: list[Element] = []
        if occupant.real_jids:
            # Another session of the same account is still here: only this one leaves.
            out.append(presence_of(self, occupant, to=sender, presence_type="unavailable", self_view=True,
                                   codes=codes, template=leaving))
            return out
        del self._occupants[nick]
        for key in occupant.keys:
            self._by_key.pop(key, None)
        if occupant.role == Role.MODERATOR:
            self._drop_moderator(occupant)
        audience = visibility.leave_audience(self, occupant)
        occupant.role = Role.NONE
        out = presences(self, occupant, [sender, *audience], selves=(sender,), presence_type="unavailable",
                        codes=codes, template=leaving, reason=actor_reason)
        return out + self._crowd_changed(len(self._occupants))

    def _drop_moderator(self, occupant: Occupant) -> None:
        # By identity: dataclass equality would compare presences field by field.
        self._moderators = [moderator for moderator in self._moderators if moderator is not occupant]

    def _broadcast_presence(self, occupant: Occupant, *, extra_self_codes: tuple[str, ...] = (),
                            was_broadcast: bool = False) -> list[Element]:
        # A role no longer broadcast: the others drop the occupant as if it had left; itself and the moderators
        # get its new role.
        hidden = visibility.hidden_by_role_change(self, occupant, was_broadcast=was_broadcast)
        out = presences(self, occupant, hidden, selves=(), presence_type="unavailable")
        return out + presences(self, occupant, visibility.audience(self, occupant), selves=occupant.real_jids,
                               self_codes=extra_self_codes)

    # --- messages ---------------------------------------------------------------------------------

    def _message(self, sender: JID, to: JID, stanza: Element, now: float) -> Sequence[Outgoing]:
        if stanza.get("type") == "error":
            return []
        nick = self._nick_of.get(sender)
        x = stanza.find(qname(NS_MUC_USER, "x"))
        if to.resource is None and x is not None and (x.find(qname(NS_MUC_USER, "invite")) is not None
                                                      or x.find(qname(NS_MUC_USER, "decline")) is not None):
            return invitation(self, sender, nick, stanza, x)
        if nick is None:
            return [self._error(stanza, StanzaErrorCondition.NOT_ACCEPTABLE, text="Join the room first")]
        occupant = self._occupants[nick]
        if to.resource is not None:
            return self._private_message(occupant, to.resource, stanza)
        if stanza.get("type") != "groupchat":
            return [self._error(stanza, StanzaErrorCondition.BAD_REQUEST)]
        subject = stanza.find(qname(NS_CLIENT, "subject"))
        if subject is not None and stanza.find(qname(NS_CLIENT, "body")) is None:
            return set_subject(self, occupant, subject.text or "", stanza)
        if occupant.role == Role.VISITOR:
            return [self._error(stanza, StanzaErrorCondition.FORBIDDEN, text="Visitors may not speak")]
        return self._reflect(occupant, stanza, now)

    def _reflect(self, occupant: Occupant, stanza: Element, now: float) -> list[Addressed]:
        """XEP-0045 §7.4: one copy to every occupant, sender included, in one order, with a stable id."""
        message = make_stanza("message", {"type": "groupchat", "from": str(self.jid.with_resource(occupant.nick))})
        if (stanza_id := stanza.get("id")) is not None:
            message.set("id", stanza_id)
        for child in stanza:
            if isinstance(child.tag, str) and child.tag not in (qname(NS_STANZA_ID, "stanza-id"),
                                                                qname(NS_OCCUPANT_ID, "occupant-id")):
                message.append(clone(child))
        sub(message, NS_STANZA_ID, "stanza-id", {"id": self._id_factory(), "by": str(self.jid)})
        sub(message, NS_OCCUPANT_ID, "occupant-id", {"id": occupant.oid})
        self._history.remember(message, length=self.config.history_length, now=now, wall=self._wall_clock())
        # One stanza for every occupant: the writers put each one's JID in (stanza.shared), no copy per occupant.
        everyone = shared(message)
        return [Addressed(to=recipient, stanza=everyone) for recipient in self.real_jids()]

    def _private_message(self, occupant: Occupant, nick: str, stanza: Element) -> list[Element]:
        target = self.find(nick)
        if target is None:
            return [self._error(stanza, StanzaErrorCondition.ITEM_NOT_FOUND)]
        if stanza.get("type") == "groupchat":
            return [self._error(stanza, StanzaErrorCondition.BAD_REQUEST)]
        message = clone(stanza)
        strip_room_ids(self.jid, message)
        message.set("from", str(self.jid.with_resource(occupant.nick)))
        sub(message, NS_MUC_USER, "x")
        sub(message, NS_OCCUPANT_ID, "occupant-id", {"id": self.occupant_id(occupant.bare)})
        return [addressed_copy(message, real) for real in target.real_jids]

    # --- iq ---------------------------------------------------------------------------------------

    def _iq(self, sender: JID, to: JID, iq: Element, now: float) -> list[Element]:
        payload = first_child(iq)
        if iq.get("type") in ("result", "error"):
            return self._iq_answer(sender, iq, now)
        if payload is None:
            return [self._error(iq, StanzaErrorCondition.BAD_REQUEST)]
        if to.resource is not None:
            return self._iq_to_occupant(sender, to.resource, iq, payload, now)
        namespace = etree.QName(payload).namespace
        if iq.get("type") == "get" and payload.tag == qname(NS_DISCO_INFO, "query"):
            return [iq_result(iq, room_info(self))]
        if iq.get("type") == "get" and payload.tag == qname(NS_DISCO_ITEMS, "query"):
            return [iq_result(iq, element(NS_DISCO_ITEMS, "query"))]
        if namespace == NS_MUC_OWNER:
            return owner_iq(self, sender, iq, payload, now)
        if namespace == NS_MUC_ADMIN:
            return admin_iq(self, sender, iq, payload, now)
        if payload.tag == qname(NS_PING, "ping"):
            return [iq_result(iq)]
        return [self._error(iq, StanzaErrorCondition.SERVICE_UNAVAILABLE)]

    def _iq_to_occupant(self, sender: JID, nick: str, iq: Element, payload: Element, now: float) -> list[Element]:
        own_nick = self._nick_of.get(sender)
        target = self.find(nick)
        if payload.tag == qname(NS_PING, "ping") and iq.get("type") == "get" and own_nick is not None \
                and target is not None and own_nick == target.nick:
            return [iq_result(iq)]  # XEP-0410 self-ping: answered by the room for joined occupants
        if own_nick is None:
            return [self._error(iq, StanzaErrorCondition.NOT_ACCEPTABLE)]
        if target is None:
            return [self._error(iq, StanzaErrorCondition.ITEM_NOT_FOUND)]
        real = target.real_jids[0]
        forwarded_id = self._iqs.forward(requester=sender, request_id=iq.get("id"), target=real,
                                         target_nick=target.nick, now=now)
        if forwarded_id is None:
            return [self._error(iq, StanzaErrorCondition.RESOURCE_CONSTRAINT, text="Too many requests in flight")]
        forwarded = clone(iq)
        forwarded.set("from", str(self.jid.with_resource(own_nick)))
        forwarded.set("id", forwarded_id)
        return [addressed_copy(forwarded, real)]

    def _iq_answer(self, sender: JID, iq: Element, now: float) -> list[Element]:
        pending = self._iqs.answered(forwarded_id=iq.get("id", ""), sender=sender, now=now)
        if pending is None:
            return []
        answer = clone(iq)
        answer.attrib.pop("id", None)
        if pending.request_id is not None:
            answer.set("id", pending.request_id)
        answer.set("from", str(self.jid.with_resource(self._nick_of.get(sender, pending.target_nick))))
        return [addressed_copy(answer, pending.requester)]

    # --- helpers ----------------------------------------------------------------------------------

    def _error(self, stanza: Element, condition: StanzaErrorCondition, *, text: str | None = None,
               error_type: StanzaErrorType | None = None) -> Element:
        reply = error_reply(stanza, condition, error_type=error_type, text=text)
        if local_name(stanza) == "presence":
            sub(reply, NS_MUC, "x")
        return reply




def room_secret(service_secret: bytes, room: JID) -> bytes:
    return hashlib.sha256(service_secret + str(room).encode()).digest()
