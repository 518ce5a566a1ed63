"""A room's owner operations (XEP-0045 §10): the muc#owner iq — the configuration form, its submission, and
destroying the room.

Pure like the room: functions of the room they act on, answering with the stanzas to send.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_DATA_FORMS, Element, element, error_reply, iq_result, make_stanza, qname, sub
from boshcm.xmpp.muc.config import config_form, parse_config_submission
from boshcm.xmpp.muc.namespaces import NS_MUC_OWNER, NS_MUC_USER
from boshcm.xmpp.muc.roles import Affiliation, Role

if TYPE_CHECKING:
    from boshcm.xmpp.muc.room import Room


def owner_iq(room: Room, sender: JID, iq: Element, payload: Element, now: float) -> list[Element]:
    if room.affiliation(sender) != Affiliation.OWNER:
        return [error_reply(iq, StanzaErrorCondition.FORBIDDEN)]
    if iq.get("type") == "get":
        query = element(NS_MUC_OWNER, "query")
        query.append(config_form(dataclasses.replace(room.config, max_users=room.max_users)))
        return [iq_result(iq, query)]
    destroy = payload.find(qname(NS_MUC_OWNER, "destroy"))
    if destroy is not None:
        return [iq_result(iq),
                *destroy_room(room, destroy.findtext(qname(NS_MUC_OWNER, "reason")), destroy.get("jid"))]
    form = payload.find(qname(NS_DATA_FORMS, "x"))
    if form is None:
        return [error_reply(iq, StanzaErrorCondition.BAD_REQUEST)]
    if form.get("type") == "cancel":
        return [iq_result(iq)]
    previous = room.config
    try:
        submitted = parse_config_submission(form, room.config)
    except ValueError as problem:
        return [error_reply(iq, StanzaErrorCondition.NOT_ACCEPTABLE, text=str(problem))]
    if submitted.max_users > room.limits.max_occupants:
        return [error_reply(iq, StanzaErrorCondition.NOT_ACCEPTABLE,
                            text=f"At most {room.limits.max_occupants} occupants")]
    if submitted.persistent and not previous.persistent and room.is_guest(sender):
        return [error_reply(iq, StanzaErrorCondition.NOT_ALLOWED, text="Guests may only make temporary rooms")]
    room.state.config = submitted
    room.locked = False  # XEP-0045 §10.1.2/§10.1.3: instant or configured, the room opens
    out = [iq_result(iq)]
    if room.config == previous:
        return out  # nothing changed (e.g. the instant-room form): no 104, as Prosody
    notice = []
    for recipient in room.real_jids():
        message = make_stanza("message", {"type": "groupchat", "from": str(room.jid), "to": str(recipient),
                                          "id": room.new_id()})
        sub(sub(message, NS_MUC_USER, "x"), NS_MUC_USER, "status", {"code": "104"})
        notice.append(message)
    return out + notice + room.config_changed(previous)


def destroy_room(room: Room, reason: str | None, alternate: str | None) -> list[Element]:
    out = []
    for occupant in room.occupants():
        for real in occupant.real_jids:
            presence = make_stanza("presence", {"type": "unavailable", "to": str(real),
                                                "from": str(room.jid.with_resource(occupant.nick))})
            x = sub(presence, NS_MUC_USER, "x")
            sub(x, NS_MUC_USER, "item", {"affiliation": Affiliation.NONE, "role": Role.NONE})
            destroy = sub(x, NS_MUC_USER, "destroy", {"jid": alternate} if alternate else None)
            if reason:
                sub(destroy, NS_MUC_USER, "reason", text=reason)
            out.append(presence)
    room.destroy()
    return out
