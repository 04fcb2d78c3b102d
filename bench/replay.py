"""Replay throughput: rebuild every projection from N events (default 1,000,000).

Baselines (shared/STACK.md, same machine kind): one SQL statement per event ~3-6k events/s;
pipelined per event ~10-16k/s; fold in memory + COPY ~95-120k/s; the `eventsourcing` library's
projection catch-up ~700-800 events/s. The issue's target: at least 50,000 events/s.

    python -m bench.replay [--events N] [--accounts N]
"""

import argparse
import asyncio
import resource
import time

import orjson
from psycopg import AsyncConnection

from bench.server import database_url
from crm.bootstrap import prepare_database
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL
from crm.store import commands
from crm.store.event_types import EventTypes
from harness.workload import Workload

_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


async def _generate(url: str, types: EventTypes, events: int, accounts: int) -> None:
    """Valid events written with COPY (schema-checked by construction: Workload's own tests)."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        ids = []
        for n in range(accounts):
            done = await commands.sign_up(conn, types, f"bench{n}@example.com", _HASH, "UTC")
            ids.append(done.subject_id)
        workload = Workload(ids, seed=1)
        type_ids = {name: types.id_of(types.get(name)) for name, _ in types.by_key}
        async with (
            conn.cursor() as cursor,
            cursor.copy("COPY events (event_type_id, entity_id, payload) FROM STDIN") as copy,
        ):
            for _ in range(events - accounts):
                event_type, account, payload = workload.next()
                await copy.write_row(
                    (type_ids[event_type], account, orjson.dumps(payload).decode())
                )


async def main(events: int, accounts: int) -> None:
    with database_url() as url:
        types = await prepare_database(url)
        started = time.perf_counter()
        await _generate(url, types, events, accounts)
        print(f"generated {events:,} events in {time.perf_counter() - started:.1f}s")
        result = await rebuild(url, types, ALL)
        rate = result.events / result.seconds
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"replay of all {len(ALL)} projections: {result.events:,} events in "
            f"{result.seconds:.1f}s = {rate:,.0f} events/s, peak RSS {peak:,.0f} MiB "
            "(target >= 50,000/s; fold+COPY baseline ~95-120k/s; per-event SQL ~3-6k/s)"
        )
        print("  phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.phases.items()))
        for table, rows in result.rows.items():
            print(f"  {table}: {rows:,} rows")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.accounts))
