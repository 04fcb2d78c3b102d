"""Two tabs, one contact: a form saved after someone else's save never silently undoes it. Each
form carries the revision it was drawn from; a stale save is merged field by field, or refused
with both versions shown (409), and a request that sends only some fields keeps the others."""

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.testclient import TestClient

from crm.store import commands
from crm.store.revisions import Clash, merge
from harness.browser import add_inline, new_context, open_contact, sign_up
from tests.support import contact_details
from tests.support import sign_up as sign_up_account
from tests.web_support import add_contact, another_browser, app_client, csrf_of, event_count
from tests.web_support import sign_up as sign_up_client

# the merge, on its own


def test_a_field_only_i_changed_takes_mine_and_one_only_they_changed_keeps_theirs() -> None:
    base = {"description": "poet", "contact_method": "post"}
    current = {"description": "mathematician", "contact_method": "post"}
    mine = {"description": "poet", "contact_method": "ada@example.com"}
    merged = merge(base, current, mine)
    assert merged.fields == {"description": "mathematician", "contact_method": "ada@example.com"}
    assert merged.clashes == {}


def test_a_field_both_changed_alike_is_no_clash_and_differently_is() -> None:
    base = {"name": "Ada", "description": "poet"}
    current = {"name": "Ada L.", "description": "countess"}
    mine = {"name": "Ada L.", "description": "analyst"}
    merged = merge(base, current, mine)
    assert merged.clashes == {"description": Clash(theirs="countess", mine="analyst")}
    assert merged.fields == {"name": "Ada L.", "description": "analyst"}  # what the form shows


def test_a_field_not_sent_keeps_the_current_value() -> None:
    merged = merge({"name": "Ada", "notes": "x"}, {"name": "Ada", "notes": "y"}, {"name": "Bo"})
    assert merged.fields == {"name": "Bo", "notes": "y"} and not merged.clashes


# the commands


async def test_a_stale_edit_that_clashes_appends_nothing_and_names_both_versions(
    conn, types
) -> None:
    account = await sign_up_account(conn, types)
    created = await commands.add_contact(conn, types, account, contact_details("Ada", "poet"))
    contact = created.subject_id
    assert created.revision == 1
    edited = await commands.edit_contact(
        conn, types, account, contact, contact_details("Ada", "countess"), based_on=1
    )
    assert edited.revision == 2
    before = await _events(conn)
    with pytest.raises(commands.WriteConflict) as refused:
        await commands.edit_contact(
            conn, types, account, contact, contact_details("Ada", "analyst"), based_on=1
        )
    assert refused.value.clashes == {"description": Clash("countess", "analyst")}
    assert refused.value.revision == 2
    assert await _events(conn) == before
    kept = await commands.edit_contact(
        conn, types, account, contact, contact_details("Ada", "analyst"), based_on=2
    )
    assert kept.revision == 3 and kept.fields["description"] == "analyst"


async def test_notes_from_a_form_opened_before_any_notes_clash_only_where_they_differ(
    conn, types
) -> None:
    account = await sign_up_account(conn, types)
    contact = (await commands.add_contact(conn, types, account, contact_details("Ada"))).subject_id
    first = {"meeting_on": "2026-12-03", "notes": "agenda"}
    assert (await commands.write_notes(conn, types, account, contact, first, 0)).revision == 1
    with pytest.raises(commands.WriteConflict) as refused:  # a tab opened before: blank notes
        await commands.write_notes(
            conn, types, account, contact, {"meeting_on": "2026-12-03", "notes": "mine"}, 0
        )
    assert refused.value.clashes == {"notes": Clash("agenda", "mine")}
    same = await commands.write_notes(conn, types, account, contact, first, 0)
    assert same.revision == 2 and same.fields == first


async def test_a_revision_the_contact_never_had_is_refused(conn, types) -> None:
    account = await sign_up_account(conn, types)
    contact = (await commands.add_contact(conn, types, account, contact_details("Ada"))).subject_id
    for based_on in (0, 2, 10**17):
        with pytest.raises(commands.UnknownRevision) as refused:
            await commands.edit_contact(
                conn, types, account, contact, contact_details("B"), based_on
            )
        assert refused.value.field == "based_on"


async def _events(conn) -> int:
    row = await (await conn.execute("SELECT count(*) FROM events")).fetchone()
    return int(row[0])


# through the web, as two tabs of one account


@pytest.fixture
def alice(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path) as client:
        sign_up_client(client, "alice@example.com")
        yield client


class _FormFields(HTMLParser):
    """The fields of the form with this id, as the browser would send them."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "form":
            self.inside = named.get("id") == self.form_id
        elif self.inside and tag == "input" and named.get("name"):
            self.fields[named["name"]] = named.get("value") or ""
        elif self.inside and tag == "textarea":
            self._textarea = named["name"]
            self.fields[self._textarea] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.fields[self._textarea] += data


def form_in(html: str, form_id: str) -> dict[str, str]:
    parser = _FormFields(form_id)
    parser.feed(html)
    assert parser.fields, f"no form #{form_id}"
    return parser.fields


def open_form(client: TestClient, contact: str, form_id: str) -> dict[str, str]:
    """A tab opening the contact's page: its form, as drawn."""
    page = client.get(f"/contacts/{contact}")
    assert page.status_code == 200, page.text
    return form_in(page.text, form_id)


