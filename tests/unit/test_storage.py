from pathlib import Path

from boshcm.jid import JID
from boshcm.xmpp.storage import RosterItem, SqliteStore


def test_sqlite_store_keeps_rosters_and_offline_messages_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "server.sqlite"
    store = SqliteStore(path, max_offline_per_user=2)
    item = RosterItem(jid=JID.parse("bob@localhost"), name="Bob", subscription="both", groups=("Quiz", "Friends"))
    store.put_roster_item("alice", item)
    assert store.store_offline("alice", b"<message>1</message>")
    assert store.store_offline("alice", b"<message>2</message>")
    assert not store.store_offline("alice", b"<message>3</message>")  # queue full
    store.close()

    reopened = SqliteStore(path)
    assert reopened.roster_items("alice") == [item]
    assert reopened.roster_item("alice", JID.parse("bob@localhost")) == item
    assert reopened.pop_offline("alice") == [b"<message>1</message>", b"<message>2</message>"]
    assert reopened.pop_offline("alice") == []
    reopened.delete_user("alice")
    assert reopened.roster_items("alice") == []
