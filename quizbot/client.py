"""The slixmpp adapter around the pure QuizBot: stanzas in as facts, orders out as stanzas and store writes,
one timer.

Storage orders are written to the QuizStore as they come (synchronously: one small SQLite transaction each, in
WAL mode with synchronous=NORMAL, well under a millisecond); a read order (`!top`, `!stats`, `!admin review`) is
answered from the store at once and its answer fed back to the bot as a fact.

It keeps the bot present: reconnects after the server goes away, rejoins its rooms after a reconnect or a
kick (with a growing pause while a room refuses it), checks each room with MUC self-ping (XEP-0410), joins
without history and tells the bot which groupchat messages are its own reflections.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import ssl
import time
import xml.etree.ElementTree as ElementTree
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import slixmpp
from lxml import etree
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.matcher.base import MatcherBase
from slixmpp.xmlstream.stanzabase import StanzaBase

from boshcm.clock import Clock, SystemClock
from boshcm.stanza import NS_CLIENT, NS_PING, make_stanza, sub
from boshcm.xml.writer import serialize
from quizbot import payload
from quizbot.bot import QuizBot
from quizbot.events import (
    Fact,
    Invite,
    JoinRoom,
    LeaveRoom,
    OccupantPresence,
    Order,
    Ping,
    PrivateMessage,
    Read,
    ReloadBanks,
    RoomEntered,
    RoomLeft,
    RoomMessage,
    RoundTrip,
    Send,
    StorageOrder,
)
from quizbot.questions import BankSet
from quizbot.store import QuizStore

log = logging.getLogger(__name__)

NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_DELAY = "urn:xmpp:delay"
NS_DATA = "jabber:x:data"
# XEP-0410 §3: these errors mean "still joined" (the client just does not answer pings).
STILL_JOINED = frozenset({"service-unavailable", "feature-not-implemented"})
PING_ID_PREFIX = "quizbot-rtt-"
PING_TIMEOUT_SECONDS = 5.0
# boshcm's room field (docs/protocol.md): above this many occupants the room itself broadcasts only moderators'
# presence, switching at the join that crosses it. Its moderators still see every occupant, so the bot still sees
# every player.
QUIET_ABOVE = "{urn:boshcm:muc:0}roomconfig_quietabove"


class _PingAnswers(MatcherBase):
    """The answers to the bot's raw round-trip pings: one cheap test per stanza, whatever the number pending."""

    def __init__(self) -> None:
        super().__init__(None)

    def match(self, xml: StanzaBase) -> bool:
        element = xml.xml
        return (element.tag == "{jabber:client}iq" and element.get("type") in ("result", "error")
                and element.get("id", "").startswith(PING_ID_PREFIX))


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    jid: str
    password: str
    server: tuple[str, int] | None = None
    ca_file: Path | None = None
    verify_tls: bool = True


def _lxml(stanza: Any) -> etree._Element:
    return etree.fromstring(ElementTree.tostring(stanza.xml))


def _quiz_payloads(element: etree._Element) -> tuple[str, ...]:
    return tuple(etree.QName(child).localname for child in element
                 if isinstance(child.tag, str) and etree.QName(child).namespace == payload.NS)


def _values(submitted: Any, fields: tuple[str, ...]) -> tuple[str, ...]:
    """The submitted data form (slixmpp hands over the form, or a list of payloads) as argument strings."""
    form = next((item for item in submitted if "values" in item.interfaces), None) if isinstance(
        submitted, list) else submitted
    values = form["values"] if form is not None else {}
    return tuple(str(values.get(name, "")).strip() for name in fields)


