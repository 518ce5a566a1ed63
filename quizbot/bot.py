"""The quiz bot (pure): many rooms, private commands, invitations, administration.

The XMPP adapter (quizbot/client.py) turns stanzas into facts (quizbot/events.py) and performs the orders that
come back. Storage is an order too: what the bot remembers it keeps in memory (read once at start, `BotMemory`)
and what must survive a restart goes out as storage orders (`RecordAnswer`, `SavePin`, ...) that the adapter
writes; the few reads that answer a command (`!top`, `!stats`, `!admin review`) are `Read*` orders whose answer
comes back as a fact. Time is passed in (`now` monotonic, `wall` epoch seconds) and `next_deadline()` says when to call
`tick`. Administrators are bare JIDs from the configuration, checked against the real sender — the JID a
direct message came from, or the real JID a room disclosed — never against a nick.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import assert_never

from lxml import etree

from quizbot import names, payload, render
from quizbot.commands import (
    LANGUAGES,
    Admin,
    AdminAccept,
    AdminAction,
    AdminBan,
    AdminBanks,
    AdminGive,
    AdminJoin,
    AdminLeave,
    AdminReject,
    AdminReload,
    AdminReview,
    AdminRooms,
    AdminStats,
    AdminStop,
    AdminUnban,
    Categories,
    Command,
    Help,
    Hint,
    Join,
    Lang,
    NewGame,
    Pin,
    Quiz,
    Repeat,
    Report,
    Score,
    Skip,
    Start,
    Stats,
    Stop,
    Submit,
    Top,
    UsageError,
    admin_line,
    parse,
)
from quizbot.commands import Invite as InviteCommand  # quizbot.events.Invite is the order to invite someone
from quizbot.events import (
    BotMemory,
    CountsRead,
    Fact,
    Invite,
    JoinRoom,
    LeaderboardRead,
    LeaveRoom,
    OccupantPresence,
    Order,
    Orders,
    PrivateMessage,
    ReadCounts,
    ReadLeaderboard,
    ReadSubmissions,
    RecordPoints,
    RecordSubmission,
    ReloadBanks,
    RemoveBan,
    RemovePin,
    RemoveRoom,
    Reply,
    ReviewSubmission,
    RoomEntered,
    RoomLeft,
    RoomMessage,
    RoundTrip,
    SaveBan,
    SavedRoom,
    SavePin,
    SaveRoom,
    Send,
    Submission,
    SubmissionReviewed,
    SubmissionsRead,
)
from quizbot.game import GameSettings
from quizbot.questions import BankSet
from quizbot.room import DEFAULT_BOARD_SIZE, DEFAULT_QUIET_ABOVE, QuizRoom, Sender


@dataclass(frozen=True, slots=True, kw_only=True)
class BotSettings:
    jid: str  # the bot's bare JID
    muc_domain: str
    admins: frozenset[str] = frozenset()
    rooms: tuple[str, ...] = ()  # joined at start, as public rooms the bot creates if missing
    language: str = "en"
    game: GameSettings = field(default_factory=GameSettings)
    commands_per_window: int = 6
    command_window_seconds: float = 10.0
    invites_per_window: int = 10
    invite_window_seconds: float = 600.0
    board_size: int = DEFAULT_BOARD_SIZE  # scorers and players the room's boards name (docs/quiz.md)
    quiet_above: int = DEFAULT_QUIET_ABOVE  # a crowd: an owned room goes quiet above it, commands get private replies


PLAYER_PAYLOADS = frozenset({"answer", "command"})


def forged(quiz_payloads: tuple[str, ...]) -> bool:
    """Players send the bot only <answer/> and <command/>; any other quiz payload speaks for the bot."""
    return any(name not in PLAYER_PAYLOADS for name in quiz_payloads)


def typed(body: str, command: str | None) -> Command | UsageError | None:
    """The command a message carries, as a payload or typed; None for chat and answers."""
    if command is None:
        return parse(body)
    return parse("!" + command) if command else None


class _RateLimit:
    def __init__(self, count: int, window: float) -> None:
        self._count, self._window = count, window
        self._seen: dict[str, deque[float]] = {}
        self._told: set[str] = set()  # refused since their last allowed attempt, and told so once
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._seen)

    def allow(self, key: str, now: float, cost: int = 1) -> bool:
        if now >= self._next_sweep:
            self._forget_quiet(now)
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - self._window:
            seen.popleft()
        if len(seen) + cost > self._count:
            return False
        seen.extend([now] * cost)
        self._told.discard(key)
        return True

    def first_refusal(self, key: str) -> bool:
        """True once per flood: the sender hears "slow down" once, then nothing until they are allowed again."""
        if key in self._told:
            return False
        self._told.add(key)
        return True

    def _forget_quiet(self, now: float) -> None:
        # Once per window, drop everyone with nothing inside it: the table holds recent senders, not everyone
        # a public room ever saw.
        quiet = [key for key, seen in self._seen.items() if not seen or seen[-1] <= now - self._window]
        for key in quiet:
            del self._seen[key]
            self._told.discard(key)
        self._next_sweep = now + self._window


class QuizBot:
    def __init__(self, *, settings: BotSettings, banks: BankSet, bank_report: list[str],
                 memory: BotMemory | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rooms: dict[str, QuizRoom] = {}
        self._banks = banks
        self._bank_report = bank_report
        self._rng = rng or random.Random()
        memory = memory or BotMemory()
        self._banned = set(memory.banned)
        self._commands = _RateLimit(settings.commands_per_window, settings.command_window_seconds)
        self._invites = _RateLimit(settings.invites_per_window, settings.invite_window_seconds)
        self._saved_rooms = {saved.room: saved for saved in memory.rooms}
        self._owned_rooms = {saved.owner: saved.room for saved in memory.rooms if saved.owner}
        self._running = list(memory.running)  # games a restart interrupted, until their room is entered
        self._accepted = list(memory.accepted)
        self._next_submission = memory.next_submission
        self._recent = memory.recent  # question ids asked lately, handed to each room as it is made
        self._to_store: list[Order] = []  # storage orders from helpers without an order list, out with the next
        # Game PINs and readable names of the rooms the bot serves, kept for each room's life.
        self._views = {room: payload.RoomView(name=name, pin=pin) for room, pin, name in memory.pins}
        self._by_pin = {view.pin: room for room, view in self._views.items() if view.pin}
        self._greet_owner: dict[str, str] = {}  # room -> owner to invite once the bot is in
        self._resumed: set[str] = set()

    @property
    def banks(self) -> BankSet:
        return self._banks

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> list[Order]:
        """Join the configured rooms and every room joined by command or made by !newgame before a restart."""
        orders: list[Order] = [JoinRoom(room=room) for room in self.settings.rooms]
        orders += [JoinRoom(room=saved.room, public=saved.owner is None,
                            name=self._views.get(saved.room, payload.RoomView()).name or "Quiz")
                   for saved in self._saved_rooms.values() if saved.room not in self.settings.rooms]
        return orders

    def next_deadline(self) -> float | None:
        deadlines = [d for room in self.rooms.values() if (d := room.next_deadline()) is not None]
        return min(deadlines, default=None)

    def tick(self, now: float, wall: float) -> list[Order]:
        orders = Orders()
        for room in list(self.rooms.values()):
            room.tick(now, wall, orders)
        return orders.items

    def set_banks(self, banks: BankSet, report: list[str], *, reply_to: str | None) -> list[Order]:
        self._banks = banks
        self._bank_report = report
        for room in self.rooms.values():
            room.banks = self._with_submissions(banks)
        orders = Orders()
        if reply_to is not None:
            orders.say(reply_to, render.say(self.settings.language, "admin-banks", banks="; ".join(report)))
        return orders.items

    def _with_submissions(self, banks: BankSet) -> BankSet:
        return BankSet([*banks.questions, *(s.as_question() for s in self._accepted)])

    def _room(self, jid: str) -> QuizRoom:
        room = self.rooms.get(jid)
        if room is None:
            saved = self._saved_rooms.get(jid)
            language = saved.language if saved is not None else self.settings.language
            room = self.rooms[jid] = QuizRoom(jid=jid, language=language, banks=self._with_submissions(self._banks),
                                              settings=self.settings.game, rng=self._rng,
                                              recent=self._recent.pop(jid, ()), board_size=self.settings.board_size)
            room.view = self._view(jid, render.say(language, "public-room-name"))
        return room

    def _view(self, jid: str, name: str) -> payload.RoomView:
        """The room's PIN and name: as stored, else a new PIN (unique among the bot's rooms) under `name`."""
        view = self._views.get(jid)
        if view is None:
            pin = names.new_pin(self._rng, self._by_pin)
            view = self._views[jid] = payload.RoomView(name=name, pin=pin)
            self._by_pin[pin] = jid
            self._to_store.append(SavePin(room=jid, pin=pin, name=name))
        return view

    def _forget_view(self, jid: str, orders: Orders) -> None:
        view = self._views.pop(jid, None)
        if view is not None and view.pin is not None:
            self._by_pin.pop(view.pin, None)
            orders.items.append(RemovePin(room=jid))

    # --- facts ------------------------------------------------------------------------------------

    def handle(self, fact: Fact, now: float, wall: float) -> list[Order]:
        orders = Orders()
        match fact:
            case RoomEntered(room=jid):
                self._entered(jid, now, wall, orders)
            case RoomLeft(room=jid):
                room = self.rooms.get(jid)
                if room is not None:
                    room.occupants_cleared()  # the adapter rejoins; the game and its scores stay
            case OccupantPresence():
                self._presence(fact, now, wall, orders)
            case RoomMessage():
                self._room_message(fact, now, wall, orders)
            case PrivateMessage():
                self._private_message(fact, now, wall, orders)
            case RoundTrip(room=jid, nick=nick, seconds=seconds):
                if jid in self.rooms:
                    self.rooms[jid].round_trip(nick, seconds, now, wall, orders)
            case LeaderboardRead() | CountsRead() | SubmissionsRead() | SubmissionReviewed():
                self._read_answered(fact, orders)
        orders.items[:0], self._to_store = self._to_store, []
        return [order for order in map(self._through_room, orders.items) if order is not None]

    def _through_room(self, order: Order) -> Order | None:
        """A private message to an occupant JID (room/nick) carries text only: clients believe quiz payloads
        only from the bot's real JID and would drop the whole message, text and all."""
        if not isinstance(order, Send) or order.groupchat or not order.payload:
            return order
        room, _, nick = order.to.partition("/")
        if not nick or room not in self.rooms:
            return order
        return replace(order, payload=()) if order.body else None

    def _entered(self, jid: str, now: float, wall: float, orders: Orders) -> None:
        room = self._room(jid)
        if jid not in self._resumed:
            self._resumed.add(jid)
            questions = {q.id: q for q in room.banks.questions}
            stored_here = [stored for stored in self._running if stored.room == jid]
            self._running = [stored for stored in self._running if stored.room != jid]
            for stored in stored_here:
                if room.game is None:
                    room.resume(stored.id, stored.snapshot, questions, language=stored.language, now=now, wall=wall,
                                orders=orders)
        owner = self._greet_owner.pop(jid, None)
        if owner is not None:
            text = render.say(room.language, "newgame", room=jid, name=room.view.name, pin=room.view.pin)
            orders.say(owner, text, payload.invitation(room=jid, view=room.view))
            orders.items.append(Invite(room=jid, jid=owner, reason=text))

    def _presence(self, fact: OccupantPresence, now: float, wall: float, orders: Orders) -> None:
        room = self._room(fact.room)
        if fact.new_nick is not None:
            room.occupant_renamed(fact.nick, fact.new_nick)
        elif not fact.available:
            room.occupant_gone(fact.nick, now, wall, orders)
        else:
            room.occupant_present(nick=fact.nick, real_jid=fact.real_jid, occupant_id=fact.occupant_id,
                                  role=fact.role, affiliation=fact.affiliation, now=now, host=fact.host)

    def _sender_in_room(self, room: QuizRoom, nick: str) -> Sender:
        occupant = room.occupants.get(nick)
        if occupant is None:  # a message from someone whose presence we missed: nick-keyed, no privileges
            return Sender(player=f"nick:{room.jid}/{nick}", nick=nick, real_jid=None, is_admin=False,
                          is_moderator=False)
        return Sender(player=occupant.player, nick=nick, real_jid=occupant.real_jid,
                      is_admin=occupant.real_jid in self.settings.admins, is_moderator=occupant.role == "moderator")

    def _room_message(self, fact: RoomMessage, now: float, wall: float, orders: Orders) -> None:
        room = self._room(fact.room)
        if fact.own:
            if fact.reflected_question is not None:
                room.reflected(fact.reflected_question, now)
            return
        if forged(fact.quiz_payloads):
            return  # someone speaking for the bot: not an answer, not a command, nothing stored
        sender = self._sender_in_room(room, fact.nick)
        if sender.real_jid in self._banned:
            return
        parsed = typed(fact.body.strip(), fact.command)
        if parsed is None:
            if fact.command is not None:
                return  # an empty <command/>: not an answer either
            room.answer(player=sender.player, nick=fact.nick, text=fact.body.strip(), given=fact.answer,
                        reply_to=room.private_address(fact.nick), now=now, wall=wall, orders=orders)
            return
        if not self._allowed(sender, room, f"{room.jid}/{fact.nick}", now, orders):
            return
        # A command in a crowded room is answered to its sender alone: a reply to the room would make every
        # player's command (6 per 10 s each) a message to thousands, an amplifier for anyone in the room.
        crowded = room.crowded(quiet_above=self.settings.quiet_above)
        reply_to = room.private_address(fact.nick) if crowded else room.jid
        self._command(parsed, sender, room=room, reply_to=reply_to, now=now, wall=wall, orders=orders)

    def _allowed(self, sender: Sender, room: QuizRoom | None, reply_to: str, now: float, orders: Orders) -> bool:
        """The command rate (answers have their own limit in the game); a flood is told once to slow down,
        privately, then dropped."""
        if self._commands.allow(sender.player, now):
            return True
        if self._commands.first_refusal(sender.player):
            language = room.language if room is not None else self.settings.language
            orders.say(reply_to, render.say(language, "slow-down", count=self.settings.commands_per_window,
                                            seconds=render.seconds_text(self.settings.command_window_seconds)))
        return False

    def _private_message(self, fact: PrivateMessage, now: float, wall: float, orders: Orders) -> None:
        if forged(fact.quiz_payloads):
            return
        body = fact.body.strip()
        room: QuizRoom | None
        if fact.room is not None and fact.nick is not None and fact.room in self.rooms:
            # XEP-0045 §7.5: through the room from an occupant; the room's occupant-id (XEP-0421) names the
            # person even if the nick changed hands in between. Answers go back the same way.
            room = self.rooms[fact.room]
            by_id = room.occupant_by_id(fact.occupant_id) if fact.occupant_id is not None else None
            sender = self._sender_in_room(room, by_id.nick if by_id is not None else fact.nick)
            reply_to = f"{fact.room}/{fact.nick}"
        else:
            bare = fact.sender.partition("/")[0]
            room = self._room_of(bare)
            occupant = room.occupant_for_player(bare) if room is not None else None
            sender = Sender(player=bare, nick=occupant.nick if occupant else bare.partition("@")[0], real_jid=bare,
                            is_admin=bare in self.settings.admins,
                            is_moderator=occupant is not None and occupant.role == "moderator")
            reply_to = fact.sender
        if sender.real_jid in self._banned or (not body and fact.answer is None and fact.command is None):
            return
        parsed = typed(body, fact.command)
        if parsed is None:
            if room is not None and fact.command is None:
                room.answer(player=sender.player, nick=sender.nick, text=body, given=fact.answer, reply_to=reply_to,
                            now=now, wall=wall, orders=orders)
            return
        if not self._allowed(sender, room, reply_to, now, orders):
            return
        self._command(parsed, sender, room=room, reply_to=reply_to, now=now, wall=wall, orders=orders,
                      private=True)

    def _room_of(self, bare: str) -> QuizRoom | None:
        """The room where this player is in a game with an open question, else any room they are in."""
        rooms = [room for room in self.rooms.values() if room.occupant_for_player(bare) is not None]
        playing = [room for room in rooms if room.game is not None and room.game.question_open]
        return next(iter(playing or rooms), None)

    # --- commands ---------------------------------------------------------------------------------

    def _command(self, parsed: Command | UsageError, sender: Sender, *, room: QuizRoom | None, reply_to: str,
                 now: float, wall: float, orders: Orders, private: bool = False) -> None:
        language = room.language if room is not None else self.settings.language
        groupchat = room is not None and reply_to == room.jid

        def reply(text: str, *elements: etree._Element) -> None:
            orders.say(reply_to, text, *elements, groupchat=groupchat)

        where = Reply(to=reply_to, language=language, groupchat=groupchat)  # for the answer to a read

        if isinstance(parsed, UsageError):
            unknown = parsed.hint.startswith("unknown command")
            reply(render.say(language, "unknown", command=f"!{parsed.command}") if unknown
                  else render.usage(language, parsed))
            return
        match parsed:
            # Score, repeat and report work privately too (the answer goes to the asker alone); the room's other
            # commands only in the room.
            case Quiz() | Join() | Start() | Stop() | Skip() | Hint() | Lang() if private:
                reply(render.say(language, "room-only"))
            case Quiz() | Join() | Start() | Stop() | Skip() | Hint() | Lang() | Repeat() | Score() | Report():
                if room is None:
                    reply(render.say(language, "room-only"))
                else:
                    room.command(parsed, sender, reply_to=reply_to, now=now, wall=wall, orders=orders)
            case NewGame() | InviteCommand() | Pin() if not private or sender.real_jid is None:
                reply(render.say(language, "private-only"))
            case NewGame(name=name):
                assert sender.real_jid is not None  # the case above
                self._newgame(sender.real_jid, name or sender.nick, language, wall, orders, reply)
            case Pin(pin=pin):
                self._pin(pin, language, reply)
            case InviteCommand(jids=jids):
                self._invite(sender, jids, language, now, orders, reply)
            case Admin(action=action):
                if not sender.is_admin:
                    reply(render.say(language, "not-admin"))
                else:
                    self._admin(action, language, now, wall, orders, reply, where)
            case Help():
                reply(render.say(language, "help"))
            case Top(period=period, count=count):
                # The room's board bound holds for the leaderboard too.
                orders.items.append(ReadLeaderboard(period=period.value, count=min(count, self.settings.board_size),
                                                    wall=wall, reply=where))
            case Stats():
                orders.items.append(ReadCounts(reply=where, room=room.jid if room is not None else None))
            case Categories(language=wanted):
                # The categories of the question language asked for, else of the room's language.
                pool = room.banks if room is not None else self._banks
                asked = wanted or language
                reply(render.say(language, "categories", language=render.LANGUAGE_NAMES[language][asked],
                                 categories=", ".join(pool.categories(asked)) or "-"),
                      payload.categories(asked, {lang: pool.category_counts(lang) for lang in LANGUAGES}))
            case Submit(question=question, answer=answer, wrong=wrong, source=source):
                number, self._next_submission = self._next_submission, self._next_submission + 1
                orders.items.append(RecordSubmission(submission=Submission(
                    id=number, submitter=sender.real_jid or sender.player, language=language, question=question,
                    answer=answer, wrong=wrong, source=source), wall=wall))
                reply(render.say(language, "submit-thanks", id=number))
            case _:
                assert_never(parsed)

    def _newgame(self, owner: str, nick: str, language: str, wall: float, orders: Orders,
                 reply: Callable[..., None]) -> None:
        existing = self._owned_rooms.get(owner)
        if existing is not None:
            view = self._room(existing).view
            reply(render.say(language, "newgame-limit", room=existing, name=view.name, pin=view.pin),
                  payload.invitation(room=existing, view=view))
            orders.items.append(Invite(room=existing, jid=owner, reason=render.say(
                language, "newgame", room=existing, name=view.name, pin=view.pin)))
            return
        taken = {jid.partition("@")[0] for jid in [*self.rooms, *self._views, *self._owned_rooms.values()]}
        room = f"{names.new_localpart(self._rng, taken)}@{self.settings.muc_domain}"
        name = render.say(language, "room-name", nick=nick)
        self._owned_rooms[owner] = room
        self._save_room(SavedRoom(room=room, language=language, owner=owner), wall, orders)
        self._view(room, name)
        self._room(room).language = language
        self._greet_owner[room] = owner
        orders.items.append(JoinRoom(room=room, public=False, owner=owner, name=name))

    def _pin(self, pin: str, language: str, reply: Callable[..., None]) -> None:
        """A game PIN to its room. Guessing costs a command like any other (the command rate per sender)."""
        room = self._by_pin.get(pin)
        if room is None:
            reply(render.say(language, "pin-unknown", pin=pin))
            return
        view = self._views[room]
        reply(render.say(language, "pin-found", pin=pin, name=view.name, room=room),
              payload.invitation(room=room, view=view))

    def _invite(self, sender: Sender, jids: tuple[str, ...], language: str, now: float, orders: Orders,
                reply: Callable[..., None]) -> None:
        assert sender.real_jid is not None
        room = self._owned_rooms.get(sender.real_jid)
        if room is None:
            reply(render.say(language, "invite-no-room"))
            return
        if not self._invites.allow(sender.real_jid, now, cost=len(jids)):
            reply(render.say(language, "invite-limit"))
            return
        nick = sender.real_jid.partition("@")[0]
        for jid in jids:
            orders.items.append(Invite(room=room, jid=jid, reason=render.say(language, "invitation", nick=nick,
                                                                             room=room)))
        reply(render.say(language, "invite-sent", jids=", ".join(map(render.shown, jids)), room=room))

    def _admin(self, action: AdminAction, language: str, now: float, wall: float, orders: Orders,
               reply: Callable[..., None], where: Reply) -> None:
        done = render.say(language, "admin-done", what=admin_line(action))
        match action:
            case AdminRooms():
                states = [f"{jid} ({'game' if r.game else 'lobby' if r.lobby else 'idle'}, {len(r.occupants)})"
                          for jid, r in sorted(self.rooms.items())]
                reply(render.say(language, "admin-rooms", rooms=", ".join(states) or "-"))
            case AdminJoin(room=jid):
                self._save_room(SavedRoom(room=jid, language=self.settings.language), wall, orders)
                orders.items.append(JoinRoom(room=jid))
                reply(done)
            case AdminLeave(room=jid):
                room = self.rooms.pop(jid, None)
                if room is not None:
                    room.stop_by_admin(now, wall, orders)
                if self._saved_rooms.pop(jid, None) is not None:
                    orders.items.append(RemoveRoom(room=jid))
                self._forget_view(jid, orders)  # its PIN is free again
                orders.items.append(LeaveRoom(room=jid))
                reply(done)
            case AdminStop(room=jid):
                room = self.rooms.get(jid)
                if room is None:
                    reply(render.say(language, "admin-unknown"))
                else:
                    room.stop_by_admin(now, wall, orders)
                    reply(done)
            case AdminBanks():
                reply(render.say(language, "admin-banks", banks="; ".join(self._bank_report) or "-"))
            case AdminReload():
                orders.items.append(ReloadBanks(reply_to=where.to))
            case AdminStats():
                orders.items.append(ReadCounts(reply=where, admin=True))
            case AdminBan(jid=jid):
                self._banned.add(jid)
                orders.items.append(SaveBan(jid=jid, wall=wall))
                reply(done)
            case AdminUnban(jid=jid):
                if jid in self._banned:
                    self._banned.discard(jid)
                    orders.items.append(RemoveBan(jid=jid))
                    reply(done)
                else:
                    reply(render.say(language, "admin-unknown"))
            case AdminReview():
                orders.items.append(ReadSubmissions(reply=where))
            case AdminAccept(id=number) | AdminReject(id=number):
                orders.items.append(ReviewSubmission(id=number, accept=isinstance(action, AdminAccept),
                                                     what=admin_line(action), reply=where))
            case AdminGive(jid=jid, points=points):
                orders.items.append(RecordPoints(player=jid, nick=self._nick_of(jid), points=points, wall=wall,
                                                 game_id=None, why="admin"))
                reply(done)
            case _:
                assert_never(action)

    def _nick_of(self, player: str) -> str | None:
        """The name a player goes by (the leaderboard shows the latest one): their nick in a room, else None: the
        store writes the last one its ledger knows, else the JID's localpart."""
        for room in self.rooms.values():
            occupant = room.occupant_for_player(player)
            if occupant is not None:
                return occupant.nick
        return None

    # --- storage ----------------------------------------------------------------------------------

    def _save_room(self, saved: SavedRoom, wall: float, orders: Orders) -> None:
        """A room to rejoin after a restart; the first language and owner stay (as `INSERT OR IGNORE` did)."""
        if saved.room not in self._saved_rooms:
            self._saved_rooms[saved.room] = saved
            orders.items.append(SaveRoom(room=saved, wall=wall))

    def _read_answered(self, fact: LeaderboardRead | CountsRead | SubmissionsRead | SubmissionReviewed,
                       orders: Orders) -> None:
        """The store's answer to a read the bot ordered: the reply it was for."""
        where = fact.query.reply
        language = where.language

        def reply(text: str, *elements: etree._Element) -> None:
            orders.say(where.to, text, *elements, groupchat=where.groupchat)

        match fact:
            case LeaderboardRead(query=query, board=board):
                standings = [(nick, points) for _player, nick, points in board]
                period = render.say(language, f"period-{query.period}")
                text = (render.say(language, "top", count=query.count, period=period,
                                   standings=render.standings_text(standings)) if standings
                        else render.say(language, "top-none", period=period))
                reply(text, payload.top(period=query.period, standings=standings))
            case CountsRead(query=query, counts=counts) if query.admin:
                reply(render.say(language, "admin-stats", rooms=len(self.rooms),
                                 games=sum(1 for r in self.rooms.values() if r.game), questions=len(self._banks),
                                 pending=counts["pending"], reports=counts["reports"]))
            case CountsRead(query=query, counts=counts):
                room = self.rooms.get(query.room) if query.room is not None else None
                pool = room.banks if room is not None else self._banks
                reply(render.say(language, "stats", questions=pool.count(language),
                                 categories=len(pool.categories(language)), language=language, games=counts["games"],
                                 answers=counts["answers"], correct=counts["correct"]))
            case SubmissionsRead(pending=pending):
                items = " | ".join(f"#{s.id} {s.question} = {s.answer} ({s.submitter})" for s in pending)
                reply(render.say(language, "admin-review", items=items) if pending
                      else render.say(language, "admin-review-none"))
            case SubmissionReviewed(query=query, submission=submission):
                if submission is None:
                    reply(render.say(language, "admin-unknown"))
                    return
                if query.accept:
                    self._accepted.append(submission)
                    for room in self.rooms.values():
                        room.banks = self._with_submissions(self._banks)
                reply(render.say(language, "admin-done", what=query.what))
