"""What the fault suite does to crm, and how it watches: users writing through the real app over
real sockets, pages listening on /stream, a throwaway SMTP server, kill -9 of a process tree.

Every write carries a marker (a contact's name, an e-mail, the text of notes) found again in the
event log and the projections, so "acknowledged" can be checked write by write: a write is
acknowledged when the app answered it with success (a 303 to a page that is not the log-in page,
or htmx's 200).
"""

import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness.pages import csrf_token_in
from harness.processes import App

_CONTACT = re.compile(r"/contacts/([0-9a-f-]{36})")
PASSWORD = "correct horse battery"


def kill_tree(pid: int) -> None:
    """kill -9 a process and every process it started (the Markdown workers), at once."""
    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)


class LoggedApp(App):
    """`python -m crm` whose output goes to a file: a pipe nobody reads fills up and blocks the
    app when it logs a lot (every request, under load)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        super().__init__(env)
        self.log = log

    def start(self) -> "LoggedApp":
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "crm"],
                env=self.env,
                text=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill_9(self) -> None:
        """kill -9 of the app process alone: its Markdown workers are left to notice."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> str:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_tree(self.process.pid)
                self.process.wait(timeout=10)
        return self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def health_now(self) -> dict[str, Any] | None:
        """/health once, or None when it does not answer 200."""
        try:
            response = httpx.get(f"{self.base}/health", timeout=2)
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None


@dataclass
class Write:
    kind: str  # signup, contact, interaction, notes
    marker: str  # what finds it again: the e-mail, the contact's name, the notes' text
    sent_at: float
    status: int = 0  # 0: no answer (connection refused or cut, timeout)
    seconds: float = 0.0
    contact_id: str | None = None
    acknowledged: bool = False
    retry_after: str | None = None  # the Retry-After header of a 503


class User:
    """One person with a browser: a cookie jar, a CSRF token, their contacts."""

    def __init__(self, base: str, email_address: str) -> None:
        self.email = email_address
        self.client = httpx.Client(base_url=base, timeout=10, follow_redirects=False)
        self.token = ""
        self.contacts: list[str] = []  # acknowledged, so they exist

    def point_at(self, base: str) -> None:
        """The app moved (restarted on another port): keep the cookies."""
        self.client.base_url = httpx.URL(base)

    def _token_of(self, path: str) -> str | None:
        page = self.client.get(path)
        return csrf_token_in(page.text) if page.status_code == 200 else None

    def sign_up(self, time_zone: str = "Europe/Paris") -> Write:
        write = Write("signup", self.email, time.monotonic())
        try:
            token = self._token_of("/signup") or ""
            data = {"email": self.email, "password": PASSWORD, "time_zone": time_zone}
            self._send(write, "/signup", {**data, "csrf_token": token})
        except httpx.TransportError:
            pass
        return write

    def log_in(self) -> int:
        token = self._token_of("/login") or ""
        data = {"email": self.email, "password": PASSWORD, "csrf_token": token}
        return self.client.post("/login", data=data).status_code

    def ready(self) -> bool:
        """Fetch a fresh CSRF token, logging in again if the session was lost."""
        token = self._token_of("/contacts/new")
        if token is None:
            self.log_in()
            token = self._token_of("/contacts/new")
        self.token = token or ""
        return token is not None

    def _send(self, write: Write, path: str, data: dict[str, str], htmx: bool = False) -> None:
        headers = {"HX-Request": "true"} if htmx else {}
        try:
            response = self.client.post(path, data=data, headers=headers)
        except httpx.TransportError:
            write.seconds = time.monotonic() - write.sent_at
            return
        write.seconds = time.monotonic() - write.sent_at
        write.status = response.status_code
        write.retry_after = response.headers.get("retry-after")
        location = response.headers.get("location", "")
        if response.status_code == 303 and not location.startswith("/login"):
            write.acknowledged = True
            match = _CONTACT.search(location)
            write.contact_id = match.group(1) if match else None
        elif htmx and response.status_code == 200:
            write.acknowledged = True

    def add_contact(self, name: str) -> Write:
        write = Write("contact", name, time.monotonic())
        data = {"name": name, "description": "", "contact_method": "", "csrf_token": self.token}
        self._send(write, "/contacts", data)
        if write.acknowledged and write.contact_id:
            self.contacts.append(write.contact_id)
        return write

    def record_interaction(self, contact: str, day: date, notes: str) -> Write:
        write = Write("interaction", notes, time.monotonic(), contact_id=contact)
        data = {"interacted_on": day.isoformat(), "interaction_notes": notes}
        path = f"/contacts/{contact}/interactions"
        self._send(write, path, {**data, "csrf_token": self.token}, htmx=True)
        return write

    def write_notes(self, contact: str, day: date, notes: str, htmx: bool = True) -> Write:
        write = Write("notes", notes, time.monotonic(), contact_id=contact)
        data = {"meeting_on": day.isoformat(), "meeting_notes": notes}
        path = f"/contacts/{contact}/next_meeting"
        self._send(write, path, {**data, "csrf_token": self.token}, htmx=htmx)
        return write

    def close(self) -> None:
        self.client.close()


