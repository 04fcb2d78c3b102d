"""Throttling of log-in and sign-up: a guesser waits longer after each failure past an allowance,
per account and per address, and a flood of log-ins cannot take the app's memory."""

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from crm.web import auth, throttle
from crm.web.security import Passwords, PasswordsBusy
from crm.web.throttle import MAX_WAIT, wait_after
from harness.pages import csrf_token_in
from harness.processes import App
from tests.web_support import another_browser, app_client, csrf_of, log_in, sign_up


def test_the_wait_is_nothing_within_the_allowance_then_doubles_up_to_a_limit() -> None:
    assert [wait_after(n, 5).total_seconds() for n in range(4, 10)] == [0, 1, 2, 4, 8, 16]
    assert wait_after(15, 5) == MAX_WAIT
    assert wait_after(10**9, 5) == MAX_WAIT  # no overflow for a key failed forever


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path) as first:
        sign_up(another_browser(first), "ada@example.com")
        yield first


def attempt_log_in(browser: TestClient, email: str, password: str) -> httpx.Response:
    token = csrf_of(browser, "/login")  # one token reused, as a script would
    return browser.post("/login", data={"email": email, "password": password, "csrf_token": token})


def let_time_pass(db_url: str, seconds: float = 1200) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE throttles SET last_failure_at = last_failure_at - make_interval(secs => %s)",
            (seconds,),
        )


def test_a_guessed_account_makes_every_further_try_wait_even_the_right_password(
    site: TestClient, db_url: str
) -> None:
    guesser = another_browser(site)
    wrong = [attempt_log_in(guesser, "ada@example.com", f"guess {n}") for n in range(5)]
    assert [r.status_code for r in wrong] == [422] * 5
    throttled = attempt_log_in(guesser, "ada@example.com", "guess 6")
    assert throttled.status_code == 429
    assert "Too many failed log-ins for this e-mail or from your address" in throttled.text
    assert throttled.headers["Retry-After"] == "1"
    # the owner, from elsewhere, waits too: the throttle must not tell a right guess apart
    owner = another_browser(site)
    assert attempt_log_in(owner, "ada@example.com", "correct horse").status_code == 429
    let_time_pass(db_url)
    assert attempt_log_in(owner, "ada@example.com", "correct horse").status_code == 303
    with psycopg.connect(db_url) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM throttles ORDER BY key")]
    assert "log-in:account:ada@example.com" not in keys  # a success forgets the account's


def test_the_wait_doubles_with_each_failure_past_the_allowance(
    site: TestClient, db_url: str
) -> None:
    guesser = another_browser(site)
    for n in range(5):
        assert attempt_log_in(guesser, "ada@example.com", f"guess {n}").status_code == 422
    for wait in (1, 2, 4, 8):
        throttled = attempt_log_in(guesser, "ada@example.com", "a guess too soon")
        assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, str(wait))
        let_time_pass(db_url, wait)
        assert attempt_log_in(guesser, "ada@example.com", "a guess in time").status_code == 422
    let_time_pass(db_url, 3600)
    assert attempt_log_in(guesser, "ada@example.com", "a guess next day").status_code == 422
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT failures FROM throttles WHERE key = 'log-in:account:ada@example.com'"
        ).fetchone()
    assert row == (1,)  # an hour quiet: counted from nothing again


def test_one_address_guessing_many_accounts_is_throttled_and_others_are_not(
    site: TestClient,
) -> None:
    sprayer = another_browser(site)
    answers = [
        attempt_log_in(sprayer, f"user{n}@example.com", "Summer2026!").status_code
        for n in range(auth.LOG_IN_PER_ADDRESS)
    ]
    assert answers == [422] * auth.LOG_IN_PER_ADDRESS
    assert attempt_log_in(sprayer, "someone@example.com", "Summer2026!").status_code == 429
    elsewhere = another_browser(site)
    assert attempt_log_in(elsewhere, "ada@example.com", "correct horse").status_code == 303


