"""Reserved nicknames (XEP-0045 §7.10-style registered nicks), pure: the last nick of each affiliated account
(member, admin, owner) stays theirs while they are away, look-alikes included — how a bot that owns its room
keeps its name (as Prosody's registered nicks).

The table of nicks by account is the room's state (`RoomState.nicks`, stored with persistent rooms); this class
keeps it and its index by comparison key (`nick.py`) in step, so a join checks a nick with one lookup per key.
"""

from __future__ import annotations

from collections.abc import Callable

from boshcm.jid import JID
from boshcm.xmpp.muc.nick import Nick, NickRefused, parse_nick
from boshcm.xmpp.muc.roles import Affiliation


class ReservedNicks:
    def __init__(self, nicks: dict[JID, str], affiliation: Callable[[JID], Affiliation]) -> None:
        self._nicks = nicks                    # affiliated account -> its nick (the room's stored state)
        self._affiliation = affiliation
        self._by_key: dict[str, JID] = {}      # nick comparison key -> affiliated account
        for bare, nick in list(nicks.items()):
            self._reserve(bare, nick)

    def for_other(self, nick: Nick, bare: JID) -> bool:
        """Is this nick, or a look-alike, another affiliated account's?"""
        for key in nick.keys:
            owner = self._by_key.get(key)
            if owner is not None and owner != bare and self._affiliation(owner).rank >= Affiliation.MEMBER.rank:
                return True
        return False

    def register(self, bare: JID, nick: str) -> None:
        """An occupant's nick, kept for its account if that is affiliated (a former nick of it is released)."""
        if self._affiliation(bare).rank < Affiliation.MEMBER.rank:
            return
        if self._nicks.get(bare) == nick:
            return
        self.release(bare)
        self._nicks[bare] = nick
        self._reserve(bare, nick)

    def release(self, bare: JID) -> None:
        old = self._nicks.pop(bare, None)
        if old is None:
            return
        try:
            keys = parse_nick(old).keys
        except NickRefused:
            return
        for key in keys:
            if self._by_key.get(key) == bare:
                del self._by_key[key]

    def _reserve(self, bare: JID, nick: str) -> None:
        try:
            keys = parse_nick(nick).keys
        except NickRefused:
            return
        for key in keys:
            self._by_key.setdefault(key, bare)
