"""The live projector: every committed event applied exactly once, in order, whatever happens."""

import asyncio
import random
from functools import partial
from typing import Any

from psycopg import AsyncConnection

import crm.projections.projector as projector_module
from crm.broadcaster import Broadcaster
from crm.projections.projector import APPLICATION_NAME, Projector, ProjectorSettings
from crm.projections.registry import ALL
from crm.store.event_types import EventTypes
from crm.store.events import append
from harness.workload import Workload
from tests.applied_log import APPLIED_LOG, assert_each_event_applied_once, create_applied_log
from tests.support import (
    accounts_and_workload,
    append_workload,
    differences,
    eventually,
    renderer,
    running,
    sign_up,
    wait_until_caught_up,
)

PROJECTIONS = [*ALL, APPLIED_LOG]
NAMES = [p.name for p in PROJECTIONS]
FAST = ProjectorSettings(batch_size=50, poll_interval=1.0, lock_retry=0.1, keepalive=1.0)
CONNECTIONS = 1 + len(PROJECTIONS)  # a projector's: its listener's, and one per projection


async def assert_identical_to_a_replay(conn: AsyncConnection[Any], types: EventTypes) -> None:
    await wait_until_caught_up(conn, NAMES)
    for projection in ALL:
        assert await differences(conn, types, projection) == 0, projection.name
    await assert_each_event_applied_once(conn)


async def writer(url: str, types: EventTypes, workload: Workload, transactions: int) -> int:
    """Append in transactions of 1-3 events, pausing at random inside each transaction."""
    rng = random.Random(workload.seed)
    written = 0
    async with await AsyncConnection.connect(url) as conn:
        for _ in range(transactions):
            async with conn.transaction():
                for _ in range(rng.randint(1, 3)):
                    # deliberate pauses, so that transactions overlap and commit out of order
                    await asyncio.sleep(rng.random() * 0.002)
                    event_type, account, payload = workload.next()
                    await append(conn, types, event_type, payload, account)
                    written += 1
                await asyncio.sleep(rng.random() * 0.002)
    return written


async def concurrent_writers(url: str, types: EventTypes, conn, count: int, transactions: int):
    workloads = [Workload([await sign_up(conn, types)], seed=index) for index in range(count)]
    return await asyncio.gather(*(writer(url, types, w, transactions) for w in workloads))


async def test_eight_concurrent_writers_every_event_applied_exactly_once(db_url, types, conn):
    await create_applied_log(conn)
    async with running(db_url, types, PROJECTIONS, FAST):
        written = await concurrent_writers(db_url, types, conn, 8, 160)
        await assert_identical_to_a_replay(conn, types)
    assert sum(written) >= 2000
    row = await (await conn.execute("SELECT count(*) FROM events")).fetchone()
    assert row == (sum(written) + 8,)  # and the 8 account-created events


async def test_a_projector_cancelled_in_the_middle_of_a_batch_resumes_without_loss(
    db_url, types, conn, monkeypatch
):
    await create_applied_log(conn)
    workload = await accounts_and_workload(conn, types, 3)
    await append_workload(conn, types, workload, 600)
    real_apply = projector_module.apply_events
    inside_a_batch = asyncio.Event()

    async def apply_then_hang(*args: Any, **kwargs: Any) -> set[str]:
        accounts = await real_apply(*args, **kwargs)
        inside_a_batch.set()  # rows written, position not yet recorded, nothing committed
        await asyncio.sleep(3600)  # the hang: cancelled, never finished
        return accounts

    for _ in range(3):
        monkeypatch.setattr(projector_module, "apply_events", apply_then_hang)
        inside_a_batch.clear()
        async with running(db_url, types, PROJECTIONS, FAST):
            await asyncio.wait_for(inside_a_batch.wait(), 10)
        monkeypatch.setattr(projector_module, "apply_events", real_apply)
        before = await committed(conn)
        async with running(db_url, types, PROJECTIONS, FAST):
            # cancelled once it has committed something: part of the way, wherever it then is
            await eventually(partial(moved_past, conn, before), 10, "a batch committed")
    async with running(db_url, types, PROJECTIONS, FAST):
        await append_workload(conn, types, workload, 100)
        await assert_identical_to_a_replay(conn, types)


