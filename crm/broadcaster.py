"""In-process news of projections advancing, for the SSE stream and for requests that wait.

The projector's listener publishes here what every process hears on crm.names.PROJECTIONS_CHANNEL.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Advanced:
    projection: str
    position: int
    accounts: frozenset[str] | None  # None: any account may be affected

    def concerns(self, account_id: str) -> bool:
        return self.accounts is None or account_id in self.accounts

    @classmethod
    def from_notification(cls, payload: str) -> "Advanced":
        data = orjson.loads(payload)
        accounts = data["accounts"]
        return cls(
            data["projection"],
            int(data["position"]),
            None if accounts is None else frozenset(accounts),
        )


class Broadcaster:
    def __init__(self, queue_size: int = 1000) -> None:
        self.positions: dict[str, int] = {}
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Advanced]] = set()
        self._changed = asyncio.Condition()

    async def publish(self, advanced: Advanced) -> None:
        if advanced.position > self.positions.get(advanced.projection, -1):
            self.positions[advanced.projection] = advanced.position
        for queue in self._subscribers:
            if queue.full():  # a stalled reader loses the oldest news, never blocks the rest
                queue.get_nowait()
            queue.put_nowait(advanced)
        async with self._changed:
            self._changed.notify_all()

    async def seed(self, positions: dict[str, int]) -> None:
        """Positions read from the database (at start, after a reconnect: news may be lost)."""
        for name, position in positions.items():
            await self.publish(Advanced(name, position, None))

    async def wait_for(self, projection: str, position: int, timeout: float) -> bool:
        """True once the projection has reached the position; False after the timeout."""

        def reached() -> bool:
            return self.positions.get(projection, -1) >= position

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(reached)
        except TimeoutError:
            return reached()
        return True

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator["asyncio.Queue[Advanced]"]:
        queue: asyncio.Queue[Advanced] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
