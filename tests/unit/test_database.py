"""Numbered schema migrations under `PRAGMA user_version` (boshcm/database.py), and every store's list of them."""

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from boshcm.database import MEMORY, DatabaseFault, open_database
from boshcm.jid import JID
from boshcm.upload import UploadStore
from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.blocking import SqliteBlocklistStore
from boshcm.xmpp.mam.store import SqliteArchiveStore
from boshcm.xmpp.muc.service import RoomStore
from boshcm.xmpp.private_storage import SqlitePrivateStore
from boshcm.xmpp.pubsub.node import NodeConfig
from boshcm.xmpp.pubsub.store import SqlitePepStore, StoredItem
from boshcm.xmpp.storage import RosterItem, SqliteStore
from boshcm.xmpp.vcard import SqliteVCardStore
from quizbot.store import QuizStore

ONE = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);"
TWO = "ALTER TABLE notes ADD COLUMN author TEXT; CREATE INDEX notes_author ON notes (author);"


def _three(db: sqlite3.Connection) -> None:
    db.execute("UPDATE notes SET author = 'unknown' WHERE author IS NULL")


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_a_fresh_database_gets_every_migration_and_their_count_as_version(tmp_path: Path) -> None:
    db = open_database(tmp_path / "x.sqlite", [ONE, TWO, _three])
    assert version(db) == 3 and columns(db, "notes") == ["id", "text", "author"]
    db.close()
    memory = open_database(MEMORY, [ONE, TWO])
    assert version(memory) == 2 and columns(memory, "notes") == ["id", "text", "author"]


def test_a_file_database_is_in_wal_mode_and_commits_without_waiting_for_the_disk(tmp_path: Path) -> None:
    # synchronous=NORMAL (1): a commit does not fsync the WAL, since every write runs on the event loop.
    db = open_database(tmp_path / "x.sqlite", [ONE])
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1
    db.close()


def test_a_database_at_version_1_is_upgraded_to_3_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    old = open_database(path, [ONE])
    old.execute("INSERT INTO notes (text) VALUES ('kept')")
    old.close()
    db = open_database(path, [ONE, TWO, _three])
    assert version(db) == 3
    assert db.execute("SELECT text, author FROM notes").fetchall() == [("kept", "unknown")]
    db.close()
    assert version(open_database(path, [ONE, TWO, _three])) == 3  # nothing left to do: opened again as it is


def test_a_database_written_by_newer_code_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    open_database(path, [ONE, TWO, _three]).close()
    with pytest.raises(DatabaseFault) as refused:
        open_database(path, [ONE, TWO])
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "schema version is 3" in message and "(2)" in message and "newer" in message
    assert version(sqlite3.connect(path)) == 3  # left as it was


