"""The fault suite: kill -9 at random moments, a PostgreSQL restarted under writes and open pages,
and several app processes on one database. Each test prints the figures it measured; what they
mean is written up in docs/reliability.md.

The app always runs as `python -m crm` in a subprocess and is used over real sockets, as people
use it: accounts are signed up, contacts added, interactions recorded and notes written through
its forms. Setup that is not under test (a backlog of events) is appended straight to the store.
"""

import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import psycopg
import pytest
from argon2 import PasswordHasher

from crm.names import LEADER_LOCK
from crm.projections.registry import ALL
from crm.store import commands
from crm.store.events import append
from harness.faults import (
    PASSWORD,
    LoggedApp,
    Page,
    SignUps,
    User,
    Write,
    Writer,
    kill_tree,
    replay_process,
)
from harness.processes import postgres_processes, postmaster, run_module, wait_until
from harness.smtp import Inbox, SmtpServer
from tests.support import accounts_and_workload, append_workload, differences, sign_up

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CRM_FAULT_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)
NAMES = [p.name for p in ALL]

# What finds an acknowledged write in the event log, and in the projections.
IN_LOG = {
    "signup": "SELECT payload->>'email' FROM events e JOIN event_types t"
    " ON t.id = e.event_type_id WHERE t.name = 'account-created'",
    "contact": "SELECT payload->>'name' FROM events e JOIN event_types t"
    " ON t.id = e.event_type_id WHERE t.name = 'contact-created'",
    "interaction": "SELECT payload->>'notes' FROM events e JOIN event_types t"
    " ON t.id = e.event_type_id WHERE t.name = 'interaction-recorded'",
    "notes": "SELECT payload->>'notes' FROM events e JOIN event_types t"
    " ON t.id = e.event_type_id WHERE t.name = 'next-meeting-notes-written'",
}
IN_PROJECTIONS = {
    "signup": "SELECT email FROM projected_accounts",
    "contact": "SELECT name FROM projected_contacts",
    "interaction": "SELECT notes FROM projected_interactions",
}


def found(url: str, query: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(query).fetchall()}


def missing(url: str, writes: list[Write], queries: dict[str, str]) -> list[Write]:
    """Acknowledged writes whose marker the queries do not find."""
    present = {kind: found(url, query) for kind, query in queries.items()}
    return [
        w
        for w in writes
        if w.acknowledged and w.kind in present and w.marker not in present[w.kind]
    ]


