"""XEP-0077 in-band registration: the rules and the abuse limits (pure; `now` in, no I/O of its own).

Theory of operation. `ClientSession` hands every `jabber:iq:register` iq addressed to the server (or to nobody)
to `Registrations.handle`, saying whether the stream has authenticated (and as whom) and the client's address
(the one the trusted-proxy middleware found, for BOSH and WebSocket). What comes back is one decision:
`Reply` (an iq result or error, ready to send), `Create` (a new account: derive its SCRAM secrets, then
`created`), `ChangePassword` (derive, then `password_changed`) or `Remove` (the account is gone: reply, then
close the stream). Deriving the secrets is the slow part (PBKDF2), so the session runs it as `DeriveKey` orders
off the event loop, as for a PLAIN login; storing them is one synchronous write, like the router's stores.

Before authentication (XEP-0077 §3.1) the session lets a client register only where it would let it send a
password (PLAIN): on an encrypted or loopback stream. A name is a JID localpart after RFC 7622 / PRECIS
normalisation (`boshcm.xmpp.accounts.normalise_username`): one that cannot be is `not-acceptable`, one that is
taken `conflict`. Abuse limits: registrations per address in a sliding hour and day, and for the whole server
in a sliding hour; over them the client gets `policy-violation` (type `wait`) and the text says when to retry.
Only accounts actually created count, and the address table is bounded.

After authentication (§3.2, §3.3): a get answers `<registered/>` with the name, a set with the account's own
name and a new password changes it, `<remove/>` deletes the account. Guests (SASL ANONYMOUS) have no account
to change or remove (`not-allowed`).

This file must not know about sockets, SQLite or the clock.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from boshcm.database import StorageError
from boshcm.errors import StanzaErrorCondition, StanzaErrorType
from boshcm.stanza import Element, element, error_reply, iq_result, qname, sub
from boshcm.xmpp.accounts import (
    DEFAULT_ITERATIONS,
    HASHES,
    SALT_BYTES,
    AccountExists,
    KeyDerivation,
    NoSuchAccount,
    ScramCredentials,
    normalise_username,
    prepare_password,
)
from boshcm.xmpp.throttle import address_key

NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"

HOUR_SECONDS = 3_600.0
DAY_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationSettings:
    enabled: bool = True
    per_address_per_hour: int = 3
    per_address_per_day: int = 10
    global_per_hour: int = 100
    min_password_length: int = 8
    max_tracked_addresses: int = 20_000


class AccountWriter(Protocol):
    """What registration needs of the account store (boshcm/xmpp/accounts.py)."""

    def exists(self, username: str) -> bool: ...
    def store_secrets(self, username: str, secrets: Mapping[str, ScramCredentials], *, new: bool) -> None: ...
    def remove(self, username: str) -> None: ...


# --- decisions ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    stanza: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class Create:
    """Derive the secrets for `prepared_password` (every hash), then `Registrations.created`."""

    username: str
    prepared_password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePassword:
    """Derive the secrets for `prepared_password`, then `Registrations.password_changed`."""

    username: str
    prepared_password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Remove:
    """The account is removed: send `reply`, then close the stream (XEP-0077 §3.2)."""

    reply: Element


Decision = Reply | Create | ChangePassword | Remove


def is_register_iq(stanza: Element, domain: str) -> bool:
    """An iq get/set with a `jabber:iq:register` query for the server itself."""
    if stanza.tag != qname("jabber:client", "iq") or stanza.get("type") not in ("get", "set"):
        return False
    if stanza.get("to") not in (None, domain):
        return False
    return any(child.tag == qname(NS_REGISTER, "query") for child in stanza)


def feature() -> Element:
    """XEP-0077 §4: the stream feature that says registration is possible before authentication."""
    return element(NS_REGISTER_FEATURE, "register")


def _query(stanza: Element) -> Element:
    for child in stanza:
        if child.tag == qname(NS_REGISTER, "query"):
            return child
    raise ValueError("no jabber:iq:register query")


def _field(query: Element, name: str) -> str | None:
    found = query.find(qname(NS_REGISTER, name))
    return None if found is None else (found.text or "")


def _error(stanza: Element, condition: StanzaErrorCondition, text: str,
           error_type: StanzaErrorType | None = None) -> Reply:
    return Reply(stanza=error_reply(stanza, condition, error_type=error_type, text=text))


class _Window:
    """Times of the registrations from one address within the last day (at most the daily limit are kept)."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def prune(self, now: float) -> None:
        while self.times and now - self.times[0] >= DAY_SECONDS:
            self.times.popleft()

    def retry_at(self, now: float, per_hour: int, per_day: int) -> float | None:
        self.prune(now)
        if len(self.times) >= per_day:
            return self.times[-per_day] + DAY_SECONDS
        in_hour = [t for t in self.times if now - t < HOUR_SECONDS]
        if len(in_hour) >= per_hour:
            return in_hour[-per_hour] + HOUR_SECONDS
        return None