def test_probing_sign_up_for_an_existing_account_is_throttled(site: TestClient) -> None:
    def sign_up_as_ada(browser: TestClient) -> int:
        data = {"email": "Ada@example.com", "password": "a password", "time_zone": "UTC"}
        token = csrf_of(browser, "/signup")
        return browser.post("/signup", data={**data, "csrf_token": token}).status_code

    assert [sign_up_as_ada(another_browser(site)) for _ in range(3)] == [422] * 3
    answer = sign_up_as_ada(another_browser(site))
    assert answer == 429


def test_the_owners_own_browser_logs_in_while_a_stranger_has_the_account_waiting(
    site: TestClient, db_url: str
) -> None:
    owner = another_browser(site)
    log_in(owner, "ada@example.com")  # a browser the account logged in from: a device cookie
    assert owner.cookies.get("crm_device")
    owner.post("/logout", data={"csrf_token": csrf_of(owner, "/contacts")})
    stranger = another_browser(site)
    for n in range(6):
        attempt_log_in(stranger, "ada@example.com", f"guess {n}")
    assert attempt_log_in(stranger, "ada@example.com", "correct horse").status_code == 429
    assert attempt_log_in(owner, "ada@example.com", "correct horse").status_code == 303
    # a device cookie is for its own account only, and a forged one is none
    copier = another_browser(site)
    copier.cookies.set("crm_device", owner.cookies["crm_device"] + "x", path="/login")
    assert attempt_log_in(copier, "ada@example.com", "correct horse").status_code == 429


def test_a_new_password_voids_the_device_cookies_minted_with_the_old_one(
    site: TestClient, db_url: str
) -> None:
    """Cookies minted while the old password was known buy no guesses at the new one; the
    browser that changed it keeps its standing."""
    minted = another_browser(site)
    log_in(minted, "ada@example.com")  # e.g. by someone who knew the old password
    owner = another_browser(site)
    log_in(owner, "ada@example.com")
    token = csrf_of(owner, "/account")
    data = {"current_password": "correct horse", "new_password": "battery staple"}
    assert owner.post("/account/password", data={**data, "csrf_token": token}).status_code == 303
    owner.post("/logout", data={"csrf_token": csrf_of(owner, "/contacts")})
    stranger = another_browser(site)
    for n in range(6):
        attempt_log_in(stranger, "ada@example.com", f"guess {n}")
    assert attempt_log_in(minted, "ada@example.com", "a guess").status_code == 429
    assert attempt_log_in(owner, "ada@example.com", "battery staple").status_code == 303


def test_failures_of_others_at_the_owners_address_do_not_stop_the_owners_browser(
    site: TestClient,
) -> None:
    owner = another_browser(site)
    log_in(owner, "ada@example.com")
    owner.post("/logout", data={"csrf_token": csrf_of(owner, "/contacts")})
    # from the owner's address (a household, an office): guesses at other accounts
    for n in range(auth.LOG_IN_PER_ADDRESS + 2):
        attempt_log_in(owner, f"someone{n}@example.com", "a guess")
    assert attempt_log_in(owner, "someone@example.com", "a guess").status_code == 429
    assert attempt_log_in(owner, "ada@example.com", "correct horse").status_code == 303


def test_a_stranger_failing_log_ins_does_not_stop_the_owner_changing_the_password(
    site: TestClient,
) -> None:
    owner = another_browser(site)
    log_in(owner, "ada@example.com")
    stranger = another_browser(site)
    for n in range(8):
        attempt_log_in(stranger, "ada@example.com", f"guess {n}")
    token = csrf_of(owner, "/account")
    data = {"current_password": "correct horse", "new_password": "battery staple"}
    changed = owner.post("/account/password", data={**data, "csrf_token": token})
    assert changed.status_code == 303


