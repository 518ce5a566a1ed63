"""A room's moderation (XEP-0045 §8, §9, §10.3-§10.8): the muc#admin iq — listing roles and affiliations, and
kicking, banning, granting and revoking voice, moderator and affiliations.

Pure like the room: functions of the room they act on, answering with the stanzas to send. The occupancy they
change (who leaves, whose presence is broadcast again) is the room's own (`room.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import Element, element, qname, sub
from boshcm.xmpp.muc.namespaces import NS_MUC_ADMIN
from boshcm.xmpp.muc.roles import Affiliation, Role

if TYPE_CHECKING:
    from boshcm.xmpp.muc.room import Occupant, Room


def admin_iq(room: Room, sender: JID, iq: Element, payload: Element, now: float) -> list[Element]:
    actor_nick = room._nick_of.get(sender)
    actor_role = room._occupants[actor_nick].role if actor_nick else Role.NONE
    actor_affiliation = room.affiliation(sender)
    items = payload.findall(qname(NS_MUC_ADMIN, "item"))
    if iq.get("type") == "get":
        if len(items) != 1:
            return [room._error(iq, StanzaErrorCondition.BAD_REQUEST)]
        wanted = items[0]
        if actor_affiliation.rank < Affiliation.ADMIN.rank and actor_role != Role.MODERATOR:
            return [room._error(iq, StanzaErrorCondition.FORBIDDEN)]
        result = element(NS_MUC_ADMIN, "query")
        if (affiliation := Affiliation.parse(wanted.get("affiliation"))) is not None:
            for jid, held in sorted(room.state.affiliations.items(), key=lambda pair: str(pair[0])):
                if held == affiliation:
                    sub(result, NS_MUC_ADMIN, "item", {"affiliation": held, "jid": str(jid)})
        elif (role := Role.parse(wanted.get("role"))) is not None:
            for occupant in room._occupants.values():
                if occupant.role == role:
                    sub(result, NS_MUC_ADMIN, "item", {"role": role, "nick": occupant.nick,
                                                       "affiliation": room.affiliation(occupant.bare),
                                                       "jid": str(occupant.bare)})
        return [room._reply(iq, result)]
    out: list[Element] = []
    for item in items:
        problem, effects = _apply_admin_item(room, sender, actor_role, actor_affiliation, item, now)
        if problem is not None:
            return [room._error(iq, problem)]
        out += effects
    return [room._reply(iq, None), *out]


def _apply_admin_item(room: Room, sender: JID, actor_role: Role, actor_affiliation: Affiliation, item: Element,
                      now: float) -> tuple[StanzaErrorCondition | None, list[Element]]:
    reason = item.findtext(qname(NS_MUC_ADMIN, "reason"))
    if item.get("role") is not None:
        role = Role.parse(item.get("role"))
        target = room._find(item.get("nick", ""))
        if target is None:
            return StanzaErrorCondition.ITEM_NOT_FOUND, []
        if actor_role != Role.MODERATOR or role is None:
            return StanzaErrorCondition.NOT_ALLOWED, []
        if room.affiliation(target.bare).rank >= Affiliation.ADMIN.rank and role != Role.MODERATOR \
                and actor_affiliation.rank <= room.affiliation(target.bare).rank:
            return StanzaErrorCondition.NOT_ALLOWED, []
        if role == Role.MODERATOR and actor_affiliation.rank < Affiliation.ADMIN.rank:
            return StanzaErrorCondition.NOT_ALLOWED, []
        if role == Role.NONE:
            return None, _remove_occupant(room, target, ("307",), reason, now)   # kick, XEP-0045 §8.2
        was_visible = room._visible(target)
        target.role = role
        return None, room._broadcast_presence(target, was_visible=was_visible)
    affiliation = Affiliation.parse(item.get("affiliation"))
    if affiliation is None:
        return StanzaErrorCondition.BAD_REQUEST, []
    try:
        by_nick = None if item.get("jid") else room._find(item.get("nick", ""))
        jid = JID.parse(item.get("jid", "")).bare if by_nick is None else by_nick.bare
    except InvalidJID:
        return StanzaErrorCondition.ITEM_NOT_FOUND, []
    current = room.affiliation(jid)
    needs_owner = Affiliation.ADMIN.rank <= max(affiliation.rank, current.rank)
    if actor_affiliation.rank < (Affiliation.OWNER.rank if needs_owner else Affiliation.ADMIN.rank):
        return StanzaErrorCondition.FORBIDDEN, []
    if current == Affiliation.OWNER and affiliation != Affiliation.OWNER and \
            sum(1 for held in room.state.affiliations.values() if held == Affiliation.OWNER) == 1:
        return StanzaErrorCondition.CONFLICT, []   # XEP-0045 §10.6: the last owner stays
    if affiliation == Affiliation.NONE:
        room.state.affiliations.pop(jid, None)
    elif jid not in room.state.affiliations and len(room.state.affiliations) >= room.limits.max_affiliations:
        return StanzaErrorCondition.RESOURCE_CONSTRAINT, []
    else:
        room.state.affiliations[jid] = affiliation
    if affiliation.rank < Affiliation.MEMBER.rank:
        room._unregister_nick(jid)
    out: list[Element] = []
    for occupant in [o for o in room._occupants.values() if o.bare == jid]:
        room._register_nick(occupant)
        if affiliation == Affiliation.OUTCAST:
            out += _remove_occupant(room, occupant, ("301",), reason, now)   # ban, XEP-0045 §9.1
        elif room.config.members_only and affiliation == Affiliation.NONE:
            out += _remove_occupant(room, occupant, ("321",), reason, now)
        else:
            was_visible = room._visible(occupant)
            occupant.role = room._default_role(affiliation) if occupant.role != Role.MODERATOR or \
                affiliation not in (Affiliation.OWNER, Affiliation.ADMIN) else occupant.role
            out += room._broadcast_presence(occupant, was_visible=was_visible)
    return None, out


def _remove_occupant(room: Room, occupant: Occupant, codes: tuple[str, ...], reason: str | None,
                     now: float) -> list[Element]:
    out: list[Element] = []
    for real in list(occupant.real_jids):
        out += room._leave(real, None, now, codes=codes, actor_reason=reason)
    return out