async def committed(conn: AsyncConnection[Any]) -> int:
    """The projections' positions, summed: it grows with every batch committed."""
    row = await (await conn.execute("SELECT sum(position) FROM projections")).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def moved_past(conn: AsyncConnection[Any], total: int) -> bool:
    return await committed(conn) > total


async def projector_connections(conn: AsyncConnection[Any]) -> set[int]:
    cursor = await conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        " AND datname = current_database()",
        (APPLICATION_NAME,),
    )
    return {row[0] for row in await cursor.fetchall()}


async def cut_connections(conn: AsyncConnection[Any]) -> set[int]:
    """Terminate the projector's connections; the server processes (pids) that were cut."""
    # in the select list, not the WHERE clause: only the rows that pass the filter are cut
    cursor = await conn.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = %s AND datname = current_database()",
        (APPLICATION_NAME,),
    )
    return {pid for pid, terminated in await cursor.fetchall() if terminated}


async def reopened(conn: AsyncConnection[Any], cut: set[int]) -> bool:
    # a cut connection may linger a moment in pg_stat_activity: only new ones count
    return len(await projector_connections(conn) - cut) == CONNECTIONS


async def test_cut_database_connections_are_reopened_and_caught_up(db_url, types, conn):
    await create_applied_log(conn)
    async with running(db_url, types, PROJECTIONS, FAST) as projector:
        writers = asyncio.create_task(concurrent_writers(db_url, types, conn, 4, 150))
        cut: set[int] = set()
        for _ in range(4):  # each time all of them are open again, cut them all
            await eventually(partial(reopened, conn, cut), 10, "the projector reconnected")
            cut |= await cut_connections(conn)
        await writers
        await assert_identical_to_a_replay(conn, types)
        assert projector.states["contacts"] == "leading"
    assert len(cut) == 4 * CONNECTIONS


async def test_two_projectors_never_double_apply_and_one_takes_over(db_url, types, conn):
    await create_applied_log(conn)
    workload = await accounts_and_workload(conn, types, 4)
    first = Projector(db_url, types, PROJECTIONS, Broadcaster(), renderer, FAST)
    second = Projector(db_url, types, PROJECTIONS, Broadcaster(), renderer, FAST)
    first_task = asyncio.create_task(first.run())
    await eventually(lambda: all(s == "leading" for s in first.states.values()), 10, "leading")
    second_task = asyncio.create_task(second.run())
    try:
        await eventually(
            lambda: all(s == "standby" for s in second.states.values()), 10, "standing by"
        )
        await append_workload(conn, types, workload, 500)
        await wait_until_caught_up(conn, NAMES)
        first_task.cancel()  # the leading process dies
        await asyncio.gather(first_task, return_exceptions=True)
        await eventually(
            lambda: all(s == "leading" for s in second.states.values()), 5, "the other takes over"
        )
        await append_workload(conn, types, workload, 500)
        await assert_identical_to_a_replay(conn, types)
    finally:
        second_task.cancel()
        await asyncio.gather(first_task, second_task, return_exceptions=True)


async def test_advanced_positions_reach_the_broadcaster_of_every_process(db_url, types, conn):
    workload = await accounts_and_workload(conn, types, 1)
    leader = Projector(db_url, types, ALL, Broadcaster(), renderer, FAST)
    follower = Projector(db_url, types, ALL, Broadcaster(), renderer, FAST)
    tasks = [asyncio.create_task(p.run()) for p in (leader, follower)]
    try:
        await eventually(lambda: follower.listener_state == "listening", 10, "listening")
        async with follower.broadcaster.subscribe() as news:
            event_type, account, payload = workload.next()
            appended = await append(conn, types, event_type, payload, account)
            heard = set()
            while len(heard) < len(ALL):
                advanced = await asyncio.wait_for(news.get(), 10)
                if advanced.position >= appended.position:
                    heard.add(advanced.projection)
                    if advanced.projection == "contacts":  # it changed that account's rows
                        assert advanced.accounts == {account}
        assert await follower.broadcaster.wait_for("contacts", appended.position, 1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
