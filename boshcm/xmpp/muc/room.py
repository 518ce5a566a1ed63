"""One multi-user chat room (XEP-0045), pure: stanzas from real JIDs in, addressed stanzas out.

Theory of operation. The service hands the room every stanza addressed to it or to one of its occupant
JIDs, with `from` already stamped with the sender's real full JID by the router, and tells it when a
session ended. The room answers with fully addressed stanzas (`to` a real full JID, `from` the room or an
occupant JID); the router delivers them. Time only arrives as `now` (history ages, delay stamps).

The room keeps occupancy, presence and message routing; its other jobs are one module each, functions of the
room: `moderation.py` (the muc#admin iq: kick, ban, voice, roles and affiliations), `owner.py` (the muc#owner
iq: configuration, destroy), `invitations.py` (mediated invitations), `history.py`, `iq_proxy.py` (iqs through
occupant JIDs), `roles.py`, `config.py` (the form) and `nick.py`. The parts use the room's public methods only
(queries, and the few changes that touch occupancy: `set_role`, `remove_occupant`, `affiliation_changed`,
`destroy`), so occupancy's bookkeeping (nick, key and session tables) stays in this file.

Presence order on join follows XEP-0045 §7.2.3: every current occupant's presence to the joiner, then the
joiner's own presence (status 110, and 201 when it created the room) to everyone, then history, then the
subject — always, even empty, because clients such as slixmpp's join_muc_wait treat it as "joined".
With §10.2 presencebroadcast restricted, an occupant whose role is not broadcast shows to itself and to the
moderators only (boshcm's reading; Prosody shows it to nobody): moderators moderate whom they can see. The room
keeps its moderators in a list, so such an occupant's presence costs O(moderators), not O(room).

What a room defends (docs/security.md, "Rooms"):
- Nicknames are compared by key (`nick.py`: PRECIS Nickname + confusables skeleton), one dict lookup per join:
  a look-alike of another account's nick is a `conflict`, and an affiliated user's (member, admin, owner)
  last nick stays reserved for them while they are away — how a bot that owns its room keeps its name.
- Room-assigned ids (XEP-0421 occupant-id, XEP-0359 stanza-id by the room or its service) are never taken
  from a client: stripped on every path, the room's own added where it adds them.
- iqs through occupant JIDs (§7.5) go out under a fresh id kept in a bounded, expiring table, and only the
  target's answer is routed back, under the requester's own id.
- Occupants are capped by the service (`RoomLimits.max_occupants`); a room's own maximum may only lower it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from lxml import etree

from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import (
    NS_CLIENT,
    NS_DATA_FORMS,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_PING,
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
from boshcm.xmpp.muc.config import RoomConfig
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
from boshcm.xmpp.muc.roles import Affiliation, Role

# boshcm's own disco#info feature: occupants whose role muc#roomconfig_presencebroadcast leaves out are still shown
# to the room's moderators (XEP-0045 §10.2 as boshcm reads it; Prosody shows them to nobody).
NS_MODERATORS_SEE_ALL = "urn:boshcm:muc:moderators-see-all:0"


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
        self._reserved: dict[str, JID] = {}            # nick comparison key -> affiliated account
        for bare, nick in list(state.nicks.items()):
            self._reserve(bare, nick)
        self._iqs = IqProxy(max_pending=self.limits.max_pending_iqs, timeout_seconds=self.limits.iq_timeout_seconds,
                            id_factory=id_factory)
        self._history = History(jid)
        self.destroyed = False

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

    def handle(self, stanza: Element, now: float) -> list[Element]:
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
        was_visible = self._visible(occupant)
        was_moderator = occupant.role == Role.MODERATOR
        occupant.role = role
        if was_moderator and role != Role.MODERATOR:
            self._drop_moderator(occupant)
        elif role == Role.MODERATOR and not was_moderator:
            self._moderators.append(occupant)
        out = self._broadcast_presence(occupant, was_visible=was_visible)
        if was_moderator != (role == Role.MODERATOR):
            # Moderators see the occupants whose role is not broadcast: a new one gets them, a former one drops them.
            hidden = [other for other in self._occupants.values() if other is not occupant and not self._visible(other)]
            for other in hidden:
                if role == Role.MODERATOR:
                    out += [self._view_of(other, to=real, shows_jid=self._may_see_real_jid(real))
                            for real in occupant.real_jids]
                else:
                    out += self._presences(other, list(occupant.real_jids), selves=(), presence_type="unavailable")
        return out

    def config_changed(self, previous: RoomConfig) -> list[Element]:
        """After the owner's form (XEP-0045 §10.2): occupants whose role stopped being broadcast vanish for those who
        are not moderators, and those whose role became broadcast appear for them; moderators saw them all along."""
        if previous.presence_broadcast == self.config.presence_broadcast:
            return []
        out: list[Element] = []
        onlookers: list[JID] | None = None
        for occupant in self._occupants.values():
            was_visible = occupant.role in previous.presence_broadcast
            if was_visible == self._visible(occupant):
                continue
            if onlookers is None:
                onlookers = [real for other in self._occupants.values() if other.role != Role.MODERATOR
                             for real in other.real_jids]
            others = [real for real in onlookers if real not in occupant.real_jids]
            out += self._presences(occupant, others, selves=(), presence_type="unavailable" if was_visible else None)
        return out

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
            self._unregister_nick(bare)
        for occupant in self._occupants.values():
            if occupant.bare == bare:
                self._register_nick(occupant)

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
        occupant.presence = self._clean_presence(stanza)
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
        if (existing is not None and existing.bare != sender.bare) or self._reserved_for_other(nick, sender.bare):
            # XEP-0045 §7.2.9: in use, or reserved by an affiliated user, under this nick or a look-alike.
            return [self._error(stanza, StanzaErrorCondition.CONFLICT)]
        if self.config.password and affiliation != Affiliation.OWNER:
            given = muc.findtext(qname(NS_MUC, "password")) if muc is not None else None
            if given != self.config.password:
                return [self._error(stanza, StanzaErrorCondition.NOT_AUTHORIZED)]
        if existing is None and len(self._occupants) >= self.max_users and affiliation.rank < Affiliation.ADMIN.rank:
            # XEP-0045 §7.2.10: admins and owners may still enter.
            return [self._error(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE)]
        # XEP-0045 §7.2.3 and §10.2 presencebroadcast: the broadcast roles' presences first, also for a second
        # session of an occupant already here; O(those), not O(room). A moderator gets everyone's (boshcm's
        # reading of §10.2: moderators moderate whom they can see).
        # XEP-0045 §7.2.3/§7.2.4: the joiner is not an occupant yet, so whether it sees real JIDs follows the role
        # it is about to get (an owner or admin joining a semi-anonymous room is a moderator and sees them).
        role = existing.role if existing is not None else self.default_role(affiliation)
        sees_jids = self.config.whois == "anyone" or role == Role.MODERATOR
        out = [self._view_of(other, to=sender, shows_jid=sees_jids) for other in self._occupants.values()
               if other is not existing and (role == Role.MODERATOR or self._visible(other))]
        if existing is not None:
            # The same account joining the same nick from another session shares the occupant.
            existing.real_jids.append(sender)
            self._nick_of[sender] = existing.nick
            occupant = existing
            rewritten = ("210",) if existing.nick != nick.shown else rewritten
        else:
            occupant = Occupant(nick=nick.shown, keys=nick.keys, bare=sender.bare, real_jids=[sender],
                                role=self.default_role(affiliation), presence=self._clean_presence(stanza),
                                oid=self.occupant_id(sender.bare))
            self._occupants[nick.shown] = occupant
            self._nick_of[sender] = nick.shown
            if occupant.role == Role.MODERATOR:
                self._moderators.append(occupant)
            for key in nick.keys:
                self._by_key[key] = nick.shown
        self._register_nick(occupant)
        created = self._creating
        self._creating = False
        out += self._broadcast_presence(occupant, extra_self_codes=("201", *rewritten) if created else rewritten)
        out += self._history.for_joiner(sender, muc, now)
        out.append(self._subject_message(sender))
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

    def _reserved_for_other(self, nick: Nick, bare: JID) -> bool:
        for key in nick.keys:
            owner = self._reserved.get(key)
            if owner is not None and owner != bare and self.affiliation(owner).rank >= Affiliation.MEMBER.rank:
                return True
        return False

    def _register_nick(self, occupant: Occupant) -> None:
        """An affiliated account's nick stays theirs while they are away (as Prosody's registered nicks)."""
        if self.affiliation(occupant.bare).rank < Affiliation.MEMBER.rank:
            return
        if self.state.nicks.get(occupant.bare) == occupant.nick:
            return
        self._unregister_nick(occupant.bare)
        self.state.nicks[occupant.bare] = occupant.nick
        self._reserve(occupant.bare, occupant.nick)

    def _reserve(self, bare: JID, nick: str) -> None:
        try:
            keys = parse_nick(nick).keys
        except NickRefused:
            return
        for key in keys:
            self._reserved.setdefault(key, bare)

    def _unregister_nick(self, bare: JID) -> None:
        old = self.state.nicks.pop(bare, None)
        if old is None:
            return
        try:
            keys = parse_nick(old).keys
        except NickRefused:
            return
        for key in keys:
            if self._reserved.get(key) == bare:
                del self._reserved[key]

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
        if (holder is not None and holder is not occupant) or self._reserved_for_other(nick, sender.bare):
            return [self._error(stanza, StanzaErrorCondition.CONFLICT)]
        new = nick.shown
        out = self._presences(occupant, self._audience(occupant), selves=occupant.real_jids,
                              presence_type="unavailable", codes=("303",), new_nick=new)
        del self._occupants[old]
        for key in occupant.keys:
            self._by_key.pop(key, None)
        occupant.nick, occupant.keys = new, nick.keys
        occupant.presence = self._clean_presence(stanza)
        self._occupants[new] = occupant
        for key in nick.keys:
            self._by_key[key] = new
        for real in occupant.real_jids:
            self._nick_of[real] = new
        self._register_nick(occupant)
        return out + self._broadcast_presence(occupant, extra_self_codes=rewritten)

    def _leave(self, sender: JID, stanza: Element | None, now: float, *, codes: tuple[str, ...] = (),
               actor_reason: str | None = None) -> list[Element]:
        nick = self._nick_of.pop(sender)
        occupant = self._occupants[nick]
        occupant.real_jids.remove(sender)
        leaving = self._clean_presence(stanza) if stanza is not None else make_stanza("presence")
        out: list[Element] = []
        if occupant.real_jids:
            # Another session of the same account is still here: only this one leaves.
            out.append(self._presence_of(occupant, to=sender, presence_type="unavailable", self_view=True,
                                         codes=codes, template=leaving))
            return out
        del self._occupants[nick]
        for key in occupant.keys:
            self._by_key.pop(key, None)
        if occupant.role == Role.MODERATOR:
            self._drop_moderator(occupant)
        audience = self.real_jids() if self._visible(occupant) else self._moderator_sessions(besides=occupant)
        occupant.role = Role.NONE
        return self._presences(occupant, [sender, *audience], selves=(sender,), presence_type="unavailable",
                               codes=codes, template=leaving, reason=actor_reason)

    def _visible(self, occupant: Occupant) -> bool:
        """XEP-0045 §10.2 muc#roomconfig_presencebroadcast: is this occupant's presence shown to others?"""
        return occupant.role in self.config.presence_broadcast

    def _audience(self, occupant: Occupant) -> list[JID]:
        """Who sees this occupant's presence: everyone, or (a role not broadcast) its own sessions and the
        moderators' — O(moderators), so a quiet room's join stays O(1) stanzas."""
        if self._visible(occupant):
            return self.real_jids()
        return [*occupant.real_jids, *self._moderator_sessions(besides=occupant)]

    def _moderator_sessions(self, *, besides: Occupant) -> list[JID]:
        return [real for moderator in self._moderators if moderator is not besides for real in moderator.real_jids]

    def _drop_moderator(self, occupant: Occupant) -> None:
        # By identity: dataclass equality would compare presences field by field.
        self._moderators = [moderator for moderator in self._moderators if moderator is not occupant]

    def _broadcast_presence(self, occupant: Occupant, *, extra_self_codes: tuple[str, ...] = (),
                            was_visible: bool = False) -> list[Element]:
        out = []
        if was_visible and not self._visible(occupant):
            # Its role is no longer broadcast: the others drop it from their lists, as if it had left; the
            # moderators keep it (they get its new role just below).
            keeps = {*occupant.real_jids, *self._moderator_sessions(besides=occupant)}
            out += self._presences(occupant, [r for r in self.real_jids() if r not in keeps],
                                   selves=(), presence_type="unavailable")
        return out + self._presences(occupant, self._audience(occupant), selves=occupant.real_jids,
                                     self_codes=extra_self_codes)

    def _presences(self, occupant: Occupant, recipients: list[JID], *, selves: Collection[JID],
                   codes: tuple[str, ...] = (), self_codes: tuple[str, ...] = (), presence_type: str | None = None,
                   new_nick: str | None = None, template: Element | None = None,
                   reason: str | None = None) -> list[Element]:
        """One presence to many: each distinct variant (self-view, real JID shown or not) is built once and
        copied per recipient, so a broadcast to N costs N cheap copies, not N builds (the O(N) join path)."""
        variants: dict[tuple[bool, bool], Element] = {}
        out = []
        for recipient in recipients:
            self_view = recipient in selves
            key = (self_view, self._may_see_real_jid(recipient))
            if (variant := variants.get(key)) is None:
                variant = variants[key] = self._presence_of(
                    occupant, to=recipient, presence_type=presence_type, self_view=self_view,
                    codes=(*codes, *self_codes) if self_view else codes, new_nick=new_nick, template=template,
                    reason=reason)
                out.append(variant)
            else:
                out.append(_addressed(variant, recipient))
        return out

    def _view_of(self, occupant: Occupant, *, to: JID, shows_jid: bool) -> Element:
        """An occupant's current presence to another occupant (as each joiner gets them all, XEP-0045 §7.2.3):
        built once per variant and copied, so a join into N costs N copies, not N builds."""
        basis = (occupant.presence, occupant.nick, occupant.role, self.affiliation(occupant.bare),
                 occupant.real_jids[0] if occupant.real_jids else None)
        cached = occupant.view_of
        if cached is None or cached[0] is not basis[0] or cached[1:] != basis[1:]:
            occupant.views.clear()
            occupant.view_of = basis
        if (view := occupant.views.get(shows_jid)) is None:
            view = occupant.views[shows_jid] = self._presence_of(occupant, to=to, shows_jid=shows_jid)
        return _addressed(view, to)

    def _presence_of(self, occupant: Occupant, *, to: JID, presence_type: str | None = None,
                     self_view: bool = False, codes: tuple[str, ...] = (), new_nick: str | None = None,
                     template: Element | None = None, reason: str | None = None,
                     shows_jid: bool | None = None) -> Element:
        presence = copy.copy(template if template is not None else occupant.presence)  # deep: see _addressed
        for attribute in ("id", "type"):
            presence.attrib.pop(attribute, None)
        presence.set("from", str(self.jid.with_resource(occupant.nick)))
        presence.set("to", str(to))
        if presence_type is not None:
            presence.set("type", presence_type)
        x = sub(presence, NS_MUC_USER, "x")
        item_attrs: dict[str, str] = {"affiliation": self.affiliation(occupant.bare), "role": occupant.role}
        if self._may_see_real_jid(to) if shows_jid is None else shows_jid:
            item_attrs["jid"] = str(occupant.real_jids[0]) if occupant.real_jids else str(occupant.bare)
        if new_nick is not None:
            item_attrs["nick"] = new_nick
        item = sub(x, NS_MUC_USER, "item", item_attrs)
        if reason:
            sub(item, NS_MUC_USER, "reason", text=reason)
        all_codes = list(codes)
        if self_view:
            if self.config.whois == "anyone":
                all_codes.insert(0, "100")
            all_codes.append("110")
        for code in dict.fromkeys(all_codes):
            sub(x, NS_MUC_USER, "status", {"code": code})
        sub(presence, NS_OCCUPANT_ID, "occupant-id", {"id": occupant.oid or self.occupant_id(occupant.bare)})
        return presence

    def _may_see_real_jid(self, viewer: JID) -> bool:
        if self.config.whois == "anyone":
            return True
        nick = self._nick_of.get(viewer)
        return nick is not None and self._occupants[nick].role == Role.MODERATOR

    # --- messages ---------------------------------------------------------------------------------

    def _message(self, sender: JID, to: JID, stanza: Element, now: float) -> list[Element]:
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
            return self._set_subject(occupant, subject.text or "", stanza)
        if occupant.role == Role.VISITOR:
            return [self._error(stanza, StanzaErrorCondition.FORBIDDEN, text="Visitors may not speak")]
        return self._reflect(occupant, stanza, now)

    def _reflect(self, occupant: Occupant, stanza: Element, now: float) -> list[Element]:
        """XEP-0045 §7.4: one copy to every occupant, sender included, in one order, with a stable id."""
        message = make_stanza("message", {"type": "groupchat", "from": str(self.jid.with_resource(occupant.nick))})
        if (stanza_id := stanza.get("id")) is not None:
            message.set("id", stanza_id)
        for child in stanza:
            if isinstance(child.tag, str) and child.tag not in (qname(NS_STANZA_ID, "stanza-id"),
                                                                qname(NS_OCCUPANT_ID, "occupant-id")):
                message.append(copy.deepcopy(child))
        sub(message, NS_STANZA_ID, "stanza-id", {"id": self._id_factory(), "by": str(self.jid)})
        sub(message, NS_OCCUPANT_ID, "occupant-id", {"id": occupant.oid})
        self._history.remember(message, length=self.config.history_length, now=now, wall=self._wall_clock())
        return [_addressed(message, recipient) for recipient in self.real_jids()]

    def _private_message(self, occupant: Occupant, nick: str, stanza: Element) -> list[Element]:
        target = self.find(nick)
        if target is None:
            return [self._error(stanza, StanzaErrorCondition.ITEM_NOT_FOUND)]
        if stanza.get("type") == "groupchat":
            return [self._error(stanza, StanzaErrorCondition.BAD_REQUEST)]
        message = copy.deepcopy(stanza)
        self._strip_room_ids(message)
        message.set("from", str(self.jid.with_resource(occupant.nick)))
        sub(message, NS_MUC_USER, "x")
        sub(message, NS_OCCUPANT_ID, "occupant-id", {"id": self.occupant_id(occupant.bare)})
        return [addressed_copy(message, real) for real in target.real_jids]

    def _set_subject(self, occupant: Occupant, subject: str, stanza: Element) -> list[Element]:
        if occupant.role != Role.MODERATOR and not (self.config.change_subject and occupant.role == Role.PARTICIPANT):
            return [self._error(stanza, StanzaErrorCondition.FORBIDDEN)]
        self.state.subject = subject
        self.state.subject_from = occupant.nick
        return [self._subject_message(recipient) for recipient in self.real_jids()]

    def _subject_message(self, to: JID) -> Element:
        sender = self.jid.with_resource(self.state.subject_from) if self.state.subject_from else self.jid
        message = make_stanza("message", {"type": "groupchat", "from": str(sender), "to": str(to),
                                          "id": self._id_factory()})
        sub(message, NS_CLIENT, "subject", text=self.state.subject or None)
        setter = self._occupants.get(self.state.subject_from) if self.state.subject_from else None
        if setter is not None:
            sub(message, NS_OCCUPANT_ID, "occupant-id", {"id": self.occupant_id(setter.bare)})
        return message

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
            return [iq_result(iq, self._disco_info())]
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
        forwarded = copy.deepcopy(iq)
        forwarded.set("from", str(self.jid.with_resource(own_nick)))
        forwarded.set("id", forwarded_id)
        return [addressed_copy(forwarded, real)]

    def _iq_answer(self, sender: JID, iq: Element, now: float) -> list[Element]:
        pending = self._iqs.answered(forwarded_id=iq.get("id", ""), sender=sender, now=now)
        if pending is None:
            return []
        answer = copy.deepcopy(iq)
        answer.attrib.pop("id", None)
        if pending.request_id is not None:
            answer.set("id", pending.request_id)
        answer.set("from", str(self.jid.with_resource(self._nick_of.get(sender, pending.target_nick))))
        return [addressed_copy(answer, pending.requester)]

    def _disco_info(self) -> Element:
        info = element(NS_DISCO_INFO, "query")
        sub(info, NS_DISCO_INFO, "identity", {"category": "conference", "type": "text",
                                              "name": self.config.name or self.jid.local or ""})
        features = [NS_MUC, NS_STANZA_ID, NS_OCCUPANT_ID, NS_DISCO_INFO, "urn:xmpp:ping",
                    "muc_public" if self.config.public else "muc_hidden",
                    "muc_persistent" if self.config.persistent else "muc_temporary",
                    "muc_passwordprotected" if self.config.password else "muc_unsecured",
                    "muc_membersonly" if self.config.members_only else "muc_open",
                    "muc_moderated" if self.config.moderated else "muc_unmoderated",
                    "muc_nonanonymous" if self.config.whois == "anyone" else "muc_semianonymous",
                    # Always: how this room treats a restricted muc#roomconfig_presencebroadcast (§10.2), so an
                    # owner can tell before restricting it (docs/protocol.md).
                    NS_MODERATORS_SEE_ALL]
        for feature in features:
            sub(info, NS_DISCO_INFO, "feature", {"var": feature})
        form = sub(info, NS_DATA_FORMS, "x", {"type": "result"})
        for var, value in (("FORM_TYPE", "http://jabber.org/protocol/muc#roominfo"),
                           ("muc#roominfo_description", self.config.description),
                           ("muc#roominfo_occupants", str(len(self._occupants))),
                           ("muc#roominfo_subject", self.state.subject)):
            sub(sub(form, NS_DATA_FORMS, "field", {"var": var}), NS_DATA_FORMS, "value", text=value)
        return info

    # --- helpers ----------------------------------------------------------------------------------

    def _clean_presence(self, stanza: Element) -> Element:
        """The occupant's presence as others see it: show, status, priority, extensions; no MUC join element
        and no id only the room may assign."""
        presence = make_stanza("presence")
        for child in stanza:
            if isinstance(child.tag, str) and etree.QName(child).namespace not in (NS_MUC, NS_MUC_USER) \
                    and not self._claims_room_id(child):
                presence.append(copy.deepcopy(child))
        return presence

    def _strip_room_ids(self, stanza: Element) -> None:
        for child in list(stanza):
            if isinstance(child.tag, str) and self._claims_room_id(child):
                stanza.remove(child)

    def _claims_room_id(self, child: Element) -> bool:
        """XEP-0421 §4: occupant-ids come only from the room; XEP-0359 §3.1: a stanza-id by this room (or
        anything on its service) from a client is forged."""
        if child.tag == qname(NS_OCCUPANT_ID, "occupant-id"):
            return True
        if child.tag != qname(NS_STANZA_ID, "stanza-id"):
            return False
        try:
            return JID.parse(child.get("by", "")).domain == self.jid.domain
        except InvalidJID:
            return False

    def _error(self, stanza: Element, condition: StanzaErrorCondition, *, text: str | None = None,
               error_type: StanzaErrorType | None = None) -> Element:
        reply = error_reply(stanza, condition, error_type=error_type, text=text)
        if local_name(stanza) == "presence":
            sub(reply, NS_MUC, "x")
        return reply




def _addressed(stanza: Element, to: JID) -> Element:
    """One recipient's copy of a fan-out. For lxml elements `copy.copy` already copies the whole subtree (in C);
    `copy.deepcopy` does the same plus Python's memo bookkeeping, three times the cost, paid per occupant."""
    copied = copy.copy(stanza)
    copied.set("to", str(to))
    return copied


def room_secret(service_secret: bytes, room: JID) -> bytes:
    return hashlib.sha256(service_secret + str(room).encode()).digest()
