"""python -m crm.parked [--retry] [--tracebacks]: the events projections could not apply.

A parked event is one a projection failed on several times (crm/projections/poison.py): it was
recorded with its error and the projection moved on. Listed here, in /health and on the
contact's page until it is applied. After fixing the cause (new code deployed), --retry replays
the projections that have parked events: the replay applies them, or parks them again and says
so. Safe while the app is serving. Uses DATABASE_URL, or the embedded PostgreSQL in CRM_DATA_DIR.
"""

import argparse
import asyncio
import sys
from typing import Any

from psycopg import AsyncConnection

from crm import settings as settings_module
from crm.bootstrap import prepare
from crm.database import open_database
from crm.projections import poison
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL, BY_NAME


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m crm.parked",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--retry", action="store_true", help="replay the projections that have parked events"
    )
    parser.add_argument("--tracebacks", action="store_true", help="print each full traceback")
    return parser.parse_args(argv)


async def _tracebacks(conn: AsyncConnection[Any]) -> dict[tuple[str, int], str]:
    cursor = await conn.execute("SELECT projection, position, traceback FROM parked_events")
    return {(name, position): trace for name, position, trace in await cursor.fetchall()}


async def _list(url: str, tracebacks: bool) -> list[dict[str, Any]]:
    """Print the parked events (and their tracebacks, if asked); return them."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        parked = await poison.listing(conn)
        traces = await _tracebacks(conn) if tracebacks else {}
    if not parked:
        print("no parked events")
    for item in parked:
        print(
            f"{item['projection']}: event {item['position']} ({item['event_type']}) about"
            f" {item['key']}, parked {item['parked_at']:%Y-%m-%d %H:%M:%S %Z} after"
            f" {item['attempts']} attempt(s): {item['error']}"
        )
        if tracebacks:
            print(traces[(item["projection"], item["position"])])
    return parked


async def _run(url: str, args: argparse.Namespace) -> int:
    url, types = await prepare(url, ALL)  # then as the runtime role, which owns the tables
    parked = await _list(url, args.tracebacks)
    if not args.retry or not parked:
        return 1 if parked else 0
    names = sorted({item["projection"] for item in parked})
    print(f"replaying {', '.join(names)} ...")
    result = await rebuild(url, types, [BY_NAME[name] for name in names])
    print(f"replayed {result.events:,} events; {len(result.parked)} event(s) still parked")
    await _list(url, args.tracebacks)
    return 1 if result.parked else 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings = settings_module.load()
    database = open_database(settings.database_url, settings.data_dir)
    try:
        return asyncio.run(_run(database.url, args))
    finally:
        database.stop()


if __name__ == "__main__":
    sys.exit(main())
