"""An occupant's presence as each recipient sees it (XEP-0045 §7.2.3-§7.2.5, §7.6, §7.14), pure: functions of the
room that build the presences the room sends — the muc#user item (affiliation, role, and the real JID where the
recipient may see it), the status codes, the room's occupant-id — and fan them out.

Whom a presence goes to is decided elsewhere (occupancy in `room.py`, who sees whom in `visibility.py`). A fan-out
builds each distinct variant once and copies it per recipient: a broadcast to N costs N cheap copies, not N builds.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from boshcm.jid import JID
from boshcm.stanza import Element, addressed_copy, clone, sub
from boshcm.xmpp.muc.namespaces import NS_MUC_USER, NS_OCCUPANT_ID
from boshcm.xmpp.muc.roles import Role

if TYPE_CHECKING:
    from boshcm.xmpp.muc.room import Occupant, Room
    from boshcm.xmpp.muc.visibility import Sight


def presences(room: Room, occupant: Occupant, recipients: list[JID], *, selves: Collection[JID],
              codes: tuple[str, ...] = (), self_codes: tuple[str, ...] = (), presence_type: str | None = None,
              new_nick: str | None = None, template: Element | None = None,
              reason: str | None = None) -> list[Element]:
    """One presence to many: each distinct variant (self-view, real JID shown or not) is built once and copied per
    recipient (the O(N) join path)."""
    variants: dict[tuple[bool, bool], Element] = {}
    out = []
    for recipient in recipients:
        self_view = recipient in selves
        key = (self_view, may_see_real_jid(room, recipient))
        if (variant := variants.get(key)) is None:
            variant = variants[key] = presence_of(
                room, occupant, to=recipient, presence_type=presence_type, self_view=self_view,
                codes=(*codes, *self_codes) if self_view else codes, new_nick=new_nick, template=template,
                reason=reason)
            out.append(variant)
        else:
            out.append(addressed_copy(variant, recipient))
    return out


def view_of(room: Room, occupant: Occupant, *, to: JID, shows_jid: bool) -> Element:
    """An occupant's current presence to another occupant (as each joiner gets them all, XEP-0045 §7.2.3): built
    once per variant and kept on the occupant, so a join into N costs N copies, not N builds."""
    basis = (occupant.presence, occupant.nick, occupant.role, room.affiliation(occupant.bare),
             occupant.real_jids[0] if occupant.real_jids else None)
    cached = occupant.view_of
    if cached is None or cached[0] is not basis[0] or cached[1:] != basis[1:]:
        occupant.views.clear()
        occupant.view_of = basis
    if (view := occupant.views.get(shows_jid)) is None:
        view = occupant.views[shows_jid] = presence_of(room, occupant, to=to, shows_jid=shows_jid)
    return addressed_copy(view, to)


def render(room: Room, sights: list[Sight]) -> list[Element]:
    """Presences for those who start seeing an occupant (as each joiner gets them) or stop (as if it left)."""
    out: list[Element] = []
    for sight in sights:
        if sight.shown:
            out += [view_of(room, sight.occupant, to=real, shows_jid=may_see_real_jid(room, real)) for real in sight.to]
        else:
            out += presences(room, sight.occupant, list(sight.to), selves=(), presence_type="unavailable")
    return out


def presence_of(room: Room, occupant: Occupant, *, to: JID, presence_type: str | None = None,
                self_view: bool = False, codes: tuple[str, ...] = (), new_nick: str | None = None,
                template: Element | None = None, reason: str | None = None,
                shows_jid: bool | None = None) -> Element:
    presence = clone(template if template is not None else occupant.presence)
    for attribute in ("id", "type"):
        presence.attrib.pop(attribute, None)
    presence.set("from", str(room.jid.with_resource(occupant.nick)))
    presence.set("to", str(to))
    if presence_type is not None:
        presence.set("type", presence_type)
    x = sub(presence, NS_MUC_USER, "x")
    item_attrs: dict[str, str] = {"affiliation": room.affiliation(occupant.bare), "role": occupant.role}
    if may_see_real_jid(room, to) if shows_jid is None else shows_jid:
        item_attrs["jid"] = str(occupant.real_jids[0]) if occupant.real_jids else str(occupant.bare)
    if new_nick is not None:
        item_attrs["nick"] = new_nick
    item = sub(x, NS_MUC_USER, "item", item_attrs)
    if reason:
        sub(item, NS_MUC_USER, "reason", text=reason)
    all_codes = list(codes)
    if self_view:
        if room.config.whois == "anyone":
            all_codes.insert(0, "100")
        all_codes.append("110")
    for code in dict.fromkeys(all_codes):
        sub(x, NS_MUC_USER, "status", {"code": code})
    sub(presence, NS_OCCUPANT_ID, "occupant-id", {"id": occupant.oid or room.occupant_id(occupant.bare)})
    return presence


def may_see_real_jid(room: Room, viewer: JID) -> bool:
    """XEP-0045 §7.2.3/§7.2.4: everyone in a non-anonymous room, only moderators in a semi-anonymous one."""
    if room.config.whois == "anyone":
        return True
    occupant = room.occupant_of(viewer)
    return occupant is not None and occupant.role == Role.MODERATOR


