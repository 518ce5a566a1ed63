"""Who sees whose presence in a room (XEP-0045 §10.2 muc#roomconfig_presencebroadcast), pure.

Functions of the room, over its public interface: they answer with the sessions that see an occupant, or that
start or stop seeing it after a role change or the owner's form (as `Sight`s); the room renders the presences.

An occupant whose role is broadcast is seen by everyone. One whose role is not is seen by itself and by the
room's moderators only — boshcm's reading of §10.2 (Prosody shows it to nobody): moderators moderate whom they
can see. Every room says so in disco#info (`NS_MODERATORS_SEE_ALL`). The room keeps its moderators in a list
(`Room.moderators()`), so such an occupant's presence costs O(moderators), not O(room).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from boshcm.jid import JID
from boshcm.xmpp.muc.roles import Role

if TYPE_CHECKING:
    from boshcm.xmpp.muc.config import RoomConfig
    from boshcm.xmpp.muc.room import Occupant, Room

# boshcm's own disco#info feature: occupants whose role muc#roomconfig_presencebroadcast leaves out are still shown
# to the room's moderators (XEP-0045 §10.2 as boshcm reads it; Prosody shows them to nobody).
NS_MODERATORS_SEE_ALL = "urn:boshcm:muc:moderators-see-all:0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sight:
    """These sessions start (`shown`) or stop seeing the occupant's presence (as if it had joined or left)."""

    occupant: Occupant
    to: tuple[JID, ...]
    shown: bool


def broadcast(room: Room, occupant: Occupant) -> bool:
    """XEP-0045 §10.2 muc#roomconfig_presencebroadcast: is this occupant's presence shown to everyone?"""
    return occupant.role in broadcast_roles(room.config, crowded=room.crowded)


def broadcast_roles(config: RoomConfig, *, crowded: bool) -> tuple[Role, ...]:
    """The roles whose presence everyone sees: the form's (§10.2); of them only the moderators' while the room is
    crowded (`RoomConfig.quiet_above`)."""
    roles = config.presence_broadcast
    return tuple(role for role in roles if role == Role.MODERATOR) if crowded else roles


def is_crowded(config: RoomConfig, occupants: int, *, was: bool) -> bool:
    """Crowded with more occupants than `quiet_above`, and until fewer than half of it are left, so that a room
    hovering at the threshold does not flip (each change walks the room). `quiet_above` 0: never."""
    if config.quiet_above <= 0:
        return False
    return occupants * 2 >= config.quiet_above if was else occupants > config.quiet_above


def audience(room: Room, occupant: Occupant) -> list[JID]:
    """Who sees this occupant's presence: everyone, or (a role not broadcast) its own sessions and the
    moderators' — O(moderators), so a quiet room's join stays O(1) stanzas."""
    if broadcast(room, occupant):
        return room.real_jids()
    return [*occupant.real_jids, *moderator_sessions(room, besides=occupant)]


def moderator_sessions(room: Room, *, besides: Occupant) -> list[JID]:
    return [real for moderator in room.moderators() if moderator is not besides for real in moderator.real_jids]


def seen_on_joining(room: Room, role: Role, *, besides: Occupant | None) -> list[Occupant]:
    """XEP-0045 §7.2.3: the occupants whose presence a joiner with this role gets — the broadcast roles', or
    everyone's for a moderator (`besides`: the occupant the joiner's session is joining, if already here)."""
    if role != Role.MODERATOR and set(broadcast_roles(room.config, crowded=room.crowded)) <= {Role.MODERATOR}:
        # A quiet room (only moderators broadcast, or nobody): O(moderators) per join, not O(room), or 2,000
        # players joining one room would walk it two million times.
        return [other for other in room.moderators() if other is not besides and broadcast(room, other)]
    return [other for other in room.occupants()
            if other is not besides and (role == Role.MODERATOR or broadcast(room, other))]


def leave_audience(room: Room, occupant: Occupant) -> list[JID]:
    """Who sees an occupant leave, once it is out of the room's tables (its leaving session is told apart)."""
    return room.real_jids() if broadcast(room, occupant) else moderator_sessions(room, besides=occupant)


def hidden_by_role_change(room: Room, occupant: Occupant, *, was_broadcast: bool) -> list[JID]:
    """Whoever drops an occupant whose new role is no longer broadcast, as if it had left: everyone but itself and
    the moderators (who get its new role)."""
    if not was_broadcast or broadcast(room, occupant):
        return []
    keeps = {*occupant.real_jids, *moderator_sessions(room, besides=occupant)}
    return [real for real in room.real_jids() if real not in keeps]


def moderator_changed(room: Room, occupant: Occupant) -> list[Sight]:
    """After an occupant became or stopped being a moderator: it gets the occupants whose role is not broadcast,
    or drops them."""
    shown = occupant.role == Role.MODERATOR
    return [Sight(occupant=other, to=tuple(occupant.real_jids), shown=shown) for other in room.occupants()
            if other is not occupant and not broadcast(room, other)]


def broadcast_changed(room: Room, previous: tuple[Role, ...]) -> list[Sight]:
    """After the roles broadcast changed from `previous` (the owner's form, XEP-0045 §10.2, or the room's crowd
    crossing `quiet_above`): occupants whose role stopped being broadcast vanish for those who are not moderators,
    and those whose role became broadcast appear for them; moderators saw them all along."""
    current = broadcast_roles(room.config, crowded=room.crowded)
    if previous == current:
        return []
    out: list[Sight] = []
    onlookers: list[JID] | None = None
    for occupant in room.occupants():
        was_broadcast = occupant.role in previous
        if was_broadcast == (occupant.role in current):
            continue
        if onlookers is None:
            onlookers = [real for other in room.occupants() if other.role != Role.MODERATOR
                         for real in other.real_jids]
        others = tuple(real for real in onlookers if real not in occupant.real_jids)
        out.append(Sight(occupant=occupant, to=others, shown=not was_broadcast))
    return out
