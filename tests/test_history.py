"""A contact's history page: every event about it, newest first, with what changed, when (in
the account's zone) and who; another account's contact is a 404."""

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from crm.store.events import Event
from crm.web import history
from crm.web.history import entries
from tests.web_support import (
    add_contact,
    another_browser,
    app_client,
    csrf_of,
    post_notes,
    sign_up,
)

UTC = ZoneInfo("UTC")


@pytest.fixture
def ada(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path) as site:
        browser = another_browser(site)
        sign_up(browser, "ada@example.com")  # in Europe/Paris
        yield browser


def edit(browser: TestClient, contact: str, **fields: str) -> None:
    page = browser.get(f"/contacts/{contact}").text
    based_on = re.search(r'name="based_on" value="(\d+)"', page)
    assert based_on
    data = {"based_on": based_on.group(1), "csrf_token": csrf_of(browser, f"/contacts/{contact}")}
    answer = browser.post(f"/contacts/{contact}", data={**data, **fields})
    assert answer.status_code == 303, answer.text


def test_an_edit_shows_each_changed_field_before_and_after_newest_first(ada: TestClient) -> None:
    contact = add_contact(ada, "Grace", description="Admiral", contact_method="grace@navy.mil")
    edit(
        ada,
        contact,
        name="Grace Hopper",
        description="Rear admiral",
        contact_method="grace@navy.mil",
    )
    page = ada.get(f"/contacts/{contact}/history")
    assert page.status_code == 200
    text = page.text
    assert text.index("Details edited") < text.index("Contact added")  # newest first
    edited = text[text.index("Details edited") : text.index("Contact added")]
    assert "<del>Grace</del> → <ins>Grace Hopper</ins>" in edited
    assert "<del>Admiral</del> → <ins>Rear admiral</ins>" in edited
    assert "Contact method" not in edited  # unchanged, not listed
    assert "by you" in edited
    assert "times in Europe/Paris" in text
    added = text[text.index("Contact added") :]
    assert "<ins>grace@navy.mil</ins>" in added and "<ins>Admiral</ins>" in added


def test_a_field_added_empty_is_not_listed_as_a_change(ada: TestClient) -> None:
    contact = add_contact(ada, "Grace")
    text = ada.get(f"/contacts/{contact}/history").text
    assert "<dt>Name</dt>" in text and "<dt>Description</dt>" not in text


def test_another_accounts_contact_has_no_history_for_you(ada: TestClient, db_url: str) -> None:
    contact = add_contact(ada, "Grace", description="secret admiral")
    bob = another_browser(ada)
    sign_up(bob, "bob@example.com")
    answer = bob.get(f"/contacts/{contact}/history")
    assert answer.status_code == 404 and "secret admiral" not in answer.text
    assert bob.get("/contacts/not-an-id/history").status_code == 404


def at(minute: int) -> datetime:
    return datetime(2026, 12, 3, 6, minute, tzinfo=UTC)


def test_a_system_process_is_named_and_a_days_interaction_compares_with_that_day() -> None:
    ids = {"contact_id": "c", "account_id": "a"}

    def day(position: int, day: str, notes: str) -> Event:
        payload = {**ids, "interacted_on": day, "notes": notes}
        return Event(position, "interaction-recorded", 1, payload, "a", at(position))

    sent = {**ids, "meeting_on": "2026-12-03"}
    events = [
        day(1, "2026-12-01", "x"),
        day(2, "2026-12-02", "y"),
        day(3, "2026-12-01", "z"),
        Event(4, "meeting-notes-email-sent", 1, sent, "p", at(4)),
    ]
    shown = entries(events, {"a": "you", "p": "morning-email (process)"}, ZoneInfo("Asia/Tokyo"))
    assert [e.position for e in shown] == [4, 3, 2, 1]
    assert shown[0].actor == "morning-email (process)"
    replaced = {c.field: (c.before, c.after) for c in shown[1].changes}
    assert replaced == {"Notes": ("x", "z")}  # the same day's, not the day before's
    assert shown[0].at.isoformat() == "2026-12-03T15:04:00+09:00"


def test_the_contact_as_it_was_then_is_played_from_its_events_with_nothing_to_change(
    ada: TestClient,
) -> None:
    contact = add_contact(ada, "Grace", description="Admiral")
    edit(ada, contact, name="Grace Hopper", description="Rear admiral")
    history = ada.get(f"/contacts/{contact}/history").text
    links = re.findall(r'href="(/contacts/[0-9a-f-]+\?as_of=[^"]+)"', history)
    assert len(links) == 2  # newest first: after the edit, then after the creation
    then = ada.get(links[1].replace("&amp;", "&"))
    assert then.status_code == 200
    assert "As it was on" in then.text and "Admiral" in then.text
    assert "Rear admiral" not in then.text and "Grace Hopper" not in then.text
    assert "<form" not in then.text.split("<main", 1)[1] and "hx-get" not in then.text
    now = ada.get(links[0].replace("&amp;", "&")).text
    assert "Rear admiral" in now and "Grace Hopper" in now


@pytest.mark.parametrize("moment", ["yesterday", "2026-13-45", "x" * 5000])
def test_a_moment_that_is_not_one_is_a_400_naming_as_of(ada: TestClient, moment: str) -> None:
    contact = add_contact(ada, "Grace")
    answer = ada.get(f"/contacts/{contact}", params={"as_of": moment})
    assert answer.status_code == 400 and "as_of must be a date and time" in answer.text


def test_before_the_contact_existed_it_says_so(ada: TestClient) -> None:
    contact = add_contact(ada, "Grace", description="Admiral")
    page = ada.get(f"/contacts/{contact}", params={"as_of": "2000-01-01"}).text
    assert "did not exist yet then" in page and "Admiral" not in page


def test_the_notes_of_then_are_rendered_as_the_page_renders_them(ada: TestClient) -> None:
    contact = add_contact(ada, "Grace")
    assert post_notes(ada, contact, "## Agenda\n\n- *compilers*").status_code == 303
    assert post_notes(ada, contact, "## Later agenda").status_code == 303
    history = ada.get(f"/contacts/{contact}/history").text
    links = re.findall(r'href="(/contacts/[0-9a-f-]+\?as_of=[^"]+)"', history)
    then = ada.get(links[1].replace("&amp;", "&")).text  # after the first notes
    assert "<h2>Agenda</h2>" in then and "<em>compilers</em>" in then
    assert "Later agenda" not in then


def test_a_contact_written_without_end_shows_its_latest_changes_and_refuses_a_long_replay(
    ada: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "SHOWN", 2)
    monkeypatch.setattr(history, "REPLAYED", 2)
    contact = add_contact(ada, "Grace")
    for description in ("one", "two", "three"):
        edit(ada, contact, description=description)
    page = ada.get(f"/contacts/{contact}/history").text
    assert "The latest changes" in page and page.count("Details edited") == 2
    assert "Contact added" not in page
    answer = ada.get(f"/contacts/{contact}", params={"as_of": "2100-01-01"})
    assert answer.status_code == 422 and "too many to replay here" in answer.text