def _tls_context(connection: Connection) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(connection.ca_file) if connection.ca_file else None)
    if not connection.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class QuizBotClient:
    def __init__(self, bot: QuizBot, connection: Connection, *, store: QuizStore, nick: str,
                 reload_banks: Callable[[], tuple[BankSet, list[str]]], self_ping_seconds: float = 60.0,
                 clock: Clock | None = None) -> None:
        self.bot = bot
        self.store = store
        self._connection = connection
        self._nick = nick
        self._reload_banks = reload_banks
        self._self_ping_seconds = self_ping_seconds
        self._clock = clock or SystemClock()
        # Our own context, handed in: slixmpp would otherwise load the system's CA store for one of its own.
        self.xmpp = slixmpp.ClientXMPP(connection.jid, connection.password, ssl_context=_tls_context(connection))
        for plugin in ("xep_0030", "xep_0045", "xep_0199", "xep_0249", "xep_0004", "xep_0050", "xep_0092"):
            self.xmpp.register_plugin(plugin)
        self._plugin("xep_0092").software_name = "boshcm quizbot"
        self.xmpp.enable_direct_tls = False
        self.wanted: dict[str, JoinRoom] = {}  # rooms the bot should be in, with how to create them
        self.joined: dict[str, str] = {}  # room -> our nick there
        self.entered: set[str] = set()  # rooms joined and, if we created them, configured
        self._attempts: dict[str, int] = {}  # failed joins per room, for the back-off
        self._nick_tries: dict[str, int] = {}  # nick conflicts per room
        self.owned: set[str] = set()  # rooms where our own presence shows us as owner
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.ready = asyncio.Event()
        self.xmpp.add_event_handler("session_start", self._on_session_start)
        self.xmpp.add_event_handler("disconnected", self._on_disconnected)
        self.xmpp.add_event_handler("groupchat_presence", self._on_groupchat_presence)
        self.xmpp.add_event_handler("presence_error", self._on_presence_error)
        self.xmpp.add_event_handler("groupchat_message", self._on_groupchat_message)
        self.xmpp.add_event_handler("message", self._on_message)
        # slixmpp's "message" and "groupchat_message" events need a <body/>; an <answer/> or a <command/> may come
        # without one.
        for name in ("answer", "command"):
            self.xmpp.register_handler(Callback(
                f"quizbot {name} without body",
                MatchXPath(f"{{{self.xmpp.default_ns}}}message/{{{payload.NS}}}{name}"), self._on_bodyless_payload))
        # XEP-0199 round trips to players: sent raw, answered through one handler (see `_ping`).
        self._pings: OrderedDict[str, tuple[str, float]] = OrderedDict()  # iq id -> (occupant JID, sent at)
        self.xmpp.register_handler(Callback("quizbot ping answers", _PingAnswers(), self._on_ping_answer))
        self._admin_commands_registered = False
        # While an ad-hoc command runs: the admin's JID and the replies to it, which become the command's result.
        self._capture: tuple[str, list[str]] | None = None

    def _plugin(self, name: str) -> Any:
        plugins: Any = self.xmpp.plugin
        return plugins[name]

    # --- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        for order in self.bot.start():
            self._perform(order)
        self._connect()

    def _connect(self) -> None:
        server = self._connection.server
        if server is None:
            self.xmpp.connect()
        else:
            self.xmpp.connect(host=server[0], port=server[1])

    async def stop(self) -> None:
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self.xmpp.is_connected():
            for room, nick in list(self.joined.items()):
                self._plugin("xep_0045").leave_muc(JID(room), nick)
            await self.xmpp.disconnect()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_session_start(self, _event: Any) -> None:
        if not self._admin_commands_registered:  # under the bound JID, which only exists now
            self._register_admin_commands()
            self._admin_commands_registered = True
        self.xmpp.send_presence()
        self._attempts.clear()
        for room in self.wanted:
            self._join(room)
        self.ready.set()

    def _on_disconnected(self, _event: Any) -> None:
        self.ready.clear()
        for room in list(self.joined):
            self._feed(RoomLeft(room=room))
        self.joined.clear()
        self.entered.clear()
        self.owned.clear()
        if not self._stopping:
            log.info("quizbot: disconnected; reconnecting")
            asyncio.get_running_loop().call_later(2.0, self._connect)

    # --- facts in ---------------------------------------------------------------------------------

    def _feed(self, fact: Fact) -> None:
        for order in self.bot.handle(fact, self._clock.now(), self._clock.wall()):
            self._perform(order)
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stopping:
            return  # leaving the rooms while stopping must not start a timer that outlives the store
        deadline = self.bot.next_deadline()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, deadline - self._clock.now()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        for order in self.bot.tick(self._clock.now(), self._clock.wall()):
            self._perform(order)
        self._schedule()

    def _on_groupchat_presence(self, presence: Any) -> None:
        room, nick = presence["from"].bare, presence["from"].resource
        if room not in self.wanted or presence["type"] == "error":
            return
        element = _lxml(presence)
        x = element.find(f"{{{NS_MUC_USER}}}x")
        codes = {status.get("code") for status in (x.findall(f"{{{NS_MUC_USER}}}status") if x is not None else [])}
        item = x.find(f"{{{NS_MUC_USER}}}item") if x is not None else None
        available = presence["type"] != "unavailable"
        if "110" in codes:
            self._own_presence(room, nick, available, codes,
                               owner=item is not None and item.get("affiliation") == "owner")
            return
        real_jid = item.get("jid") if item is not None else None
        occupant_id = element.find(f"{{{NS_OCCUPANT_ID}}}occupant-id")
        self._feed(OccupantPresence(
            room=room, nick=nick, available=available,
            real_jid=real_jid.partition("/")[0] if real_jid else None,
            occupant_id=occupant_id.get("id") if occupant_id is not None else None,
            role=item.get("role", "participant") if item is not None else "participant",
            affiliation=item.get("affiliation", "none") if item is not None else "none",
            new_nick=item.get("nick") if "303" in codes and item is not None else None,
            host=element.find(f"{{{payload.NS}}}host") is not None))

    def _own_presence(self, room: str, nick: str, available: bool, codes: set[str | None], *, owner: bool) -> None:
        if available:
            first = room not in self.joined
            if owner:
                self.owned.add(room)
            elif room in self.owned:
                self.owned.discard(room)
            self.joined[room] = nick
            self._attempts.pop(room, None)
            if "201" in codes:
                self._spawn(self._configure(room))  # we created the room: configure it before anyone joins
            elif first:
                self._entered(room)
            return
        if "303" in codes:
            return  # our nick changed; the new presence follows
        self.joined.pop(room, None)
        self.entered.discard(room)
        self.owned.discard(room)
        self._feed(RoomLeft(room=room))
        if room in self.wanted and not self._stopping:
            log.info("quizbot: out of %s (status %s); rejoining", room, sorted(c for c in codes if c))
            self._rejoin_later(room)

    def _entered(self, room: str) -> None:
        self.entered.add(room)
        self._feed(RoomEntered(room=room))
        self._spawn(self._self_ping(room))
        if room in self.owned and self.bot.settings.quiet_above > 0:
            self._spawn(self._quiet_above(room))

    # --- a crowded room goes quiet (docs/quiz.md "Quiet rooms") ---------------------------------------

    async def _quiet_above(self, room: str) -> None:
        """Where the room's form has boshcm's field, set it: the room goes quiet at the join that crosses it. The bot
        could only react to the presences of a wave of joins that it reads behind; the room switches at once."""
        wanted = str(self.bot.settings.quiet_above + 1)  # `quiet_above` players; the room counts the bot too
        try:
            values = (await self._plugin("xep_0045").get_room_config(room))["values"]
            if QUIET_ABOVE not in values or values[QUIET_ABOVE] == wanted:
                return  # not boshcm (Prosody, ejabberd: rooms stay as their owner configured them), or set already
            submit = self._plugin("xep_0004").make_form(ftype="submit")
            submit.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
            submit.add_field(var=QUIET_ABOVE, ftype="text-single", value=wanted)
            await self._plugin("xep_0045").set_room_config(room, submit)
        except (IqError, IqTimeout, ValueError) as error:
            log.info("quizbot: %s does not go quiet on its own: %s", room, error)
            return
        log.info("quizbot: %s broadcasts only moderators' presence above %s occupants", room, wanted)

    async def _configure(self, room: str) -> None:
        wanted = self.wanted.get(room, JoinRoom(room=room))
        muc = self._plugin("xep_0045")
        try:
            submit = self._plugin("xep_0004").make_form(ftype="submit")
            submit.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
            submit.add_field(var="muc#roomconfig_roomname", ftype="text-single", value=wanted.name)
            submit.add_field(var="muc#roomconfig_persistentroom", ftype="boolean", value=True)
            submit.add_field(var="muc#roomconfig_publicroom", ftype="boolean", value=wanted.public)
            await muc.set_room_config(room, submit)
            if wanted.owner is not None:
                await muc.set_affiliation(room, "owner", jid=wanted.owner)
        except (IqError, IqTimeout) as error:
            log.warning("quizbot: could not configure %s: %s", room, error)
        self._entered(room)

    def _on_presence_error(self, presence: Any) -> None:
        room = presence["from"].bare
        if room in self.wanted and room not in self.joined:
            condition = presence["error"]["condition"]
            log.warning("quizbot: cannot join %s: %s", room, condition)
            if condition == "conflict":
                self._nick_tries[room] = self._nick_tries.get(room, 0) + 1  # Quizbot2, Quizbot3, ...
            self._rejoin_later(room)

    def _on_groupchat_message(self, message: Any) -> None:
        room, nick = message["from"].bare, message["from"].resource
        if room not in self.wanted or not nick or message["type"] == "error":
            return
        element = _lxml(message)
        if element.find(f"{{{NS_DELAY}}}delay") is not None:
            return  # room history: old answers must not count
        own = nick == self.joined.get(room)
        asked = element.find(f"{{{payload.NS}}}question") if own else None
        body = message["body"]
        answer = payload.parse_answer(element)
        quiz_payloads = _quiz_payloads(element)
        if not body and answer is None and not quiz_payloads:
            return  # subject changes, chat states
        self._feed(RoomMessage(room=room, nick=nick, body=body, answer=answer, own=own,
                               reflected_question=asked.get("id") if asked is not None else None,
                               quiz_payloads=quiz_payloads, command=payload.parse_command(element)))

    def _on_bodyless_payload(self, message: Any) -> None:
        if message["body"]:
            return  # the events above have it
        if message["type"] == "groupchat":
            self._on_groupchat_message(message)
        else:
            self._on_message(message)

    def _on_message(self, message: Any) -> None:
        if message["type"] not in ("chat", "normal"):
            return
        sender = message["from"]
        element = _lxml(message)
        via_room = sender.bare in self.joined
        x = element.find(f"{{{NS_MUC_USER}}}x")
        if element.find("{jabber:x:conference}x") is not None or (x is not None and len(x)) or (
                via_room and not sender.resource):
            return  # invitations and room notices, not players
        # XEP-0045 §7.5: a private message through the room carries an empty muc#user <x/>: a player's.
        answer = payload.parse_answer(element)
        command = payload.parse_command(element)
        if not message["body"] and answer is None and command is None:
            return
        occupant_id = element.find(f"{{{NS_OCCUPANT_ID}}}occupant-id") if via_room else None
        self._feed(PrivateMessage(sender=str(sender), body=message["body"], answer=answer,
                                  room=sender.bare if via_room else None,
                                  nick=sender.resource if via_room else None,
                                  occupant_id=occupant_id.get("id") if occupant_id is not None else None,
                                  quiz_payloads=_quiz_payloads(element), command=command))

    # --- orders out -------------------------------------------------------------------------------

    def _perform(self, order: Order) -> None:
        match order:
            case Send() if self._capture is not None and order.to == self._capture[0]:
                self._capture[1].append(order.body)
            case Send():
                self._send(order)
            case _ if isinstance(order, StorageOrder):
                self.store.perform(order)
            case _ if isinstance(order, Read):
                for reply in self.bot.handle(self.store.read(order), self._clock.now(), self._clock.wall()):
                    self._perform(reply)
            case JoinRoom(room=room):
                self.wanted[room] = order
                if self.xmpp.is_connected() and room not in self.joined:
                    self._join(room)
            case LeaveRoom(room=room):
                self.wanted.pop(room, None)
                nick = self.joined.pop(room, None)
                if nick is not None:
                    self._plugin("xep_0045").leave_muc(JID(room), nick)
            case Invite(room=room, jid=jid, reason=reason):
                self._plugin("xep_0249").send_invitation(JID(jid), JID(room), reason=reason)
                self._plugin("xep_0045").invite(room, jid, reason)
            case Ping(room=room, nick=nick):
                self._ping(room, nick)
            case ReloadBanks(reply_to=reply_to):
                banks, report = self._reload_banks()
                for reply in self.bot.set_banks(banks, report, reply_to=reply_to):
                    self._perform(reply)

    def _send(self, order: Send) -> None:
        # Built with lxml and written as it is: slixmpp's stanza objects and serialiser cost about a millisecond a
        # message, and a reveal in a room of 2,000 sends 2,000 private results. (The bot's stream has no XEP-0198
        # counter that a raw write would bypass.)
        message = make_stanza("message", {"to": order.to, "type": "groupchat" if order.groupchat else "chat"})
        try:
            if order.body:
                sub(message, NS_CLIENT, "body", text=order.body)
            message.extend(copy.copy(element) for element in order.payload)  # a payload may go in several messages
        except ValueError as error:  # a character XML cannot carry: never write a stream the server must close
            log.warning("quizbot: not sent to %s: %s", order.to, error)
            return
        self.xmpp.send_raw(serialize(message).decode())

    def _join(self, room: str) -> None:
        tries = self._nick_tries.get(room, 0)
        nick = self._nick if tries == 0 else f"{self._nick}{tries + 1}"
        self._plugin("xep_0045").join_muc(JID(room), nick, maxhistory="0")

    def _rejoin_later(self, room: str) -> None:
        attempt = self._attempts[room] = self._attempts.get(room, 0) + 1
        delay = min(60.0, 2.0 * 2 ** min(attempt - 1, 5))

        def again() -> None:
            if room in self.wanted and room not in self.joined and self.xmpp.is_connected():
                self._join(room)

        asyncio.get_running_loop().call_later(delay, again)

    def _ping(self, room: str, nick: str) -> None:
        """A round trip through the room to one player, for the latency credit. Raw, with one handler for all the
        answers: slixmpp's own ping registers a handler per iq, and every stanza that arrives is matched against
        each (a reveal in a room of 2,000 pings 2,000 players: most of the bot's time went there)."""
        now = time.monotonic()
        while self._pings and next(iter(self._pings.values()))[1] < now - PING_TIMEOUT_SECONDS:
            self._pings.popitem(last=False)  # unanswered: no figure, as with a timeout
        ping_id = f"{PING_ID_PREFIX}{secrets.token_hex(8)}"  # unguessable: only the pinged occupant can answer
        occupant = f"{room}/{nick}"
        self._pings[ping_id] = (occupant, now)
        ping = make_stanza("iq", {"type": "get", "id": ping_id, "to": occupant})
        sub(ping, NS_PING, "ping")
        self.xmpp.send_raw(serialize(ping).decode())

    def _on_ping_answer(self, iq: Any) -> None:
        sent = self._pings.get(iq["id"])
        if sent is None or iq["from"] != JID(sent[0]):
            return
        del self._pings[iq["id"]]
        # An error answer from the player's client still measured the path.
        room, _slash, nick = sent[0].partition("/")
        self._feed(RoundTrip(room=room, nick=nick, seconds=time.monotonic() - sent[1]))

    async def _self_ping(self, room: str) -> None:
        """XEP-0410: ask the room whether we are still in; rejoin if not (e.g. the room restarted)."""
        while room in self.joined and not self._stopping:
            await asyncio.sleep(self._self_ping_seconds)
            nick = self.joined.get(room)
            if nick is None:
                return
            try:
                await self._plugin("xep_0199").send_ping(JID(f"{room}/{nick}"), timeout=10)
            except IqError as error:
                if error.iq["error"]["condition"] not in STILL_JOINED:
                    log.info("quizbot: self-ping says we left %s; rejoining", room)
                    self.joined.pop(room, None)
                    self.entered.discard(room)
                    self._feed(RoomLeft(room=room))
                    self._join(room)
                    return
            except IqTimeout:
                continue

    # --- XEP-0050 ad-hoc commands: the !admin actions as data forms --------------------------------

    def _register_admin_commands(self) -> None:
        from quizbot.commands import ADMIN_ACTIONS

        labels = {0: (), 1: ("argument",), 2: ("jid", "points")}
        for action, arity in ADMIN_ACTIONS.items():
            self._plugin("xep_0050").add_command(
                node=f"quizbot-admin-{action}", name=f"Quiz admin: {action}",
                handler=self._admin_handler(action, labels[arity]))

    def _admin_handler(self, action: str, fields: tuple[str, ...]) -> Callable[[Any, dict[str, Any]], Any]:
        def first(iq: Any, session: dict[str, Any]) -> dict[str, Any]:
            if not fields:
                return self._run_admin(iq["from"], action, (), session)
            form = self._plugin("xep_0004").make_form(ftype="form", title=f"Quiz admin: {action}")
            for name in fields:
                form.add_field(var=name, ftype="text-single", label=name, required=True)
            session["payload"] = form
            session["next"] = lambda submitted, s: self._run_admin(iq["from"], action, _values(submitted, fields), s)
            session["has_next"] = False
            return session

        return first

    def _run_admin(self, sender: Any, action: str, arguments: tuple[str, ...], session: dict[str, Any]
                   ) -> dict[str, Any]:
        """Run `!admin ACTION ARGS` as if sent privately; the bot's reply becomes the command's result note."""
        replies: list[str] = []
        text = " ".join(["!admin", action, *arguments])
        # XEP-0045 §7.5: through the room (to our occupant JID) the iq comes from the admin's occupant JID; the
        # room's real JID of that occupant decides, as for a private message through the room.
        via_room = sender.bare in self.joined and bool(sender.resource)
        fact = PrivateMessage(sender=str(sender), body=text, room=sender.bare if via_room else None,
                              nick=sender.resource if via_room else None)
        self._capture = (str(sender), replies)
        try:
            for order in self.bot.handle(fact, self._clock.now(), self._clock.wall()):
                self._perform(order)
        finally:
            self._capture = None
        self._schedule()
        form = self._plugin("xep_0004").make_form(ftype="result", title=f"Quiz admin: {action}")
        form.add_field(var="result", ftype="text-multi", label="Result", value="\n".join(replies))
        session["payload"] = form
        session["next"] = None
        session["has_next"] = False
        return session
