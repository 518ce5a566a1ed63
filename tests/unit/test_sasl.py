"""SASL mechanisms against the RFC test vectors, and every way a client can get them wrong."""

from __future__ import annotations

import base64
import time

import pytest

from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.sasl import (
    SaslChallenge,
    SaslCondition,
    SaslExchange,
    SaslFailure,
    SaslKeyNeeded,
    SaslResult,
    SaslSuccess,
    decode_sasl_payload,
    encode_sasl_payload,
    offered_mechanisms,
)

ALL = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "ANONYMOUS"]


@pytest.fixture
def accounts() -> AccountStore:
    store = AccountStore(":memory:")
    store.add("alice", "wonderland")
    return store


def exchange(accounts: AccountStore, mechanism: str, server_nonce: str = "SERVERNONCE") -> SaslExchange:
    return SaslExchange(mechanism=mechanism, offered=ALL, accounts=accounts, domain="localhost",
                        nonce_factory=lambda: server_nonce)


def plain(sasl: SaslExchange, message: bytes) -> SaslResult:
    """PLAIN as an adapter runs it: the key derivation asked for is done (here, at once) and handed back."""
    result = sasl.start(message)
    return sasl.key_derived(result.work.run()) if isinstance(result, SaslKeyNeeded) else result


def test_scram_sha_1_matches_rfc_5802_example() -> None:
    store = AccountStore(":memory:")
    store.add("user", "pencil", salt=base64.b64decode("QSXCR+Q6sek8bf92"), iterations=4096)
    sasl = exchange(store, "SCRAM-SHA-1", "3rfcNHYJY1ZVvWVs7j")
    first = sasl.start(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
    assert first == SaslChallenge(data=b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    final = sasl.respond(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
    assert final == SaslSuccess(username="user", data=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")


def test_scram_sha_256_matches_rfc_7677_example() -> None:
    store = AccountStore(":memory:")
    store.add("user", "pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), iterations=4096)
    sasl = exchange(store, "SCRAM-SHA-256", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    first = sasl.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == SaslChallenge(
        data=b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    final = sasl.respond(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                         b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == SaslSuccess(username="user", data=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_wrong_proof_is_not_authorized(accounts: AccountStore) -> None:
    sasl = exchange(accounts, "SCRAM-SHA-256")
    assert isinstance(sasl.start(b"n,,n=alice,r=abc"), SaslChallenge)
    bogus = base64.b64encode(b"\0" * 32).decode()
    result = sasl.respond(f"c=biws,r=abcSERVERNONCE,p={bogus}".encode())
    assert result == SaslFailure(condition=SaslCondition.NOT_AUTHORIZED)


def test_scram_nonce_mismatch_is_not_authorized(accounts: AccountStore) -> None:
    sasl = exchange(accounts, "SCRAM-SHA-1")
    sasl.start(b"n,,n=alice,r=abc")
    result = sasl.respond(b"c=biws,r=abcOTHER,p=AAAA")
    assert result == SaslFailure(condition=SaslCondition.NOT_AUTHORIZED)


def test_scram_unknown_user_gets_a_stable_fake_salt_and_then_fails(accounts: AccountStore) -> None:
    first = exchange(accounts, "SCRAM-SHA-256").start(b"n,,n=nobody,r=abc")
    again = exchange(accounts, "SCRAM-SHA-256").start(b"n,,n=nobody,r=abc")
    assert isinstance(first, SaslChallenge) and first == again  # same salt each time: no enumeration
    sasl = exchange(accounts, "SCRAM-SHA-256")
    sasl.start(b"n,,n=nobody,r=abc")
    assert sasl.respond(b"c=biws,r=abcSERVERNONCE,p=AAAA") == SaslFailure(condition=SaslCondition.NOT_AUTHORIZED)


@pytest.mark.parametrize("client_first", [b"x,,n=alice,r=abc", b"n,,r=abc", b"n,,n=alice", b"garbage",
                                          b"n,,m=ext,n=alice,r=abc", b"\xff\xfe"])
def test_malformed_scram_client_first_is_malformed_request(accounts: AccountStore, client_first: bytes) -> None:
    assert exchange(accounts, "SCRAM-SHA-256").start(client_first) == SaslFailure(
        condition=SaslCondition.MALFORMED_REQUEST)


def test_scram_channel_binding_request_is_refused(accounts: AccountStore) -> None:
    result = exchange(accounts, "SCRAM-SHA-256").start(b"p=tls-exporter,,n=alice,r=abc")
    assert isinstance(result, SaslFailure) and result.condition is SaslCondition.NOT_AUTHORIZED


def test_scram_without_initial_response_gets_an_empty_challenge_first(accounts: AccountStore) -> None:
    sasl = exchange(accounts, "SCRAM-SHA-1")
    assert sasl.start(None) == SaslChallenge(data=b"")
    assert isinstance(sasl.respond(b"n,,n=alice,r=abc"), SaslChallenge)


def test_plain_accepts_right_password_and_matching_authzid(accounts: AccountStore) -> None:
    assert plain(exchange(accounts, "PLAIN"), b"\0alice\0wonderland") == SaslSuccess(username="alice")
    assert plain(exchange(accounts, "PLAIN"), b"alice@localhost\0alice\0wonderland") == SaslSuccess(username="alice")


@pytest.mark.parametrize(("message", "condition"), [
    (b"\0alice\0wrong", SaslCondition.NOT_AUTHORIZED),
    (b"\0nobody\0wonderland", SaslCondition.NOT_AUTHORIZED),
    (b"bob@localhost\0alice\0wonderland", SaslCondition.INVALID_AUTHZID),
    (b"alice wonderland", SaslCondition.MALFORMED_REQUEST),
    (b"\0alice\0", SaslCondition.NOT_AUTHORIZED),
])
def test_plain_failures(accounts: AccountStore, message: bytes, condition: SaslCondition) -> None:
    assert plain(exchange(accounts, "PLAIN"), message) == SaslFailure(condition=condition)


def test_plain_asks_for_its_key_derivation_instead_of_running_it(accounts: AccountStore) -> None:
    """PBKDF2 is slow on purpose: the exchange names the work (for a thread pool) and waits for the key."""
    sasl = exchange(accounts, "PLAIN")
    needed = sasl.start(b"\0alice\0wonderland")
    assert isinstance(needed, SaslKeyNeeded)
    stored = accounts.scram_credentials("alice", "sha256")
    assert stored is not None
    work = needed.work
    assert (work.hash_name, work.salt, work.iterations) == ("sha256", stored.salt, stored.iterations)
    assert "wonderland" not in repr(needed)  # an order may be logged; the password must not be
    assert sasl.respond(b"\0alice\0wonderland") == SaslFailure(condition=SaslCondition.MALFORMED_REQUEST)
    assert sasl.key_derived(work.run()) == SaslSuccess(username="alice")
    assert sasl.key_derived(work.run()) == SaslFailure(condition=SaslCondition.MALFORMED_REQUEST)  # only once


def test_a_made_up_name_asks_for_the_same_work_as_a_real_one(accounts: AccountStore) -> None:
    """No timing difference: a made-up name's derivation has a fake salt of the same size, same iterations."""
    real = exchange(accounts, "PLAIN").start(b"\0alice\0x")
    made_up = exchange(accounts, "PLAIN").start(b"\0nobody\0x")
    assert isinstance(real, SaslKeyNeeded) and isinstance(made_up, SaslKeyNeeded)
    assert made_up.work.iterations == real.work.iterations and len(made_up.work.salt) == len(real.work.salt)
    again = exchange(accounts, "PLAIN").start(b"\0nobody\0y")
    assert isinstance(again, SaslKeyNeeded) and again.work.salt == made_up.work.salt  # the same name, the same salt


def test_a_derived_key_after_an_abort_is_not_evaluated(accounts: AccountStore) -> None:
    sasl = exchange(accounts, "PLAIN")
    needed = sasl.start(b"\0alice\0wonderland")
    assert isinstance(needed, SaslKeyNeeded)
    assert sasl.abort() == SaslFailure(condition=SaslCondition.ABORTED)
    assert sasl.key_derived(needed.work.run()) == SaslFailure(condition=SaslCondition.MALFORMED_REQUEST)


def test_anonymous_gives_a_fresh_random_user(accounts: AccountStore) -> None:
    first = exchange(accounts, "ANONYMOUS").start(b"")
    second = exchange(accounts, "ANONYMOUS").start(None)
    assert isinstance(first, SaslSuccess) and isinstance(second, SaslSuccess)
    assert first.anonymous and first.username != second.username


def test_mechanism_not_offered_is_invalid_mechanism(accounts: AccountStore) -> None:
    sasl = SaslExchange(mechanism="PLAIN", offered=["SCRAM-SHA-256"], accounts=accounts, domain="localhost")
    assert sasl.start(b"\0alice\0wonderland") == SaslFailure(condition=SaslCondition.INVALID_MECHANISM)
    assert exchange(accounts, "DIGEST-MD5").start(None) == SaslFailure(condition=SaslCondition.INVALID_MECHANISM)


def test_abort_is_aborted(accounts: AccountStore) -> None:
    sasl = exchange(accounts, "SCRAM-SHA-256")
    sasl.start(b"n,,n=alice,r=abc")
    assert sasl.abort() == SaslFailure(condition=SaslCondition.ABORTED)


def test_plain_is_offered_only_on_secure_transports_unless_allowed() -> None:
    assert offered_mechanisms(secure=False, allow_plain_insecure=False, anonymous=False) == [
        "SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert "PLAIN" in offered_mechanisms(secure=True, allow_plain_insecure=False, anonymous=False)
    assert "PLAIN" in offered_mechanisms(secure=False, allow_plain_insecure=True, anonymous=False)


def test_payload_encoding_follows_rfc_6120_section_6_4_2() -> None:
    assert decode_sasl_payload("=") == b""
    assert decode_sasl_payload("AGFsaWNl") == b"\0alice"
    assert decode_sasl_payload("not base64!") is None
    assert encode_sasl_payload(b"") == "="
    assert encode_sasl_payload(None) == "="


def _fastest_plain_failure(accounts: AccountStore, username: str) -> float:
    timings = []
    for _ in range(15):
        started = time.perf_counter()
        assert plain(exchange(accounts, "PLAIN"), f"\0{username}\0wrong".encode()) == SaslFailure(
            condition=SaslCondition.NOT_AUTHORIZED)
        timings.append(time.perf_counter() - started)
    return min(timings)


def test_plain_spends_the_same_key_derivation_on_a_made_up_name(accounts: AccountStore) -> None:
    # Enumeration by timing: a made-up name must cost the PBKDF2 a real one does (the fastest of several
    # runs is the work itself, not scheduling noise).
    real, made_up = _fastest_plain_failure(accounts, "alice"), _fastest_plain_failure(accounts, "nobody")
    assert made_up >= 0.5 * real


def test_scram_challenge_for_a_made_up_name_looks_like_a_real_one(accounts: AccountStore) -> None:
    def fields(username: str) -> dict[str, str]:
        result = exchange(accounts, "SCRAM-SHA-256").start(f"n,,n={username},r=abc".encode())
        assert isinstance(result, SaslChallenge)
        return dict(item.split("=", 1) for item in result.data.decode().split(","))

    real, made_up = fields("alice"), fields("nobody")
    assert made_up["i"] == real["i"]
    assert len(base64.b64decode(made_up["s"])) == len(base64.b64decode(real["s"]))


def test_admit_is_asked_with_the_username_before_any_challenge_or_password_check(accounts: AccountStore) -> None:
    refusal = SaslFailure(condition=SaslCondition.TEMPORARY_AUTH_FAILURE, text="later")
    asked: list[str] = []

    def admit(username: str) -> SaslFailure:
        asked.append(username)
        return refusal

    scram = exchange(accounts, "SCRAM-SHA-256")
    assert scram.start(b"n,,n=Alice,r=abc", admit=admit) == refusal
    plain = exchange(accounts, "PLAIN")
    assert plain.start(b"\0alice\0wonderland", admit=admit) == refusal  # right password, still refused
    late = exchange(accounts, "SCRAM-SHA-1")
    assert late.start(None) == SaslChallenge(data=b"")
    assert late.respond(b"n,,n=alice,r=abc", admit=admit) == refusal
    assert asked == ["alice", "alice", "alice"]
    assert scram.username is None and plain.username is None  # nothing was evaluated


def test_the_exchange_reports_whom_a_failure_concerned(accounts: AccountStore) -> None:
    real, made_up = exchange(accounts, "PLAIN"), exchange(accounts, "SCRAM-SHA-256")
    assert isinstance(real.start(b"\0alice\0wrong", admit=lambda _username: None), SaslKeyNeeded)
    made_up.start(b"n,,n=nobody,r=abc")
    assert (real.username, real.account_exists) == ("alice", True)
    assert (made_up.username, made_up.account_exists) == ("nobody", False)