class RegistrationLimits:
    """Sliding-window counts of created accounts: per address (hour, day) and for the server (hour)."""

    def __init__(self, settings: RegistrationSettings) -> None:
        self._settings = settings
        self._addresses: OrderedDict[bytes, _Window] = OrderedDict()
        self._global: deque[float] = deque()

    def tracked(self) -> int:
        return len(self._addresses)

    @staticmethod
    def _key(address: str) -> bytes:
        return hashlib.blake2b(address_key(address).encode(), digest_size=16).digest()

    def retry_at(self, address: str, now: float) -> float | None:
        """None when `address` may register now; else when it may."""
        settings = self._settings
        while self._global and now - self._global[0] >= HOUR_SECONDS:
            self._global.popleft()
        waits: list[float] = []
        if len(self._global) >= settings.global_per_hour:
            waits.append(self._global[-settings.global_per_hour] + HOUR_SECONDS)
        window = self._addresses.get(self._key(address))
        if window is not None and (wait := window.retry_at(now, settings.per_address_per_hour,
                                                           settings.per_address_per_day)) is not None:
            waits.append(wait)
        return max(waits, default=None)

    def record(self, address: str, now: float) -> None:
        settings = self._settings
        self._global.append(now)
        while len(self._global) > settings.global_per_hour:
            self._global.popleft()
        key = self._key(address)
        window = self._addresses.pop(key, None) or _Window()
        window.prune(now)
        window.times.append(now)
        while len(window.times) > settings.per_address_per_day:
            window.times.popleft()
        self._addresses[key] = window  # most recently used last
        while len(self._addresses) > settings.max_tracked_addresses:
            # Bounded: the address that registered longest ago is forgotten first.
            self._addresses.popitem(last=False)


