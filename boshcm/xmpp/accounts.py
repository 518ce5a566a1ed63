"""Accounts in SQLite: SCRAM salted secrets (RFC 5802 §3) for SHA-1 and SHA-256, never passwords.

PLAIN is verified by deriving the salted password with the stored salt and iteration count and comparing
StoredKey, so one secret per hash serves every mechanism we offer. That derivation is slow on purpose
(PBKDF2): a login's is described by a `KeyDerivation`, which the session adapter runs in a thread pool, off the
event loop (xmpp/session_adapter.py). Creating or changing an account (`add`, `set_password`,
`verify_password`) derives synchronously: it runs only at start-up (the extensions' service accounts) and in
the command line (`boshcm adduser`/`passwd`), never for a client; in-band registration (xmpp/registration.py)
derives off the event loop and stores the result with `store_secrets`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from boshcm.database import open_database, storage_errors, transaction
from boshcm.jid import JID, InvalidJID

HASHES = ("sha1", "sha256")
DEFAULT_ITERATIONS = 4096
SALT_BYTES = 16
RECHECK_SECONDS = 1.0  # how stale the in-memory set of names may be for another process's changes


class AccountExists(Exception):
    def __init__(self, username: str) -> None:
        super().__init__(f"account {username!r} already exists")


class NoSuchAccount(Exception):
    def __init__(self, username: str) -> None:
        super().__init__(f"no account {username!r}")


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def normalise_username(username: str) -> str:
    """A localpart as JIDs normalise it; ValueError when it cannot be one."""
    try:
        local = JID.make(username, "example.invalid").local
    except InvalidJID as exc:
        raise ValueError(f"invalid username {username!r}: {exc}") from exc
    assert local is not None
    return local


def prepare_password(password: str) -> bytes:
    """RFC 4013 SASLprep, in its essentials: non-ASCII spaces to space, NFKC. Empty is refused."""
    mapped = "".join(" " if unicodedata.category(char) == "Zs" else char for char in password)
    prepared = unicodedata.normalize("NFKC", mapped)
    if not prepared:
        raise ValueError("empty password")
    if any(unicodedata.category(char) == "Cc" for char in prepared):
        raise ValueError("password contains control characters")
    return prepared.encode()


def derive(hash_name: str, password: str, salt: bytes, iterations: int) -> ScramCredentials:
    """ValueError when the password cannot be prepared (`prepare_password`)."""
    return derive_prepared(hash_name, prepare_password(password), salt, iterations)


def derive_prepared(hash_name: str, prepared: bytes, salt: bytes, iterations: int) -> ScramCredentials:
    # RFC 5802 §3: SaltedPassword = Hi(Normalize(password), salt, i); CPython's PBKDF2 releases the GIL.
    salted = hashlib.pbkdf2_hmac(hash_name, prepared, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    return ScramCredentials(salt=salt, iterations=iterations,
                            stored_key=hashlib.new(hash_name, client_key).digest(),
                            server_key=hmac.digest(salted, b"Server Key", hash_name))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyDerivation:
    """The slow part of checking a password: the work an adapter runs off the event loop (`run`)."""

    hash_name: str
    prepared_password: bytes = field(repr=False)  # SASLprep'd; never in a log line
    salt: bytes
    iterations: int

    def run(self) -> ScramCredentials:
        return derive_prepared(self.hash_name, self.prepared_password, self.salt, self.iterations)


# Numbered migrations (boshcm/database.py); 1 is the schema from before versions were kept.
_MIGRATIONS = (
    """CREATE TABLE IF NOT EXISTS scram (
        username TEXT NOT NULL, hash TEXT NOT NULL, salt BLOB NOT NULL, iterations INTEGER NOT NULL,
        stored_key BLOB NOT NULL, server_key BLOB NOT NULL, PRIMARY KEY (username, hash))""",
)


class AccountStore:
    """The accounts, and in memory the set of their names: the router asks "does this user exist" for every
    stanza it delivers, and that is answered without a query (`exists`)."""

    def __init__(self, path: Path | str, *, iterations: int = DEFAULT_ITERATIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._iterations = iterations
        self._db = open_database(path, _MIGRATIONS)
        self._clock = clock
        self._names: set[str] = set()
        self._version = -1
        self._checked_at = clock()
        self._reload_if_changed()

    def add(self, username: str, password: str, *, salt: bytes | None = None,
            iterations: int | None = None) -> None:
        """Create an account. `salt`/`iterations` are for importing known test vectors."""
        username = normalise_username(username)
        if self._stored(username):
            raise AccountExists(username)
        self._write(username, password, salt, iterations)

    def set_password(self, username: str, password: str) -> None:
        username = normalise_username(username)
        if not self._stored(username):
            raise NoSuchAccount(username)
        self._write(username, password, None, None)

    def _write(self, username: str, password: str, salt: bytes | None, iterations: int | None) -> None:
        rows = []
        for hash_name in HASHES:
            secret = derive(hash_name, password, salt or os.urandom(SALT_BYTES), iterations or self._iterations)
            rows.append((username, hash_name, secret.salt, secret.iterations, secret.stored_key, secret.server_key))
        with transaction(self._db):
            self._db.execute("DELETE FROM scram WHERE username = ?", (username,))
            self._db.executemany("INSERT INTO scram VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._names.add(username)

    @property
    def iterations(self) -> int:
        """PBKDF2 iterations for new secrets (in-band registration derives them off the event loop)."""
        return self._iterations

    def store_secrets(self, username: str, secrets: Mapping[str, ScramCredentials], *, new: bool) -> None:
        """Store secrets derived elsewhere (XEP-0077 registration, password change): one per hash in HASHES.
        `new`: the account must not exist yet (AccountExists), else it must (NoSuchAccount)."""
        username = normalise_username(username)
        if sorted(secrets) != sorted(HASHES):
            raise ValueError(f"secrets for {sorted(HASHES)} expected; got {sorted(secrets)}")
        if self._stored(username) == new:
            raise AccountExists(username) if new else NoSuchAccount(username)
        rows = [(username, hash_name, secret.salt, secret.iterations, secret.stored_key, secret.server_key)
                for hash_name, secret in secrets.items()]
        with transaction(self._db):
            self._db.execute("DELETE FROM scram WHERE username = ?", (username,))
            self._db.executemany("INSERT INTO scram VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._names.add(username)

    def remove(self, username: str) -> None:
        username = normalise_username(username)
        with storage_errors():
            deleted = self._db.execute("DELETE FROM scram WHERE username = ?", (username,)).rowcount
        self._names.discard(username)
        if deleted == 0:
            raise NoSuchAccount(username)

    def exists(self, username: str) -> bool:
        """From memory. Accounts that another process (`boshcm adduser`/`deluser`) made or removed are seen
        within RECHECK_SECONDS: at most that often one cheap query asks whether the database changed."""
        now = self._clock()
        if now - self._checked_at >= RECHECK_SECONDS:
            self._checked_at = now
            self._reload_if_changed()
        return username in self._names

    def _stored(self, username: str) -> bool:
        row = self._db.execute("SELECT 1 FROM scram WHERE username = ? LIMIT 1", (username,)).fetchone()
        return row is not None

    def _reload_if_changed(self) -> None:
        # SQLite's data_version changes when another connection (another process) has committed.
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version != self._version:
            self._version = version
            self._names = set(self.usernames())

    def usernames(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT DISTINCT username FROM scram ORDER BY username")]

    def scram_credentials(self, username: str, hash_name: str) -> ScramCredentials | None:
        row = self._db.execute(
            "SELECT salt, iterations, stored_key, server_key FROM scram WHERE username = ? AND hash = ?",
            (username, hash_name)).fetchone()
        if row is not None:
            self._names.add(username)  # made by `boshcm adduser` a moment ago: known before the next recheck
        return None if row is None else ScramCredentials(salt=row[0], iterations=row[1], stored_key=row[2],
                                                         server_key=row[3])

    def verify_password(self, username: str, password: str) -> bool:
        stored = self.scram_credentials(username, "sha256")
        if stored is None:
            return False
        try:
            candidate = derive("sha256", password, stored.salt, stored.iterations)
        except ValueError:
            return False
        return hmac.compare_digest(candidate.stored_key, stored.stored_key)

    def close(self) -> None:
        self._db.close()
