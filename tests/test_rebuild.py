"""Replay: the same fold functions, driven over the whole stream, swapped in while serving."""

import asyncio
import threading
import uuid
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple, get_type_hints

import psycopg
import pytest
from psycopg import AsyncConnection

from crm.broadcaster import Broadcaster
from crm.projections.base import Index
from crm.projections.contacts import CONTACTS, Contact
from crm.projections.projector import Projector, ProjectorSettings, catch_up
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL
from crm.rendering import Renderer, RenderFailed
from crm.store import commands
from crm.store.events import Event, append, head_position
from harness.processes import run_module, wait_until
from tests.support import (
    accounts_and_workload,
    append_workload,
    contact_details,
    differences,
    eventually,
    renderer,
    sign_up,
    wait_until_caught_up,
)
from tests.web_support import add_contact, app_client, csrf_of, log_in
from tests.web_support import sign_up as sign_up_client

NAMES = [p.name for p in ALL]
FAST = ProjectorSettings(batch_size=200, poll_interval=1.0, lock_retry=0.1, keepalive=1.0)


async def positions(conn: AsyncConnection[Any]) -> dict[str, int]:
    cursor = await conn.execute("SELECT name, position FROM projections")
    return dict(await cursor.fetchall())


async def test_live_projection_and_replay_build_identical_tables(db_url, types, conn):
    workload = await accounts_and_workload(conn, types, 5)
    await append_workload(conn, types, workload, 3000)
    projector = Projector(db_url, types, ALL, Broadcaster(), renderer, FAST)
    task = asyncio.create_task(projector.run())
    try:
        await wait_until_caught_up(conn, NAMES)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    for projection in ALL:
        assert await differences(conn, types, projection) == 0, projection.name
    rows = await (await conn.execute("SELECT count(*) FROM projected_contacts")).fetchone()
    assert rows is not None and rows[0] > 100


async def test_replay_during_concurrent_appends_swaps_in_an_identical_table(db_url, types, conn):
    workload = await accounts_and_workload(conn, types, 5)
    await append_workload(conn, types, workload, 4000)
    projector = Projector(db_url, types, ALL, Broadcaster(), renderer, FAST)
    task = asyncio.create_task(projector.run())
    await wait_until_caught_up(conn, NAMES)
    stop = asyncio.Event()
    seen: list[int] = []
    appended: list[int] = []

    async def keep_appending() -> None:
        async with await AsyncConnection.connect(db_url, autocommit=True) as writer:
            while not stop.is_set():
                await append_workload(writer, types, workload, 5)
                appended.append(5)

    async def keep_reading() -> None:
        async with await AsyncConnection.connect(db_url, autocommit=True) as reader:
            while not stop.is_set():
                row = await (
                    await reader.execute("SELECT count(*) FROM projected_contacts")
                ).fetchone()
                assert row is not None
                seen.append(int(row[0]))
                await asyncio.sleep(0.001)  # a reader's pace, not a wait for anything

    background = [asyncio.create_task(keep_appending()), asyncio.create_task(keep_reading())]
    try:
        result = await rebuild(db_url, types, ALL, renderer=renderer)
        reads, appends = len(seen), len(appended)
        await eventually(
            lambda: len(seen) > reads + 20 and len(appended) > appends,
            10,
            "reads and appends going on after the swap",
        )
        stop.set()
        await asyncio.gather(*background)
        await wait_until_caught_up(conn, NAMES)
        for projection in ALL:
            assert await differences(conn, types, projection) == 0, projection.name
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, *background, return_exceptions=True)
    assert result.events >= 4000
    assert len(seen) > 20 and min(seen) > 0  # the live table answered throughout, never empty
    tables = await (
        await conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_\\_rebuild'")
    ).fetchone()
    assert tables == (0,)


async def index_names(conn: AsyncConnection[Any]) -> list[tuple[str, str]]:
    cursor = await conn.execute(
        "SELECT tablename, indexname FROM pg_indexes WHERE tablename LIKE 'projected\\_%'"
        " ORDER BY 1, 2"
    )
    return await cursor.fetchall()


async def test_a_rebuilt_table_keeps_its_index_and_constraint_names(db_url, types, conn):
    before = await index_names(conn)
    await rebuild(db_url, types, ALL, renderer=renderer)
    await rebuild(db_url, types, ALL, renderer=renderer)
    assert await index_names(conn) == before
    assert ("projected_contacts", "projected_contacts_account_lower_name") in before


async def test_a_failed_replay_leaves_the_live_projection_untouched(db_url, types, conn):
    workload = await accounts_and_workload(conn, types, 2)
    await append_workload(conn, types, workload, 300)
    await rebuild(db_url, types, [CONTACTS], renderer=renderer)
    before = await (await conn.execute("TABLE projected_contacts ORDER BY contact_id")).fetchall()
    positions_before = await positions(conn)
    # the shadow's index cannot be made: a failure of the replay itself, not of an event
    failing = replace(CONTACTS, indexes=(Index("broken", ("no_such_column",)),))
    with pytest.raises(psycopg.errors.UndefinedColumn):
        await rebuild(db_url, types, [failing], renderer=renderer)
    after = await (await conn.execute("TABLE projected_contacts ORDER BY contact_id")).fetchall()
    assert after == before
    assert await positions(conn) == positions_before


