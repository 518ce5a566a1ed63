"""A room's mediated invitations and declines (XEP-0045 §7.8.2).

Pure like the room: a function of the room, answering with the message to send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID, InvalidJID
from boshcm.stanza import NS_CLIENT, Element, error_reply, make_stanza, qname, sub
from boshcm.xmpp.muc.namespaces import NS_MUC_USER
from boshcm.xmpp.muc.roles import Affiliation

if TYPE_CHECKING:
    from boshcm.xmpp.muc.room import Room


def invitation(room: Room, sender: JID, nick: str | None, stanza: Element, x: Element) -> list[Element]:
    """XEP-0045 §7.8.2 mediated invitations and declines."""
    invite = x.find(qname(NS_MUC_USER, "invite"))
    if invite is not None:
        if nick is None:
            return [error_reply(stanza, StanzaErrorCondition.NOT_ACCEPTABLE)]
        if room.config.members_only and room.affiliation(sender).rank < Affiliation.ADMIN.rank \
                and not room.config.allow_invites:
            return [error_reply(stanza, StanzaErrorCondition.FORBIDDEN)]
        try:
            invitee = JID.parse(invite.get("to", ""))
        except InvalidJID:
            return [error_reply(stanza, StanzaErrorCondition.JID_MALFORMED)]
        if room.config.members_only and room.affiliation(invitee) == Affiliation.NONE:
            room.state.affiliations[invitee.bare] = Affiliation.MEMBER
        message = make_stanza("message", {"from": str(room.jid), "to": str(invitee)})
        out_x = sub(message, NS_MUC_USER, "x")
        forwarded = sub(out_x, NS_MUC_USER, "invite", {"from": str(sender.bare)})
        if (reason := invite.findtext(qname(NS_MUC_USER, "reason"))) is not None:
            sub(forwarded, NS_MUC_USER, "reason", text=reason)
        if room.config.password:
            sub(out_x, NS_MUC_USER, "password", text=room.config.password)
        body = f"{sender.bare} invites you to the room {room.jid}"
        sub(message, NS_CLIENT, "body", text=body + (f": {reason}" if reason else ""))
        return [message]
    decline = x.find(qname(NS_MUC_USER, "decline"))
    assert decline is not None
    try:
        inviter = JID.parse(decline.get("to", ""))
    except InvalidJID:
        return [error_reply(stanza, StanzaErrorCondition.JID_MALFORMED)]
    message = make_stanza("message", {"from": str(room.jid), "to": str(inviter)})
    forwarded = sub(sub(message, NS_MUC_USER, "x"), NS_MUC_USER, "decline", {"from": str(sender.bare)})
    if (reason := decline.findtext(qname(NS_MUC_USER, "reason"))) is not None:
        sub(forwarded, NS_MUC_USER, "reason", text=reason)
    return [message]
