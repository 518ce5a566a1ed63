"""XEP-0280 message carbons (urn:xmpp:carbons:2): which resources asked for copies, and the copies themselves.

Theory of operation. A resource enables or disables carbons for itself with an iq to its own account; the
router keeps one `Carbons` table of the resources that did and asks it, for each chat message an account
sends or receives, which other resources of the account get a copy. A copy is a message from the account's
bare JID wrapping the original in `<sent/>` or `<received/>` and a XEP-0297 `<forwarded/>`: only the server
can send from a bare JID, which is how a client tells a real carbon from a forged one (XEP-0280 §11).

Eligible (XEP-0280 §6): messages of type chat, and of type normal with a body; never groupchat, errors or
headlines; never a message marked `<private/>` (XEP-0280 §7) or `<no-copy/>` (XEP-0334); not MUC private
messages (their copies would reach resources that are not in the room).

Pure: no I/O, no time.
"""

from __future__ import annotations

from boshcm.errors import StanzaErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, Element, clone, error_reply, first_child, iq_result, make_stanza, qname, sub

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

_NOT_COPIED = frozenset({qname(NS_CARBONS, "private"), qname(NS_HINTS, "no-copy"), qname(NS_MUC_USER, "x"),
                         # a client must not make the server copy a copy
                         qname(NS_CARBONS, "sent"), qname(NS_CARBONS, "received")})


class Carbons:
    """The resources that enabled carbons; forgotten when they unbind."""

    __slots__ = ("_enabled",)

    def __init__(self) -> None:
        self._enabled: set[JID] = set()

    def is_enabled(self, jid: JID) -> bool:
        return jid in self._enabled

    def resource_gone(self, jid: JID) -> None:
        self._enabled.discard(jid)

    def handles(self, iq: Element) -> bool:
        payload = first_child(iq)
        return payload is not None and payload.tag in (qname(NS_CARBONS, "enable"), qname(NS_CARBONS, "disable"))

    def handle_iq(self, sender: JID, iq: Element) -> Element:
        """XEP-0280 §4: enable or disable for the sending resource; the reply to send."""
        payload = first_child(iq)
        assert payload is not None
        if iq.get("type") != "set":
            return error_reply(iq, StanzaErrorCondition.BAD_REQUEST)
        if payload.tag == qname(NS_CARBONS, "enable"):
            self._enabled.add(sender)
        else:
            self._enabled.discard(sender)
        return iq_result(iq)

    def copies_to(self, resources: list[JID], *, skip: set[JID]) -> list[JID]:
        """Of an account's bound `resources`, those that get a copy (enabled, and not already served)."""
        return [jid for jid in resources if jid in self._enabled and jid not in skip]


def eligible(message: Element) -> bool:
    """XEP-0280 §6 (and the hints above): is this message copied at all?"""
    message_type = message.get("type", "normal")
    if message_type == "chat":
        pass
    elif message_type != "normal" or message.find(qname(NS_CLIENT, "body")) is None:
        return False
    return not any(child.tag in _NOT_COPIED for child in message)


def carbon_copy(direction: str, account: JID, to: JID, message: Element) -> Element:
    """XEP-0280 §5/§6: `direction` is 'sent' or 'received'; the copy comes from the account's bare JID."""
    wrapper = make_stanza("message", {"from": str(account.bare), "to": str(to), "type": message.get("type", "normal")})
    forwarded = sub(sub(wrapper, NS_CARBONS, direction), NS_FORWARD, "forwarded")
    forwarded.append(clone(message))
    return wrapper
