"""The role the app runs as: it owns crm's tables and nothing more.

DATABASE_URL (or the embedded server's URI) often names a superuser. The app needs none of that
power at run time, so when the URL's user is a superuser, or may create roles, start-up makes
sure of a role `crm_app` (LOGIN, not a superuser, creating no databases or roles, no
replication), lets it create tables in the `public` schema, hands it the objects an older
install created as the URL's user, and from then on everything (migrations, projection tables,
the pool, the projector, the jobs) connects as `crm_app`. A URL whose user has no such power is
used as it is.

Its password: when the URL's user logged in with one, crm_app's is derived from it (an HMAC),
so every process given the same DATABASE_URL agrees on it with nothing to store or share; it is
set as a SCRAM verifier, so the password itself never appears in a statement (or a server log).
Without one (the embedded server's trust authentication on its Unix socket, peer, or a
certificate) crm_app gets no password and logs in as the server's rules allow; where they do
not let it in, start-up says so.
"""

import base64
import hashlib
import hmac
import logging
from typing import Any

from psycopg import AsyncConnection, OperationalError, errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from crm.names import MIGRATION_LOCK

log = logging.getLogger(__name__)
RUNTIME_ROLE = "crm_app"
_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
_SCRAM_ITERATIONS = 4096


class RuntimeRoleRefused(RuntimeError):
    """The runtime role exists (or was created) but cannot log in."""


def runtime_password(admin_password: str) -> str:
    """crm_app's password, derived from the URL user's own."""
    digest = hmac.new(
        admin_password.encode(), b"crm runtime role " + RUNTIME_ROLE.encode(), "sha256"
    )
    return digest.hexdigest()


def scram_verifier(password: str, salt: bytes) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, 7677)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    encoded = [base64.b64encode(part).decode() for part in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{encoded[0]}${encoded[1]}:{encoded[2]}"


async def _privileged(conn: AsyncConnection[Any]) -> tuple[bool, bool]:
    """(superuser, may create roles) for the connection's user."""
    cursor = await conn.execute(
        "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )
    row = await cursor.fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


async def _ensure_role(conn: AsyncConnection[Any], superuser: bool, password: str | None) -> None:
    """Create crm_app, or set its attributes (and password) right; only what differs is changed,
    since two starts altering the same role at once fail ("tuple concurrently updated")."""
    role = sql.Identifier(RUNTIME_ROLE)
    cursor = await conn.execute(
        "SELECT rolcanlogin AND NOT rolsuper AND NOT rolcreatedb AND NOT rolcreaterole"
        " AND NOT rolreplication AND NOT rolbypassrls FROM pg_roles WHERE rolname = %s",
        (RUNTIME_ROLE,),
    )
    row = await cursor.fetchone()
    if row is None:
        try:
            async with conn.transaction():  # a savepoint: the caller's transaction goes on
                await conn.execute(sql.SQL("CREATE ROLE {} " + _ATTRIBUTES).format(role))
            log.info("created the role %s that crm runs as", RUNTIME_ROLE)
        except (errors.DuplicateObject, errors.UniqueViolation):
            pass  # another cluster-wide start created it (the lock is per database)
    elif not row[0]:
        await conn.execute(sql.SQL("ALTER ROLE {} " + _ATTRIBUTES).format(role))
    if password is not None:
        await _ensure_password(conn, superuser, password)
    if not superuser:
        # handing objects to crm_app takes membership in it (a superuser needs none)
        cursor = await conn.execute(
            "SELECT pg_has_role(current_user, %s, 'MEMBER')", (RUNTIME_ROLE,)
        )
        if not (await cursor.fetchone() or (False,))[0]:
            await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))


async def _ensure_password(conn: AsyncConnection[Any], superuser: bool, password: str) -> None:
    salt = hashlib.sha256(b"salt " + password.encode()).digest()[:16]
    verifier = scram_verifier(password, salt)
    if superuser:  # only a superuser may read pg_authid; others set it every time
        cursor = await conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (RUNTIME_ROLE,)
        )
        row = await cursor.fetchone()
        if row is not None and row[0] == verifier:
            return
    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        sql.Identifier(RUNTIME_ROLE), sql.Literal(verifier)
    )
    await conn.execute(statement)


