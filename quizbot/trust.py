"""Which `urn:boshcm:quiz:0` payloads a client may believe (pure): only the bot speaks for the bot.

Any occupant can put a `<question/>` ("Type your password to win"), `<scores/>` or `<room jid=…/>` into a
message. A client therefore believes a quiz payload only
- in a room: from the bot's occupant JID, carrying the XEP-0421 occupant-id seen in the bot's presence (the
  room sets it and strips forged ones); the bot's occupant is the one whose presence shows it as the room's
  owner under the bot's nick (possibly with a number, after a nick conflict) and, where the room discloses
  real JIDs, with the bot's bare JID; the first such occupant is the bot until it leaves;
- in a direct message: from the bot's real JID, never from a room occupant (MUC private messages).
Everything else carrying a quiz payload is to be dropped whole, not shown as chat either. The browser page
(quizbot/web/app.js, `BotWatch`) applies the same rule; the tests' players use this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

NS = "urn:boshcm:quiz:0"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"


@dataclass(frozen=True, slots=True, kw_only=True)
class BotOccupant:
    nick: str
    occupant_id: str | None  # None only in rooms without XEP-0421


def _bare(jid: str) -> str:
    return jid.partition("/")[0].lower()


def _child(stanza: etree._Element, namespace: str, name: str) -> etree._Element | None:
    for child in stanza:
        if isinstance(child.tag, str) and child.tag == f"{{{namespace}}}{name}":
            return child
    return None


def has_quiz_payload(stanza: etree._Element) -> bool:
    return any(isinstance(child.tag, str) and child.tag.startswith(f"{{{NS}}}") for child in stanza)


class BotWatch:
    """Feed it every presence and message from rooms; ask `trusted(message)` before reading quiz payloads."""

    def __init__(self, *, bot_jid: str, bot_nick: str) -> None:
        self._bot_jid = _bare(bot_jid)
        self._nick = re.compile(rf"{re.escape(bot_nick)}\d*")
        self.bots: dict[str, BotOccupant] = {}  # room bare JID -> the bot's occupant there

    def presence(self, stanza: etree._Element) -> None:
        room, _, nick = (stanza.get("from") or "").partition("/")
        room = room.lower()
        if not nick:
            return
        known = self.bots.get(room)
        if stanza.get("type") in ("unavailable", "error"):
            if known is not None and known.nick == nick:
                del self.bots[room]  # gone (or renamed): whoever comes next must prove it again
            return
        if known is not None and known.nick != nick:
            return  # the first bot occupant stays the bot
        x = _child(stanza, NS_MUC_USER, "x")
        item = _child(x, NS_MUC_USER, "item") if x is not None else None
        if item is None or item.get("affiliation") != "owner" or not self._nick.fullmatch(nick):
            if known is not None:
                del self.bots[room]  # the bot's nick now belongs to someone else
            return
        real = item.get("jid")
        if real is not None and _bare(real) != self._bot_jid:
            return
        occupant_id = _child(stanza, NS_OCCUPANT_ID, "occupant-id")
        self.bots[room] = BotOccupant(nick=nick, occupant_id=occupant_id.get("id") if occupant_id is not None
                                      else None)

    def trusted(self, message: etree._Element) -> bool:
        """Whether this message's quiz payloads come from the bot."""
        sender = message.get("from") or ""
        if message.get("type") != "groupchat":
            return _bare(sender) == self._bot_jid
        room, _, nick = sender.partition("/")
        bot = self.bots.get(room.lower())
        if bot is None or nick != bot.nick:
            return False
        seen = [child.get("id") for child in message if child.tag == f"{{{NS_OCCUPANT_ID}}}occupant-id"]
        return seen == ([bot.occupant_id] if bot.occupant_id is not None else [])