@pytest.mark.parametrize("broken", [
    "ALTER TABLE notes ADD COLUMN author TEXT; INSERT INTO notes (text) VALUES ('half'); SELECT * FROM nowhere;",
    "ALTER TABLE notes ADD COLUMN author TEXT; INSERT INTO notes (text) VALUES ('half'); INSERT INTO nowhere VALUES (1)"
    "  -- no semicolon at the end",
], ids=["sql-script", "last-statement"])
def test_a_failing_migration_is_rolled_back_whole_and_the_version_stays(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "x.sqlite"
    open_database(path, [ONE]).close()
    with pytest.raises(DatabaseFault, match=r"x\.sqlite: .*no such table: nowhere"):
        open_database(path, [ONE, broken])
    db = sqlite3.connect(path)
    assert version(db) == 1 and columns(db, "notes") == ["id", "text"]
    assert db.execute("SELECT COUNT(*) FROM notes").fetchone() == (0,)
    db.close()
    assert version(open_database(path, [ONE, TWO])) == 2  # fixed code carries on from 1


def test_a_failing_function_migration_is_rolled_back_too(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"

    def half_done(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE notes ADD COLUMN author TEXT")
        raise ValueError("bug in the migration")

    open_database(path, [ONE]).close()
    with pytest.raises(ValueError, match="bug in the migration"):
        open_database(path, [ONE, half_done])
    db = sqlite3.connect(path)
    assert version(db) == 1 and columns(db, "notes") == ["id", "text"]


# --- every store: its migrations, and files of the code from before versions were kept ---------------------

STORES: dict[str, Callable[[Path], object]] = {
    "accounts.sqlite": lambda path: AccountStore(path, iterations=4096),
    "server.sqlite": SqliteStore,
    "rooms.sqlite": RoomStore,
    "pep.sqlite": SqlitePepStore,
    "blocklist.sqlite": SqliteBlocklistStore,
    "vcard.sqlite": SqliteVCardStore,
    "private.sqlite": SqlitePrivateStore,
    "mam.sqlite": SqliteArchiveStore,
    "upload.sqlite": UploadStore,
    "quizbot.sqlite": QuizStore,
}
LATEST = {"pep.sqlite": 2}


@pytest.mark.parametrize("name", sorted(STORES))
def test_every_store_records_its_schema_version_and_opens_a_file_of_the_code_before_versions(
        tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    store = STORES[name](path)
    store.close()  # type: ignore[attr-defined]
    db = sqlite3.connect(path)
    assert version(db) == LATEST.get(name, 1)
    schema = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    db.execute("PRAGMA user_version = 0")  # what the code before versions left: the same tables, version 0
    db.close()
    STORES[name](path).close()  # type: ignore[attr-defined]
    db = sqlite3.connect(path)
    assert version(db) == LATEST.get(name, 1)
    assert db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema


def test_an_old_server_store_keeps_its_rosters_and_offline_messages(tmp_path: Path) -> None:
    path = tmp_path / "server.sqlite"
    old = sqlite3.connect(path)  # exactly what the code before versions created
    old.executescript("""
        CREATE TABLE IF NOT EXISTS roster (user TEXT NOT NULL, jid TEXT NOT NULL, item TEXT NOT NULL,
                                           PRIMARY KEY (user, jid));
        CREATE TABLE IF NOT EXISTS offline (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
                                            stanza BLOB NOT NULL);
        CREATE INDEX IF NOT EXISTS offline_user ON offline (user, id);
        INSERT INTO offline (user, stanza) VALUES ('alice', CAST('<message>old</message>' AS BLOB));
    """)
    old.close()
    store = SqliteStore(path)
    assert [message.stanza for message in store.offline_messages("alice")] == [b"<message>old</message>"]
    item = RosterItem(jid=JID.parse("bob@localhost"), subscription="both")
    store.put_roster_item("alice", item)
    assert store.roster_items("alice") == [item]
    assert version(store.connection) == 1


@pytest.mark.parametrize("published_at", [False, True], ids=["before-publication-times", "with-them"])
def test_an_old_pep_store_gets_publication_times_once_and_the_tables_added_since(
        tmp_path: Path, published_at: bool) -> None:
    path = tmp_path / "pep.sqlite"
    old = sqlite3.connect(path)  # from releases without affiliations/subscriptions tables, with or without the column
    old.executescript(f"""
        CREATE TABLE nodes (owner TEXT NOT NULL, node TEXT NOT NULL, config TEXT NOT NULL, PRIMARY KEY (owner, node));
        CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, node TEXT NOT NULL,
                            id TEXT NOT NULL, payload BLOB NOT NULL, {"published_at REAL," if published_at else ""}
                            UNIQUE (owner, node, id));
        INSERT INTO items (owner, node, id, payload) VALUES ('alice', 'n', '1', x'3c612f3e');
    """)
    old.close()
    store = SqlitePepStore(path)
    assert version(store.connection) == 2
    assert columns(store.connection, "items").count("published_at") == 1
    assert store.items("alice", "n") == [StoredItem(id="1", payload=b"<a/>", published_at=None)]
    store.put_node("alice", "n", NodeConfig(), keep=2)
    store.set_affiliation("alice", "n", "bob@localhost", "member")
    assert store.affiliations("alice", "n") == {"bob@localhost": "member"}

