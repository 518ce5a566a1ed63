"""What the XMPP adapter tells the bot (facts) and what the bot tells the adapter to do (orders).

Facts carry only what the protocol proved: the real bare JID of an occupant is present only when the room
disclosed it (the bot is a moderator, or the room is non-anonymous); the occupant-id only when the room
supports XEP-0421.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from quizbot.payload import AnswerPayload

# --- facts ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomEntered:
    """The bot's own join completed (self-presence, status 110)."""

    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomLeft:
    """The bot is out of the room (kicked, banned, room destroyed, or the connection dropped)."""

    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OccupantPresence:
    room: str
    nick: str
    available: bool
    real_jid: str | None = None  # bare
    occupant_id: str | None = None
    role: str = "participant"
    affiliation: str = "none"
    new_nick: str | None = None  # status 303: the occupant is now known under this nick
    host: bool = False  # a <host/> quiz payload in its presence: a projector's host view watches, never plays


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMessage:
    room: str
    nick: str
    body: str
    answer: AnswerPayload | None = None
    own: bool = False
    reflected_question: str | None = None  # the id in our own <question/>, seen coming back from the room
    quiz_payloads: tuple[str, ...] = ()  # local names of the urn:boshcm:quiz:0 elements it carries
    command: str | None = None  # a <command/> payload as typed after the prefix: "quiz live 10"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateMessage:
    """A direct chat message. `room`/`nick` are set when it came through a room (a MUC private message)."""

    sender: str  # full JID as it arrived
    body: str
    answer: AnswerPayload | None = None
    room: str | None = None
    nick: str | None = None
    occupant_id: str | None = None  # XEP-0421, set by the room on a message through it
    quiz_payloads: tuple[str, ...] = ()  # local names of the urn:boshcm:quiz:0 elements it carries
    command: str | None = None  # a <command/> payload as typed after the prefix: "score"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTrip:
    room: str
    nick: str
    seconds: float


Fact = RoomEntered | RoomLeft | OccupantPresence | RoomMessage | PrivateMessage | RoundTrip

# --- orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    to: str  # a room's bare JID (groupchat) or a full/bare JID or room/nick (chat)
    body: str
    payload: tuple[etree._Element, ...] = ()
    groupchat: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinRoom:
    room: str
    public: bool = True  # configuration to apply if the join creates the room
    owner: str | None = None  # bare JID made owner once the bot is in (rooms made by !newgame)
    name: str = "Quiz"  # muc#roomconfig_roomname, if the join creates the room


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveRoom:
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    """Both kinds: XEP-0249 direct (to the invitee) and XEP-0045 §7.8.2 mediated (through the room)."""

    room: str
    jid: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """Measure an occupant's round trip through the room (XEP-0199 ping to room/nick); answer with RoundTrip."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadBanks:
    """Read the question banks again; the adapter calls QuizBot.set_banks with the result."""

    reply_to: str


Order = Send | JoinRoom | LeaveRoom | Invite | Ping | ReloadBanks


@dataclass(slots=True)
class Orders:
    items: list[Order] = field(default_factory=list)

    def say(self, to: str, body: str, *payload: etree._Element, groupchat: bool = False) -> None:
        self.items.append(Send(to=to, body=body, payload=payload, groupchat=groupchat))