class Registrations:
    """XEP-0077 for one server: decides each `jabber:iq:register` iq; shared by every session."""

    def __init__(self, settings: RegistrationSettings, accounts: AccountWriter, *,
                 iterations: int = DEFAULT_ITERATIONS,
                 salt_factory: Callable[[], bytes] = lambda: os.urandom(SALT_BYTES)) -> None:
        self.settings = settings
        self._accounts = accounts
        self._iterations = iterations
        self._salt_factory = salt_factory
        self.limits = RegistrationLimits(settings)
        self.created = 0  # accounts made, read by metrics and tests

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def handle(self, stanza: Element, *, username: str | None, guest: bool, address: str,
               now: float) -> Decision:
        """`username`: the authenticated account (None before SASL); `guest`: SASL ANONYMOUS."""
        query = _query(stanza)
        if username is None:
            return self._before_auth(stanza, query, address, now)
        return self._after_auth(stanza, query, username, guest)

    # --- XEP-0077 §3.1: a new account ---------------------------------------------------------------------

    def _before_auth(self, stanza: Element, query: Element, address: str, now: float) -> Decision:
        if not self.settings.enabled:
            # XEP-0077 §3.1: registration is not offered here.
            return _error(stanza, StanzaErrorCondition.SERVICE_UNAVAILABLE, "Registration is disabled")
        if stanza.get("type") == "get":
            form = element(NS_REGISTER, "query")
            sub(form, NS_REGISTER, "instructions", text="Choose a username and password.")
            sub(form, NS_REGISTER, "username")
            sub(form, NS_REGISTER, "password")
            return Reply(stanza=iq_result(stanza, form))
        if query.find(qname(NS_REGISTER, "remove")) is not None:
            return _error(stanza, StanzaErrorCondition.NOT_AUTHORIZED, "Log in to remove an account")
        checked = self._credentials(stanza, query)
        if isinstance(checked, Reply):
            return checked
        name, prepared = checked
        retry_at = self.limits.retry_at(address, now)
        if retry_at is not None:
            # RFC 6120 §8.3.3.12: policy-violation; type wait: the same request may succeed later.
            seconds = max(1, math.ceil(retry_at - now))
            return _error(stanza, StanzaErrorCondition.POLICY_VIOLATION,
                          f"Too many registrations; try again in {seconds} seconds", StanzaErrorType.WAIT)
        if self._accounts.exists(name):
            return _error(stanza, StanzaErrorCondition.CONFLICT, "That username is taken")
        return Create(username=name, prepared_password=prepared)

    def _credentials(self, stanza: Element, query: Element) -> tuple[str, bytes] | Reply:
        raw_name, password = _field(query, "username"), _field(query, "password")
        if raw_name is None or password is None or not raw_name or not password:
            # XEP-0077 §3.1: required information missing.
            return _error(stanza, StanzaErrorCondition.NOT_ACCEPTABLE, "A username and a password are required")
        try:
            name = normalise_username(raw_name)
        except ValueError:
            return _error(stanza, StanzaErrorCondition.NOT_ACCEPTABLE, "That username is not allowed")
        try:
            prepared = prepare_password(password)
        except ValueError:
            return _error(stanza, StanzaErrorCondition.NOT_ACCEPTABLE, "That password is not allowed")
        if len(prepared.decode()) < self.settings.min_password_length:
            return _error(stanza, StanzaErrorCondition.NOT_ACCEPTABLE,
                          f"The password needs at least {self.settings.min_password_length} characters")
        return name, prepared

    def created_account(self, stanza: Element, username: str, secrets: Mapping[str, ScramCredentials],
                        address: str, now: float) -> Element:
        """The derived secrets of a `Create`: store them (a name taken meanwhile is a conflict) and answer."""
        try:
            self._accounts.store_secrets(username, secrets, new=True)
        except AccountExists:
            return error_reply(stanza, StanzaErrorCondition.CONFLICT, text="That username is taken")
        except StorageError:
            return _storage_refused(stanza)
        self.limits.record(address, now)
        self.created += 1
        return iq_result(stanza)

    # --- XEP-0077 §3.2, §3.3: the account of the stream ----------------------------------------------------

    def _after_auth(self, stanza: Element, query: Element, username: str, guest: bool) -> Decision:
        if stanza.get("type") == "get":
            if guest:
                form = element(NS_REGISTER, "query")
                sub(form, NS_REGISTER, "instructions", text="Guests have no account.")
                return Reply(stanza=iq_result(stanza, form))
            form = element(NS_REGISTER, "query")
            sub(form, NS_REGISTER, "registered")
            sub(form, NS_REGISTER, "username", text=username)
            sub(form, NS_REGISTER, "password")
            return Reply(stanza=iq_result(stanza, form))
        if guest:
            return _error(stanza, StanzaErrorCondition.NOT_ALLOWED, "Guests have no account")
        if query.find(qname(NS_REGISTER, "remove")) is not None:
            try:
                self._accounts.remove(username)
            except NoSuchAccount:
                pass  # removed meanwhile (another resource, `boshcm deluser`): gone either way
            except StorageError:
                return Reply(stanza=_storage_refused(stanza))
            return Remove(reply=iq_result(stanza))
        checked = self._credentials(stanza, query)
        if isinstance(checked, Reply):
            return checked
        name, prepared = checked
        if name != username:
            # XEP-0077 §3.3: only one's own password.
            return _error(stanza, StanzaErrorCondition.NOT_AUTHORIZED, "Not your account")
        return ChangePassword(username=name, prepared_password=prepared)

    def password_changed(self, stanza: Element, username: str, secrets: Mapping[str, ScramCredentials]) -> Element:
        try:
            self._accounts.store_secrets(username, secrets, new=False)
        except NoSuchAccount:
            return error_reply(stanza, StanzaErrorCondition.ITEM_NOT_FOUND, text="The account is gone")
        except StorageError:
            return _storage_refused(stanza)
        return iq_result(stanza)

    def derivations(self, prepared_password: bytes) -> dict[str, KeyDerivation]:
        """The work that turns a new password into the secrets of every hash (run off the event loop)."""
        return {hash_name: KeyDerivation(hash_name=hash_name, prepared_password=prepared_password,
                                         salt=self._salt_factory(), iterations=self._iterations)
                for hash_name in HASHES}


def _storage_refused(stanza: Element) -> Element:
    # docs/security.md "Storage faults": the disk refused the write; the client may try again later.
    return error_reply(stanza, StanzaErrorCondition.RESOURCE_CONSTRAINT, error_type=StanzaErrorType.WAIT,
                       text="The server cannot store this now")
