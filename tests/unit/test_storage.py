import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from boshcm.database import DatabaseFault, StorageFull, StorageUnavailable
from boshcm.jid import JID
from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.room import RoomState
from boshcm.xmpp.muc.service import RoomStore
from boshcm.xmpp.storage import RosterItem, SqliteStore
from quizbot.store import QuizStore


def test_sqlite_store_keeps_rosters_and_offline_messages_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "server.sqlite"
    store = SqliteStore(path, max_offline_messages=2)
    item = RosterItem(jid=JID.parse("bob@localhost"), name="Bob", subscription="both", groups=("Quiz", "Friends"))
    store.put_roster_item("alice", item)
    assert store.store_offline("alice", b"<message>1</message>")
    assert store.store_offline("alice", b"<message>2</message>")
    assert not store.store_offline("alice", b"<message>3</message>")  # queue full
    store.close()

    reopened = SqliteStore(path)
    assert reopened.roster_items("alice") == [item]
    assert reopened.roster_item("alice", JID.parse("bob@localhost")) == item
    stored = reopened.offline_messages("alice")
    assert [message.stanza for message in stored] == [b"<message>1</message>", b"<message>2</message>"]
    reopened.delete_offline("alice", up_to=stored[-1].id)
    assert reopened.offline_messages("alice") == []
    reopened.delete_user("alice")
    assert reopened.roster_items("alice") == []


# --- quotas and storage faults ---------------------------------------------------------------------

def test_offline_quota_counts_messages_and_bytes_per_recipient(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "server.sqlite", max_offline_messages=3, max_offline_bytes=100)
    assert store.store_offline("bob", b"x" * 40) and store.store_offline("bob", b"y" * 40)
    assert not store.store_offline("bob", b"z" * 40)  # 120 bytes would exceed the byte quota
    assert store.store_offline("bob", b"z" * 20)
    assert not store.store_offline("bob", b"!")  # the fourth message exceeds the count quota
    assert store.store_offline("carol", b"x" * 100)  # one recipient's full store is no one else's
    assert [len(message.stanza) for message in store.offline_messages("bob")] == [40, 40, 20]
    store.close()


def test_a_full_database_raises_storage_full_and_keeps_what_was_stored(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "server.sqlite")
    assert store.store_offline("bob", b"<message>kept</message>")
    (pages,) = store.connection.execute("PRAGMA page_count").fetchone()
    store.connection.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL, exactly as a full disk
    with pytest.raises(StorageFull):
        store.store_offline("bob", b"<message>" + b"x" * 20_000 + b"</message>")
    with pytest.raises(StorageFull):
        store.put_roster_item("bob", RosterItem(jid=JID.parse("alice@localhost"), name="x" * 20_000))
    assert [message.stanza for message in store.offline_messages("bob")] == [b"<message>kept</message>"]
    store.connection.execute("PRAGMA max_page_count = 1073741823")  # space returns
    assert store.store_offline("bob", b"<message>" + b"x" * 20_000 + b"</message>")
    assert len(store.offline_messages("bob")) == 2
    store.close()


def test_a_store_that_cannot_be_written_raises_storage_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "server.sqlite")
    store.connection.execute("PRAGMA query_only = ON")  # SQLITE_READONLY, as on a read-only file system
    with pytest.raises(StorageUnavailable):
        store.store_offline("bob", b"<message/>")
    with pytest.raises(StorageUnavailable):
        store.delete_offline("bob", up_to=1)
    store.close()


def _accounts(path: Path) -> None:
    store = AccountStore(path, iterations=10)
    for number in range(40):
        store.add(f"user{number}", "secret")
    store.close()


def _server(path: Path) -> None:
    store = SqliteStore(path)
    for number in range(40):
        store.store_offline(f"user{number}", b"<message>" + b"x" * 500 + b"</message>")
    store.close()


def _rooms(path: Path) -> None:
    store = RoomStore(path)
    store.secret()
    for number in range(40):
        store.save(JID.parse(f"room{number}@conference.localhost"), RoomState(config=RoomConfig(persistent=True)))
    store.close()


