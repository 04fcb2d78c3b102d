"""Helpers for HTTP tests: the app in-process (TestClient), accounts, forms and tokens."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from starlette.testclient import TestClient

from crm.projections.projector import ProjectorSettings
from crm.rendering import Renderer
from crm.settings import load
from crm.web.app import create_app

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_CONTACT = re.compile(r"/contacts/([0-9a-f-]{36})$")


@contextmanager
def app_client(
    db_url: str,
    data_dir: Path,
    environ: dict[str, str] | None = None,
    base_url: str = "http://127.0.0.1",
    projector_settings: ProjectorSettings | None = None,
    renderer: Renderer | None = None,
) -> Iterator[TestClient]:
    settings = load({"DATABASE_URL": db_url, "CRM_DATA_DIR": str(data_dir), **(environ or {})})
    projector_settings = projector_settings or ProjectorSettings(poll_interval=1.0, lock_retry=0.2)
    app = create_app(settings, projector_settings, renderer)
    with TestClient(app, base_url=base_url, follow_redirects=False) as client:
        yield client


def another_browser(client: TestClient) -> TestClient:
    """A second client with its own cookies, on the same running app and event loop."""
    other = TestClient(client.app, base_url="http://127.0.0.1", follow_redirects=False)
    other.portal = client.portal  # requests run on the loop that owns the app's services
    return other


def csrf_of(client: TestClient, path: str = "/signup") -> str:
    page = client.get(path)
    match = _TOKEN.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_up(client: TestClient, email: str, password: str = "correct horse") -> None:
    token = csrf_of(client, "/signup")
    response = client.post(
        "/signup",
        data={
            "email": email,
            "password": password,
            "time_zone": "Europe/Paris",
            "csrf_token": token,
        },
    )
    assert response.status_code == 303, response.text


def add_contact(client: TestClient, name: str, **fields: str) -> str:
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
