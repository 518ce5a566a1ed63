"""Ids only the room assigns, never taken from a client (XEP-0421 occupant-id, XEP-0359 stanza-id by the room or its
service): pure functions that strip what a client claims on every path; the room adds its own where it adds them."""

from __future__ import annotations

from lxml import etree

from boshcm.jid import JID, InvalidJID
from boshcm.stanza import Element, clone, make_stanza, qname
from boshcm.xmpp.muc.namespaces import NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID, NS_STANZA_ID


def clean_presence(room: JID, stanza: Element) -> Element:
    """The occupant's presence as others see it: show, status, priority, extensions; no MUC join element and no id
    only the room may assign."""
    presence = make_stanza("presence")
    for child in stanza:
        if isinstance(child.tag, str) and etree.QName(child).namespace not in (NS_MUC, NS_MUC_USER) \
                and not claims_room_id(room, child):
            presence.append(clone(child))
    return presence


def strip_room_ids(room: JID, stanza: Element) -> None:
    for child in list(stanza):
        if isinstance(child.tag, str) and claims_room_id(room, child):
            stanza.remove(child)


def claims_room_id(room: JID, child: Element) -> bool:
    """XEP-0421 §4: occupant-ids come only from the room; XEP-0359 §3.1: a stanza-id by this room (or anything on
    its service) from a client is forged."""
    if child.tag == qname(NS_OCCUPANT_ID, "occupant-id"):
        return True
    if child.tag != qname(NS_STANZA_ID, "stanza-id"):
        return False
    try:
        return JID.parse(child.get("by", "")).domain == room.domain
    except InvalidJID:
        return False
