"""`python -m crm` as a user runs it: embedded PostgreSQL, kill -9, restarts, real sockets."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from crm.projections.registry import ALL
from harness.processes import App, free_port
from tests.support import (
    accounts_and_workload,
    append_workload,
    differences,
    eventually,
    wait_until_caught_up,
)


def postgres_running_in(pgdata: Path) -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(pgdata) in " ".join(p.info["cmdline"] or [])
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "crm-data"
    for pid in postgres_running_in(tmp_path / "crm-data" / "pgdata"):
        psutil.Process(pid).kill()


def test_embedded_database_survives_kill_9_and_stops_on_shutdown(data_dir: Path) -> None:
    app = App({"CRM_DATA_DIR": str(data_dir)}).start()
    assert app.health()["database"] == "ok"
    app.kill_9()
    assert postgres_running_in(data_dir / "pgdata")  # orphaned by the kill, as in real life

    again = App({"CRM_DATA_DIR": str(data_dir)}).start()
    health = again.health()
    assert set(health["projector"]["projections"]) == {p.name for p in ALL}
    log = again.stop()
    assert "embedded PostgreSQL" in log
    # uvicorn re-raises SIGTERM after its graceful shutdown
    assert again.process is not None and again.process.returncode in (0, -15), log
    assert "stopping the embedded PostgreSQL" in log
    assert postgres_running_in(data_dir / "pgdata") == []


def test_a_stale_postmaster_pid_of_another_process_is_ignored(data_dir: Path) -> None:
    app = App({"CRM_DATA_DIR": str(data_dir)}).start()
    app.health()
    app.stop()
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    # a postmaster.pid left behind, naming a live process that is not postgres (this one)
    pid_file.write_text(f"{os.getpid()}\n{data_dir / 'pgdata'}\n0\n5432\n{data_dir}\n\n\nready\n")
    again = App({"CRM_DATA_DIR": str(data_dir)}).start()
    assert again.health()["database"] == "ok"
    again.stop()


def test_port_and_host_flags(data_dir: Path) -> None:
    app = App({"CRM_DATA_DIR": str(data_dir)})
    app.port = free_port()
    app.process = subprocess.Popen(
        [sys.executable, "-m", "crm", "--host", "127.0.0.1", "--port", str(app.port)],
        env=app.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert app.health()["status"] == "ok"
    app.stop()


async def test_an_app_killed_mid_catch_up_restarts_without_loss(db_url, types, conn) -> None:
    workload = await accounts_and_workload(conn, types, 10)
    await append_workload(conn, types, workload, 20_000)
    app = App({"DATABASE_URL": db_url}).start()

    async def lowest_position() -> int:
        row = await (await conn.execute("SELECT min(position) FROM projections")).fetchone()
        assert row is not None
        return int(row[0])

    async def started_on_the_backlog() -> bool:
        row = await (await conn.execute("SELECT max(position) FROM projections")).fetchone()
        return row is not None and row[0] > 0

    # killed as soon as it has committed a batch: part-way through the backlog
    await eventually(started_on_the_backlog, 60, "the app applied a first batch")
    app.kill_9()
    assert await lowest_position() < 20_000  # it really was mid-way when killed
    again = App({"DATABASE_URL": db_url}).start()
    again.health()
    await wait_until_caught_up(conn, [p.name for p in ALL], timeout=60)
    assert "starting none" in again.stop()
    for projection in ALL:
        assert await differences(conn, types, projection) == 0, projection.name
