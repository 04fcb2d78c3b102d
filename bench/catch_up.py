"""Live projector throughput: how fast the app catches up with a backlog of N events.

The live driver applies batches of 1,000 events, one transaction each, loading and rewriting
only the rows a batch touches. Baselines (shared/STACK.md, same machine kind): one SQL statement
per event ~3-6k events/s; the `eventsourcing` library's catch-up ~700-800 events/s.

    python -m bench.catch_up [--events N]
"""

import argparse
import asyncio
import time

from bench.replay import _generate
from bench.server import database_url
from crm.bootstrap import prepare_database
from crm.projections.projector import catch_up
from crm.projections.registry import ALL


async def main(events: int) -> None:
    with database_url() as url:
        types = await prepare_database(url)
        await _generate(url, types, events, 200)
        started = time.perf_counter()
        await catch_up(url, types, ALL)
        seconds = time.perf_counter() - started
        print(
            f"live projector, {len(ALL)} projections, {events:,}-event backlog: "
            f"{seconds:.1f}s = {events / seconds:,.0f} events/s per projection set "
            "(baselines: per-event SQL 3-6k/s, eventsourcing catch-up 700-800/s)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().events))
