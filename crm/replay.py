"""python -m crm.replay [PROJECTION ...]: rebuild projections from the event stream.

Safe while the app is serving: the rebuild goes into fresh tables that are swapped in atomically
once they have caught up; readers never see a half-built table, and a failed replay leaves the
live projections untouched. Replay only rebuilds tables: it never sends an e-mail.
"""

import argparse
import asyncio
import logging
import sys

from tqdm import tqdm

from crm import settings as settings_module
from crm.bootstrap import prepare
from crm.database import open_database
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL, BY_NAME


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m crm.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Projections: " + ", ".join(BY_NAME) + ". Uses DATABASE_URL, or the embedded "
        "PostgreSQL in CRM_DATA_DIR when it is unset.",
    )
    parser.add_argument(
        "projections",
        nargs="*",
        metavar="PROJECTION",
        help="projections to rebuild (default: all)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    unknown = [name for name in args.projections if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown projection {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    return args


async def _replay(url: str, names: list[str], quiet: bool) -> None:
    chosen = [BY_NAME[name] for name in names] if names else list(ALL)
    url, types = await prepare(url, ALL)  # then as the runtime role, which owns the tables
    with tqdm(
        unit=" events", disable=quiet, file=sys.stderr, desc="replaying", smoothing=0.1
    ) as bar:

        def set_total(total: int) -> None:
            bar.total = total
            bar.refresh()

        result = await rebuild(url, types, chosen, progress=bar.update, on_total=set_total)
    rate = result.events / result.seconds if result.seconds else 0.0
    print(
        f"replayed {result.events:,} events into {', '.join(result.projections)} "
        f"in {result.seconds:.1f}s ({rate:,.0f} events/s); now at position {result.position:,}"
    )
    for table, rows in result.rows.items():
        print(f"  {table}: {rows:,} rows")
    for item in result.parked:
        print(
            f"  parked: {item.projection} could not apply event {item.event.position}"
            f" ({item.event.type}): {item.error}",
        )
    if result.parked:
        print("  (listed by python -m crm.parked until a replay applies them)")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings = settings_module.load()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        database = open_database(settings.database_url, settings.data_dir)
    except Exception as error:
        print(f"replay failed: cannot open the database: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_replay(database.url, args.projections, args.quiet))
    except Exception as error:
        print(f"replay failed, live projections left untouched: {error}", file=sys.stderr)
        return 1
    finally:
        database.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
