"""The live projector: an asyncio task per projection, woken by NOTIFY, safe across processes.

Per projection, one process at a time leads (a session-level advisory lock on the connection
that applies batches); others stand by and take over within `lock_retry` seconds of its death.
Each batch's row changes and the new position commit in one transaction, under a row lock on the
projection's position, so a crash anywhere neither loses nor doubles an effect.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection

from crm.broadcaster import Advanced, Broadcaster
from crm.database import use_text_for_ids_and_dates
from crm.projections import positions
from crm.projections.apply import apply_events
from crm.projections.base import Projection
from crm.store.event_types import EventTypes
from crm.store.events import read_batch

log = logging.getLogger(__name__)
EVENTS_CHANNEL = "crm_events"
_LEADER_LOCK = 7346002
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


class Projector:
    def __init__(
        self,
        url: str,
        types: EventTypes,
        projections: Sequence[Projection[Any]],
        broadcaster: Broadcaster,
        settings: ProjectorSettings | None = None,
    ) -> None:
        self.url = url
        self.types = types
        self.projections = list(projections)
        self.broadcaster = broadcaster
        self.settings = settings or ProjectorSettings()
        self.states: dict[str, str] = {p.name: "starting" for p in self.projections}
        self.listener_state = "starting"
        self._doorbells = {p.name: asyncio.Event() for p in self.projections}

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
                    backoff.reset()
                    await self._follow_the_stream(conn, projection)
            except Exception as error:  # a lost database or a failing batch: retry, never die
                _stop_if_cancelled()
                delay = backoff.next()
                self.states[projection.name] = f"retrying: {error}".strip()
                log.warning(
                    "projection %s stopped (%r); retry in %.1fs",
                    projection.name,
                    error,
                    delay,
                    exc_info=not isinstance(error, psycopg.OperationalError),
                )
                await asyncio.sleep(delay)

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

    async def _follow_the_stream(
        self, conn: AsyncConnection[Any], projection: Projection[Any]
    ) -> None:
        doorbell = self._doorbells[projection.name]
        while True:
            doorbell.clear()
            while await self.apply_next_batch(conn, projection):
                pass
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that coincides with the timeout, and shutdown then hangs
                async with asyncio.timeout(self.settings.poll_interval):
                    await doorbell.wait()

    async def apply_next_batch(
        self, conn: AsyncConnection[Any], projection: Projection[Any]
    ) -> bool:
        """Apply the next batch in one transaction; False when there was nothing to apply."""
        async with conn.transaction():
            position = await positions.lock_position(conn, projection.name)
            events = await read_batch(conn, self.types, position, self.settings.batch_size)
            if not events:
                return False
            accounts = await apply_events(conn, projection, events)
            await positions.record_position(conn, projection.name, events[-1].position, accounts)
        return True


async def catch_up(url: str, types: EventTypes, projections: Sequence[Projection[Any]]) -> None:
    """Bring projections up to date once, from a command-line tool.

    Safe beside a running app: every batch holds the projection's position lock.
    """
    projector = Projector(url, types, projections, Broadcaster())
    async with await projector.connect() as conn:
        for projection in projections:
            while await projector.apply_next_batch(conn, projection):
                pass