def _quiz(path: Path) -> None:
    store = QuizStore(path)
    for number in range(40):
        store.award(player=f"user{number}@localhost", nick="x" * 100, points=1, wall=0.0, game_id=None, why="t")
    store.close()


STORES: dict[str, tuple[Callable[[Path], None], Callable[[Path], object]]] = {
    "accounts.sqlite": (_accounts, AccountStore),
    "server.sqlite": (_server, SqliteStore),
    "rooms.sqlite": (_rooms, RoomStore),
    "quizbot.sqlite": (_quiz, QuizStore),
}


@pytest.mark.parametrize("name", sorted(STORES))
@pytest.mark.parametrize("fault", ["empty", "random", "truncated"])
def test_a_damaged_or_empty_file_is_refused_at_open_with_one_line_naming_it(
        tmp_path: Path, name: str, fault: str) -> None:
    fill, open_store = STORES[name]
    path = tmp_path / name
    fill(path)
    data = path.read_bytes()
    damaged = {"empty": b"", "random": os.urandom(len(data)), "truncated": data[:len(data) // 2]}[fault]
    path.write_bytes(damaged)
    with pytest.raises(DatabaseFault) as refused:
        open_store(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "; " in message
    if fault == "empty":
        assert "empty" in message and "delete it" in message
    assert path.read_bytes() == damaged  # refused, not overwritten


def test_a_new_file_is_created_and_a_missing_directory_is_named(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "new.sqlite").close()
    assert (tmp_path / "new.sqlite").stat().st_size > 0
    with pytest.raises(DatabaseFault, match=r"missing: no such directory"):
        SqliteStore(tmp_path / "missing" / "server.sqlite")


def _fill_up(db: sqlite3.Connection) -> None:
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")


def test_quiz_points_awarded_while_the_disk_is_full_are_written_once_space_returns(tmp_path: Path) -> None:
    store = QuizStore(tmp_path / "quizbot.sqlite")
    store.award(player="alice@localhost", nick="alice", points=5, wall=1.0, game_id=None, why="before")
    _fill_up(store.connection)
    for number in range(20):  # the game goes on: no exception reaches the bot
        store.award(player="bob@localhost", nick="b" * 2000, points=1, wall=2.0, game_id=None, why=f"q{number}")
    assert store.unsaved > 0
    assert sum(points for _player, _nick, points in store.leaderboard("all", wall=3.0)) < 25  # not all on disk
    store.connection.execute("PRAGMA max_page_count = 1073741823")
    store.award(player="alice@localhost", nick="alice", points=1, wall=4.0, game_id=None, why="after")
    assert store.unsaved == 0
    assert store.leaderboard("all", wall=5.0) == [("bob@localhost", "b" * 2000, 20), ("alice@localhost", "alice", 6)]
    store.close()


def test_room_saves_that_fail_are_kept_and_written_with_the_next_change(tmp_path: Path) -> None:
    path = tmp_path / "rooms.sqlite"
    store = RoomStore(path)
    store.secret()
    _fill_up(store.connection)
    rooms = [JID.parse(f"room{number}@conference.localhost") for number in range(20)]
    for room in rooms:
        store.save(room, RoomState(config=RoomConfig(persistent=True, name="n" * 1000)))
    assert store.unsaved > 0
    store.connection.execute("PRAGMA max_page_count = 1073741823")
    store.delete(rooms[0])
    assert store.unsaved == 0
    store.close()
    assert sorted(RoomStore(path).load(), key=str) == sorted(rooms[1:], key=str)


def test_reserved_nicks_of_a_persistent_room_survive_a_restart(tmp_path: Path) -> None:
    path, room, bot = tmp_path / "rooms.sqlite", JID.parse("quiz@conference.localhost"), JID.parse("quiz@localhost")
    store = RoomStore(path)
    store.save(room, RoomState(config=RoomConfig(persistent=True), affiliations={bot: "owner"},
                               nicks={bot: "Quizbot"}))
    store.close()
    assert RoomStore(path).load()[room].nicks == {bot: "Quizbot"}
