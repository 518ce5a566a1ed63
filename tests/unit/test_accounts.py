from pathlib import Path

import pytest

from boshcm.xmpp.accounts import AccountExists, AccountStore, NoSuchAccount


def test_account_lifecycle(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.sqlite", iterations=1000)
    store.add("Alice", "wonderland")  # localparts are case-folded like JIDs
    assert store.exists("alice") and store.usernames() == ["alice"]
    with pytest.raises(AccountExists):
        store.add("alice", "again")
    assert store.verify_password("alice", "wonderland")
    store.set_password("alice", "looking-glass")
    assert not store.verify_password("alice", "wonderland")
    assert store.verify_password("alice", "looking-glass")
    store.remove("alice")
    assert not store.exists("alice")
    with pytest.raises(NoSuchAccount):
        store.remove("alice")
    with pytest.raises(NoSuchAccount):
        store.set_password("bob", "x")


def test_database_never_holds_the_password(tmp_path: Path) -> None:
    path = tmp_path / "accounts.sqlite"
    store = AccountStore(path)
    store.add("alice", "very-distinctive-password")
    store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"very-distinctive-password" not in stored


def test_both_scram_hashes_are_stored_with_their_own_salt() -> None:
    store = AccountStore(":memory:")
    store.add("alice", "wonderland")
    sha1, sha256 = store.scram_credentials("alice", "sha1"), store.scram_credentials("alice", "sha256")
    assert sha1 is not None and sha256 is not None
    assert len(sha1.stored_key) == 20 and len(sha256.stored_key) == 32
    assert sha1.salt != sha256.salt


@pytest.mark.parametrize("bad", ["", "\u0007bell"])
def test_unusable_passwords_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        AccountStore(":memory:").add("alice", bad)


def test_invalid_username_is_refused() -> None:
    with pytest.raises(ValueError):
        AccountStore(":memory:").add("al ice@", "pw")