async def test_a_replay_parks_the_events_a_fold_fails_on_and_applies_the_rest(db_url, types, conn):
    workload = await accounts_and_workload(conn, types, 2)
    await append_workload(conn, types, workload, 300)
    edits = await (
        await conn.execute(
            "SELECT count(*) FROM events e JOIN event_types t ON t.id = e.event_type_id"
            " WHERE t.name = 'contact-edited'"
        )
    ).fetchone()
    assert edits is not None and edits[0] > 0

    def broken(state: Any, event: Event) -> Any:
        raise RuntimeError("a bug in a fold function")

    failing = replace(CONTACTS, handlers={**CONTACTS.handlers, "contact-edited": broken})
    result = await rebuild(db_url, types, [failing], renderer=renderer)

    assert len(result.parked) == edits[0]
    assert {item.event.type for item in result.parked} == {"contact-edited"}
    assert "a bug in a fold function" in result.parked[0].error
    parked = await (
        await conn.execute("SELECT count(*), min(projection) FROM parked_events")
    ).fetchone()
    assert parked == (edits[0], "contacts")
    # after the fix, a replay applies them and nothing stays parked
    fixed = await rebuild(db_url, types, [CONTACTS], renderer=renderer)
    assert fixed.parked == []
    assert await (await conn.execute("SELECT count(*) FROM parked_events")).fetchone() == (0,)
    assert await differences(conn, types, CONTACTS) == 0