def save(
    client: TestClient, contact: str, form: dict[str, str], path: str = "", htmx: bool = False
) -> httpx.Response:
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(f"/contacts/{contact}{path}", data=form, headers=headers)


def details(client: TestClient, contact: str) -> str:
    return client.get(f"/contacts/{contact}?section=details").text


def test_two_tabs_changing_different_fields_both_keep_their_change(alice: TestClient) -> None:
    contact = add_contact(alice, "Ada", description="poet", contact_method="post")
    tab_a = open_form(alice, contact, "edit-contact")
    tab_b = open_form(alice, contact, "edit-contact")
    assert tab_a["based_on"] == "1"
    assert save(alice, contact, {**tab_a, "description": "countess"}).status_code == 303
    saved = save(alice, contact, {**tab_b, "contact_method": "ada@example.com"})
    assert saved.status_code == 303, saved.text
    shown = details(alice, contact)
    assert "countess" in shown and "ada@example.com" in shown


@pytest.mark.parametrize("htmx", [False, True], ids=["plain form", "htmx"])
def test_two_tabs_changing_the_same_field_differently_get_a_conflict_showing_both(
    alice: TestClient, db_url: str, htmx: bool
) -> None:
    contact = add_contact(alice, "Ada", description="poet", contact_method="post")
    tab_a = open_form(alice, contact, "edit-contact")
    tab_b = open_form(alice, contact, "edit-contact")
    assert save(alice, contact, {**tab_a, "description": "countess", "name": "Ada L."}).is_redirect
    before = event_count(db_url)
    refused = save(alice, contact, {**tab_b, "description": "analyst"}, htmx=htmx)
    assert refused.status_code == 409, refused.text
    assert event_count(db_url) == before
    assert "Description was changed elsewhere" in refused.text
    assert "Changed elsewhere to:" in refused.text and "countess" in refused.text
    again = form_in(refused.text, "edit-contact")
    # mine kept where we clashed, theirs where only they changed, based on the current revision
    assert again["description"] == "analyst" and again["name"] == "Ada L."
    assert again["based_on"] == "2"
    assert save(alice, contact, again, htmx=htmx).status_code in (200, 303)
    shown = details(alice, contact)
    assert "analyst" in shown and "Ada L." in shown and "countess" not in shown


def test_a_save_with_htmx_redraws_the_form_at_the_saved_revision(alice: TestClient) -> None:
    contact = add_contact(alice, "Ada", description="poet", contact_method="post")
    tab_a = open_form(alice, contact, "edit-contact")
    tab_b = open_form(alice, contact, "edit-contact")
    save(alice, contact, {**tab_a, "description": "countess"})
    merged = save(alice, contact, {**tab_b, "contact_method": "telegraph"}, htmx=True)
    assert merged.status_code == 200
    redrawn = form_in(merged.text, "edit-contact")  # swapped out of band
    assert redrawn == {**redrawn, "based_on": "3", "description": "countess"}
    assert redrawn["contact_method"] == "telegraph"
    # so saving from it again is not stale: this tab's own save is never a conflict
    again = save(alice, contact, {**redrawn, "description": "countess, analyst"}, htmx=True)
    assert again.status_code == 200, again.text


def test_notes_from_two_tabs_merge_or_conflict_like_the_details(
    alice: TestClient, db_url: str
) -> None:
    contact = add_contact(alice, "Ada")
    first = open_form(alice, contact, "notes-form")
    assert first["based_on"] == "0"
    notes = {**first, "meeting_on": "2026-12-03", "meeting_notes": "agenda"}
    assert save(alice, contact, notes, "/next_meeting").status_code == 303
    tab_a = open_form(alice, contact, "notes-form")
    tab_b = open_form(alice, contact, "notes-form")
    assert tab_a["based_on"] == "1"
    saved = save(alice, contact, {**tab_a, "meeting_notes": "A's agenda"}, "/next_meeting")
    assert saved.status_code == 303, saved.text
    moved = save(alice, contact, {**tab_b, "meeting_on": "2026-12-10"}, "/next_meeting")
    assert moved.status_code == 303, moved.text
    page = alice.get(f"/contacts/{contact}").text
    assert "A&#39;s agenda" in page and "2026-12-10" in page
    # both change the notes: B is refused, sees A's, and keeps its own by saving again
    tab_a = open_form(alice, contact, "notes-form")
    tab_b = open_form(alice, contact, "notes-form")
    save(alice, contact, {**tab_a, "meeting_notes": "from A"}, "/next_meeting")
    before = event_count(db_url)
    refused = save(alice, contact, {**tab_b, "meeting_notes": "from B"}, "/next_meeting")
    assert refused.status_code == 409 and event_count(db_url) == before
    assert "Notes was changed elsewhere" in refused.text and "from A" in refused.text
    again = form_in(refused.text, "notes-form")
    assert again["meeting_notes"] == "from B" and again["based_on"] == "4"
    assert save(alice, contact, again, "/next_meeting").status_code == 303
    assert "from B" in alice.get(f"/contacts/{contact}").text


