"""Helpers for HTTP tests: the app in-process (TestClient), accounts, forms and tokens.

sign_up, csrf_of and add_contact take any httpx.Client: a TestClient, or one talking to
`python -m crm` over a socket (harness/processes.py).
"""

import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from crm.projections.base import Projection
from crm.projections.projector import ProjectorSettings
from crm.projections.registry import ALL
from crm.rendering import Renderer
from crm.settings import load
from crm.web.app import create_app
from harness.pages import csrf_token_in

_CONTACT = re.compile(r"/contacts/([0-9a-f-]{36})$")
# argon2 at its lowest cost: its strength is not under test, and at the defaults each sign-up
# and log-in takes ~0.1 s of CPU. Apps run by `python -m crm` keep the defaults.
CHEAP_PASSWORDS = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
LOCAL = ("127.0.0.1", 50000)
_addresses = itertools.count()


@contextmanager
def app_client(
    db_url: str,
    data_dir: Path,
    environ: dict[str, str] | None = None,
    base_url: str = "http://127.0.0.1",
    projector_settings: ProjectorSettings | None = None,
    renderer: Renderer | None = None,
    projections: Sequence[Projection[Any]] = ALL,
) -> Iterator[TestClient]:
    settings = load({"DATABASE_URL": db_url, "CRM_DATA_DIR": str(data_dir), **(environ or {})})
    projector_settings = projector_settings or ProjectorSettings(poll_interval=1.0, lock_retry=0.2)
    app = create_app(
        settings, projector_settings, renderer, CHEAP_PASSWORDS, projections=projections
    )
    # a local client, as an operator on the machine: /health shows it its details
    with TestClient(app, base_url=base_url, follow_redirects=False, client=LOCAL) as client:
        yield client


def another_browser(client: TestClient) -> TestClient:
    """A second client with its own cookies, on the same running app and event loop."""
    # a browser of its own address too, as another person's would be: the throttles of
    # sign-up and log-in count per address, and a module's tests make many accounts
    n = next(_addresses)
    address = (f"127.0.{n // 250}.{n % 250 + 1}", 50000)
    other = TestClient(
        client.app, base_url="http://127.0.0.1", follow_redirects=False, client=address
    )
    other.portal = client.portal  # requests run on the loop that owns the app's services
    return other


def csrf_of(client: httpx.Client, path: str = "/signup") -> str:
    """The CSRF token of the page at path (the session's, once signed in)."""
    page = client.get(path)
    token = csrf_token_in(page.text)
    assert token, f"no CSRF token on {path}"
    return token


def sign_up(client: httpx.Client, email: str, password: str = "correct horse") -> httpx.Response:
    """Sign up through the form, as a browser would; the client is then signed in."""
    data = {"email": email, "password": password, "time_zone": "Europe/Paris"}
    response = client.post("/signup", data={**data, "csrf_token": csrf_of(client, "/signup")})
    assert response.status_code == 303, response.text
    return response


def log_in(client: httpx.Client, email: str, password: str = "correct horse") -> None:
    data = {"email": email, "password": password, "csrf_token": csrf_of(client, "/login")}
    response = client.post("/login", data=data)
    assert response.status_code == 303, response.text


def add_contact(client: httpx.Client, name: str, **fields: str) -> str:
    token = csrf_of(client, "/contacts/new")
    data = {"name": name, "description": "", "contact_method": "", "csrf_token": token, **fields}
    response = client.post("/contacts", data=data)
    assert response.status_code == 303, response.text
    match = _CONTACT.search(response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def event_count(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def post_notes(client: httpx.Client, contact: str, notes: str) -> httpx.Response:
    """The no-JavaScript notes form for a meeting on 2026-12-24."""
    return client.post(
        f"/contacts/{contact}/next_meeting",
        data={
            "meeting_on": "2026-12-24",
            "meeting_notes": notes,
            "csrf_token": csrf_of(client, f"/contacts/{contact}"),
        },
    )
