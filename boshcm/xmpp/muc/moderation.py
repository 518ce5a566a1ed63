"""A room's moderation (XEP-0045 §8, §9, §10.3-§10.8): the muc#admin iq — listing roles and affiliations, and
kicking, banning, granting and revoking voice, moderator and affiliations.

Pure like the room: functions of the room they act on, answering with the stanzas to send. The occupancy they
change (who leaves, whose presence is broadcast again) is the room's own (`room.py`): they ask for it through the
room's public methods (`set_role`, `remove_occupant`, `affiliation_changed`), never its private state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import Element, element, error_reply, iq_result, qname, sub
from boshcm.xmpp.muc.namespaces import NS_MUC_ADMIN
from boshcm.xmpp.muc.roles import Affiliation, Role

if TYPE_CHECKING:
    from boshcm.xmpp.muc.room import Room


def admin_iq(room: Room, sender: JID, iq: Element, payload: Element, now: float) -> list[Element]:
    actor = room.occupant_of(sender)
    actor_role = actor.role if actor is not None else Role.NONE
    actor_affiliation = room.affiliation(sender)
    items = payload.findall(qname(NS_MUC_ADMIN, "item"))
    if iq.get("type") == "get":
        if len(items) != 1:
            return [error_reply(iq, StanzaErrorCondition.BAD_REQUEST)]
        wanted = items[0]
        if actor_affiliation.rank < Affiliation.ADMIN.rank and actor_role != Role.MODERATOR:
            return [error_reply(iq, StanzaErrorCondition.FORBIDDEN)]
        result = element(NS_MUC_ADMIN, "query")
        if (affiliation := Affiliation.parse(wanted.get("affiliation"))) is not None:
            for jid, held in sorted(room.state.affiliations.items(), key=lambda pair: str(pair[0])):
                if held == affiliation:
                    sub(result, NS_MUC_ADMIN, "item", {"affiliation": held, "jid": str(jid)})
        elif (role := Role.parse(wanted.get("role"))) is not None:
            for occupant in room.occupants():
                if occupant.role == role:
                    sub(result, NS_MUC_ADMIN, "item", {"role": role, "nick": occupant.nick,
                                                       "affiliation": room.affiliation(occupant.bare),
                                                       "jid": str(occupant.bare)})
        return [iq_result(iq, result)]
    out: list[Element] = []
    for item in items:
        problem, effects = _apply_admin_item(room, sender, actor_role, actor_affiliation, item, now)
        if problem is not None:
            return [error_reply(iq, problem)]
        out += effects
    return [iq_result(iq), *out]


def _apply_admin_item(room: Room, sender: JID, actor_role: Role, actor_affiliation: Affiliation, item: Element,
                      now: float) -> tuple[StanzaErrorCondition | None, list[Element]]:
    reason = item.findtext(qname(NS_MUC_ADMIN, "reason"))
    if item.get("role") is not None:
        role = Role.parse(item.get("role"))
        target = room.find(item.get("nick", ""))
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
            return None, room.remove_occupant(target, codes=("307",), reason=reason, now=now)   # kick, XEP-0045 §8.2
        return None, room.set_role(target, role)
    affiliation = Affiliation.parse(item.get("affiliation"))
    if affiliation is None:
        return StanzaErrorCondition.BAD_REQUEST, []
    try:
        by_nick = None if item.get("jid") else room.find(item.get("nick", ""))
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
    room.affiliation_changed(jid)
    out: list[Element] = []
    for occupant in [o for o in room.occupants() if o.bare == jid]:
        if affiliation == Affiliation.OUTCAST:
            out += room.remove_occupant(occupant, codes=("301",), reason=reason, now=now)   # ban, XEP-0045 §9.1
        elif room.config.members_only and affiliation == Affiliation.NONE:
            out += room.remove_occupant(occupant, codes=("321",), reason=reason, now=now)
        else:
            keeps_moderator = occupant.role == Role.MODERATOR and affiliation in (Affiliation.OWNER, Affiliation.ADMIN)
            out += room.set_role(occupant, occupant.role if keeps_moderator else room.default_role(affiliation))
    return None, out
