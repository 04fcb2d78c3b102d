"""Append throughput: events/s with 1 and 8 concurrent writers, one event per transaction.

Baseline (shared/STACK.md, same machine kind): a bare INSERT with a NOTIFY trigger commits about
2,800 tx/s with 1 client and with 8, since notifying commits serialize. crm adds schema
validation and its append lock on top.

    python -m bench.append [--events N]
"""

import argparse
import asyncio
import time

from psycopg import AsyncConnection

from bench.server import database_url
from crm.bootstrap import prepare_database
from crm.store import commands
from crm.store.event_types import EventTypes
from crm.store.events import append
from harness.workload import Workload

_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


async def _writer(url: str, types: EventTypes, workload: Workload, count: int) -> None:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        for _ in range(count):
            event_type, account, payload = workload.next()
            await append(conn, types, event_type, payload, account)


async def _measure(url: str, types: EventTypes, writers: int, events: int) -> float:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        accounts = [
            await commands.sign_up(conn, types, f"w{writers}-{i}@example.com", _HASH, "UTC")
            for i in range(writers)
        ]
    workloads = [Workload([a.subject_id], seed=i) for i, a in enumerate(accounts)]
    started = time.perf_counter()
    await asyncio.gather(*(_writer(url, types, w, events // writers) for w in workloads))
    return (events // writers * writers) / (time.perf_counter() - started)


async def main(events: int) -> None:
    with database_url() as url:
        types = await prepare_database(url)
        for writers in (1, 8):
            rate = await _measure(url, types, writers, events)
            print(
                f"append, {writers} writer(s), {events:,} events, one per transaction: "
                f"{rate:,.0f} events/s  (baseline: bare INSERT + NOTIFY ~2,800 tx/s)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().events))
