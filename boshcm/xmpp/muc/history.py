"""A room's discussion history (XEP-0045 §7.2.15), pure: the last messages with a body, and what a joiner asks of
them (`maxstanzas`, `maxchars`, `seconds`, `since`), sent with a delay stamp from the room."""

from __future__ import annotations

import datetime
from collections import deque
from dataclasses import dataclass

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import NS_CLIENT, NS_DELAY, Element, addressed_copy, qname, sub
from boshcm.timestamps import xep0082
from boshcm.xmpp.mam import remove_stanza_id

NS_MUC = "http://jabber.org/protocol/muc"


@dataclass(slots=True)
class _Entry:
    stanza: Element
    at: float      # monotonic, for `seconds`
    wall: float    # for `since` and the delay stamp
    size: int      # serialized bytes, for `maxchars`


class History:
    def __init__(self, room: JID) -> None:
        self._room = room
        self._entries: deque[_Entry] = deque()

    def remember(self, message: Element, *, length: int, now: float, wall: float) -> None:
        """Keep a reflected groupchat message; only messages with a body are history, at most `length`."""
        if length <= 0 or message.find(qname(NS_CLIENT, "body")) is None:
            return
        self._entries.append(_Entry(stanza=message, at=now, wall=wall, size=len(etree.tostring(message))))
        while len(self._entries) > length:
            self._entries.popleft()

    def unstamp(self, stanza_id: str) -> None:
        """The room's archive did not keep the message with this stanza-id: joiners get it without the id."""
        for entry in self._entries:
            remove_stanza_id(entry.stanza, stanza_id)

    def for_joiner(self, to: JID, muc: Element | None, now: float) -> list[Element]:
        """What a joiner gets, as its `<x xmlns='…muc'><history …/></x>` asks (all of it when it does not ask)."""
        request = muc.find(qname(NS_MUC, "history")) if muc is not None else None
        entries = list(self._entries)
        if request is not None:
            if (seconds := _int_attr(request, "seconds")) is not None:
                entries = [e for e in entries if now - e.at <= seconds]
            if (since := request.get("since")) is not None:
                cutoff = _parse_stamp(since)
                if cutoff is not None:
                    entries = [e for e in entries if e.wall > cutoff]
            if (max_stanzas := _int_attr(request, "maxstanzas")) is not None:
                entries = entries[len(entries) - max_stanzas:] if max_stanzas > 0 else []
            if (max_chars := _int_attr(request, "maxchars")) is not None:
                kept: list[_Entry] = []
                total = 0
                for entry in reversed(entries):
                    total += entry.size
                    if total > max_chars:
                        break
                    kept.append(entry)
                entries = list(reversed(kept))
        out = []
        for entry in entries:
            message = addressed_copy(entry.stanza, to)
            sub(message, NS_DELAY, "delay", {"from": str(self._room), "stamp": xep0082(entry.wall)})
            out.append(message)
        return out


def _int_attr(node: Element, name: str) -> int | None:
    value = node.get(name)
    return int(value) if value is not None and value.isdigit() else None


def _parse_stamp(text: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
