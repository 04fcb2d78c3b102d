"""Applying sql/: each file in order, once, recorded with the hash of the SQL it ran, so a second
start applies nothing and an edited file is refused."""

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from crm import ROOT
from crm.names import MIGRATION_LOCK, sql_variables

log = logging.getLogger(__name__)
SQL_DIR = ROOT / "sql"
# psql's notation for variables: `:name` becomes the value, `:'name'` the value as a quoted
# literal. Unlike psql, the runner fills them in inside dollar-quoted function bodies too.
_VARIABLE = re.compile(r"(?<!:):(?:'(\w+)'|(\w+))")


class MigrationChanged(RuntimeError):
    """An already applied sql/ file was edited."""


def render(path: Path) -> str:
    """The file's SQL with the crm.names variables it uses filled in; others are left as written."""
    values = sql_variables()

    def fill(match: re.Match[str]) -> str:
        quoted, bare = match.groups()
        value = values.get(quoted or bare)
        if value is None:
            return match.group(0)
        if bare:
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    return _VARIABLE.sub(fill, path.read_text())


def _sha256(sql: str) -> str:
    # the hash of what was run, not of the file: a file written with literals and applied before
    # they became variables hashes the same, and changing a name in crm.names is noticed as an edit
    return hashlib.sha256(sql.encode()).hexdigest()


async def migrate(conn: AsyncConnection[Any], directory: Path = SQL_DIR) -> list[str]:
    """Apply the sql/ files not applied yet, in file-name order; return their names."""
    applied_now: list[str] = []
    async with conn.transaction():
        # two processes starting together must not both apply the same file
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        files = sorted(directory.glob("*.sql"))
        await conn.execute(files[0].read_text())  # schema_migrations itself, idempotent
        cursor = await conn.execute("SELECT filename, sha256 FROM schema_migrations")
        applied = dict(await cursor.fetchall())
        for path in files[1:]:
            sql = render(path)
            if path.name in applied:
                if applied[path.name] != _sha256(sql):
                    raise MigrationChanged(
                        f"sql/{path.name} differs from what was applied (the file, or a"
                        " crm.names value it uses, was changed); add a new file instead"
                    )
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (filename, sha256) VALUES (%s, %s)",
                (path.name, _sha256(sql)),
            )
            applied_now.append(path.name)
    for name in applied_now:
        log.info("applied sql/%s", name)
    return applied_now
