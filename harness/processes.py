"""Running `python -m crm` as a subprocess, as a user (or a Procfile host) would."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class App:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        if "DATABASE_URL" not in env:
            self.env.pop("DATABASE_URL", None)
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> "App":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crm"],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        return self

    def health(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, self.output()
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the app did not become healthy"
            time.sleep(0.1)

    def kill_9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=10)

    def stop(self) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return out

    def output(self) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            return ""
        return self.process.communicate()[0]


def postgres_processes(pgdata: Path) -> list[int]:
    """Live postgres processes of the cluster in pgdata (they all run in their data directory)."""
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if (
                process.info["name"] == "postgres"
                and process.status() != psutil.STATUS_ZOMBIE
                and Path(process.cwd()) == pgdata.resolve()
            ):
                found.append(process.pid)
        except psutil.Error:
            pass
    return found


def postmaster(pgdata: Path) -> tuple[int, str]:
    """The running postmaster's PID and a URI for it, from its postmaster.pid."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return int(lines[0]), f"postgresql://postgres@/postgres?host={lines[4].strip()}"


def run_module(
    module: str, *args: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`python -m module args` run to its end, as an operator would, with env added to ours."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll until condition() is true; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.02)
    return time.monotonic() - started