def scalar(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def head(url: str) -> int:
    return int(scalar(url, "SELECT coalesce(max(id), 0) FROM events"))


def caught_up(url: str) -> bool:
    return bool(
        scalar(
            url,
            "SELECT count(*) = %s FROM projections WHERE name = ANY(%s)"
            " AND position >= (SELECT coalesce(max(id), 0) FROM events)",
            (len(NAMES), NAMES),
        )
    )


def counts_agree_with_the_log(url: str) -> None:
    """Counts a projection would get wrong by applying an event twice (or skipping one)."""
    checks = {
        "accounts": (
            "SELECT count(*) FROM projected_accounts",
            "SELECT count(*) FROM events e JOIN event_types t ON t.id = e.event_type_id"
            " WHERE t.name = 'account-created'",
        ),
        "contacts": (
            "SELECT count(*) FROM projected_contacts",
            "SELECT count(*) FILTER (WHERE t.name = 'contact-created')"
            " - count(*) FILTER (WHERE t.name = 'contact-deleted')"
            " FROM events e JOIN event_types t ON t.id = e.event_type_id",
        ),
        # one row per live contact and day, however often the day was recorded (replaced)
        "interactions": (
            "SELECT count(*) FROM projected_interactions",
            "SELECT count(DISTINCT (e.payload->>'contact_id', e.payload->>'interacted_on'))"
            " FROM events e JOIN event_types t ON t.id = e.event_type_id"
            " WHERE t.name = 'interaction-recorded' AND e.payload->>'contact_id' NOT IN ("
            "  SELECT d.payload->>'contact_id' FROM events d JOIN event_types dt"
            "  ON dt.id = d.event_type_id WHERE dt.name = 'contact-deleted')",
        ),
        "last interaction": (
            "SELECT count(*) FROM projected_contacts c WHERE last_interacted_on IS DISTINCT FROM"
            " (SELECT max(interacted_on) FROM projected_interactions i"
            "  WHERE i.contact_id = c.contact_id)",
            "SELECT 0",
        ),
    }
    for what, (projected, logged) in checks.items():
        assert scalar(url, projected) == scalar(url, logged), what


async def equal_to_a_fresh_replay(conn: Any, types: Any) -> None:
    for projection in ALL:
        assert await differences(conn, types, projection) == 0, projection.name


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # not under tmp_path: an embedded server runs as its own user when we are root, and pytest
    # makes its tmp_path 0700 (tests/test_embedded_database.py)
    with tempfile.TemporaryDirectory(prefix="crm-faults-") as directory:
        yield Path(directory)
        for pid in postgres_processes(Path(directory) / "crm-data" / "pgdata"):
            psutil.Process(pid).kill()


# 1. kill -9 at random moments ------------------------------------------------------------------

ROUNDS = {"appends": 14, "replay killed": 3, "app killed while rebuilding": 3}


async def test_kill_9_at_random_moments_loses_no_acknowledged_write_and_applies_none_twice(
    db_url: str, types: Any, conn: Any, data_dir: Path
) -> None:
    seed = SEED
    rng = random.Random(seed)
    print(f"\nkill -9 rounds: seed {seed} (CRM_FAULT_SEED={seed} repeats them)")
    # a backlog, so that rebuilds and replays take long enough to be killed part-way
    workload = await accounts_and_workload(conn, types, 5, seed)
    await append_workload(conn, types, workload, 3000)
    env = {"DATABASE_URL": db_url, "CRM_DATA_DIR": str(data_dir), "CRM_LOG_LEVEL": "WARNING"}
    kinds = [kind for kind, n in ROUNDS.items() for _ in range(n)]
    rng.shuffle(kinds)

    started = time.monotonic()
    app = LoggedApp(env, data_dir / "app.log").start()
    app.health()
    up = time.monotonic() - started
    users = [User(app.base, f"writer{i}-{seed}@example.com") for i in range(3)]
    assert all(u.sign_up().acknowledged for u in users)
    writes: list[Write] = []
    caught_rebuilding = replays_killed = 0
    for number, kind in enumerate(kinds, 1):
        if app.process is None or app.process.poll() is not None:
            if kind == "app killed while rebuilding":
                stale = rng.sample(NAMES, rng.randint(1, len(NAMES)))
                with psycopg.connect(db_url, autocommit=True) as db:
                    db.execute(
                        "UPDATE projections SET definition = 'changed by the fault test'"
                        " WHERE name = ANY(%s)",
                        (stale,),
                    )
            app = LoggedApp(env, data_dir / "app.log").start()
            started = time.monotonic()
            wait_until(app.health_now, 60, "the app answers /health")
            up = time.monotonic() - started
        for user in users:
            user.point_at(app.base)
            assert user.ready(), app.output()
        writers = [Writer(u, f"r{number}w{i}", rng.randrange(10**9)) for i, u in enumerate(users)]
        signups = SignUps(app.base, f"r{number}-{seed}")
        for thread in (*writers, signups):
            thread.start()
        replay = replay_process(env) if kind == "replay killed" else None
        delay = (
            rng.uniform(0.0, 1.0)
            if kind == "app killed while rebuilding"
            else rng.uniform(0.3, 2.5)
        )
        moment = f"{delay:.2f}s"
        if replay is not None:
            time.sleep(delay)
            if replay.poll() is None:
                kill_tree(replay.pid)
                replays_killed += 1
                moment += ", replay killed mid-way"
            else:
                moment += f", replay had ended ({replay.returncode})"
            replay.communicate(timeout=10)
            time.sleep(rng.uniform(0.1, 0.5))
        elif kind == "app killed while rebuilding":
            time.sleep(delay)
            health = app.health_now()
            if health and health.get("rebuilding"):
                caught_rebuilding += 1
                moment += f", rebuilding {health['rebuilding']}"
        else:
            time.sleep(delay)
        app.kill_9()
        for thread in (*writers, signups):
            thread.stop()
        done = [w for thread in (*writers, signups) for w in thread.writes]
        writes.extend(done)
        acked = sum(w.acknowledged for w in done)
        assert not missing(db_url, done, IN_LOG), "an acknowledged write is not in the event log"
        print(
            f"round {number:2}: {kind:28} killed after {moment} (up in {up:.2f}s);"
            f" {len(done)} writes, {acked} acknowledged"
        )

    # the last restart: everything in the log is applied once, as a fresh replay would
    app = LoggedApp(env, data_dir / "app.log").start()
    app.health()
    recovery = wait_until(lambda: caught_up(db_url), 60, "the projections caught up")
    app.stop()
    for user in users:
        user.close()
    lost = missing(db_url, writes, IN_PROJECTIONS)
    assert not lost, f"acknowledged writes not in the projections: {lost[:5]}"
    counts_agree_with_the_log(db_url)
    await equal_to_a_fresh_replay(conn, types)
    assert scalar(db_url, "SELECT count(*) FROM parked_events") == 0
    # a replay run to its end after the killed ones finds nothing in its way
    replayed = run_module("crm.replay", "--quiet", env=env, timeout=120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    await equal_to_a_fresh_replay(conn, types)
    acknowledged = [w for w in writes if w.acknowledged]
    unanswered = [w for w in writes if w.status == 0]
    print(
        f"{len(kinds)} kill -9 rounds ({', '.join(f'{n} {k}' for k, n in ROUNDS.items())}):"
        f" {head(db_url):,} events in the log, {len(writes)} writes sent,"
        f" {len(acknowledged)} acknowledged, all in the log and the projections;"
        f" {len(unanswered)} cut off by a kill; {replays_killed} replays killed mid-way;"
        f" {caught_rebuilding} apps killed while /health said rebuilding;"
        f" caught up {recovery:.2f}s after the last restart; projections equal a fresh replay"
    )


# 2. PostgreSQL restarted under writes and open pages -------------------------------------------

# what a write of each kind moves, as far as a page's messages go
MOVES = {"contact": "contacts", "interaction": "interactions", "notes": "contacts"}


def test_a_database_restart_under_writes_and_open_pages_loses_nothing_and_pages_catch_up(
    data_dir: Path,
) -> None:
    pgdata = data_dir / "crm-data" / "pgdata"
    app = LoggedApp({"CRM_DATA_DIR": str(data_dir / "crm-data")}, data_dir / "app.log").start()
    # whatever fails, the app and its pages stop here: a later test must not find them running
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(app.stop)
        _restart_under_writes_and_pages(app, pgdata, data_dir, cleanup)
    assert postgres_processes(pgdata) == []


def _restarted(pgdata: Path, killed: int) -> bool:
    try:
        return postmaster(pgdata)[0] != killed
    except (FileNotFoundError, IndexError, ValueError):  # between two servers
        return False


def _restart_under_writes_and_pages(
    app: LoggedApp, pgdata: Path, data_dir: Path, cleanup: contextlib.ExitStack
) -> None:
    app.health()
    users = [User(app.base, f"pages{i}@example.com") for i in range(2)]
    for user in users:
        cleanup.callback(user.close)
    for user in users:
        assert user.sign_up().acknowledged
        assert user.ready()
    # per person: a page that stays open, one whose connection is cut when the database dies
    # (it reconnects on its own, with Last-Event-ID), and one closed then (a laptop asleep),
    # reopened with its last id once everything written meanwhile is projected
    kept = [Page(app.base, u.client.cookies) for u in users]
    cut = [Page(app.base, u.client.cookies) for u in users]
    asleep = [Page(app.base, u.client.cookies, reconnect=False) for u in users]
    for page in (*kept, *cut, *asleep):
        cleanup.callback(page.close)
        page.start()
    writers = [Writer(u, f"db{i}", SEED + i) for i, u in enumerate(users)]
    for writer in writers:
        writer.start()
    try:
        wait_until(
            lambda: all(sum(w.acknowledged for w in wr.writes) >= 10 for wr in writers),
            30,
            "writes acknowledged before the restart",
        )
        wait_until(lambda: all(p.last_id for p in asleep), 10, "the pages heard some news")
        killed_at = time.monotonic()
        killed = postmaster(pgdata)[0]
        os.kill(killed, 9)
        for page in asleep:
            page.close()
        for page in cut:
            page.drop()
        # back: a new server runs and /health answers 200 through it. Until the app notices the
        # kill, a pooled connection to a backend that outlived its postmaster can still answer
        back = wait_until(
            lambda: _restarted(pgdata, killed) and app.health_now() is not None,
            30,
            "/health answers 200 again",
        )
        back_at = killed_at + back
        wait_until(
            lambda: all(
                any(w.acknowledged for w in wr.writes if w.sent_at > back_at) for wr in writers
            ),
            30,
            "writes acknowledged again",
        )
        time.sleep(2)  # writes go on for a while once it is back
    finally:
        for writer in writers:
            writer.stop()
    url = postmaster(pgdata)[1]
    writes = [w for wr in writers for w in wr.writes]
    wait_until(lambda: caught_up(url), 30, "the projections caught up")
    projected_at = time.monotonic()

    during = [w for w in writes if killed_at <= w.sent_at < back_at]
    after = [w for w in writes if w.sent_at >= back_at]
    failed_after = [
        (round(w.sent_at - back_at, 2), w.kind, w.status) for w in after if w.status >= 500
    ]
    log_tail = "\n".join(
        line
        for line in (data_dir / "app.log").read_text().splitlines()
        if " 503 " in line or "WARNING" in line or "ERROR" in line or "restart" in line
    )[-4000:]
    assert not failed_after, f"5xx after /health was back: {failed_after}\n{log_tail}"
    assert all(w.status < 500 or w.status == 503 for w in during), {w.status for w in during}
    assert all(w.retry_after for w in during if w.status == 503), "503 without Retry-After"
    assert not missing(url, writes, IN_LOG), "an acknowledged write is not in the event log"
    assert not missing(url, writes, IN_PROJECTIONS), "an acknowledged write is not projected"

    def moved(label: str, since: float) -> set[str]:
        """The projections a person's acknowledged writes sent after `since` moved."""
        return {
            MOVES[w.kind]
            for w in writes
            if w.acknowledged and w.sent_at >= since and w.marker.startswith(f"{label} ")
        }

    labels = [writer.label for writer in writers]
    for label, page in (*zip(labels, kept, strict=True), *zip(labels, cut, strict=True)):
        heard = {m.event for m in page.since(back_at)}
        assert moved(label, back_at) <= heard, (label, heard)
    for page in cut:
        assert len(page.connects) >= 2 and page.connects[-1][1] == 200, page.connects
    # the pages that slept: reopened with their last id, told at once what moved meanwhile
    reopened = [
        Page(app.base, u.client.cookies, reconnect=False, last_id=p.last_id)
        for u, p in zip(users, asleep, strict=True)
    ]
    for page in reopened:
        cleanup.callback(page.close)
        page.start()
    for label, old, page in zip(labels, asleep, reopened, strict=True):
        expected = moved(label, killed_at)
        told = wait_until(
            lambda e=expected, p=page: e <= {m.event for m in p.messages}, 5, "a reopened page told"
        )
        assert {m.id for m in page.messages} - {m.id for m in old.messages}, "nothing new"
        print(
            f"a page closed at the kill, reopened with Last-Event-ID {old.last_id!r}:"
            f" told {sorted(expected)} within {told:.2f}s"
        )
    refused = [w for w in during if w.status == 503]
    unanswered = [w for w in during if w.status == 0]
    refused_for = max((w.sent_at for w in refused), default=killed_at) - killed_at
    print(
        f"database killed under {len(writers)} writers and {len(kept + cut + asleep)} pages:"
        f" /health 200 again after {back:.2f}s, writes refused until"
        f" {refused_for:.2f}s; during the outage {len(during)} writes: {len(refused)} answered"
        f" 503 with Retry-After, {len(unanswered)} unanswered,"
        f" {sum(w.acknowledged for w in during)} acknowledged; after it {len(after)} writes,"
        f" none 5xx; {sum(w.acknowledged for w in writes)} acknowledged in all, every one in"
        f" the log and the projections (caught up {projected_at - killed_at:.2f}s after the"
        f" kill); open pages heard what moved; cut pages reconnected"
        f" {sum(len(p.connects) - 1 for p in cut)} times"
    )


# 3. Several app processes on one database --------------------------------------------------------

ZONES = ["UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]


def a_zone_in_its_day() -> tuple[str, date]:
    """A time zone where it is neither just before nor just after midnight, and its date: a
    meeting that day is due now at CRM_EMAIL_HOUR=0 and stays due for the whole test."""
    for zone in ZONES:
        local = datetime.now(ZoneInfo(zone))
        if 1 <= local.hour <= 22:
            return zone, local.date()
    raise AssertionError("every zone is near midnight")


def leaders(apps: list[LoggedApp]) -> dict[str, list[int]]:
    """Per projection, the processes (indexes in apps) whose /health says they apply it."""
    led: dict[str, list[int]] = {name: [] for name in NAMES}
    for index, app in enumerate(apps):
        health = app.health_now() if app.process and app.process.poll() is None else None
        for name, state in ((health or {}).get("projector") or {}).get("projections", {}).items():
            if state.get("state") == "leading" and name in led:
                led[name].append(index)
    return led


def leader_locks_held(url: str) -> int:
    return int(
        scalar(
            url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s",
            (LEADER_LOCK,),
        )
    )


async def meetings_today(conn: Any, types: Any, zone: str, today: date, count: int) -> None:
    """Notes for `count` meetings today, appended straight to the store (setup, not under test)."""
    accounts = [await sign_up(conn, types, time_zone=zone) for _ in range(2)]
    for n in range(count):
        account, contact = accounts[n % 2], str(uuid.uuid4())
        about = {"contact_id": contact, "account_id": account}
        await append(
            conn,
            types,
            "contact-created",
            {**about, "name": f"Early {n}", "description": "", "contact_method": ""},
            account,
        )
        notes = {**about, "meeting_on": today.isoformat(), "notes": f"early notes {n}"}
        await append(conn, types, "next-meeting-notes-written", notes, account)


def heard_everywhere(user: User, app: LoggedApp, pages: list[Page], name: str) -> float:
    """Add a contact through one process; the seconds until every page heard of it."""
    user.point_at(app.base)
    assert user.ready()
    write = user.add_contact(name)
    assert write.acknowledged, write
    try:
        wait_until(
            lambda: all(p.since(write.sent_at, "contacts") for p in pages), 10, "every page heard"
        )
    except AssertionError:
        heard = [
            [(round(m.at - write.sent_at, 2), m.event) for m in p.messages[-3:]] for p in pages
        ]
        raise AssertionError(
            f"{name}: pages heard {heard}; {[p.connects for p in pages]}"
        ) from None
    return max(p.since(write.sent_at, "contacts")[0].at for p in pages) - write.sent_at


def message_ids(inbox: Inbox) -> list[str]:
    """The morning e-mails received (not, say, a sign-up's confirmation), by Message-ID."""
    ids = [str(message["Message-ID"]) for message in list(inbox.messages)]
    return [i for i in ids if i.startswith("<meeting-notes.")]


async def signed_in(conn: Any, types: Any, base: str, email: str, zone: str) -> User:
    """A person whose account exists (made in the store: with CRM_SMTP_URL set, sign-up waits
    for a confirmation e-mail, which is not under test here), logged in through the form."""
    await commands.sign_up(conn, types, email, PasswordHasher().hash(PASSWORD), zone)
    user = User(base, email)
    assert user.log_in() == 303
    assert user.ready()
    return user


async def test_three_processes_on_one_database_share_news_hand_over_and_send_each_email_once(
    db_url: str, types: Any, conn: Any, data_dir: Path
) -> None:
    zone, today = a_zone_in_its_day()
    early = 6
    await meetings_today(conn, types, zone, today, early)
    with SmtpServer() as smtp:
        smtp_url, inbox = smtp.url, smtp.inbox
        env = {
            "DATABASE_URL": db_url,
            "CRM_DATA_DIR": str(data_dir),
            "CRM_SMTP_URL": smtp_url,
            "CRM_EMAIL_HOUR": "0",
            "CRM_LOG_LEVEL": "WARNING",
        }
        # the secret key is made once, before the processes share it (as a deployment would)
        LoggedApp(env, data_dir / "first.log").start().stop()
        apps = [LoggedApp(env, data_dir / f"app{i}.log").start() for i in range(3)]
        try:
            with contextlib.ExitStack() as cleanup:  # pages and users, whatever fails
                await run_three_processes(
                    db_url, env, apps, inbox, zone, today, early, conn, types, cleanup
                )
        except AssertionError as failed:
            logs = [app.log.read_text() for app in apps]
            told = [line for log in logs for line in log.splitlines() if "WARNING" in line]
            raise AssertionError(f"{failed}\nthe processes warned: {told[-30:]}") from None
        finally:
            for app in apps:
                if app.process is not None and app.process.poll() is None:
                    app.stop()


async def run_three_processes(
    db_url: str,
    env: dict[str, str],
    apps: list[LoggedApp],
    inbox: Inbox,
    zone: str,
    today: date,
    early: int,
    conn: Any,
    types: Any,
    cleanup: contextlib.ExitStack,
) -> None:
    for app in apps:
        app.health()
    # 1. the start-up runs of three processes, at once, over the same due e-mails
    startup = wait_until(lambda: len(message_ids(inbox)) >= early, 60, "the early e-mails")
    time.sleep(0.5)
    assert len(message_ids(inbox)) == early, message_ids(inbox)

    # 2. a write on any process reaches the pages open on every process
    user = await signed_in(conn, types, apps[0].base, f"many-{SEED}@example.com", zone)
    cleanup.callback(user.close)
    pages = [Page(app.base, user.client.cookies) for app in apps]
    for page in pages:
        cleanup.callback(page.close)
        page.start()
    wait_until(lambda: all(p.connects for p in pages), 10, "pages connected")
    fan_out = [heard_everywhere(user, app, pages, f"Fan-out {n}") for n, app in enumerate(apps)]

    # 3. the leader of the contacts projection is killed under writes: another takes over
    led = leaders(apps)
    assert all(len(holders) == 1 for holders in led.values()), led
    assert leader_locks_held(db_url) == len(NAMES)
    victim = led["contacts"][0]
    survivors = [i for i in range(3) if i != victim]
    writers = []
    for n, index in enumerate(survivors):
        email = f"many-{SEED}-{n}@example.com"
        writer_user = await signed_in(conn, types, apps[index].base, email, zone)
        cleanup.callback(writer_user.close)
        writers.append(Writer(writer_user, f"p{n}", SEED + n))
    for writer in writers:
        writer.start()
    time.sleep(0.5)
    killed_at = time.monotonic()
    apps[victim].kill_9()
    taken_over = {
        name: wait_until(
            lambda n=name: any(i in survivors for i in leaders(apps)[n]),
            15,
            f"another process leads {name}",
        )
        for name, holders in led.items()
        if holders == [victim]
    }
    handover = max(taken_over.values())
    time.sleep(1.0)
    for writer in writers:
        writer.stop()
    writes = [w for writer in writers for w in writer.writes]
    after_kill = [w for w in writes if w.sent_at > killed_at]
    assert any(w.acknowledged for w in after_kill), "no write acknowledged after the kill"
    caught = wait_until(lambda: caught_up(db_url), 30, "the projections caught up")
    assert not missing(db_url, writes, IN_LOG), "an acknowledged write is not in the event log"
    assert not missing(db_url, writes, IN_PROJECTIONS), "an acknowledged write is not projected"
    assert leader_locks_held(db_url) == len(NAMES)
    led_after = leaders(apps)
    assert all(len(holders) == 1 for holders in led_after.values()), led_after
    # two processes now: a write on either still reaches the pages of both
    two = [pages[i] for i in survivors]
    fan_out_two = [heard_everywhere(user, apps[i], two, f"Two {i}") for i in survivors]

    # 4. notes for meetings today written through the two survivors; sent by whoever runs the
    # job first: a process started now (its start-up run), two `python -m crm.emails
    # --send-due` at the same moment, and the survivors' minute ticks
    contacts = [c for writer in writers for c in writer.user.contacts][:6]
    for n, contact in enumerate(contacts):
        owner = next(w.user for w in writers if contact in w.user.contacts)
        assert owner.ready()
        written = owner.write_notes(contact, today, f"notes for today {n}", htmx=False)
        assert written.acknowledged, written
    expected = early + len(contacts)
    apps[victim] = LoggedApp(env, apps[victim].log).start()
    senders = [
        subprocess.Popen(
            [sys.executable, "-m", "crm.emails", "--send-due"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for sender in senders:
        output, _ = sender.communicate(timeout=60)
        assert sender.returncode == 0, output
    apps[victim].health()
    wait_until(lambda: len(message_ids(inbox)) >= expected, 90, "every e-mail sent")
    claims = scalar(db_url, "SELECT count(*) FROM meeting_email_claims WHERE status <> 'sent'")
    assert claims == 0, "a claim is not marked sent"
    ids = message_ids(inbox)
    assert len(ids) == len(set(ids)) == expected, ids
    assert (
        scalar(
            db_url,
            "SELECT count(*) FROM events e JOIN event_types t ON t.id = e.event_type_id"
            " WHERE t.name = 'meeting-notes-email-sent'",
        )
        == expected
    )
    await equal_to_a_fresh_replay(conn, types)
    user.close()
    for writer in writers:
        writer.user.close()
    for page in pages:
        page.close()
    print(
        f"3 processes on one database: {early} e-mails sent {startup:.2f}s after three start-ups"
        f" raced for them; a write on any process heard by the pages of all 3 within"
        f" {max(fan_out) * 1000:.0f} ms of sending it, and by both pages of the 2 left"
        f" within {max(fan_out_two) * 1000:.0f} ms; leader of {sorted(taken_over)} killed under"
        f" {len(writers)} writers: handed over in {handover:.2f}s, caught up {caught:.2f}s later,"
        f" {sum(w.acknowledged for w in writes)} acknowledged writes all in the log and"
        f" projections; {expected} meetings, {len(ids)} e-mails received, no Message-ID twice"
    )
