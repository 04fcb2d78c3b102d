"""The fault suite: kill -9 at random moments, a PostgreSQL restarted under writes and open pages,
and several app processes on one database. Each test prints the figures it measured; what they
mean is written up in docs/reliability.md.

The app always runs as `python -m crm` in a subprocess and is used over real sockets, as people
use it: accounts are signed up, contacts added, interactions recorded and notes written through
its forms. Setup that is not under test (a backlog of events) is appended straight to the store.
"""

import os
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
import psycopg
import pytest

from crm.names import LEADER_LOCK
from crm.projections.registry import ALL
from harness.faults import (
    LoggedApp,
    Page,
    SignUps,
    User,
    Write,
    Writer,
    kill_tree,
    replay_process,
    smtp_server,
)
from harness.processes import postgres_processes, postmaster, run_module, wait_until
from tests.support import accounts_and_workload, append_workload, differences, eventually

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
        w for w in writes if w.acknowledged and w.kind in present and w.marker not in present[w.kind]
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
            wait_until(lambda: app.health_now() is not None, 60, "the app answers /health")
            up = time.monotonic() - started
        for user in users:
            user.point_at(app.base)
            assert user.ready(), app.output()
        writers = [Writer(u, f"r{number}w{i}", rng.randrange(10**9)) for i, u in enumerate(users)]
        signups = SignUps(app.base, f"r{number}-{seed}")
        for thread in (*writers, signups):
            thread.start()
        replay = replay_process(env) if kind == "replay killed" else None
        delay = rng.uniform(0.0, 1.0) if kind == "app killed while rebuilding" else rng.uniform(
            0.3, 2.5
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
