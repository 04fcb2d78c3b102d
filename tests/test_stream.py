"""GET /stream over a real socket: per-account news, ids that are positions, catching up."""

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import App

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    app = App({"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path)}).start()
    app.health()
    yield f"http://127.0.0.1:{app.port}"
    app.stop()


async def signed_up(base: str, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=10)
    page = await client.get("/signup")
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    response = await client.post(
        "/signup",
        data={"email": email, "password": "correct horse", "time_zone": "UTC", "csrf_token": token},
    )
    assert response.status_code == 303
    return client


async def add_contact(client: httpx.AsyncClient, name: str) -> None:
    page = await client.get("/contacts")
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    response = await client.post(
        "/contacts",
        data={"name": name, "description": "", "contact_method": "", "csrf_token": token},
    )
    assert response.status_code == 303


async def messages(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> AsyncIterator[dict[str, str]]:
    async with client.stream("GET", "/stream", headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        message: dict[str, str] = {}
        async for line in response.aiter_lines():
            if not line:
                if "event" in message:
                    yield message
                message = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                message[field] = value


async def first_messages(
    stream: AsyncIterator[dict[str, str]], count: int, timeout: float
) -> list[dict[str, str]]:
    received: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(timeout):
            async for message in stream:
                received.append(message)
                if len(received) == count:
                    break
    except TimeoutError:
        pass
    return received


async def test_each_account_hears_only_its_own_news(server: str) -> None:
    alice = await signed_up(server, "alice@example.com")
    bob = await signed_up(server, "bob@example.com")
    try:
        alice_news = asyncio.create_task(first_messages(messages(alice), 2, 10))
        bob_news = asyncio.create_task(first_messages(messages(bob), 1, 3))
        await asyncio.sleep(0.5)  # both streams are open
        await add_contact(alice, "Ada")
        heard = await alice_news
        # the projections whose rows for alice changed; not interactions, which ignores it
        assert {m["event"] for m in heard} == {"contacts", "meeting_notes_emails"}
        assert all(m["id"] == m["data"] and int(m["id"]) > 0 for m in heard)
        assert await bob_news == []
    finally:
        await asyncio.gather(alice.aclose(), bob.aclose())


async def test_a_reconnecting_page_is_told_what_moved_since_its_last_event_id(server: str) -> None:
    alice = await signed_up(server, "alice@example.com")
    try:
        await add_contact(alice, "Ada")
        caught_up = await first_messages(messages(alice, {"Last-Event-ID": "1"}), 3, 3)
        assert {m["event"] for m in caught_up} >= {"contacts", "interactions"}
        assert all(int(m["id"]) > 1 for m in caught_up)
        current = await first_messages(messages(alice, {"Last-Event-ID": "999999"}), 1, 1)
        assert current == []
    finally:
        await alice.aclose()
