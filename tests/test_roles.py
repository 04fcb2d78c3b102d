"""The runtime role: the app owns its tables as crm_app, which is no superuser."""

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection, errors, sql

from crm.bootstrap import prepare
from crm.migrations import migrate
from crm.projections import tables
from crm.projections.projector import catch_up
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL
from crm.roles import RUNTIME_ROLE, scram_verifier
from crm.store import commands
from crm.store.event_types import load_event_types, sync_event_types
from tests import support
from tests.support import contact_details, sign_up
from tests.web_support import app_client

# every object crm keeps in `public` whose owner is not the runtime role
NOT_OWNED = """
SELECT 'relation ' || c.oid::regclass::text FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> %(role)s::regrole
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> %(role)s::regrole
UNION ALL
SELECT 'type ' || t.oid::regtype::text FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace AND t.typowner <> %(role)s::regrole
"""


async def not_owned_by(conn: AsyncConnection[Any], role: str) -> list[str]:
    cursor = await conn.execute(NOT_OWNED, {"role": role})
    return sorted(name for (name,) in await cursor.fetchall())


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """A database with nothing of crm in it (not cloned from the template)."""
    name = f"crm_test_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(server_url, dbname=name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_a_running_app_connects_as_a_role_that_is_not_a_superuser(
    db_url: str, tmp_path: Path
) -> None:
    with app_client(db_url, tmp_path) as client:
        services = client.app.state.services  # type: ignore[attr-defined]

        async def as_the_pool() -> tuple[Any, ...]:
            async with services.pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolreplication"
                    " FROM pg_roles WHERE rolname = current_user"
                )
                row = await cursor.fetchone()
                await conn.commit()
                await conn.set_autocommit(True)  # ALTER SYSTEM runs outside a transaction
                try:
                    for refused in (
                        "CREATE ROLE crm_intruder",
                        "ALTER SYSTEM SET work_mem = '1MB'",
                        "COPY events TO PROGRAM 'true'",
                    ):
                        with pytest.raises(errors.InsufficientPrivilege):
                            await conn.execute(refused)
                finally:
                    await conn.set_autocommit(False)
                assert row is not None
                return tuple(row)

        assert client.portal.call(as_the_pool) == (RUNTIME_ROLE, False, False, False, False)


async def test_the_projector_and_listener_connect_as_the_runtime_role(
    db_url: str, tmp_path: Path
) -> None:
    with app_client(db_url, tmp_path), psycopg.connect(db_url) as conn:
        database = conn.info.dbname
        rows = conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
            (database, conn.info.backend_pid),
        ).fetchall()
    assert [user for (user,) in rows] == [RUNTIME_ROLE]


async def test_every_object_of_the_app_is_owned_by_the_runtime_role(
    db_url: str, conn: AsyncConnection[Any]
) -> None:
    await prepare(db_url)
    assert await not_owned_by(conn, RUNTIME_ROLE) == []
    cursor = await conn.execute(
        "SELECT count(*) FROM pg_class WHERE relname = 'projected_contacts'"
        " AND relowner = %s::regrole",
        (RUNTIME_ROLE,),
    )
    assert (await cursor.fetchone()) == (1,)


async def old_install(url: str) -> None:
    """What start-up did before the runtime role: everything as the URL's user."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        async with conn.transaction():
            await sync_event_types(conn, load_event_types())
            for projection in ALL:
                await tables.install(conn, projection, True)


async def test_an_older_install_owned_by_the_superuser_is_taken_over(empty_db_url: str) -> None:
    await old_install(empty_db_url)
    async with await AsyncConnection.connect(empty_db_url, autocommit=True) as conn:
        superuser = conn.info.get_parameters()["user"]
        owned_before = await not_owned_by(conn, superuser)
        assert "relation events" not in owned_before
        assert "relation projected_contacts" not in owned_before

        prepared = await prepare(empty_db_url)
        assert await not_owned_by(conn, RUNTIME_ROLE) == []
        again = await prepare(empty_db_url)  # idempotent: nothing left to move
        assert again.url == prepared.url

    # the runtime role writes, projects and rebuilds (create, drop, rename) its own tables
    async with await AsyncConnection.connect(prepared.url, autocommit=True) as conn:
        account = await sign_up(conn, prepared.types)
        await commands.add_contact(conn, prepared.types, account, contact_details("Ada Lovelace"))
        await catch_up(prepared.url, prepared.types, ALL, support.renderer)
        result = await rebuild(prepared.url, prepared.types, ALL, renderer=support.renderer)
        assert result.rows["projected_contacts"] == 1
        assert await not_owned_by(conn, RUNTIME_ROLE) == []


async def test_a_url_whose_user_is_not_privileged_is_used_as_it_is(
    server_url: str, empty_db_url: str
) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'crm_test_owner'").fetchone()
        if not exists:
            conn.execute("CREATE ROLE crm_test_owner LOGIN")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("GRANT CREATE ON SCHEMA public TO crm_test_owner")
    url = psycopg.conninfo.make_conninfo(empty_db_url, user="crm_test_owner")
    prepared = await prepare(url)
    assert prepared.url == url
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        assert await not_owned_by(conn, "crm_test_owner") == []


async def test_the_password_is_set_as_the_verifier_postgresql_would_store(
    conn: AsyncConnection[Any],
) -> None:
    role = f"crm_test_scram_{uuid.uuid4().hex[:8]}"
    await conn.execute("SET password_encryption = 'scram-sha-256'")
    await conn.execute(
        sql.SQL("CREATE ROLE {} PASSWORD 'correct horse'").format(sql.Identifier(role))
    )
    try:
        cursor = await conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        row = await cursor.fetchone()
        assert row is not None
        stored: str = row[0]
        salt = base64.b64decode(stored.split("$")[1].split(":")[1])
        assert scram_verifier("correct horse", salt) == stored
    finally:
        await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_a_replay_run_as_the_superuser_leaves_the_tables_to_the_runtime_role(
    db_url: str, conn: AsyncConnection[Any]
) -> None:
    types = (await prepare(db_url)).types
    await rebuild(db_url, types, ALL, renderer=support.renderer)  # db_url: the superuser's
    assert await not_owned_by(conn, RUNTIME_ROLE) == []
