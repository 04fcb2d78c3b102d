"""One event a projection cannot apply never stops it for everyone: it is retried, then parked."""

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from crm.broadcaster import Broadcaster
from crm.projections import poison
from crm.projections.base import Projection
from crm.projections.contacts import CONTACTS
from crm.projections.projector import Projector, ProjectorSettings, catch_up
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL
from crm.rendering import Renderer, RendererUnavailable, RenderFailed
from crm.store import commands
from crm.store.event_types import EventTypes
from crm.store.events import Appended, Event, append
from harness.processes import run_module
from tests import web_support as web
from tests.support import (
    SLOW,
    contact_details,
    differences,
    impatient_renderer,
    render_nothing,
    renderer,
    running,
    sign_up,
    wait_until_caught_up,
)
from tests.web_support import another_browser, app_client

QUICK = ProjectorSettings(
    batch_size=50, poll_interval=1.0, lock_retry=0.1, keepalive=1.0, park_after=3, first_retry=0.05
)
HOSTILE_NOTES = f"a note the renderer cannot finish {SLOW}"


def contacts_failing_on(name: str, calls: list[int] | None = None) -> Projection[Any]:
    def created(state: Any, event: Event) -> Any:
        if event.payload["name"] == name:
            if calls is not None:
                calls.append(event.position)
            raise RuntimeError(f"cannot handle {name}")
        return CONTACTS.handlers["contact-created"](state, event)

    return replace(CONTACTS, handlers={**CONTACTS.handlers, "contact-created": created})


async def add_contact(
    conn: AsyncConnection[Any], types: EventTypes, account: str, name: str
) -> str:
    done = await commands.add_contact(conn, types, account, contact_details(name))
    return done.subject_id


async def names_in(conn: AsyncConnection[Any], account: str) -> set[str]:
    cursor = await conn.execute(
        "SELECT name FROM projected_contacts WHERE account_id = %s", (account,)
    )
    return {row[0] for row in await cursor.fetchall()}


