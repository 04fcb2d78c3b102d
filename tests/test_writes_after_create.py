"""Writes check the write side: a contact can be written to the moment it is created, while the
projections are stalled, and only by its own account."""

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.testclient import TestClient

from crm import ROOT
from crm.store import commands
from crm.store.event_types import EventTypes, load_event_types
from crm.web import contact_page
from crm.web.answers import attempt
from crm.web.forms import Form
from tests.support import contact_details
from tests.support import sign_up as sign_up_account
from tests.web_support import (
    add_contact,
    another_browser,
    app_client,
    csrf_of,
    event_count,
    sign_up,
)

_ADDED = re.compile(r"/contacts/([0-9a-f-]{36})/added")


@pytest.fixture
def two_accounts(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    with app_client(db_url, tmp_path) as alice:
        bob = another_browser(alice)
        sign_up(alice, "alice@example.com")
        sign_up(bob, "bob@example.com")
        yield alice, bob


@contextmanager
def stalled_projector(db_url: str) -> Iterator[None]:
    """Hold every projection's position lock: no projector applies anything meanwhile."""
    with psycopg.connect(db_url) as blocker:
        blocker.execute("SELECT position FROM projections FOR UPDATE")
        yield
        blocker.rollback()


def stalled_if(stalled: bool, db_url: str) -> AbstractContextManager[None]:
    return stalled_projector(db_url) if stalled else nullcontext()


def write(
    client: TestClient, method: str, path: str, data: dict[str, str], htmx: bool = True
) -> httpx.Response:
    headers = {"X-CSRF-Token": csrf_of(client, "/contacts")}
    if htmx:
        headers["HX-Request"] = "true"
    return client.request(method, path, data=data, headers=headers)


def htmx_add_contact(client: TestClient, name: str) -> str:
    fields = {"name": name, "description": "", "contact_method": "", "form_id": "new-contact"}
    response = write(client, "POST", "/contacts", fields)
    assert response.status_code == 200, response.text
    match = _ADDED.search(response.text)
    assert match, response.text
    return match.group(1)


def events_about(db_url: str, contact_id: str) -> list[str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT t.name FROM events AS e JOIN event_types AS t ON t.id = e.event_type_id"
            " WHERE e.payload ->> 'contact_id' = %s ORDER BY e.id",
            (contact_id,),
        ).fetchall()
    return [row[0] for row in rows]


INTERACTION = {"interacted_on": "2026-11-20", "interaction_notes": "coffee"}
NOTES = {"meeting_on": "2026-12-01", "meeting_notes": "**Ask** about the engine"}
EDIT = {"name": "Ada King", "description": "Countess", "contact_method": ""}


@pytest.mark.parametrize("stalled", [False, True], ids=["projector running", "projector stalled"])
def test_a_contact_added_with_htmx_takes_an_interaction_notes_and_an_edit_at_once(
    two_accounts, db_url: str, stalled: bool
) -> None:
    alice, _ = two_accounts
    with stalled_if(stalled, db_url):
        contact = htmx_add_contact(alice, "Ada")
        recorded = write(alice, "POST", f"/contacts/{contact}/interactions", INTERACTION)
        assert recorded.status_code == 200 and "coffee" in recorded.text
        notes = write(alice, "POST", f"/contacts/{contact}/next_meeting", NOTES)
        assert notes.status_code == 200 and "about the engine" in notes.text
        edited = write(alice, "POST", f"/contacts/{contact}", EDIT)
        assert edited.status_code == 200 and "Ada King" in edited.text
    assert events_about(db_url, contact) == [
        "contact-created",
        "interaction-recorded",
        "next-meeting-notes-written",
        "contact-edited",
    ]


def test_every_contact_added_with_htmx_takes_an_interaction_without_waiting(
    two_accounts, db_url: str
) -> None:
    alice, _ = two_accounts
    for n in range(10):
        contact = htmx_add_contact(alice, f"Person {n}")
        recorded = write(alice, "POST", f"/contacts/{contact}/interactions", INTERACTION)
        assert recorded.status_code == 200, f"Person {n}: {recorded.status_code}"
        assert events_about(db_url, contact)[-1] == "interaction-recorded"


def test_a_plain_post_about_a_contact_not_shown_yet_is_saved_and_sent_to_the_list(
    two_accounts, db_url: str
) -> None:
    alice, _ = two_accounts
    with stalled_projector(db_url):
        contact = htmx_add_contact(alice, "Ada")
        recorded = write(
            alice, "POST", f"/contacts/{contact}/interactions", INTERACTION, htmx=False
        )
        # its own page would be a 404 until the projection shows the contact
        assert recorded.status_code == 303 and recorded.headers["location"] == "/contacts"
    assert events_about(db_url, contact)[-1] == "interaction-recorded"


REFUSED = [
    ("/contacts/{id}/interactions", {**INTERACTION, "interacted_on": "soon"}, "interacted_on"),
    ("/contacts/{id}/interactions", {**INTERACTION, "interaction_notes": ""}, "interaction_notes"),
    ("/contacts/{id}/next_meeting", {**NOTES, "meeting_on": "2026-02-30"}, "meeting_on"),
    ("/contacts/{id}", {**EDIT, "name": " "}, "name"),
]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
@pytest.mark.parametrize(("path", "data", "field"), REFUSED)
def test_an_invalid_form_about_a_contact_not_shown_yet_is_a_422_on_its_field(
    two_accounts, db_url: str, path: str, data: dict[str, str], field: str, htmx: bool
) -> None:
    alice, _ = two_accounts
    with stalled_projector(db_url):
        contact = htmx_add_contact(alice, "Ada")
        before = event_count(db_url)
        response = write(alice, "POST", path.format(id=contact), data, htmx=htmx)
    assert response.status_code == 422, response.text
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', response.text)
    assert f'action="/contacts/{contact}' in response.text
    assert event_count(db_url) == before


def test_a_day_already_recorded_is_refused_at_once_even_while_the_projector_is_stalled(
    two_accounts, db_url: str
) -> None:
    alice, _ = two_accounts
    path = "/contacts/{}/interactions"
    with stalled_projector(db_url):
        contact = htmx_add_contact(alice, "Ada")
        assert write(alice, "POST", path.format(contact), INTERACTION).status_code == 200
        again = {**INTERACTION, "interaction_notes": "lunch"}
        refused = write(alice, "POST", path.format(contact), again)
        assert refused.status_code == 422 and "Replace that day" in refused.text
        assert re.search(r'name="interacted_on"[^>]*aria-invalid="true"', refused.text)
        replaced = write(alice, "POST", path.format(contact), {**again, "replace": "yes"})
        assert replaced.status_code == 200
    assert events_about(db_url, contact).count("interaction-recorded") == 2


WRITES = [
    ("POST", "/contacts/{id}", EDIT),
    ("POST", "/contacts/{id}", {**EDIT, "name": ""}),
    ("PUT", "/contacts/{id}", EDIT),
    ("PATCH", "/contacts/{id}", EDIT),
    ("DELETE", "/contacts/{id}", {}),
    ("POST", "/contacts/{id}/delete", {}),
    ("POST", "/contacts/{id}/interactions", INTERACTION),
    ("POST", "/contacts/{id}/interactions", {**INTERACTION, "interacted_on": "soon"}),
    ("POST", "/contacts/{id}/next_meeting", NOTES),
    ("PUT", "/contacts/{id}/next_meeting", {**NOTES, "meeting_notes": ""}),
]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
@pytest.mark.parametrize(("method", "path", "data"), WRITES)
def test_another_accounts_contact_is_not_found_by_any_write(
    two_accounts, db_url: str, method: str, path: str, data: dict[str, str], htmx: bool
) -> None:
    alice, bob = two_accounts
    with stalled_projector(db_url):
        contact = htmx_add_contact(alice, "Ada")
        before = event_count(db_url)
        response = write(bob, method, path.format(id=contact), data, htmx=htmx)
    assert response.status_code == 404
    assert event_count(db_url) == before


def test_a_contact_deleted_on_the_write_side_is_not_found_by_any_write(
    two_accounts, db_url: str
) -> None:
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")  # shown on its page
    with stalled_projector(db_url):
        assert write(alice, "DELETE", f"/contacts/{contact}", {}).status_code == 204
        assert alice.get(f"/contacts/{contact}").status_code == 200  # still projected
        before = event_count(db_url)
        for method, path, data in WRITES:
            response = write(alice, method, path.format(id=contact), data)
            assert response.status_code == 404, f"{method} {path} {data}"
    assert event_count(db_url) == before


def test_a_malformed_contact_id_is_not_found_by_a_write(two_accounts, db_url: str) -> None:
    alice, _ = two_accounts
    for data in (INTERACTION, {**INTERACTION, "interacted_on": "soon"}):
        response = write(alice, "POST", "/contacts/not-a-uuid/interactions", data)
        assert response.status_code == 404
    assert event_count(db_url) == 2  # the two accounts


async def _refuse(conn: AsyncConnection[Any], types: EventTypes) -> commands.Done:
    raise commands.CommandRefused("cannot be done now")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (contact_page.CONTACT.blank(load_event_types()), "name"),
        (contact_page.INTERACTION.blank(load_event_types()), "interacted_on"),
    ],
    ids=["contact form", "interaction form"],
)
def test_a_refusal_naming_no_field_is_shown_on_the_forms_first_field(
    two_accounts, form: Form, field: str
) -> None:
    alice, _ = two_accounts
    request = Request({"type": "http", "app": alice.app, "headers": []})
    assert alice.portal.call(attempt, request, form, _refuse) is None
    assert form.errors == {field: "cannot be done now"}


async def test_interaction_keys_are_filled_in_from_the_events_recorded_before_them(
    conn: AsyncConnection[Any], types: EventTypes
) -> None:
    account = await sign_up_account(conn, types)
    kept = await commands.add_contact(conn, types, account, contact_details("Ada"))
    gone = await commands.add_contact(conn, types, account, contact_details("Brian"))
    for contact in (kept, gone):
        for day in ("2026-01-02", "2026-01-03"):
            fields = {"interacted_on": day, "notes": "x"}
            await commands.record_interaction(conn, types, account, contact.subject_id, fields)
    await commands.delete_contact(conn, types, account, gone.subject_id)
    await conn.execute("DELETE FROM interaction_keys")
    await conn.execute((ROOT / "sql" / "013_interaction_keys.sql").read_text())
    cursor = await conn.execute("SELECT contact_id, interacted_on FROM interaction_keys")
    assert sorted(await cursor.fetchall()) == [
        (kept.subject_id, "2026-01-02"),
        (kept.subject_id, "2026-01-03"),
    ]
