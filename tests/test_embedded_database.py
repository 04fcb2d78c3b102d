"""The embedded PostgreSQL under `python -m crm`: killed, restarted by the app, stopped with it."""

import itertools
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from harness.processes import App, postgres_processes, postmaster, wait_until
from tests.web_support import csrf_of, sign_up

RESTARTING = "The database is restarting; try again in a few seconds."


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under tmp_path: any pytest run resets /tmp/pytest-of-<user> to 0700, and the server,
    # which runs as its own user when we are root, must reach pgdata whenever it is restarted.
    with tempfile.TemporaryDirectory(prefix="crm-embedded-") as directory:
        yield Path(directory) / "crm-data"
        for pid in postgres_processes(Path(directory) / "crm-data" / "pgdata"):
            psutil.Process(pid).kill()


@pytest.fixture
def start_app(data_dir: Path) -> Iterator[Callable[[], App]]:
    """Start `python -m crm` on data_dir; any still running at the end is stopped, its log shown."""
    started: list[App] = []

    def start() -> App:
        started.append(App({"CRM_DATA_DIR": str(data_dir)}).start())
        return started[-1]

    yield start
    for app in started:
        assert app.process is not None
        if app.process.returncode is None:
            print(app.stop())


@dataclass
class Answer:
    name: str
    sent_at: float
    seconds: float
    status: int  # 0: no answer within the client's timeout


class Writer(threading.Thread):
    """Adds contacts one after another, as fast as the app answers, and records every answer."""

    def __init__(self, base: str, email: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, timeout=10)
        sign_up(self.client, email)
        self.token = csrf_of(self.client, "/contacts")
        self.answers: list[Answer] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        for n in itertools.count():
            if self.stopping.is_set():
                return
            name, sent_at = f"Contact {n}", time.monotonic()
            try:
                fields = {"name": name, "description": "", "contact_method": ""}
                response = self.client.post("/contacts", data=fields | {"csrf_token": self.token})
                status = response.status_code
            except httpx.TimeoutException:
                status = 0
            self.answers.append(Answer(name, sent_at, time.monotonic() - sent_at, status))

    def acknowledged(self, after: float = 0.0) -> list[str]:
        return [a.name for a in self.answers if a.status == 303 and a.sent_at > after]

    def refused(self, after: float) -> list[Answer]:
        return [a for a in self.answers if a.status != 303 and a.sent_at > after]

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=15)
        self.client.close()


def names_in(url: str, query: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(query).fetchall()}


def kill_postmaster(pgdata: Path) -> float:
    os.kill(postmaster(pgdata)[0], signal.SIGKILL)
    return time.monotonic()


def test_a_killed_database_restarts_under_writes_and_keeps_every_acknowledged_one(
    data_dir: Path, start_app: Callable[[], App]
) -> None:
    pgdata = data_dir / "pgdata"
    app = start_app()
    app.health()
    writers = [Writer(f"http://127.0.0.1:{app.port}", f"writer{i}@example.com") for i in range(3)]
    for writer in writers:
        writer.start()
    try:
        wait_until(lambda: all(len(w.acknowledged()) >= 10 for w in writers), 20, "contacts added")
        killed_at = kill_postmaster(pgdata)
        recovery = wait_until(
            lambda: all(len(w.acknowledged(killed_at)) >= 10 for w in writers),
            15,
            "contacts added again after the restart",
        )
    finally:
        for writer in writers:
            writer.stop()

    during = [a for w in writers for a in w.answers if a.sent_at > killed_at]
    assert {a.status for a in during} <= {303, 503}, "only acknowledgements and 503s"
    assert max((a.seconds for a in during if a.status == 503), default=0) < 2.5, "fast 503s"
    # an acknowledgement may wait up to 2 s for the projections to show it
    assert max(a.seconds for a in during) < 5, "no request hangs"
    refused = sum(1 for a in during if a.status == 503)
    print(f"10 writes each again {recovery:.2f}s after the kill; {refused} answered 503")

    acknowledged = {name for w in writers for name in w.acknowledged()}
    url = postmaster(pgdata)[1]
    stored = names_in(url, "SELECT payload->>'name' FROM events WHERE payload ? 'name'")
    assert acknowledged <= stored, "an acknowledged write was lost"
    wait_until(
        lambda: acknowledged <= names_in(url, "SELECT name FROM projected_contacts"),
        15,
        "the contacts projection caught up",
    )
    print(app.stop())
    assert postgres_processes(pgdata) == []


def test_while_the_database_cannot_restart_requests_get_a_fast_503_that_says_so(
    data_dir: Path, start_app: Callable[[], App]
) -> None:
    pgdata = data_dir / "pgdata"
    app = start_app()
    app.health()
    client = httpx.Client(base_url=f"http://127.0.0.1:{app.port}", timeout=10)
    sign_up(client, "ada@example.com")
    # without PG_VERSION the server cannot start again: the outage lasts until it is back
    (pgdata / "PG_VERSION").rename(pgdata / "PG_VERSION.hidden")
    kill_postmaster(pgdata)
    wait_until(lambda: RESTARTING in client.get("/health").text, 5, "/health says restarting")

    for headers, kind in (
        ({}, "application/json"),
        ({"Accept": "text/html"}, "text/html"),
        ({"Accept": "text/html", "HX-Request": "true"}, "text/plain"),
    ):
        path = "/health" if kind == "application/json" else "/contacts"
        started = time.monotonic()
        response = client.get(path, headers=headers)
        assert time.monotonic() - started < 0.5
        assert response.status_code == 503
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["retry-after"] == "2"
        assert RESTARTING in response.text

    (pgdata / "PG_VERSION.hidden").rename(pgdata / "PG_VERSION")
    wait_until(lambda: client.get("/health").status_code == 200, 15, "/health says ok again")
    assert client.get("/contacts").status_code == 200
    client.close()
    print(app.stop())
    assert postgres_processes(pgdata) == []


def test_an_app_killed_and_restarted_at_once_leaves_no_database_after_a_clean_stop(
    data_dir: Path, start_app: Callable[[], App]
) -> None:
    first = start_app()
    first.health()
    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)
    # Not reaped yet, as a killed process lingers until its parent waits for it: its PID still
    # exists, and must not count as a user of the database.
    zombie = psutil.Process(first.process.pid)
    wait_until(lambda: zombie.status() == psutil.STATUS_ZOMBIE, 10, "the app killed")

    again = start_app()
    again.health()
    log = again.stop()
    assert postgres_processes(data_dir / "pgdata") == [], log
    first.process.communicate(timeout=10)