async def parked_rows(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(
        "SELECT projection, position, subject_key, attempts, error FROM parked_events"
        " ORDER BY projection, position"
    )
    return await cursor.fetchall()


async def test_an_event_that_keeps_failing_is_parked_and_other_accounts_keep_flowing(
    db_url, types, conn
):
    hostile, other = await sign_up(conn, types), await sign_up(conn, types)
    await add_contact(conn, types, other, "Before")
    poison_id = await add_contact(conn, types, hostile, "Poison Pill")
    await add_contact(conn, types, other, "In the same batch")
    projections = [contacts_failing_on("Poison Pill"), *ALL[2:]]
    async with running(db_url, types, projections, QUICK):
        await wait_until_caught_up(conn, ["contacts"])
        await add_contact(conn, types, other, "After")
        await wait_until_caught_up(conn, ["contacts", "interactions", "meeting_notes_emails"])

    assert await names_in(conn, other) == {"Before", "In the same batch", "After"}
    assert await names_in(conn, hostile) == set()
    [(projection, _position, key, attempts, error)] = await parked_rows(conn)
    assert (projection, key, attempts) == ("contacts", poison_id, QUICK.park_after)
    assert error == "RuntimeError: cannot handle Poison Pill"
    # the other projections applied it
    cursor = await conn.execute(
        "SELECT contact_name FROM projected_meeting_notes_emails WHERE contact_id = %s",
        (poison_id,),
    )
    assert await cursor.fetchone() == ("Poison Pill",)


async def test_after_the_fix_a_retry_applies_the_parked_event_and_equals_a_fresh_replay(
    db_url, types, conn
):
    hostile, other = await sign_up(conn, types), await sign_up(conn, types)
    await add_contact(conn, types, hostile, "Poison Pill")
    await add_contact(conn, types, other, "Someone")
    async with running(db_url, types, [contacts_failing_on("Poison Pill")], QUICK):
        await wait_until_caught_up(conn, ["contacts"])
    assert len(await parked_rows(conn)) == 1

    result = await rebuild(db_url, types, [CONTACTS], renderer=renderer)  # the fixed code

    assert result.parked == []
    assert await parked_rows(conn) == []
    assert await names_in(conn, hostile) == {"Poison Pill"}
    assert await differences(conn, types, CONTACTS) == 0


def parked_command(db_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_module("crm.parked", *arguments, env={"DATABASE_URL": db_url}, timeout=120)


async def test_the_parked_command_lists_them_and_a_retry_applies_them_after_the_fix(
    db_url, types, conn
):
    account = await sign_up(conn, types)
    contact = await add_contact(conn, types, account, "Poison Pill")
    async with running(db_url, types, [contacts_failing_on("Poison Pill")], QUICK):
        await wait_until_caught_up(conn, ["contacts"])

    listed = await asyncio.to_thread(parked_command, db_url, "--tracebacks")
    assert listed.returncode == 1, listed.stderr
    assert f"contacts: event 2 (contact-created) about {contact}" in listed.stdout
    assert "RuntimeError: cannot handle Poison Pill" in listed.stdout
    assert "Traceback (most recent call last)" in listed.stdout

    retried = await asyncio.to_thread(parked_command, db_url, "--retry")  # with the fixed code
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "0 event(s) still parked" in retried.stdout
    assert await parked_rows(conn) == []
    assert await names_in(conn, account) == {"Poison Pill"}
    assert await differences(conn, types, CONTACTS) == 0


async def test_a_failing_event_is_retried_with_a_growing_wait_not_in_a_tight_loop(
    db_url, types, conn
):
    account = await sign_up(conn, types)
    await add_contact(conn, types, account, "Poison Pill")
    patient = replace(QUICK, park_after=1000, first_retry=0.2)
    projector = Projector(
        db_url, types, [contacts_failing_on("Poison Pill")], Broadcaster(), renderer, patient
    )
    waits: list[float] = []
    five_waits = asyncio.Event()

    async def recorded(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 5:
            five_waits.set()
        await asyncio.sleep(0)

    projector.sleep = recorded
    task = asyncio.create_task(projector.run())
    try:
        await asyncio.wait_for(five_waits.wait(), 30)
        state = projector.states["contacts"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # the seed retried every 0.1 s, for ever
    assert waits[:5] == [0.2, 0.4, 0.8, 1.6, 3.2]
    assert state.startswith("retrying: event"), state
    # /health shows states without a login: the class, never the message (it may quote values)
    assert state.endswith(": RuntimeError") and "Poison Pill" not in state, state


async def store_unchecked_notes(
    conn: AsyncConnection[Any], types: EventTypes, account: str, contact: str
) -> Appended:
    """HOSTILE_NOTES as an older crm stored them, with no rendering budget at the write."""
    payload = {
        "contact_id": contact,
        "account_id": account,
        "meeting_on": "2026-12-24",
        "notes": HOSTILE_NOTES,
    }
    return await append(conn, types, "next-meeting-notes-written", payload, account)


async def test_notes_the_renderer_cannot_finish_are_parked_and_others_are_rendered(
    db_url, types, conn
):
    hostile, other = await sign_up(conn, types), await sign_up(conn, types)
    hostile_contact = await add_contact(conn, types, hostile, "Eve")
    other_contact = await add_contact(conn, types, other, "Bob")
    await store_unchecked_notes(conn, types, hostile, hostile_contact)
    notes = {"meeting_on": "2026-12-24", "notes": "**agenda**"}
    await commands.write_notes(conn, types, other, other_contact, notes)
    impatient = impatient_renderer()
    try:
        async with running(db_url, types, list(ALL), QUICK, impatient):
            await wait_until_caught_up(conn, [p.name for p in ALL])
    finally:
        impatient.close()

    parked = await parked_rows(conn)
    assert [(row[0], row[2]) for row in parked] == [
        ("contacts", hostile_contact),
        ("meeting_notes_emails", hostile_contact),
    ]
    # parked at the first failure: rendering is deterministic, a retry cannot help
    assert all(row[3] == 1 and "the renderer took longer than" in row[4] for row in parked)
    cursor = await conn.execute(
        "SELECT contact_id, next_meeting_notes_html FROM projected_contacts ORDER BY name"
    )
    assert await cursor.fetchall() == [
        (other_contact, "<p><strong>agenda</strong></p>\n"),
        (hostile_contact, None),
    ]


async def test_a_replay_parks_notes_it_cannot_render_and_reports_them(db_url, types, conn):
    account = await sign_up(conn, types)
    contact = await add_contact(conn, types, account, "Eve")
    notes = await store_unchecked_notes(conn, types, account, contact)
    impatient = impatient_renderer()
    try:
        result = await rebuild(db_url, types, list(ALL), renderer=impatient)
    finally:
        impatient.close()

    assert sorted((i.projection, i.event.position) for i in result.parked) == [
        ("contacts", notes.position),
        ("meeting_notes_emails", notes.position),
    ]
    cursor = await conn.execute(
        "SELECT name, next_meeting_notes FROM projected_contacts WHERE contact_id = %s",
        (contact,),
    )
    assert await cursor.fetchone() == ("Eve", None)  # the contact is there, without the notes
    # with a renderer that has the time (the fix), a replay applies it
    fixed = await rebuild(db_url, types, list(ALL), renderer=renderer)
    assert fixed.parked == []
    assert await parked_rows(conn) == []


async def test_a_lost_database_is_retried_without_parking(db_url, types, conn):
    account = await sign_up(conn, types)
    async with running(db_url, types, list(ALL), QUICK) as projector:
        await wait_until_caught_up(conn, ["contacts"])
        for _ in range(3):
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'crm-projector' AND datname = current_database()"
            )
            await add_contact(conn, types, account, f"Contact {uuid.uuid4().hex[:6]}")
        await wait_until_caught_up(conn, [p.name for p in ALL])
        assert projector.states["contacts"] in ("leading", "standby")
    assert await parked_rows(conn) == []
    assert len(await names_in(conn, account)) == 3


def _insert_event(db_url: str, event_type: str, account: str, payload: dict[str, Any]) -> None:
    """An event as an older crm stored it (valid for its schema, never checked for cost)."""
    with psycopg.connect(db_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO events (event_type_id, entity_id, payload) SELECT id, %s, %s"
            " FROM event_types WHERE name = %s AND version = 1",
            (account, Jsonb(payload), event_type),
        )


def _account_of(db_url: str, email: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as db:
        row = db.execute(
            "SELECT account_id::text FROM projected_accounts WHERE email = %s", (email,)
        ).fetchone()
    assert row is not None
    return str(row[0])


PARKED_FIELDS = {"projection", "position", "event_type", "parked_at", "error"}


def _health_when(client: TestClient, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if condition(health):
            return health
        time.sleep(0.05)
    raise AssertionError(f"/health never got there: {health}")


def test_a_parked_event_shows_in_health_and_on_the_contact_page_and_others_go_on(
    db_url: str, tmp_path: Path
) -> None:
    impatient = impatient_renderer()
    settings = ProjectorSettings(poll_interval=1.0, lock_retry=0.2, park_after=2, first_retry=0.05)
    try:
        with app_client(db_url, tmp_path, projector_settings=settings, renderer=impatient) as eve:
            bob = another_browser(eve)
            web.sign_up(eve, "eve@example.com")
            web.sign_up(bob, "bob@example.com")
            contact = web.add_contact(eve, "Mallory")
            payload = {
                "contact_id": contact,
                "account_id": _account_of(db_url, "eve@example.com"),
                "meeting_on": "2026-12-24",
                "notes": HOSTILE_NOTES,
            }
            _insert_event(db_url, "next-meeting-notes-written", payload["account_id"], payload)

            health = _health_when(eve, lambda h: len(h["parked_events"]) == 2)
            assert health["status"] == "degraded" and health["parked_count"] == 2
            assert {p["projection"] for p in health["parked_events"]} == {
                "contacts",
                "meeting_notes_emails",
            }
            # /health needs no login: what the events are about and why stay in the table
            assert [set(p) for p in health["parked_events"]] == [PARKED_FIELDS] * 2
            assert {p["error"] for p in health["parked_events"]} == {"RenderFailed"}
            assert contact not in json.dumps(health)
            with psycopg.connect(db_url, autocommit=True) as db:
                keys = db.execute("SELECT subject_key, error FROM parked_events").fetchall()
            assert [key for key, _ in keys] == [contact, contact]
            assert all(error.startswith("RenderFailed: ") for _, error in keys)
            # another account's writes keep appearing
            friend = web.add_contact(bob, "Bob's friend")
            assert "Bob&#39;s friend" in bob.get("/contacts").text
            assert bob.get(f"/contacts/{friend}").status_code == 200
            # the contact's page says what is not up to date; the other account's does not
            page = eve.get(f"/contacts/{contact}").text
            assert "Part of this contact could not be updated" in page
            assert "its details and notes, its morning e-mail" in page
            assert "could not be updated" not in bob.get(f"/contacts/{friend}").text
            # and still says so in the fragment an htmx edit answers with
            edited = eve.post(
                f"/contacts/{contact}",
                data={"name": "Mallory B", "description": "", "contact_method": ""},
                headers={"HX-Request": "true", "X-CSRF-Token": web.csrf_of(eve, "/contacts")},
            )
            assert edited.status_code == 200
            assert "Part of this contact could not be updated" in edited.text
    finally:
        impatient.close()


def test_health_counts_parked_events_and_lists_twenty_without_keys_or_messages(
    db_url: str, tmp_path: Path
) -> None:
    leaked = "UniqueViolation: duplicate key value\nDETAIL: Key (email)=(bob@example.com) exists."
    with app_client(db_url, tmp_path) as alice:
        web.sign_up(alice, "alice@example.com")
        contacts = [web.add_contact(alice, name) for name in ("Ada", "Bea", "Cy", "Di", "Ed")]
        with psycopg.connect(db_url, autocommit=True) as db:
            parked = db.execute(
                "INSERT INTO parked_events"
                " (projection, position, subject_key, error, traceback, attempts)"
                " SELECT p.name, e.id, coalesce(e.payload->>'contact_id', ''), %s, '', 4"
                " FROM projections p CROSS JOIN events e",
                (leaked,),
            ).rowcount
        assert parked > 20
        health = alice.get("/health").json()
    assert health["status"] == "degraded" and health["parked_count"] == parked
    assert len(health["parked_events"]) == 20
    assert {p["error"] for p in health["parked_events"]} == {"UniqueViolation"}
    assert [set(p) for p in health["parked_events"]] == [PARKED_FIELDS] * 20
    text = json.dumps(health)
    assert "bob@example.com" not in text and not any(c in text for c in contacts)


def test_a_contact_whose_creation_is_parked_says_so_instead_of_not_found(
    db_url: str, tmp_path: Path
) -> None:
    with app_client(db_url, tmp_path) as alice:
        bob = another_browser(alice)
        web.sign_up(alice, "alice@example.com")
        web.sign_up(bob, "bob@example.com")
        contact = web.add_contact(alice, "Ada")
        with psycopg.connect(db_url, autocommit=True) as db:
            # as the projector records a contact-created it could not apply
            db.execute("DELETE FROM projected_contacts WHERE contact_id = %s", (contact,))
            db.execute(
                "INSERT INTO parked_events"
                " (projection, position, subject_key, error, traceback, attempts)"
                " SELECT 'contacts', max(id), %s, 'RuntimeError: x', '', 4 FROM events",
                (contact,),
            )
        page = alice.get(f"/contacts/{contact}")
        assert page.status_code == 503
        assert "cannot be shown right now" in page.text
        assert bob.get(f"/contacts/{contact}").status_code == 404  # and it is still not Bob's


@pytest.mark.parametrize(
    "error, transient",
    [
        (psycopg.OperationalError("connection lost"), True),  # raised by the client
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.ConnectionFailure(), True),
        (psycopg.errors.DeadlockDetected(), True),
        (psycopg.errors.DiskFull(), True),
        (RendererUnavailable("no worker"), True),
        (psycopg.errors.ProgramLimitExceeded(), False),  # an OperationalError, but the row's
        (psycopg.errors.UniqueViolation(), False),
        (psycopg.errors.DataError(), False),
        (RenderFailed("too slow"), False),
        (KeyError("name"), False),
    ],
)
def test_only_failures_of_the_surroundings_are_retried_for_ever(
    error: Exception, transient: bool
) -> None:
    assert poison.is_transient(error) is transient


async def test_notes_that_did_not_change_are_not_rendered_again(db_url, types, conn):
    """A rename re-writes the contact's row: its notes' HTML comes from the row, not from
    rendering them again (one account renaming 400 contacts with 20 KB notes in a loop stalled
    the projection for everyone when it did)."""
    account = await sign_up(conn, types)
    contact = await add_contact(conn, types, account, "Ada")
    await commands.write_notes(
        conn,
        types,
        account,
        contact,
        {"meeting_on": "2026-12-24", "notes": "*hi*"},
    )
    await catch_up(db_url, types, list(ALL), renderer)
    await commands.edit_contact(conn, types, account, contact, contact_details("Ada B"))
    refusing = Renderer(render_all=render_nothing)
    try:
        async with running(db_url, types, list(ALL), QUICK, with_renderer=refusing):
            await wait_until_caught_up(conn, [p.name for p in ALL])
    finally:
        refusing.close()
    assert await parked_rows(conn) == []
    cursor = await conn.execute("SELECT name, next_meeting_notes_html FROM projected_contacts")
    assert await cursor.fetchone() == ("Ada B", "<p><em>hi</em></p>\n")
