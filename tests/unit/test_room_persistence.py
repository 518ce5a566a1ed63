"""Persistent rooms come back after a restart, through SQLite (boshcm/xmpp/muc/service.py RoomStore); temporary
ones do not. A restart here is what the server does: close the store, open the file again, build a new service."""

from __future__ import annotations

import itertools
from pathlib import Path

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element, local_name
from boshcm.xmpp.mam import ArchiveService, MamLimits, MemoryArchiveStore, SqliteArchiveStore
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.roles import Affiliation
from boshcm.xmpp.muc.room import RoomState
from boshcm.xmpp.muc.service import DeleteRoom, MucOrder, MucRegistry, MucService, RoomStore, SaveRoom
from boshcm.xmpp.orders import ArchiveMessage, QueryArchive
from tests.unit.test_muc_room import own_stanzas

ROOM = "quiz@conference.localhost"
ALICE, BOB, CAROL = "alice@localhost/desk", "bob@localhost/phone", "carol@localhost/web"
MUC = "http://jabber.org/protocol/muc"


class Conference:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = RoomStore(path)
        ids = itertools.count(1)
        self.service = MucService(MucRegistry(domain="conference.localhost", secret=self.store.secret(),
                                              rooms=self.store.load(), wall_clock=lambda: 1_700_000_000.0,
                                              lock_seconds=0.0, id_factory=lambda: f"id{next(ids)}"), self.store)

    def send(self, sender: str, text: str) -> list[Element]:
        stanza = etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0]
        stanza.set("from", sender)
        return own_stanzas(self.service.handle_stanza(stanza, 1.0))

    def join(self, sender: str, nick: str) -> list[Element]:
        return self.send(sender, f"<presence to='{ROOM}/{nick}'><x xmlns='{MUC}'/></presence>")

    def configure(self, fields: dict[str, str]) -> None:
        rendered = "".join(f"<field var='{var}'><value>{value}</value></field>" for var, value in fields.items())
        reply = self.send(ALICE, f"<iq to='{ROOM}' type='set' id='cfg'><query xmlns='{MUC}#owner'>"
                                 f"<x xmlns='jabber:x:data' type='submit'>{rendered}</x></query></iq>")
        assert reply[0].get("type") == "result", etree.tostring(reply[0])

    def restart(self) -> Conference:
        self.store.close()
        return Conference(self.path)


def make_quiz_room(path: Path, *, persistent: bool) -> Conference:
    conference = Conference(path)
    conference.join(ALICE, "Quizmaster")
    conference.configure({"muc#roomconfig_persistentroom": "1" if persistent else "0",
                          "muc#roomconfig_roomname": "Friday quiz",
                          "muc#roomconfig_membersonly": "1",
                          "muc#roomconfig_presencebroadcast": "moderator"})
    made = conference.send(ALICE, f"<iq to='{ROOM}' type='set' id='aff'><query xmlns='{MUC}#admin'>"
                                  "<item jid='bob@localhost' affiliation='member'/></query></iq>")
    assert made[0].get("type") == "result", etree.tostring(made[0])
    conference.send(ALICE, f"<message to='{ROOM}' type='groupchat'><subject>Round one</subject></message>")
    conference.join(BOB, "Bobby")     # a member's nick is reserved for him
    conference.send(BOB, f"<presence to='{ROOM}/Bobby' type='unavailable'/>")
    return conference


def test_a_persistent_rooms_config_affiliations_subject_nicks_and_broadcast_survive_a_restart(
        tmp_path: Path) -> None:
    before = make_quiz_room(tmp_path / "rooms.sqlite", persistent=True)
    before.send(ALICE, f"<presence to='{ROOM}/Quizmaster' type='unavailable'/>")
    after = before.restart()
    room = after.service.room(JID.parse(ROOM))
    assert room is not None
    assert room.config.persistent and room.config.name == "Friday quiz" and room.config.members_only
    assert room.config.presence_broadcast == ("moderator",)
    assert room.affiliation(JID.parse(ALICE)) == "owner" and room.affiliation(JID.parse(BOB)) == "member"
    assert room.state.subject == "Round one"
    # Carol is no member: members-only still holds after the restart.
    refused = after.join(CAROL, "Carol")
    assert refused[0].get("type") == "error"
    # The member's reserved nick is still his: the owner cannot take it.
    taken = after.join(ALICE, "Bobby")
    assert taken[0].get("type") == "error", etree.tostring(taken[0])
    # And the subject comes to whoever joins.
    joined = after.join(BOB, "Bobby")
    assert joined[-1].findtext("{jabber:client}subject") == "Round one"