async def test_the_replay_command_rebuilds_and_reports(db_url, types, conn):
    workload = await accounts_and_workload(conn, types, 2)
    await append_workload(conn, types, workload, 500)
    env = {"DATABASE_URL": db_url}
    done = run_module("crm.replay", "contacts", "interactions", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "replayed 502 events into contacts, interactions" in done.stdout
    assert "events/s" in done.stderr  # the progress bar
    head = await head_position(conn)
    now = await positions(conn)
    assert now["contacts"] == now["interactions"] == head
    assert now["accounts"] == 0  # not asked for, not touched
    for projection in ALL[1:3]:
        assert await differences(conn, types, projection) == 0


def test_the_replay_command_refuses_an_unknown_projection(db_url):
    done = run_module("crm.replay", "contactz", env={"DATABASE_URL": db_url}, timeout=60)
    assert done.returncode == 2
    assert "unknown projection contactz" in done.stderr


async def test_a_contact_id_written_in_capitals_is_still_one_contact(db_url, types, conn):
    account = await sign_up(conn, types)
    contact = (await commands.add_contact(conn, types, account, contact_details("Ada"))).subject_id
    shouted = contact.upper()
    # the write side stores the id as the projections key it
    await commands.edit_contact(conn, types, account, shouted, contact_details("Ada L"))
    edit = await (
        await conn.execute("SELECT payload->>'contact_id' FROM events ORDER BY id DESC")
    ).fetchone()
    assert edit == (contact,)
    # an event stored before that (the schema's uuid format takes capitals) folds into the same key
    payload = {
        "contact_id": shouted,
        "account_id": account,
        "meeting_on": "2026-12-24",
        "notes": "hi",
    }
    await append(conn, types, "next-meeting-notes-written", payload, account)
    await catch_up(db_url, types, ALL, renderer)

    cursor = await conn.execute(
        "SELECT contact_id, name, next_meeting_notes FROM projected_contacts"
    )
    assert await cursor.fetchall() == [(contact, "Ada L", "hi")]
    assert await differences(conn, types, CONTACTS) == 0


async def test_a_read_model_never_refuses_what_the_write_side_accepted(db_url, types, conn):
    """Names are unique on the write side; an event written past that check (by an older crm,
    or by hand) must still be applied live and by replay, not stop the table's rebuild."""
    account = await sign_up(conn, types)
    await commands.add_contact(conn, types, account, contact_details("Ada"))
    twin = {
        "contact_id": str(uuid.uuid4()),
        "account_id": account,
        "name": "Ada",
        "description": "",
        "contact_method": "",
    }
    await append(conn, types, "contact-created", twin, account)
    await catch_up(db_url, types, ALL, renderer)
    result = await rebuild(db_url, types, ALL, renderer=renderer)

    assert result.parked == []
    cursor = await conn.execute("SELECT count(*) FROM projected_contacts WHERE name = 'Ada'")
    assert await cursor.fetchone() == (2,)


# The contacts projection with one more column: what a developer's change to its declaration
# looks like (a column and the line of the handler that fills it).
Initialled = NamedTuple(  # type: ignore[misc]
    "Initialled", [*get_type_hints(Contact, include_extras=True).items(), ("initial", str)]
)


def _with_initial(handler: Any) -> Any:
    def fold(state: Any, event: Event) -> Any:
        folded = handler(None if state is None else Contact(*state[:-1]), event)
        return None if folded is None else Initialled(*folded, folded.name[:1])

    return fold


INITIALLED = replace(
    CONTACTS,
    row=Initialled,
    handlers={name: _with_initial(handler) for name, handler in CONTACTS.handlers.items()},
)


class ReplayGate(Renderer):
    """The projector's renderer, holding a replay's rendering until the test opens the gate
    (the live driver renders through render(), which it lets through)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()

    async def render(self, texts: Iterable[str]) -> dict[str, str]:
        html, failed = await super().render_some(texts)
        for text, problem in failed.items():
            raise RenderFailed(problem, text)
        return html

    async def render_some(self, texts: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
        # in short waits: the app's shutdown cancels this and must not wait on a thread for ever
        while not await asyncio.to_thread(self.open.wait, 0.05):
            pass
        return await super().render_some(texts)


def test_a_changed_declaration_is_rebuilt_at_start_with_the_site_serving(
    db_url: str, tmp_path: Path
) -> None:
    with app_client(db_url, tmp_path) as client:
        sign_up_client(client, "ada@example.com")
        before = [add_contact(client, f"Contact {n}") for n in range(30)]
    assert INITIALLED.definition != CONTACTS.definition
    gate = ReplayGate()
    try:
        changed = [INITIALLED if p is CONTACTS else p for p in ALL]
        with app_client(db_url, tmp_path, renderer=gate, projections=changed) as client:
            log_in(client, "ada@example.com")
            # folded, its rendering held at the gate: /health says so
            held = {"contacts": "99%"}
            wait_until(lambda: client.get("/health").json()["rebuilding"] == held, 10, "99%")
            # the site serves from the old table meanwhile, and takes writes
            assert "Contact 29" in client.get("/contacts").text
            form = {"name": "Added during the rebuild", "description": "", "contact_method": ""}
            form["csrf_token"] = csrf_of(client, "/contacts")
            saved = client.post("/contacts", data=form)
            # saved; the list, not the contact's page, since the contacts table is being rebuilt
            assert (saved.status_code, saved.headers["location"]) == (303, "/contacts")
            gate.open.set()
            wait_until(lambda: not client.get("/health").json()["rebuilding"], 10, "rebuilt")
            listed = client.get("/contacts?q=during").text
            assert "Added during the rebuild" in listed
    finally:
        gate.close()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT contact_id::text, name, initial FROM projected_contacts")
        initials = {contact: (name, initial) for contact, name, initial in rows.fetchall()}
        query = "SELECT definition FROM projections WHERE name = 'contacts'"
        stored = conn.execute(query).fetchone()
    # every contact, with the new column, and the one added during the rebuild: nothing lost
    assert set(before) < set(initials)
    assert all(initial == name[0] for name, initial in initials.values())
    assert ("Added during the rebuild", "A") in initials.values()
    assert len(initials) == 31
    assert stored == (INITIALLED.definition,)


def test_an_install_from_before_a_new_column_serves_its_pages_while_it_rebuilds(
    db_url: str, tmp_path: Path
) -> None:
    """The upgrade to tags, as an install from before them meets it: its contacts table has no
    tags column and no definition. Every page that reads tags answers during the rebuild."""
    with app_client(db_url, tmp_path) as client:
        sign_up_client(client, "ada@example.com")
        ada = add_contact(client, "Ada")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE projected_contacts DROP COLUMN tags")
        conn.execute("UPDATE projections SET definition = NULL WHERE name = 'contacts'")
    gate = ReplayGate()
    try:
        with app_client(db_url, tmp_path, renderer=gate) as client:
            log_in(client, "ada@example.com")
            wait_until(lambda: client.get("/health").json()["rebuilding"], 10, "a rebuild")
            for path in ("/contacts", "/contacts?tag=x", f"/contacts/{ada}", "/tags"):
                assert client.get(path).status_code == 200, path
            form = {"csrf_token": csrf_of(client, f"/contacts/{ada}"), "tag": "family"}
            assert client.post(f"/contacts/{ada}/tags", data=form).status_code == 303
            gate.open.set()
            wait_until(lambda: not client.get("/health").json()["rebuilding"], 10, "rebuilt")
            assert ">Ada</a>" in client.get("/contacts?tag=family").text
    finally:
        gate.close()


async def test_two_rebuilds_of_one_projection_take_turns(db_url, types, conn) -> None:
    workload = await accounts_and_workload(conn, types, 2)
    await append_workload(conn, types, workload, 300)
    await asyncio.gather(*(rebuild(db_url, types, [CONTACTS]) for _ in range(3)))
    assert await differences(conn, types, CONTACTS) == 0
