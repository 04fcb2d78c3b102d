"""Limits that keep one account from holding the server's resources: open streams."""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from crm.web.stream import MAX_STREAMS_PER_ACCOUNT
from tests.processes import App, wait_until
from tests.web_support import sign_up


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    app = App({"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path)}).start()
    app.health()
    yield f"http://127.0.0.1:{app.port}"
    app.stop()


def test_one_account_cannot_hold_more_than_its_share_of_open_streams(server: str) -> None:
    with (
        httpx.Client(base_url=server, timeout=10) as mallory,
        httpx.Client(base_url=server, timeout=10) as bob,
        ExitStack() as streams,
    ):
        sign_up(mallory, "mallory@example.com")
        sign_up(bob, "bob@example.com")
        opened = [
            streams.enter_context(mallory.stream("GET", "/stream"))
            for _ in range(MAX_STREAMS_PER_ACCOUNT)
        ]
        assert {response.status_code for response in opened} == {200}
        refused = mallory.get("/stream")
        assert refused.status_code == 429
        assert "open pages per account" in refused.text
        with bob.stream("GET", "/stream") as other:  # other accounts are not affected
            assert other.status_code == 200
        opened[0].close()  # a closed page frees its place

        def one_more_is_taken() -> bool:
            with mallory.stream("GET", "/stream") as again:
                return again.status_code == 200

        wait_until(one_more_is_taken, 10, "a closed stream frees its place")
