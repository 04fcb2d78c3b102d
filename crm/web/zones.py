"""The account's time zone, for showing moments as the account lives them."""

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection


async def account_zone(conn: AsyncConnection[Any], account_id: str) -> ZoneInfo:
    """The account's zone; UTC for one this machine's tz database lacks (or none yet)."""
    cursor = await conn.execute(
        "SELECT time_zone FROM projected_accounts WHERE account_id = %s", (account_id,)
    )
    row = await cursor.fetchone()
    try:
        return ZoneInfo(row[0] if row else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