async def test_attempts_sent_at_once_get_no_more_tries_than_one_after_another(db_url: str) -> None:
    key = throttle.Key("log-in:account:burst@example.com", 5)
    connections = [
        await psycopg.AsyncConnection.connect(db_url, autocommit=True) for _ in range(12)
    ]
    try:
        outcomes = await asyncio.gather(
            *(throttle.claim(conn, [key]) for conn in connections), return_exceptions=True
        )
    finally:
        for conn in connections:
            await conn.close()
    allowed = [outcome for outcome in outcomes if outcome is None]
    assert len(allowed) == 5, outcomes
    assert all(isinstance(o, throttle.Throttled) for o in outcomes if o is not None)


@pytest.mark.parametrize(
    ("peer", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4 through a dual-stack listener
        ("testclient", "testclient"),
    ],
)
def test_a_client_is_counted_by_its_address_or_its_ipv6_network(peer: str, counted_as: str) -> None:
    request = Request({"type": "http", "client": (peer, 1234), "headers": []})
    assert throttle.client_address(request) == counted_as


async def test_password_work_beyond_the_queue_is_refused_at_once() -> None:
    release = threading.Event()

    class SlowHasher:
        def hash(self, password: str) -> str:
            release.wait(10)
            return "$argon2id$slow"

        def verify(self, password_hash: str, password: str) -> bool:
            release.wait(10)
            return False

    release.set()  # the constructor hashes once itself
    passwords = Passwords(SlowHasher(), at_once=1, admitted=2)  # type: ignore[arg-type]
    release.clear()
    waiting = [asyncio.create_task(passwords.match("h", "p")) for _ in range(2)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(PasswordsBusy):
        await passwords.hash("a third")
    assert time.monotonic() - started < 0.5
    release.set()
    assert await asyncio.gather(*waiting) == [False, False]
    assert await passwords.match("h", "p") is False  # the queue is free again


def test_a_flood_of_log_ins_from_many_addresses_keeps_memory_bounded_and_others_served(
    db_url: str, tmp_path: Path
) -> None:
    """`python -m crm` with argon2's real cost (64 MiB a hash): 120 log-ins at once, each from
    an address of its own (X-Forwarded-For, which uvicorn takes from a local proxy)."""
    app = App({"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path)}).start()
    try:
        app.health()
        base = f"http://127.0.0.1:{app.port}"
        with httpx.Client(base_url=base) as ada:
            token = _token(ada, "/signup")
            data = {"email": "ada@example.com", "password": "correct horse", "time_zone": "UTC"}
            assert ada.post("/signup", data={**data, "csrf_token": token}).status_code == 303
            assert app.process is not None
            process = psutil.Process(app.process.pid)
            before = process.memory_info().rss
            peak, answers, page_times = _flood(base, process, ada, 120)
        statuses = sorted(set(answers))
        print(
            f"\nRSS {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB during 120"
            f" log-ins at once; answers {statuses}; {answers.count(429)} refused at once;"
            f" another user's list page median {statistics.median(page_times) * 1000:.0f} ms"
        )
        assert set(answers) <= {422, 429} and 422 in answers and 429 in answers
        assert peak - before < 200 * 2**20  # 2 hashes at once: 128 MiB, not 120 x 64 MiB
        assert page_times
    finally:
        app.stop()


def _token(client: httpx.Client, path: str) -> str:
    token = csrf_token_in(client.get(path).text)
    assert token
    return token


def _flood(
    base: str, process: psutil.Process, reader: httpx.Client, count: int
) -> tuple[int, list[int], list[float]]:
    answers: list[int] = []
    page_times: list[float] = []
    peak = process.memory_info().rss

    def guess(n: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            token = _token(client, "/login")
            data = {"email": f"user{n}@example.com", "password": "guess", "csrf_token": token}
            forwarded = {"X-Forwarded-For": f"198.51.100.{n % 250}"}
            answers.append(client.post("/login", data=data, headers=forwarded).status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, process.memory_info().rss)
        started = time.monotonic()
        if reader.get("/contacts").status_code == 200:
            page_times.append(time.monotonic() - started)
        time.sleep(0.02)
    return peak, answers, page_times
