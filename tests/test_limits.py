"""Limits that keep one client from holding the server's resources: streams, request bodies."""

from collections.abc import Iterator
from contextlib import ExitStack

import httpx

from crm.web.limits import MAX_BODY_BYTES
from crm.web.stream import MAX_STREAMS_PER_ACCOUNT
from harness.processes import wait_until
from tests.web_support import add_contact, post_notes, sign_up


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


def test_a_request_body_over_the_limit_is_refused_before_it_is_read(server: str) -> None:
    big = b"email=a%40b.c&password=" + b"x" * (MAX_BODY_BYTES + 1)
    form = {"content-type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=server, timeout=10) as anonymous:
        announced = anonymous.post("/login", content=big, headers=form)
        assert announced.status_code == 413

        def streamed() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for start in range(0, len(big), 64 * 1024):
                yield big[start : start + 64 * 1024]

        chunked = anonymous.post("/login", content=streamed(), headers=form)
        assert chunked.status_code == 413
        assert "too large" in chunked.text


def test_the_largest_note_a_form_takes_fits_under_the_limit(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as alice:
        sign_up(alice, "alice@example.com")
        contact = add_contact(alice, "Ada")
        notes = "\U0001f600" * 20_000  # 4 bytes each, 12 once percent-encoded
        response = post_notes(alice, contact, notes)
        assert response.status_code == 303, response.text[:300]
