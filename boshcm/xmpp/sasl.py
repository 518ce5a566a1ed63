"""Server-side SASL (RFC 6120 §6, RFC 4422): SCRAM-SHA-256/SHA-1, PLAIN and ANONYMOUS, pure.

Payloads arrive already base64-decoded. Peer mistakes are SaslFailure results, never exceptions. An unknown
user looks exactly like a wrong password, SCRAM salt and PLAIN's key derivation included, so accounts cannot
be enumerated. Once the username is known, and before any challenge or password check, the caller's `admit`
may refuse the attempt (login throttling); afterwards `username` and `account_exists` say whom it concerned.

PLAIN's key derivation (PBKDF2, slow on purpose) is not run here: the exchange answers `SaslKeyNeeded` with the
work to do, its caller has it done off the event loop and hands the result to `key_derived`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from boshcm.xmpp.accounts import (
    DEFAULT_ITERATIONS,
    KeyDerivation,
    ScramCredentials,
    normalise_username,
    prepare_password,
)

SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}
# Used only for fake salts of unknown users.
_FAKE_SALT_KEY = secrets.token_bytes(32)


class SaslCondition(StrEnum):
    """RFC 6120 §6.5."""

    ABORTED = "aborted"
    ACCOUNT_DISABLED = "account-disabled"
    CREDENTIALS_EXPIRED = "credentials-expired"
    ENCRYPTION_REQUIRED = "encryption-required"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    MECHANISM_TOO_WEAK = "mechanism-too-weak"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"


@dataclass(frozen=True, slots=True, kw_only=True)
class SaslChallenge:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SaslSuccess:
    username: str
    anonymous: bool = False
    data: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SaslFailure:
    condition: SaslCondition
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SaslKeyNeeded:
    """No answer yet: derive this key (off the event loop) and pass it to `SaslExchange.key_derived`."""

    work: KeyDerivation


SaslResult = SaslChallenge | SaslSuccess | SaslFailure | SaslKeyNeeded


class CredentialSource(Protocol):
    def scram_credentials(self, username: str, hash_name: str) -> ScramCredentials | None: ...


# Given a normalised username, a refusal to evaluate this attempt at all, or None to go on.
Admit = Callable[[str], SaslFailure | None]


def default_nonce() -> str:
    return secrets.token_urlsafe(18)


def offered_mechanisms(*, secure: bool, allow_plain_insecure: bool, anonymous: bool) -> list[str]:
    mechanisms = list(SCRAM_HASHES)
    if secure or allow_plain_insecure:
        mechanisms.append("PLAIN")
    if anonymous:
        mechanisms.append("ANONYMOUS")
    return mechanisms


def decode_sasl_payload(text: str) -> bytes | None:
    """RFC 6120 §6.4.2: '=' is an empty response; invalid base64 gives None."""
    text = text.strip()
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def encode_sasl_payload(data: bytes | None) -> str:
    return "=" if not data else base64.b64encode(data).decode()


_NOT_AUTHORIZED = SaslFailure(condition=SaslCondition.NOT_AUTHORIZED)
_MALFORMED = SaslFailure(condition=SaslCondition.MALFORMED_REQUEST)


class SaslExchange:
    """One authentication attempt with one mechanism."""

    def __init__(self, *, mechanism: str, offered: Sequence[str], accounts: CredentialSource, domain: str,
                 nonce_factory: Callable[[], str] = default_nonce) -> None:
        self._mechanism = mechanism if mechanism in offered else None
        self._accounts = accounts
        self._domain = domain
        self._nonce_factory = nonce_factory
        self._scram: _ScramState | None = None
        self._plain_stored: ScramCredentials | None = None  # PLAIN: what the derived key is compared with
        self._awaiting_key = False
        self._done = False
        self.username: str | None = None  # normalised, once the client has named it
        self.account_exists = False

    def start(self, initial_response: bytes | None, *, admit: Admit | None = None) -> SaslResult:
        match self._mechanism:
            case None:
                return self._finish(SaslFailure(condition=SaslCondition.INVALID_MECHANISM))
            case "PLAIN":
                if initial_response is None:
                    return SaslChallenge(data=b"")  # RFC 4616: the client may wait for an empty challenge
                return self._finish(self._plain(initial_response, admit))
            case "ANONYMOUS":
                return self._finish(SaslSuccess(username="anon-" + secrets.token_hex(6), anonymous=True))
            case _:
                if initial_response is None:
                    return SaslChallenge(data=b"")
                return self._scram_first(initial_response, admit)

    def respond(self, data: bytes, *, admit: Admit | None = None) -> SaslResult:
        if self._done or self._awaiting_key:
            return _MALFORMED
        if self._mechanism == "PLAIN":
            return self._finish(self._plain(data, admit))
        if self._mechanism in SCRAM_HASHES:
            if self._scram is None:
                return self._scram_first(data, admit)
            return self._finish(self._scram_final(data))
        return self._finish(_MALFORMED)

    def abort(self) -> SaslFailure:
        self._done = True
        self._awaiting_key = False
        return SaslFailure(condition=SaslCondition.ABORTED)

    def key_derived(self, candidate: ScramCredentials) -> SaslResult:
        """PLAIN: the key `SaslKeyNeeded` asked for; success only if it matches the stored one."""
        if not self._awaiting_key:
            return self._finish(_MALFORMED)
        self._awaiting_key = False
        stored = self._plain_stored
        if stored is None or not hmac.compare_digest(candidate.stored_key, stored.stored_key):
            return self._finish(_NOT_AUTHORIZED)
        assert self.username is not None
        return self._finish(SaslSuccess(username=self.username))

    def _finish(self, result: SaslResult) -> SaslResult:
        self._done = True
        return result

    # --- PLAIN (RFC 4616) -------------------------------------------------------------------------

    def _plain(self, message: bytes, admit: Admit | None) -> SaslResult:
        parts = message.split(b"\0")
        if len(parts) != 3:
            return _MALFORMED
        try:
            authzid, authcid, password = (part.decode() for part in parts)
            username = normalise_username(authcid)
        except (UnicodeDecodeError, ValueError):
            return _NOT_AUTHORIZED
        if authzid and authzid not in (username, f"{username}@{self._domain}"):
            return SaslFailure(condition=SaslCondition.INVALID_AUTHZID)
        if admit is not None and (refused := admit(username)) is not None:
            return refused
        self.username = username
        stored = self._accounts.scram_credentials(username, "sha256")
        self.account_exists = stored is not None
        # The key derivation runs for made-up names too, with their fake salt: no timing difference.
        salt, iterations = (stored.salt, stored.iterations) if stored else (_fake_salt(username), DEFAULT_ITERATIONS)
        try:
            prepared = prepare_password(password)
        except ValueError:
            return _NOT_AUTHORIZED
        self._plain_stored, self._awaiting_key = stored, True
        return SaslKeyNeeded(work=KeyDerivation(hash_name="sha256", prepared_password=prepared, salt=salt,
                                                iterations=iterations))

    # --- SCRAM (RFC 5802, RFC 7677) ---------------------------------------------------------------

    def _scram_first(self, message: bytes, admit: Admit | None) -> SaslResult:
        try:
            text = message.decode()
        except UnicodeDecodeError:
            return self._finish(_MALFORMED)
        gs2_flag, _, rest = text.partition(",")
        authzid_field, _, client_first_bare = rest.partition(",")
        if gs2_flag == "p" or gs2_flag.startswith("p="):
            # We offer no -PLUS mechanism, so a client asking for channel binding is confused.
            return self._finish(SaslFailure(condition=SaslCondition.NOT_AUTHORIZED,
                                            text="Channel binding unsupported"))
        if gs2_flag not in ("n", "y") or not client_first_bare:
            return self._finish(_MALFORMED)
        attributes = _scram_attributes(client_first_bare)
        if attributes is None or "n" not in attributes or "r" not in attributes or "m" in attributes:
            return self._finish(_MALFORMED)
        try:
            username = normalise_username(_scram_unescape(attributes["n"]))
        except ValueError:
            return self._finish(_NOT_AUTHORIZED)
        if authzid_field and authzid_field.removeprefix("a=") not in (username, f"{username}@{self._domain}"):
            return self._finish(SaslFailure(condition=SaslCondition.INVALID_AUTHZID))
        if admit is not None and (refused := admit(username)) is not None:
            return self._finish(refused)
        assert self._mechanism is not None
        hash_name = SCRAM_HASHES[self._mechanism]
        credentials = self._accounts.scram_credentials(username, hash_name)
        self.username, self.account_exists = username, credentials is not None
        salt = credentials.salt if credentials else _fake_salt(username)
        iterations = credentials.iterations if credentials else DEFAULT_ITERATIONS
        nonce = attributes["r"] + self._nonce_factory()
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        self._scram = _ScramState(hash_name=hash_name, username=username, credentials=credentials,
                                  gs2_header=f"{gs2_flag},{authzid_field},", client_first_bare=client_first_bare,
                                  server_first=server_first, nonce=nonce)
        return SaslChallenge(data=server_first.encode())

    def _scram_final(self, message: bytes) -> SaslResult:
        state = self._scram
        assert state is not None
        try:
            text = message.decode()
        except UnicodeDecodeError:
            return _MALFORMED
        without_proof, _, proof_field = text.rpartition(",p=")
        attributes = _scram_attributes(without_proof)
        if attributes is None or not proof_field or "c" not in attributes or "r" not in attributes:
            return _MALFORMED
        if attributes["r"] != state.nonce:
            return _NOT_AUTHORIZED
        if _b64(attributes["c"]) != state.gs2_header.encode():
            return _NOT_AUTHORIZED
        proof = _b64(proof_field)
        if proof is None:
            return _MALFORMED
        if state.credentials is None:
            return _NOT_AUTHORIZED
        auth_message = f"{state.client_first_bare},{state.server_first},{without_proof}".encode()
        signature = hmac.digest(state.credentials.stored_key, auth_message, state.hash_name)
        if len(proof) != len(signature):
            return _NOT_AUTHORIZED
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(state.hash_name, client_key).digest(), state.credentials.stored_key):
            return _NOT_AUTHORIZED
        server_signature = hmac.digest(state.credentials.server_key, auth_message, state.hash_name)
        return SaslSuccess(username=state.username, data=b"v=" + base64.b64encode(server_signature))


@dataclass(frozen=True, slots=True)
class _ScramState:
    hash_name: str
    username: str
    credentials: ScramCredentials | None
    gs2_header: str
    client_first_bare: str
    server_first: str
    nonce: str


def _fake_salt(username: str) -> bytes:
    return hmac.digest(_FAKE_SALT_KEY, username.encode(), "sha256")[:16]


def _scram_attributes(text: str) -> dict[str, str] | None:
    attributes: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) != 1:
            return None
        attributes[key] = value
    return attributes


def _scram_unescape(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise ValueError("bad escape in SCRAM username")
    return name.replace("=2C", ",").replace("=3D", "=")


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None

