"""Applying sql/: the names of crm.names filled in, and what was applied recorded."""

from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection

from crm import ROOT, names
from crm.migrations import SQL_DIR, MigrationChanged, migrate, render


def test_every_lock_and_channel_is_written_only_in_crm_names() -> None:
    sources = [*sorted((ROOT / "crm").rglob("*.py")), *sorted(SQL_DIR.glob("*.sql"))]
    for name, value in names.sql_variables().items():
        for path in sources:
            if path.name != "names.py":
                assert str(value) not in path.read_text(), f"{name} ({value}) is in {path}"


async def test_the_triggers_run_the_declared_lock_and_channel(conn: AsyncConnection[Any]) -> None:
    cursor = await conn.execute(
        "SELECT proname, prosrc FROM pg_proc"
        " WHERE proname IN ('events_assign_position', 'events_notify')"
    )
    source = dict(await cursor.fetchall())
    assert f"pg_advisory_xact_lock({names.APPEND_LOCK})" in source["events_assign_position"]
    assert f"pg_notify('{names.EVENTS_CHANNEL}'" in source["events_notify"]


async def test_a_file_applied_with_literals_is_not_taken_for_an_edit(
    conn: AsyncConnection[Any], tmp_path: Path
) -> None:
    # databases created before the names became variables recorded the files with the literals
    for path in SQL_DIR.glob("*.sql"):
        (tmp_path / path.name).write_text(render(path))
    assert await migrate(conn, tmp_path) == []


async def test_changing_a_name_an_applied_file_uses_is_noticed(
    conn: AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the database still runs the old value: only a new sql/ file can change it
    monkeypatch.setattr(names, "APPEND_LOCK", names.APPEND_LOCK + 100)
    with pytest.raises(MigrationChanged, match=r"004_events_assign_position\.sql"):
        await migrate(conn)


def test_a_variable_not_in_crm_names_is_left_as_written(tmp_path: Path) -> None:
    path = tmp_path / "001_example.sql"
    path.write_text("SELECT :append_lock, :'events_channel', :other, 1::text;\n")
    assert render(path) == (
        f"SELECT {names.APPEND_LOCK}, '{names.EVENTS_CHANNEL}', :other, 1::text;\n"
    )
