"""Limits that keep one client from holding the server's resources: streams, request bodies,
file parts."""

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from crm.web.limits import MAX_BODY_BYTES
from crm.web.stream import MAX_STREAMS_PER_ACCOUNT
from harness.processes import App, wait_until
from tests.web_support import add_contact, csrf_of, event_count, post_notes, sign_up


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


HUNDRED_MB = 100 * 1024 * 1024
CHUNK = 64 * 1024


def multipart_of(total: int, boundary: bytes) -> Iterator[bytes]:
    """A multipart/form-data body of `total` bytes, one file part, made as it is sent."""
    head = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="email"; filename="x.bin"'
        b"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    yield head
    sent = len(head)
    chunk = b"x" * CHUNK
    while sent < total:
        yield chunk
        sent += CHUNK


@pytest.fixture
def server_with_own_tmp(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python -m crm` whose temporary files (Starlette spools file parts there) go to a folder
    of its own: the test sees every file it writes."""
    spool = tmp_path / "spool"
    spool.mkdir()
    app = App(
        {"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(spool)}
    ).start()
    app.health()
    yield f"http://127.0.0.1:{app.port}", spool
    app.stop()


def test_a_huge_streamed_upload_is_refused_at_once_and_nothing_is_spooled(
    server_with_own_tmp: tuple[str, Path],
) -> None:
    server, spool = server_with_own_tmp
    before = sorted(spool.rglob("*"))
    boundary = b"crmboundary"
    headers = {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}
    started = time.monotonic()
    with httpx.Client(base_url=server, timeout=10) as anonymous:
        try:
            response = anonymous.post(
                "/login", content=multipart_of(HUNDRED_MB, boundary), headers=headers
            )
            # answered before the body was read: by its type (400) or its size (413)
            assert response.status_code in (400, 413), response.text[:300]
        except httpx.TransportError:
            pass  # the server answered and closed the connection while the client still sent
    assert time.monotonic() - started < 10  # 100 MB over loopback, read, would be far slower
    assert sorted(spool.rglob("*")) == before


def test_a_form_sent_as_multipart_is_refused_with_400_naming_the_type(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as anonymous:
        page = anonymous.get("/login")
        response = anonymous.post(
            "/login",
            data={"password": "x", "csrf_token": csrf_of(anonymous, "/login")},
            files={"email": ("e.txt", b"a@b.c", "text/plain")},
        )
        assert page.status_code == 200 and response.status_code == 400
        assert "application/x-www-form-urlencoded only (no files)" in response.text


def test_a_name_sent_as_a_file_part_creates_no_contact(server: str, db_url: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as alice:
        sign_up(alice, "alice@example.com")
        before = event_count(db_url)
        token = csrf_of(alice, "/contacts/new")
        response = alice.post(
            "/contacts",
            data={"description": "", "contact_method": "", "csrf_token": token},
            files={"name": ("name.txt", b"Mallory", "text/plain")},
        )
        assert response.status_code == 400
        assert event_count(db_url) == before
        assert "UploadFile" not in alice.get("/contacts").text