class Writer(threading.Thread):
    """A user adding contacts, recording interactions and writing notes as fast as the app
    answers, until stopped; every write and its answer is kept."""

    def __init__(self, user: User, label: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.user, self.label = user, label
        self.rng = random.Random(seed)
        self.writes: list[Write] = []
        self.stopping = threading.Event()
        self._serial = itertools.count()
        self._days = itertools.count()

    def run(self) -> None:
        while not self.stopping.is_set():
            n = next(self._serial)
            roll = self.rng.random()
            if not self.user.contacts or roll < 0.25:
                write = self.user.add_contact(f"{self.label} contact {n}")
            elif roll < 0.65:
                day = date(2030, 1, 1) + timedelta(days=next(self._days))  # one per day
                write = self.user.record_interaction(
                    self.rng.choice(self.user.contacts), day, f"{self.label} talk {n}"
                )
            else:
                write = self.user.write_notes(
                    self.rng.choice(self.user.contacts), date(2031, 6, 1), f"{self.label} note {n}"
                )
            self.writes.append(write)
            if write.status == 0 or write.status >= 500:
                time.sleep(0.1)  # the app or its database is down: try again in a moment

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=20)


class SignUps(threading.Thread):
    """People signing up now and then, each with a new address."""

    def __init__(self, base: str, label: str, pause: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.base, self.label, self.pause = base, label, pause
        self.writes: list[Write] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        for n in itertools.count():
            if self.stopping.is_set():
                return
            user = User(self.base, f"{self.label}-{n}@example.com")
            self.writes.append(user.sign_up())
            user.close()
            self.stopping.wait(self.pause)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=20)


@dataclass
class Message:
    at: float
    event: str
    id: str | None
    data: str


class Page(threading.Thread):
    """An open page's EventSource: GET /stream with the user's cookies; on a lost connection it
    reconnects with Last-Event-ID set to the last id it was given, used as an opaque string."""

    def __init__(
        self,
        base: str,
        cookies: httpx.Cookies,
        reconnect: bool = True,
        last_id: str | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.base, self.cookies, self.reconnect, self.last_id = base, cookies, reconnect, last_id
        self.messages: list[Message] = []
        self.connects: list[tuple[float, int]] = []  # (when, status)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        async with httpx.AsyncClient(
            base_url=self.base, cookies=self.cookies, timeout=httpx.Timeout(5, read=None)
        ) as client:
            while not self._stopping:
                with contextlib.suppress(httpx.HTTPError, asyncio.CancelledError):
                    await self._listen(client)
                if not self.reconnect or self._stopping:
                    return
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.5)  # as a browser waits before reconnecting

    async def _listen(self, client: httpx.AsyncClient) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        async with client.stream("GET", "/stream", headers=headers) as response:
            self.connects.append((time.monotonic(), response.status_code))
            if response.status_code != 200:
                return
            event, data, event_id = "message", [], None
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        if event_id is not None:
                            self.last_id = event_id
                        self.messages.append(
                            Message(time.monotonic(), event, event_id, "\n".join(data))
                        )
                    event, data, event_id = "message", [], None
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        event_id = value

    def drop(self) -> None:
        """The connection is cut (a laptop's network, a proxy): the page reconnects."""
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)

    def close(self) -> None:
        self._stopping = True
        self.drop()
        self.join(timeout=10)

    def since(self, moment: float, event: str | None = None) -> list[Message]:
        return [
            m for m in list(self.messages) if m.at >= moment and (event is None or m.event == event)
        ]


def replay_process(env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m crm.replay --quiet` started in its own process group (to be killed whole)."""
    return subprocess.Popen(
        [sys.executable, "-m", "crm.replay", "--quiet"],
        env={**os.environ, **env},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
