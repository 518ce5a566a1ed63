"""XEP-0352 client state indication: what a session holds back while its client says it is inactive.

Theory of operation. A `ClientState` sits between everything the server sends a client and the wire (it is
used by `ClientSession._to_client`). While the client is active, every stanza goes out at once. While it is
inactive (a phone in a pocket), stanzas that only matter for what the screen shows are held: presence
(available and unavailable) and standalone chat states (XEP-0085 messages without a body, in rooms too). Both are
coalesced per sender full JID — only the latest presence, the latest chat state of each contact is worth a
radio wake-up later. Anything else (a message with a body, an iq, a subscription request, an error) goes out
at once, preceded by everything held, so the client sees stanzas in the order the server produced them
(a held "composing" never arrives after the message it announced). `<active/>` flushes everything held.

Held stanzas are bounded (`max_held` senders): reaching the bound flushes them rather than dropping any.

This file knows nothing of streams, stream management or time.
"""

from __future__ import annotations

from boshcm.stanza import NS_CLIENT, Element, local_name, namespace_of, qname

NS_CSI = "urn:xmpp:csi:0"
NS_CHAT_STATES = "http://jabber.org/protocol/chatstates"
DEFAULT_MAX_HELD = 256

_BODY = qname(NS_CLIENT, "body")


class ClientState:
    """One session's CSI state; every outgoing stanza passes `outgoing()`."""

    __slots__ = ("_held", "_inactive", "_max_held")

    def __init__(self, *, max_held: int = DEFAULT_MAX_HELD) -> None:
        self._inactive = False
        self._max_held = max_held
        # (kind, sender full JID) -> the latest such stanza; dict order is the order they went on hold.
        self._held: dict[tuple[str, str], Element] = {}

    @property
    def inactive(self) -> bool:
        return self._inactive

    @property
    def held(self) -> int:
        return len(self._held)

    def set_inactive(self) -> list[Element]:
        """XEP-0352 §5: from now on, hold what can wait."""
        self._inactive = True
        return []

    def set_active(self) -> list[Element]:
        """XEP-0352 §5: the client looks again: everything held, in order."""
        self._inactive = False
        return self.flush()

    def flush(self) -> list[Element]:
        released = list(self._held.values())
        self._held.clear()
        return released

    def outgoing(self, stanza: Element) -> list[Element]:
        """What to send now for `stanza`: nothing (held), or what was held followed by the stanza."""
        if not self._inactive:
            return [stanza]
        kind = _holdable(stanza)
        if kind is None:
            return [*self.flush(), stanza]
        key = (kind, stanza.get("from", ""))
        # Coalesce: a newer one replaces the old and takes its place at the end of the order.
        self._held.pop(key, None)
        self._held[key] = stanza
        if len(self._held) > self._max_held:
            return self.flush()
        return []


def _holdable(stanza: Element) -> str | None:
    """'presence' or 'chatstate' for stanzas that may wait, else None."""
    kind = local_name(stanza)
    if kind == "presence":
        # Subscription requests and errors need the user's attention or an answer: never held.
        return "presence" if stanza.get("type") in (None, "unavailable") else None
    if kind == "message" and stanza.get("type") != "error":
        children = [child for child in stanza if isinstance(child.tag, str)]
        if children and stanza.find(_BODY) is None \
                and all(namespace_of(child) == NS_CHAT_STATES for child in children):
            return "chatstate"
    return None
