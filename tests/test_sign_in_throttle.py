"""Sign-in throttling: real parallel attacks on a real file database.

Each test attacks with wrong passwords the way an attacker would (many threads, many
processes, many addresses at once) and counts how many attempts reached the password
check: an attempt refused by the throttle raises ``ThrottledError`` *before* the check, one
that was checked and failed raises ``AuthenticationError``. The owner of the account must
still get in with the right password while the attack goes on.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import threading
import time
import types
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from db_fixtures import PASSWORD, make_student

from db import AuthenticationError, SignInPolicy, Store, ThrottledError, passwords
from db import users as db_users

EMAIL = "student1@example.org"
WRONG = "not the password"
# A long first delay: however slowly a loaded machine runs the 30 attempts, none of the
# refused ones can become due while the attack lasts, so the count below is exact.
SLOW = SignInPolicy(free_per_client=5, first_delay_s=600, free_per_account=1000)


def _attempt(
    store: Store, password: str, policy: SignInPolicy, email: str = EMAIL, **where: str | None
) -> str:
    """One sign-in: "throttled" (never checked), "checked" (wrong) or "signed in"."""
    try:
        store.authenticate(email, password, policy=policy, **where)
    except ThrottledError:
        return "throttled"
    except AuthenticationError:
        return "checked"
    return "signed in"


def _attack_in_process(
    path: str, client: str, threads: int, start_at: float, policy: SignInPolicy
) -> list[str]:
    """Run in a separate process: ``threads`` wrong passwords at once, from its own store."""
    store = Store(path)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        with ThreadPoolExecutor(threads) as pool:
            return list(
                pool.map(lambda _: _attempt(store, WRONG, policy, client=client), range(threads))
            )
    finally:
        store.close()


@pytest.fixture
def counted_checks(monkeypatch) -> list[int]:
    """Counts the password checks made in this process (one list item per check)."""
    checks: list[int] = []
    real = passwords.verify_password

    def counting(password: str, stored: str) -> bool:
        checks.append(1)
        return real(password, stored)

    monkeypatch.setattr(passwords, "verify_password", counting)
    return checks


def test_thirty_parallel_threads_get_only_the_allowance_checked(store, counted_checks):
    make_student(store)
    barrier = threading.Barrier(30)

    def attack(_: int) -> str:
        barrier.wait()
        return _attempt(store, WRONG, SLOW, client="203.0.113.7")

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(attack, range(30)))

    assert outcomes.count("checked") == SLOW.free_per_client
    assert outcomes.count("throttled") == 30 - SLOW.free_per_client
    assert len(counted_checks) == SLOW.free_per_client
    assert store.failed_logins_since(EMAIL, 3600) == SLOW.free_per_client


def test_thirty_attempts_from_ten_processes_get_only_the_allowance_checked(store, monkeypatch):
    # A spawned process re-runs the parent's __main__ file; after an AppTest in the same
    # session that is app.py, so give the children a plain __main__ to start from.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    make_student(store)
    start_at = time.time() + 2.0  # every process has started and opened the file by then
    spawn = multiprocessing.get_context("spawn")  # no fork of pytest's threads
    with ProcessPoolExecutor(10, mp_context=spawn) as pool:
        futures = [
            pool.submit(_attack_in_process, str(store.path), "203.0.113.7", 3, start_at, SLOW)
            for _ in range(10)
        ]
        outcomes = [outcome for future in futures for outcome in future.result()]

    assert len(outcomes) == 30
    assert outcomes.count("checked") == SLOW.free_per_client
    assert outcomes.count("throttled") == 30 - SLOW.free_per_client
    assert store.failed_logins_since(EMAIL, 3600) == SLOW.free_per_client


def test_attempts_from_many_addresses_are_held_to_the_account_wide_pace(store, counted_checks):
    make_student(store)
    policy = SignInPolicy(free_per_account=8, account_interval_s=600)
    addresses = [f"198.51.100.{n}" for n in range(30)]
    barrier = threading.Barrier(30)

    def attack(address: str) -> str:
        barrier.wait()
        return _attempt(store, WRONG, policy, client=address)

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(attack, addresses))

    # One address alone would have had five; together they share the account's eight.
    assert outcomes.count("checked") == policy.free_per_account
    assert len(counted_checks) == policy.free_per_account


def test_a_refused_client_is_checked_again_once_its_delay_has_passed(store):
    make_student(store)
    policy = SignInPolicy(free_per_client=2, first_delay_s=3.0)
    for _ in range(2):
        assert _attempt(store, WRONG, policy, client="a") == "checked"
    with pytest.raises(ThrottledError) as refused:
        store.authenticate(EMAIL, PASSWORD, client="a", policy=policy)
    assert 1 <= refused.value.retry_after_s <= policy.first_delay_s

    time.sleep(refused.value.retry_after_s)
    assert _attempt(store, PASSWORD, policy, client="a") == "signed in"
    # The success starts this client afresh: two more free failures.
    assert [_attempt(store, WRONG, policy, client="a") for _ in range(3)] == [
        "checked",
        "checked",
        "throttled",
    ]


def test_unknown_emails_are_throttled_like_real_ones(store):
    outcomes = [
        _attempt(store, WRONG, SLOW, email="nobody@example.org", client="203.0.113.9")
        for _ in range(SLOW.free_per_client + 2)
    ]
    assert outcomes == ["checked"] * SLOW.free_per_client + ["throttled"] * 2


class _Attacker:
    """Wrong passwords as fast as one thread can send them until stopped.

    Each attempt comes from the next address of ``addresses`` (one address, or a different
    one every time as a botnet would).
    """

    def __init__(self, path: Path, policy: SignInPolicy, addresses: list[str]) -> None:
        self.outcomes: list[str] = []
        self._stop = threading.Event()
        self._path = path
        self._policy = policy
        self._addresses = itertools.cycle(addresses)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        store = Store(self._path)
        try:
            while not self._stop.is_set():
                client = next(self._addresses)
                self.outcomes.append(_attempt(store, WRONG, self._policy, client=client))
        finally:
            store.close()

    def __enter__(self) -> _Attacker:
        self._thread.start()
        return self

    def wait_until_throttled(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while "throttled" not in self.outcomes:
            if time.monotonic() > deadline:  # a hang, not a speed check
                pytest.fail("the attacker was never throttled")
            time.sleep(0.05)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def test_owner_signs_in_from_a_trusted_browser_while_a_botnet_keeps_trying(store):
    owner = make_student(store)
    policy = SignInPolicy(free_per_account=6, account_interval_s=600)
    browser = "the owner's browser token"
    store.trust_browser(owner.id, browser)
    botnet = [f"198.51.100.{n}" for n in range(200)]

    with _Attacker(store.path, policy, botnet) as attacker:
        attacker.wait_until_throttled()
        # The whole account is now at the slow pace for everyone else...
        with pytest.raises(ThrottledError):
            store.authenticate(EMAIL, PASSWORD, client="192.0.2.50", policy=policy)
        # ...but the owner's browser is not held back, with the attack still going on.
        for _ in range(3):
            assert (
                store.authenticate(EMAIL, PASSWORD, browser=browser, policy=policy).id == owner.id
            )

    # Thousands of tries, and only the account's allowance was ever checked.
    assert attacker.outcomes[: policy.free_per_account] == ["checked"] * policy.free_per_account
    assert set(attacker.outcomes[policy.free_per_account :]) == {"throttled"}


def test_a_made_up_browser_token_counts_as_an_untrusted_client(store):
    make_student(store)
    policy = SignInPolicy(free_per_client=2, first_delay_s=600, free_per_account=1000)
    outcomes = [
        _attempt(store, WRONG, policy, client="203.0.113.7", browser=f"guess {n}") for n in range(5)
    ]
    assert outcomes == ["checked", "checked", "throttled", "throttled", "throttled"]


def test_owner_elsewhere_signs_in_at_once_while_one_address_keeps_trying(store):
    owner = make_student(store)
    with _Attacker(store.path, SignInPolicy(), ["203.0.113.66"]) as attacker:
        attacker.wait_until_throttled()
        # No trusted browser, a first sign-in from home: the attacker's delay is not hers.
        assert store.authenticate(EMAIL, PASSWORD, client="192.0.2.10").id == owner.id
    assert attacker.outcomes.count("checked") == SignInPolicy().free_per_client


def test_the_right_password_gets_in_within_the_account_interval_after_an_attack(store):
    owner = make_student(store)
    policy = SignInPolicy(free_per_account=4, account_interval_s=1.0)
    with _Attacker(store.path, policy, [f"198.51.100.{n}" for n in range(50)]) as attacker:
        attacker.wait_until_throttled()
    # A new address, no trusted browser: at most one account interval, then it is checked.
    try:
        user = store.authenticate(EMAIL, PASSWORD, client="192.0.2.10", policy=policy)
    except ThrottledError as refused:
        assert refused.retry_after_s <= policy.account_interval_s
        time.sleep(refused.retry_after_s)
        user = store.authenticate(EMAIL, PASSWORD, client="192.0.2.10", policy=policy)
    assert user.id == owner.id


def test_workbook_says_how_long_to_wait(tmp_path, monkeypatch):
    from workbook import Settings, Workbook
    from workbook.errors import SignInThrottled

    monkeypatch.setenv("WORKBOOK_DB", str(tmp_path / "w.db"))
    monkeypatch.setenv("WORKBOOK_WORK_DIR", str(tmp_path / "kernels"))
    wb = Workbook(Settings.from_env())
    make_student(wb.store)
    for _ in range(SignInPolicy().free_per_client):
        with pytest.raises(Exception, match="Wrong email or password"):
            wb.sign_in(EMAIL, WRONG, client="203.0.113.7")
    with pytest.raises(SignInThrottled) as refused:
        wb.sign_in(EMAIL, PASSWORD, client="203.0.113.7")
    seconds = refused.value.retry_after_s
    assert 1 <= seconds <= SignInPolicy().first_delay_s
    assert str(refused.value) == (
        "Too many failed sign-ins for this account. "
        f"Try again in {seconds} second{'s' if seconds > 1 else ''}."
    )
    # The same account from another address is checked (and the right password works).
    assert wb.sign_in(EMAIL, PASSWORD, client="192.0.2.10").email == EMAIL


def test_a_browser_is_trusted_only_for_its_account_and_only_for_a_while(store):
    owner = make_student(store)
    other = make_student(store, 2)
    store.trust_browser(other.id, "other's browser")
    store.trust_browser(owner.id, "owner's browser")
    busy = SignInPolicy(free_per_account=2, account_interval_s=600)
    for n in range(2):
        assert _attempt(store, WRONG, busy, client=f"198.51.100.{n}") == "checked"
    # Another account's trusted browser is nobody special here.
    assert _attempt(store, PASSWORD, busy, browser="other's browser") == "throttled"
    # Trust runs out: past trusted_browser_days the owner's browser is untrusted again.
    expired = SignInPolicy(free_per_account=2, account_interval_s=600, trusted_browser_days=0)
    assert _attempt(store, PASSWORD, expired, browser="owner's browser") == "throttled"
    assert _attempt(store, PASSWORD, busy, browser="owner's browser") == "signed in"


def test_deleting_an_account_forgets_its_trusted_browsers(store):
    owner = make_student(store)
    store.trust_browser(owner.id, "owner's browser")
    store.delete_user(owner.id)
    assert list(store._db().query("SELECT * FROM trusted_browsers")) == []


def test_attempts_older_than_the_window_are_forgotten_not_kept_forever(store, monkeypatch):
    make_student(store)
    policy = SignInPolicy(free_per_client=2, first_delay_s=600)
    earlier = datetime.now(UTC) - timedelta(seconds=2 * policy.window_s)
    monkeypatch.setattr(db_users, "_now", lambda: earlier)
    for _ in range(2):
        assert _attempt(store, WRONG, policy, client="a") == "checked"
    assert store.failed_logins_since(EMAIL, 3 * policy.window_s) == 2
    monkeypatch.undo()
    # Out of the window, the old failures hold nobody back, and they are deleted.
    assert _attempt(store, WRONG, policy, client="a") == "checked"
    assert store.failed_logins_since(EMAIL, 3 * policy.window_s) == 1