def test_a_temporary_room_is_gone_after_a_restart(tmp_path: Path) -> None:
    before = make_quiz_room(tmp_path / "rooms.sqlite", persistent=False)
    assert before.service.room(JID.parse(ROOM)) is not None   # alive while the owner is in it
    after = before.restart()
    assert after.service.room(JID.parse(ROOM)) is None
    assert after.join(CAROL, "Carol")[0].get("type") is None  # the name is free: Carol makes a new room


def test_a_room_made_temporary_is_forgotten_by_the_store(tmp_path: Path) -> None:
    before = make_quiz_room(tmp_path / "rooms.sqlite", persistent=True)
    before.configure({"muc#roomconfig_persistentroom": "0"})
    after = before.restart()
    assert after.service.room(JID.parse(ROOM)) is None


def test_a_destroyed_persistent_room_does_not_come_back(tmp_path: Path) -> None:
    before = make_quiz_room(tmp_path / "rooms.sqlite", persistent=True)
    done = before.send(ALICE, f"<iq to='{ROOM}' type='set' id='d'><query xmlns='{MUC}#owner'><destroy/></query></iq>")
    assert any(reply.get("type") == "result" for reply in done)
    after = before.restart()
    assert after.service.room(JID.parse(ROOM)) is None


# --- the registry is pure: what must be stored comes out as orders ---------------------------------------


class Registry:
    """The conference's rules without a store: stanzas in, stanzas and storage orders out."""

    def __init__(self, *, rooms: dict[JID, RoomState] | None = None, archive: bool = False) -> None:
        ids = itertools.count(1)
        # The registry only takes the archive's `entry()` (the order); nothing is written here.
        self.archive = ArchiveService(store=MemoryArchiveStore()) if archive else None
        self.registry = MucRegistry(domain="conference.localhost", secret=b"k" * 32, rooms=rooms,
                                    wall_clock=lambda: 1_700_000_000.0, lock_seconds=0.0,
                                    id_factory=lambda: f"id{next(ids)}", archive=self.archive)

    def send(self, sender: str, text: str) -> tuple[list[Element], list[MucOrder]]:
        stanza = etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0]
        stanza.set("from", sender)
        out, orders = self.registry.handle_stanza(stanza, 1.0)
        return own_stanzas(out), orders

    def configure(self, fields: dict[str, str]) -> list[MucOrder]:
        rendered = "".join(f"<field var='{var}'><value>{value}</value></field>" for var, value in fields.items())
        out, orders = self.send(ALICE, f"<iq to='{ROOM}' type='set' id='cfg'><query xmlns='{MUC}#owner'>"
                                       f"<x xmlns='jabber:x:data' type='submit'>{rendered}</x></query></iq>")
        assert out[0].get("type") == "result", etree.tostring(out[0])
        return orders


def test_a_persistent_rooms_changes_are_save_orders_and_its_destruction_a_delete_order() -> None:
    conference = Registry()
    out, orders = conference.send(ALICE, f"<presence to='{ROOM}/Quizmaster'><x xmlns='{MUC}'/></presence>")
    assert out and orders == []  # a temporary room: nothing to keep
    (saved,) = conference.configure({"muc#roomconfig_persistentroom": "1", "muc#roomconfig_roomname": "Friday"})
    assert isinstance(saved, SaveRoom) and saved.jid == JID.parse(ROOM) and saved.state.config.name == "Friday"
    _, orders = conference.send(ALICE, f"<message to='{ROOM}' type='groupchat'><subject>Round one</subject></message>")
    assert [(type(o), o.state.subject) for o in orders if isinstance(o, SaveRoom)] == [(SaveRoom, "Round one")]
    assert saved.state.subject == ""  # an order is a value: later changes do not reach it
    _, orders = conference.send(ALICE, f"<message to='{ROOM}' type='groupchat'><body>hi</body></message>")
    assert orders == []  # chat changes nothing durable (and this registry keeps no archive)
    _, orders = conference.send(ALICE, f"<iq to='{ROOM}' type='set' id='d'><query xmlns='{MUC}#owner'><destroy/>"
                                       "</query></iq>")
    assert orders == [DeleteRoom(jid=JID.parse(ROOM))]
    assert conference.registry.room(JID.parse(ROOM)) is None