async def _grant_schema(conn: AsyncConnection[Any]) -> None:
    """PostgreSQL 15 and later let only the database's owner create in `public`."""
    cursor = await conn.execute(
        # one privilege per call: with several, has_*_privilege answers whether any is held
        "SELECT has_schema_privilege(%(role)s, 'public', 'USAGE')"
        " AND has_schema_privilege(%(role)s, 'public', 'CREATE')"
        " AND has_database_privilege(%(role)s, current_database(), 'CONNECT')"
        " AND has_database_privilege(%(role)s, current_database(), 'TEMPORARY')",
        {"role": RUNTIME_ROLE},
    )
    if not (await cursor.fetchone() or (False,))[0]:
        role = sql.Identifier(RUNTIME_ROLE)
        database = sql.Identifier(conn.info.dbname)
        await conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, role)
        )
        await conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(role))


# What an older install created as the URL's user in `public`, to be handed to crm_app: tables,
# views and free-standing sequences (indexes, a column's sequence, a table's row type and
# triggers go with their table), functions, and types that are not a table's or an array's;
# never an extension's. (%% is format()'s %, escaped for psycopg.)
_OWNED_ELSEWHERE = """
SELECT format('ALTER %%s %%s OWNER TO %%I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                             ELSE 'TABLE' END,
              c.oid::regclass, %(role)s::text)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace
   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND (d.deptype = 'e' OR c.relkind = 'S' AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT format('ALTER %%s %%s OWNER TO %%I',
              CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END,
              p.oid::regprocedure, %(role)s::text)
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                      AND d.deptype = 'e')
UNION ALL
SELECT format('ALTER TYPE %%s OWNER TO %%I', t.oid::regtype, %(role)s::text)
  FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace
   AND t.typowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND t.typrelid = 0
   AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                      AND d.deptype = 'e')
"""


async def _take_over(conn: AsyncConnection[Any]) -> int:
    """Hand crm_app what the URL's user owns in `public`; return how many objects moved."""
    async with conn.transaction():
        # two processes starting together: one moves them, the other finds nothing to move
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cursor = await conn.execute(_OWNED_ELSEWHERE, {"role": RUNTIME_ROLE})
        statements = [statement for (statement,) in await cursor.fetchall()]
        for statement in statements:
            await conn.execute(statement)
    if statements:
        log.info("handed %d objects of an older install to %s", len(statements), RUNTIME_ROLE)
    return len(statements)


async def runtime_url(url: str) -> str:
    """The URL the app runs with: crm_app's, made ready through `url`, when `url`'s user is
    privileged; else `url` itself."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        superuser, createrole = await _privileged(conn)
        if not (superuser or createrole):
            return url
        admin_password = conn.info.password
        password = runtime_password(admin_password) if admin_password else None
        async with conn.transaction():
            # two processes starting together take turns: two ALTER ROLEs of one role at once
            # fail ("tuple concurrently updated"), and a CREATEROLE user sets the password on
            # every start (it cannot read pg_authid to see that it is already right)
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await _ensure_role(conn, superuser, password)
            await _grant_schema(conn)
            await _take_over(conn)
    params = {**conninfo_to_dict(url), "user": RUNTIME_ROLE}
    params.pop("password", None)
    runtime = make_conninfo(**params, **({"password": password} if password else {}))
    await _check_login(runtime)
    return runtime


async def _check_login(url: str) -> None:
    try:
        async with await AsyncConnection.connect(url, autocommit=True):
            pass
    except OperationalError as error:
        raise RuntimeRoleRefused(
            f"crm runs as the role {RUNTIME_ROLE}, which it made ready, but the server does not"
            f" let it log in ({str(error).strip()}). Allow {RUNTIME_ROLE} in pg_hba.conf, or set"
            " DATABASE_URL to a role that is not a superuser: crm then uses it as it is."
        ) from None
