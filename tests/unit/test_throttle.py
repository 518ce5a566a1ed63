"""The login throttle and the stanza token bucket, with a fake clock: every rule as a short story."""

from __future__ import annotations

from boshcm.xmpp.throttle import AuthThrottle, ThrottleSettings, TokenBucket, address_key

SETTINGS = ThrottleSettings(account_free_failures=3, address_free_failures=3, first_delay_seconds=1.0,
                            max_delay_seconds=60.0, forget_seconds=600.0, remember_seconds=3600.0, max_entries=100)


def fail(throttle: AuthThrottle, now: float, *, address: str = "192.0.2.1", username: str = "alice",
         exists: bool = True) -> None:
    assert throttle.retry_at(address=address, username=username, now=now) is None, "attempt should be allowed"
    throttle.record_failure(address=address, username=username, account_exists=exists, now=now)


def test_account_delays_double_after_the_free_failures_and_are_capped() -> None:
    throttle = AuthThrottle(SETTINGS)
    now = 0.0
    for _ in range(3):
        fail(throttle, now, address=f"192.0.2.{int(now) + 1}")  # a different address each time
    assert throttle.retry_at(address="198.51.100.1", username="alice", now=now) is None
    delays = []
    for index in range(10):
        fail(throttle, now, address=f"203.0.113.{index}")
        retry_at = throttle.retry_at(address="198.51.100.1", username="alice", now=now)
        assert retry_at is not None
        delays.append(retry_at - now)
        now = retry_at
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]


def test_a_refused_attempt_is_not_a_failure_and_the_delay_ends() -> None:
    throttle = AuthThrottle(SETTINGS)
    for _ in range(4):
        fail(throttle, 0.0)
    assert throttle.retry_at(address="192.0.2.9", username="alice", now=0.5) == 1.0
    assert throttle.retry_at(address="192.0.2.9", username="alice", now=1.0) is None


def test_made_up_names_are_throttled_exactly_like_real_ones() -> None:
    real, made_up = AuthThrottle(SETTINGS), AuthThrottle(SETTINGS)
    for second in range(6):
        for throttle, username, exists in ((real, "alice", True), (made_up, "nobody", False)):
            if throttle.retry_at(address=f"192.0.2.{second}", username=username, now=second * 10.0) is None:
                throttle.record_failure(address=f"192.0.2.{second}", username=username, account_exists=exists,
                                        now=second * 10.0)
    for now in (50.0, 50.5, 51.0, 60.0):
        assert (real.retry_at(address="198.51.100.1", username="alice", now=now)
                == made_up.retry_at(address="198.51.100.1", username="nobody", now=now))


def test_failures_against_made_up_accounts_do_not_lock_the_address() -> None:
    throttle = AuthThrottle(SETTINGS)
    for index in range(200):
        if throttle.retry_at(address="192.0.2.1", username=f"ghost{index}", now=index) is None:
            throttle.record_failure(address="192.0.2.1", username=f"ghost{index}", account_exists=False, now=index)
    assert throttle.retry_at(address="192.0.2.1", username="alice", now=200.0) is None


def test_failures_against_real_accounts_delay_the_whole_address() -> None:
    throttle = AuthThrottle(SETTINGS)
    for index, username in enumerate(("alice", "bob", "carol", "dave")):
        fail(throttle, float(index), username=username)
    assert throttle.retry_at(address="192.0.2.1", username="erin", now=3.5) == 4.0
    assert throttle.retry_at(address="192.0.2.2", username="erin", now=3.5) is None


def test_a_trusted_address_is_not_delayed_by_an_attack_from_elsewhere() -> None:
    throttle = AuthThrottle(SETTINGS)
    throttle.record_success(address="192.0.2.1", username="alice", now=0.0)
    for index in range(8):
        fail(throttle, 10.0 + index * 100, address=f"203.0.113.{index}")
    assert throttle.retry_at(address="198.51.100.1", username="alice", now=720.0) is not None
    assert throttle.retry_at(address="192.0.2.1", username="alice", now=720.0) is None