def test_rooms_handed_in_at_start_come_back_and_the_archive_is_orders_too() -> None:
    state = RoomState(config=RoomConfig(persistent=True, name="Friday", members_only=True),
                      affiliations={JID.parse("alice@localhost"): Affiliation.OWNER})
    conference = Registry(rooms={JID.parse(ROOM): state}, archive=True)
    room = conference.registry.room(JID.parse(ROOM))
    assert room is not None and room.config.name == "Friday"
    conference.send(ALICE, f"<presence to='{ROOM}/Quizmaster'><x xmlns='{MUC}'/></presence>")
    out, orders = conference.send(ALICE, f"<message to='{ROOM}' type='groupchat' id='m1'><body>hi</body></message>")
    # The same order the router emits for accounts (boshcm/xmpp/orders.py): one kind of archive write.
    (archived,) = orders
    assert isinstance(archived, ArchiveMessage)
    (entry,) = archived.messages
    assert (entry.archive, entry.peer, entry.at) == (ROOM, f"{ROOM}/Quizmaster", 1_700_000_000.0)
    stored = etree.fromstring(entry.stanza)
    assert stored.get("to") is None and stored.findtext("{jabber:client}body") == "hi"
    assert stored.find("{urn:xmpp:sid:0}stanza-id") is None  # the archive says what its ids are
    stanza_id = out[0].find("{urn:xmpp:sid:0}stanza-id")
    assert stanza_id is not None and entry.id == stanza_id.get("id")
    query = f"<iq to='{ROOM}' type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>"
    out, orders = conference.send(ALICE, query)
    (read,) = orders
    assert out == [] and isinstance(read, QueryArchive)  # the adapter reads the archive
    assert (read.archive, read.requester, read.wall) == (JID.parse(ROOM), JID.parse(ALICE), 1_700_000_000.0)
    assert conference.archive is not None  # what the adapter (MucService) does with both orders
    conference.archive.perform(archived)
    result, fin = conference.archive.handle_iq(read.archive, read.iq, read.wall)
    assert result.find(".//{jabber:client}body") is not None and fin.get("type") == "result"
    out, orders = conference.send(CAROL, query.replace("id='q'", "id='q2'"))  # no member: no read at all
    assert orders == [] and out[0].get("type") == "error" and out[0].find(".//{*}forbidden") is not None


# --- a message the room archive does not keep carries no stanza-id (XEP-0359 §4) --------------------

class ArchivedConference(Conference):
    """A persistent room with its archive (boshcm's own SQLite store), as `boshcm serve` runs it."""

    def __init__(self, path: Path, *, max_bytes: int = 10_485_760) -> None:
        self.archive_store = SqliteArchiveStore(path.with_name("mam.sqlite"))
        self.archive = ArchiveService(store=self.archive_store, limits=MamLimits(max_bytes_per_archive=max_bytes))
        self.path = path
        self.store = RoomStore(path)
        ids = itertools.count(1)
        self.service = MucService(MucRegistry(domain="conference.localhost", secret=self.store.secret(),
                                              rooms=self.store.load(), wall_clock=lambda: 1_700_000_000.0,
                                              lock_seconds=0.0, id_factory=lambda: f"id{next(ids)}",
                                              archive=self.archive), self.store)
        self.join(ALICE, "Quizmaster")
        self.configure({"muc#roomconfig_persistentroom": "1"})
        self.join(BOB, "Bobby")

    def say(self, body: str) -> list[Element]:
        return [out for out in self.send(ALICE, f"<message to='{ROOM}' type='groupchat'><body>{body}</body></message>")
                if out.get("type") == "groupchat"]

    def history_seen_by_carol(self) -> list[Element]:
        return [out for out in self.join(CAROL, "Carol")   # the history, not the subject that follows it
                if local_name(out) == "message" and out.find("{jabber:client}body") is not None]


def stanza_ids(stanza: Element) -> list[str | None]:
    return [stamp.get("id") for stamp in stanza.iter("{urn:xmpp:sid:0}stanza-id")]


def test_a_room_message_the_archive_refused_goes_to_everyone_without_a_stanza_id(tmp_path: Path) -> None:
    conference = ArchivedConference(tmp_path / "rooms.sqlite")
    kept = conference.say("kept")
    assert len(kept) == 2 and all(len(stanza_ids(copy)) == 1 for copy in kept)   # archived: named by its id
    conference.archive_store.connection.execute("PRAGMA query_only = ON")    # writes fail (SQLITE_READONLY)
    refused = conference.say("refused")
    assert len(refused) == 2 and all(stanza_ids(copy) == [] for copy in refused)
    conference.archive_store.connection.execute("PRAGMA query_only = OFF")
    history = conference.history_seen_by_carol()
    assert [message.findtext("{jabber:client}body") for message in history] == ["kept", "refused"]
    assert stanza_ids(history[0]) == stanza_ids(kept[0]) and stanza_ids(history[1]) == []


def test_a_room_message_too_large_for_the_archive_goes_without_a_stanza_id(tmp_path: Path) -> None:
    conference = ArchivedConference(tmp_path / "rooms.sqlite", max_bytes=400)
    small, large = conference.say("short"), conference.say("x" * 500)
    assert all(len(stanza_ids(copy)) == 1 for copy in small)
    assert all(stanza_ids(copy) == [] for copy in large)
    assert stanza_ids(conference.history_seen_by_carol()[1]) == []