def test_a_patch_of_the_name_alone_keeps_the_other_details(alice: TestClient) -> None:
    contact = add_contact(alice, "Ada", description="poet", contact_method="post")
    token = csrf_of(alice, "/contacts")
    patched = alice.patch(f"/contacts/{contact}", data={"name": "Ada L.", "csrf_token": token})
    assert patched.status_code == 303, patched.text
    shown = details(alice, contact)
    assert "Ada L." in shown and "poet" in shown and "post" in shown


def test_notes_sent_without_a_day_keep_the_day(alice: TestClient) -> None:
    contact = add_contact(alice, "Ada")
    token = csrf_of(alice, "/contacts")
    first = {"meeting_on": "2026-12-03", "meeting_notes": "agenda", "csrf_token": token}
    assert save(alice, contact, first, "/next_meeting").status_code == 303
    later = save(alice, contact, {"meeting_notes": "new", "csrf_token": token}, "/next_meeting")
    assert later.status_code == 303, later.text
    page = alice.get(f"/contacts/{contact}").text
    assert "2026-12-03" in page and "new" in page


@pytest.mark.parametrize("based_on", ["99999999", "0", "-1", "two", "1" * 40, "1.0"])
@pytest.mark.parametrize("path", ["", "/next_meeting"], ids=["details", "notes"])
def test_a_hostile_based_on_is_refused_naming_the_field(
    alice: TestClient, db_url: str, based_on: str, path: str
) -> None:
    contact = add_contact(alice, "Ada")
    form = open_form(alice, contact, "notes-form" if path else "edit-contact")
    form |= {"meeting_on": "2026-12-03", "meeting_notes": "agenda"} if path else {"name": "B"}
    before = event_count(db_url)
    refused = save(alice, contact, {**form, "based_on": based_on}, path)
    if path and based_on == "0":  # no notes yet: 0 is the notes' current revision
        assert refused.status_code == 303
        return
    assert refused.status_code == 400, refused.text
    assert "based_on" in refused.text
    assert event_count(db_url) == before


def test_another_accounts_contact_is_still_a_404_whatever_the_based_on(alice: TestClient) -> None:
    contact = add_contact(alice, "Ada")
    bob = another_browser(alice)
    sign_up_client(bob, "bob@example.com")
    form = {"name": "Mine", "description": "", "contact_method": ""}
    for based_on in ("1", "99"):
        token = csrf_of(bob, "/contacts")
        refused = save(bob, contact, {**form, "csrf_token": token, "based_on": based_on})
        assert refused.status_code == 404


# in Chromium: two pages of one account


@pytest.fixture
def two_pages(browser: Browser, base_url: str) -> Iterator[tuple[Page, Page]]:
    context = new_context(browser, base_url)
    first = context.new_page()
    sign_up(first, "alice@example.com")
    second = context.new_page()
    yield first, second
    context.close()


def test_in_the_browser_a_stale_edit_shows_the_conflict_and_saving_again_keeps_it(
    two_pages: tuple[Page, Page],
) -> None:
    tab_a, tab_b = two_pages
    add_inline(tab_a, "Dorothy Vaughan", "FORTRAN")
    open_contact(tab_a, "Dorothy Vaughan")
    tab_b.goto(tab_a.url)
    for tab, description in ((tab_a, "FORTRAN teacher"), (tab_b, "West Computers")):
        tab.get_by_text("Edit contact").click()
        tab.locator("#edit-contact").get_by_label("Description").fill(description)
    tab_a.locator("#edit-contact").get_by_role("button", name="Save changes").click()
    expect(tab_b.locator("#details")).to_contain_text("FORTRAN teacher")  # arrived live
    edit_b = tab_b.locator("#edit-contact")
    edit_b.get_by_role("button", name="Save changes").click()
    expect(edit_b.locator(".notice.conflict")).to_contain_text("changed elsewhere")
    expect(edit_b.locator(".theirs")).to_contain_text("FORTRAN teacher")
    expect(edit_b.get_by_label("Description")).to_have_value("West Computers")
    expect(tab_b.locator("#details")).to_contain_text("FORTRAN teacher")  # nothing was saved
    edit_b.get_by_role("button", name="Save changes").click()
    expect(tab_b.locator("#details")).to_contain_text("West Computers")
    expect(tab_b.locator("#edit-contact .notice.conflict")).to_have_count(0)
    expect(tab_a.locator("#details")).to_contain_text("West Computers")
