"""The live projector: an asyncio task per projection, woken by NOTIFY, safe across processes.

Per projection, one process at a time leads (a session-level advisory lock on the connection
that applies batches); others stand by and take over within `lock_retry` seconds of its death.
Each batch's row changes and the new position commit in one transaction, under a row lock on the
projection's position, so a crash anywhere neither loses nor doubles an effect.

A batch that fails for a reason other than a lost database is stepped through one event at a
time; an event that keeps failing is parked (crm/projections/poison.py) and the projection goes on.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from crm.broadcaster import Advanced, Broadcaster
from crm.database import use_text_for_ids_and_dates
from crm.names import EVENTS_CHANNEL
from crm.names import LEADER_LOCK as _LEADER_LOCK
from crm.projections import poison, positions
from crm.projections.apply import apply_events
from crm.projections.base import Projection
from crm.projections.poison import ParkedEvent
from crm.projections.rebuild import rebuild
from crm.rendering import Renderer, RenderFailed
from crm.store.event_types import EventTypes
from crm.store.events import Event, read_batch

log = logging.getLogger(__name__)
APPLICATION_NAME = "crm-projector"


def _stop_if_cancelled() -> None:
    # psycopg answers a cancellation during a query by cancelling the query too, and may then raise
    # QueryCanceled instead of CancelledError; a retry loop must not swallow its own shutdown.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass
class Backoff:
    first: float = 0.1
    ceiling: float = 5.0
    current: float = field(init=False, default=0.0)

    def next(self) -> float:
        self.current = min(self.ceiling, self.current * 2 if self.current else self.first)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


@dataclass
class ProjectorSettings:
    batch_size: int = 1000
    poll_interval: float = 5.0  # the fallback for a lost notification
    lock_retry: float = 1.0  # how often a standby tries to take over
    keepalive: float = 10.0  # the listener's SELECT 1 against silent network loss
    park_after: int = 4  # attempts at one failing event before it is parked
    first_retry: float = 0.5  # then doubling: 0.5 s, 1 s, 2 s between the attempts


class EventFailed(Exception):
    """One event failed to apply; it will be retried after a backoff, then parked."""


@dataclass
class Failing:
    """The event a projection is stuck on, and how often it failed."""

    position: int
    attempts: int = 0


@dataclass
class RebuildProgress:
    """A rebuild's progress, in percent, in `rebuilding` and as the projection's state."""

    projector: "Projector"
    name: str
    total: int = 0
    done: int = 0

    def expect(self, total: int) -> None:
        self.total = total

    def advance(self, events: int) -> None:
        self.done += events
        self.show()

    def show(self) -> None:
        # the fold is most of the work; the last percent is writing and swapping the table in
        percent = min(99, self.done * 100 // self.total) if self.total else 0
        self.projector.rebuilding[self.name] = percent
        self.projector.states[self.name] = f"rebuilding {percent}%"


class Projector:
    def __init__(
        self,
        url: str,
        types: EventTypes,
        projections: Sequence[Projection[Any]],
        broadcaster: Broadcaster,
        renderer: Renderer,
        settings: ProjectorSettings | None = None,
    ) -> None:
        self.url = url
        self.types = types
        self.projections = list(projections)
        self.broadcaster = broadcaster
        self.renderer = renderer
        self.settings = settings or ProjectorSettings()
        self.states: dict[str, str] = {p.name: "starting" for p in self.projections}
        # projections being rebuilt from the stream after their declaration changed: percent done
        self.rebuilding: dict[str, int] = {}
        self.listener_state = "starting"
        self._doorbells = {p.name: asyncio.Event() for p in self.projections}
        # per projection: step one event at a time up to this position, to find a failing event
        self._stepping_until: dict[str, int] = {}
        self._failing: dict[str, Failing] = {}
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests record the waits

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen(), name="projector-listener")
            for projection in self.projections:
                group.create_task(self._drive(projection), name=f"projector-{projection.name}")

    def _ring_all(self) -> None:
        for doorbell in self._doorbells.values():
            doorbell.set()

    async def connect(self) -> AsyncConnection[Any]:
        conn = await AsyncConnection.connect(
            self.url, autocommit=True, application_name=APPLICATION_NAME
        )
        use_text_for_ids_and_dates(conn)
        return conn

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            try:
                async with await self.connect() as conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {positions.CHANNEL}")
                    # anything announced while we were not listening is read from the tables
                    await self.broadcaster.seed(await positions.current_positions(conn))
                    self._ring_all()
                    self.listener_state = "listening"
                    backoff.reset()
                    await self._hear(conn)
            except Exception as error:  # a lost connection, or news it could not read
                _stop_if_cancelled()
                self.listener_state = f"reconnecting: {error}".strip()
                delay = backoff.next()
                log.warning(
                    "projector listener lost its connection (%s); retry in %.1fs", error, delay
                )
                await asyncio.sleep(delay)

    async def _hear(self, conn: AsyncConnection[Any]) -> None:
        while True:
            async for notice in conn.notifies(timeout=self.settings.keepalive):
                if notice.channel == EVENTS_CHANNEL:
                    self._ring_all()
                else:
                    await self.broadcaster.publish(Advanced.from_notification(notice.payload))
            await conn.execute("SELECT 1")

    async def _drive(self, projection: Projection[Any]) -> None:
        backoff = Backoff()
        while True:
            try:
                async with await self.connect() as conn:
                    await self._lead(conn, projection)
                    await self._rebuild_if_redeclared(conn, projection)
                    await self._follow_the_stream(conn, projection, backoff)
            except Exception as error:  # a lost database or renderer: retry, never die
                _stop_if_cancelled()
                delay = backoff.next()
                # the class only: /health shows states to anyone, and messages quote values
                self.states[projection.name] = f"retrying: {type(error).__name__}"
                log.warning(
                    "projection %s stopped (%r); retry in %.1fs",
                    projection.name,
                    error,
                    delay,
                    exc_info=not poison.is_transient(error),
                )
                await self.sleep(delay)

    async def _lead(self, conn: AsyncConnection[Any], projection: Projection[Any]) -> None:
        """Return once this connection holds the projection's leader lock."""
        while True:
            cursor = await conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LEADER_LOCK, projection.name)
            )
            row = await cursor.fetchone()
            if row is not None and row[0]:
                self.states[projection.name] = "leading"
                log.info("projection %s: this process applies it", projection.name)
                return
            self.states[projection.name] = "standby"
            await asyncio.sleep(self.settings.lock_retry)

    async def _rebuild_if_redeclared(
        self, conn: AsyncConnection[Any], projection: Projection[Any]
    ) -> None:
        """Rebuild the table from the stream when it was built by another declaration (or not
        at all): blue/green, so pages read the old table until the new one is swapped in."""
        stored = await positions.stored_definition(conn, projection.name)
        if stored == projection.definition:
            return
        log.info(
            "projection %s: its table was built by %s, the code declares %s; rebuilding it",
            projection.name,
            stored or "an older crm",
            projection.definition,
        )
        progress = RebuildProgress(self, projection.name)
        progress.show()
        try:
            rebuilt = await rebuild(
                self.url,
                self.types,
                [projection],
                progress=progress.advance,
                on_total=progress.expect,
                renderer=self.renderer,
            )
        finally:
            self.rebuilding.pop(projection.name, None)
        self.states[projection.name] = "leading"
        log.info(
            "projection %s rebuilt: %d events in %.1fs, %d parked",
            projection.name,
            rebuilt.events,
            rebuilt.seconds,
            len(rebuilt.parked),
        )

    async def _follow_the_stream(
        self, conn: AsyncConnection[Any], projection: Projection[Any], backoff: Backoff
    ) -> None:
        doorbell = self._doorbells[projection.name]
        failure_backoff = Backoff(first=self.settings.first_retry, ceiling=60.0)
        while True:
            doorbell.clear()
            while await self._apply_or_wait(conn, projection, failure_backoff):
                backoff.reset()  # progress: the next failure starts from a short wait
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that coincides with the timeout, and shutdown then hangs
                async with asyncio.timeout(self.settings.poll_interval):
                    await doorbell.wait()

    async def _apply_or_wait(
        self, conn: AsyncConnection[Any], projection: Projection[Any], backoff: Backoff
    ) -> bool:
        """Apply the next batch; after an event failed, wait before the next attempt, keeping the
        connection and the leadership. False when there was nothing to apply."""
        try:
            applied = await self.apply_next_batch(conn, projection)
        except EventFailed as failed:
            self.states[projection.name] = f"retrying: {failed}"
            await self.sleep(backoff.next())
            return True
        if applied:
            backoff.reset()
            self.states[projection.name] = "leading"
        return applied

    async def apply_next_batch(
        self, conn: AsyncConnection[Any], projection: Projection[Any]
    ) -> bool:
        """Apply the next batch in one transaction; False when there was nothing to apply.

        Raises EventFailed when a single event failed and will be retried after a backoff.
        """
        stepping_until = self._stepping_until.get(projection.name)
        limit = 1 if stepping_until is not None else self.settings.batch_size
        events: list[Event] = []
        try:
            async with conn.transaction():
                position = await positions.lock_position(conn, projection.name)
                events = await read_batch(conn, self.types, position, limit)
                if not events:
                    return False
                accounts = await apply_events(conn, projection, events, self.renderer)
                await positions.record_position(
                    conn, projection.name, events[-1].position, accounts
                )
        except Exception as error:
            if poison.is_transient(error) or not events:
                raise
            return await self._failed(conn, projection, events, error)
        if stepping_until is not None and events[-1].position >= stepping_until:
            del self._stepping_until[projection.name]
        self._failing.pop(projection.name, None)
        return True

    async def _failed(
        self,
        conn: AsyncConnection[Any],
        projection: Projection[Any],
        events: list[Event],
        error: Exception,
    ) -> bool:
        if len(events) > 1:
            log.warning(
                "projection %s: a batch of %d events failed (%r); applying them one at a time",
                projection.name,
                len(events),
                error,
            )
            self._stepping_until[projection.name] = events[-1].position
            return True
        event = events[0]
        failing = self._failing.get(projection.name)
        if failing is None or failing.position != event.position:
            failing = self._failing[projection.name] = Failing(event.position)
        failing.attempts += 1
        # rendering is deterministic and already bounded: a note over its limits stays over them
        retry = not isinstance(error, RenderFailed)
        if retry and failing.attempts < self.settings.park_after:
            log.warning(
                "projection %s: event %d (%s) failed, attempt %d of %d",
                projection.name,
                event.position,
                event.type,
                failing.attempts,
                self.settings.park_after,
                exc_info=error if failing.attempts == 1 else None,
            )
            raise EventFailed(
                f"event {event.position} ({event.type}) failed"
                f" {failing.attempts} time(s): {type(error).__name__}"
            ) from error
        item = ParkedEvent.of(projection, event, error, failing.attempts)
        if await poison.park_next(conn, self.types, item):
            log.error(
                "projection %s: parked event %d (%s) after %d attempt(s): %s",
                projection.name,
                event.position,
                event.type,
                failing.attempts,
                item.error,
            )
        del self._failing[projection.name]
        return True


async def catch_up(
    url: str,
    types: EventTypes,
    projections: Sequence[Projection[Any]],
    renderer: Renderer | None = None,  # one made and closed here, or the caller's
) -> None:
    """Bring projections up to date once, from a command-line tool.

    Safe beside a running app: every batch holds the projection's position lock. A failing
    event is parked at once (no one is waiting for a retry here).
    """
    own = renderer is None
    renderer = renderer or Renderer()
    settings = ProjectorSettings(park_after=1)
    projector = Projector(url, types, projections, Broadcaster(), renderer, settings)
    try:
        async with await projector.connect() as conn:
            for projection in projections:
                while await projector.apply_next_batch(conn, projection):
                    pass
    finally:
        if own:
            renderer.close()
