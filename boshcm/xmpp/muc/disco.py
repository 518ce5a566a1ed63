"""What a room says about itself in disco#info (XEP-0030, XEP-0045 §6.4), pure: a function of the room."""

from __future__ import annotations

from typing import TYPE_CHECKING

from boshcm.stanza import NS_DATA_FORMS, NS_DISCO_INFO, Element, element, sub
from boshcm.xmpp.muc.namespaces import NS_MUC, NS_OCCUPANT_ID, NS_STANZA_ID
from boshcm.xmpp.muc.visibility import NS_MODERATORS_SEE_ALL

if TYPE_CHECKING:
    from boshcm.xmpp.muc.room import Room


def room_info(room: Room) -> Element:
    """The room's identity, its features (muc_* by its configuration) and the muc#roominfo form."""
    config = room.config
    info = element(NS_DISCO_INFO, "query")
    sub(info, NS_DISCO_INFO, "identity", {"category": "conference", "type": "text",
                                          "name": config.name or room.jid.local or ""})
    features = [NS_MUC, NS_STANZA_ID, NS_OCCUPANT_ID, NS_DISCO_INFO, "urn:xmpp:ping",
                "muc_public" if config.public else "muc_hidden",
                "muc_persistent" if config.persistent else "muc_temporary",
                "muc_passwordprotected" if config.password else "muc_unsecured",
                "muc_membersonly" if config.members_only else "muc_open",
                "muc_moderated" if config.moderated else "muc_unmoderated",
                "muc_nonanonymous" if config.whois == "anyone" else "muc_semianonymous",
                # Always: how this room treats a restricted muc#roomconfig_presencebroadcast (§10.2), so an
                # owner can tell before restricting it (docs/protocol.md).
                NS_MODERATORS_SEE_ALL]
    for feature in features:
        sub(info, NS_DISCO_INFO, "feature", {"var": feature})
    form = sub(info, NS_DATA_FORMS, "x", {"type": "result"})
    for var, value in (("FORM_TYPE", "http://jabber.org/protocol/muc#roominfo"),
                       ("muc#roominfo_description", config.description),
                       ("muc#roominfo_occupants", str(room.occupant_count)),
                       ("muc#roominfo_subject", room.state.subject)):
        sub(sub(form, NS_DATA_FORMS, "field", {"var": var}), NS_DATA_FORMS, "value", text=value)
    return info
