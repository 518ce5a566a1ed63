"""A room's subject (XEP-0045 §8.1), pure: functions of the room, answering with the messages to send.

The subject is part of the room's state (it is stored with persistent rooms); every joiner gets it last, even when
empty, because clients such as slixmpp's join_muc_wait take it as "joined" (§7.2.15).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, Element, error_reply, make_stanza, sub
from boshcm.xmpp.muc.namespaces import NS_OCCUPANT_ID
from boshcm.xmpp.muc.roles import Role

if TYPE_CHECKING:
    from boshcm.xmpp.muc.room import Occupant, Room


def set_subject(room: Room, occupant: Occupant, subject: str, stanza: Element) -> list[Element]:
    """A moderator (or a participant, where the room lets them) changes the subject; everyone is told."""
    if occupant.role != Role.MODERATOR and not (room.config.change_subject and occupant.role == Role.PARTICIPANT):
        return [error_reply(stanza, StanzaErrorCondition.FORBIDDEN)]
    room.state.subject = subject
    room.state.subject_from = occupant.nick
    return [subject_message(room, recipient) for recipient in room.real_jids()]


def subject_message(room: Room, to: JID) -> Element:
    """The subject as a groupchat message from whoever set it (or the room)."""
    state = room.state
    sender = room.jid.with_resource(state.subject_from) if state.subject_from else room.jid
    message = make_stanza("message", {"type": "groupchat", "from": str(sender), "to": str(to), "id": room.new_id()})
    sub(message, NS_CLIENT, "subject", text=state.subject or None)
    setter = room.occupant_named(state.subject_from) if state.subject_from else None
    if setter is not None:
        sub(message, NS_OCCUPANT_ID, "occupant-id", {"id": room.occupant_id(setter.bare)})
    return message
