"""The contact list's response time for an account with 10,000 contacts.

Serves the app with `python -m crm` on a fresh embedded database, fills one account with N
contacts (plus interactions and notes) and a second account with 50, then times GET /contacts
for several sorts, a search and the last page. Baseline: the same pages for the 50-contact account.

    python -m bench.list_page [--contacts N] [--requests N]
"""

import argparse
import asyncio
import re
import statistics
import time

import httpx
import orjson
import psycopg
from psycopg import AsyncConnection

from bench.server import database_url
from crm.bootstrap import prepare_database
from crm.store.event_types import EventTypes
from harness.processes import App

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = [
    "/contacts",
    "/contacts?sort=name&dir=desc",
    "/contacts?sort=last_interaction&dir=desc",
    "/contacts?sort=next_meeting&dir=asc",
    "/contacts?q=person 12",
    "/contacts?page=200",
]


def _sign_up(client: httpx.Client, email: str) -> str:
    token = TOKEN.search(client.get("/signup").text).group(1)  # type: ignore[union-attr]
    client.post(
        "/signup",
        data={"email": email, "password": "correct horse", "time_zone": "UTC", "csrf_token": token},
    )
    return str(client.get("/health").json()["head_position"])


async def _fill(url: str, types: EventTypes, account: str, contacts: int) -> None:
    import uuid

    ids = {name: types.id_of(types.get(name)) for name, _ in types.by_key}
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT account_id::text FROM projected_accounts WHERE email = %s", (account,)
        )
        row = await cursor.fetchone()
        assert row is not None
        account_id = row[0]
        async with (
            conn.cursor() as cur,
            cur.copy("COPY events (event_type_id, entity_id, payload) FROM STDIN") as copy,
        ):
            for n in range(contacts):
                contact = str(uuid.uuid4())
                base = {"contact_id": contact, "account_id": account_id}
                events = [
                    (
                        "contact-created",
                        {
                            **base,
                            "name": f"Person {n:05d}",
                            "description": "met at a conference",
                            "contact_method": "+33 6 00 00 00 00",
                        },
                    ),
                    (
                        "interaction-recorded",
                        {
                            **base,
                            "interacted_on": f"2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
                            "notes": "coffee",
                        },
                    ),
                    (
                        "next-meeting-notes-written",
                        {
                            **base,
                            "meeting_on": f"2027-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
                            "notes": "**agenda**",
                        },
                    ),
                ]
                for event_type, payload in events:
                    await copy.write_row(
                        (ids[event_type], account_id, orjson.dumps(payload).decode())
                    )


def _time(client: httpx.Client, path: str, requests: int) -> float:
    client.get(path)  # warm
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(timings)


def main(contacts: int, requests: int) -> None:
    with database_url() as url:
        types = asyncio.run(prepare_database(url))
        app = App({"DATABASE_URL": url, "CRM_LOG_LEVEL": "WARNING"}).start()
        try:
            app.health()
            base = f"http://127.0.0.1:{app.port}"
            with httpx.Client(base_url=base) as big, httpx.Client(base_url=base) as small:
                _sign_up(big, "big@example.com")
                _sign_up(small, "small@example.com")
                time.sleep(0.5)
                asyncio.run(_fill(url, types, "big@example.com", contacts))
                asyncio.run(_fill(url, types, "small@example.com", 50))
                while max(
                    p["lag"] for p in big.get("/health").json()["projector"]["projections"].values()
                ):
                    time.sleep(0.2)
                # the steady state: autovacuum analyzes the grown tables within a minute; until
                # then the planner thinks the account has a few dozen contacts and sorts all 10,000
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("ANALYZE")
                print(
                    f"GET /contacts, median of {requests} requests "
                    f"({contacts:,} contacts vs 50 contacts):"
                )
                for path in PAGES:
                    print(
                        f"  {path:45} {_time(big, path, requests):6.1f} ms   "
                        f"baseline {_time(small, path, requests):6.1f} ms"
                    )
        finally:
            app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    main(args.contacts, args.requests)