def test_a_trusted_pair_is_still_delayed_by_its_own_failures() -> None:
    throttle = AuthThrottle(SETTINGS)
    throttle.record_success(address="192.0.2.1", username="alice", now=0.0)
    for _ in range(4):
        fail(throttle, 1.0, address="192.0.2.1")
    assert throttle.retry_at(address="192.0.2.1", username="alice", now=1.5) == 2.0


def test_trust_expires_and_is_per_account() -> None:
    throttle = AuthThrottle(SETTINGS)
    throttle.record_success(address="192.0.2.1", username="alice", now=0.0)
    for index in range(4):
        fail(throttle, 5.0, address=f"203.0.113.{index}", username="bob")
    assert throttle.retry_at(address="192.0.2.1", username="bob", now=5.5) is not None  # never trusted for bob
    for index in range(4):
        fail(throttle, 4000.0, address=f"203.0.113.{index}")
    assert throttle.retry_at(address="192.0.2.1", username="alice", now=4000.5) is not None  # trust expired


def test_an_attackers_own_successful_login_does_not_reset_the_address() -> None:
    throttle = AuthThrottle(SETTINGS)
    for index, username in enumerate(("alice", "bob", "carol")):
        fail(throttle, float(index), username=username)
    throttle.record_success(address="192.0.2.1", username="mallory", now=3.0)
    fail(throttle, 3.0, username="dave")
    assert throttle.retry_at(address="192.0.2.1", username="erin", now=3.5) is not None


def test_failures_are_forgotten_after_the_window_of_quiet() -> None:
    throttle = AuthThrottle(SETTINGS)
    for _ in range(3):
        fail(throttle, 0.0, address="203.0.113.1")
    fail(throttle, 600.0, address="203.0.113.2")  # 600 s of quiet: a fresh start
    assert throttle.retry_at(address="203.0.113.3", username="alice", now=600.0) is None


def test_tables_stay_bounded_and_an_account_under_delay_survives_a_flood_of_names() -> None:
    throttle = AuthThrottle(SETTINGS)
    for index in range(4):
        fail(throttle, 0.0, address=f"203.0.113.{index}")
    assert throttle.retry_at(address="198.51.100.1", username="alice", now=0.5) == 1.0
    for index in range(5000):
        throttle.record_failure(address=f"10.0.{index // 250}.{index % 250}", username=f"ghost{index}",
                                account_exists=False, now=0.5)
    assert throttle.tracked() <= 3 * SETTINGS.max_entries
    assert throttle.retry_at(address="198.51.100.1", username="alice", now=0.5) == 1.0


def test_an_ipv6_host_is_throttled_by_its_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("not an address") == "not an address"
    throttle = AuthThrottle(SETTINGS)
    for index, username in enumerate(("alice", "bob", "carol", "dave")):
        fail(throttle, 0.0, address=f"2001:db8:1:2::{index + 1}", username=username)
    assert throttle.retry_at(address="2001:db8:1:2::ffff", username="erin", now=0.5) is not None


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate_per_second=2.0, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(0.4) is False
    assert bucket.take(0.5) is True  # 0.5 s at 2/s is one token
    assert bucket.refused == 2


def test_token_bucket_forgets_refusals_once_it_has_refilled() -> None:
    bucket = TokenBucket(rate_per_second=1.0, burst=3, now=0.0)
    for _ in range(10):
        bucket.take(0.0)
    assert bucket.refused == 7
    assert bucket.take(3.0) is True and bucket.refused == 0


def test_twelve_addresses_at_1000_guesses_a_minute_get_about_two_dozen_guesses_an_hour() -> None:
    throttle = AuthThrottle()  # the defaults
    evaluated = 0
    for attempt in range(60_000):
        now, address = attempt * 0.06, f"203.0.113.{attempt % 12}"
        if throttle.retry_at(address=address, username="alice", now=now) is None:
            evaluated += 1
            throttle.record_failure(address=address, username="alice", account_exists=True, now=now)
    # 5 free, then 1 s, 2 s ... 256 s, then one guess every 300 s.
    assert evaluated <= 30
