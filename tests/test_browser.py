"""The CRM in a real Chromium (Playwright), against the app served by `python -m crm`."""

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from crm.web.tokens import Tokens
from harness.browser import add_inline, new_context, open_contact, sign_up

# Run in every page of a context before its own scripts: whether its stream is open, and the
# news it hears (projection, position), for pages the test then watches.
LISTEN = """
window.__sse_open = false;
window.__sse = [];
document.addEventListener('htmx:sseOpen', () => { window.__sse_open = true; });
document.addEventListener('htmx:sseMessage',
  e => window.__sse.push([e.detail.type, e.detail.lastEventId]));
"""


def mark_page(page: Page) -> None:
    """A flag that a reload or navigation would lose."""
    page.evaluate("window.__no_reload = true")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__no_reload === true"))


def heard(page: Page, tokens: Tokens) -> list[tuple[str, int]]:
    """The news the page's stream brought, as (projection, position), since LISTEN ran: the
    stream carries sealed tokens (crm/web/tokens.py), opened here with the app's key."""
    opened = [(name, tokens.opened(token)) for name, token in page.evaluate("window.__sse")]
    assert all(position is not None for _, position in opened), opened
    return [(name, position) for name, position in opened if position is not None]


@pytest.fixture
def alice(browser: Browser, base_url: str) -> Iterator[Page]:
    context = new_context(browser, base_url, timezone_id="Asia/Tokyo")
    page = context.new_page()
    sign_up(page, "alice@example.com")
    yield page
    context.close()


def test_sign_up_preselects_the_browsers_time_zone(browser: Browser, base_url: str) -> None:
    context = new_context(browser, base_url, timezone_id="America/Sao_Paulo")
    page = context.new_page()
    page.goto("/signup")
    expect(page.get_by_label("Time zone")).to_have_value("America/Sao_Paulo")
    context.close()


def test_an_added_contact_appears_in_the_list_without_a_reload(alice: Page) -> None:
    mark_page(alice)
    add_inline(alice, "Grace Hopper", "COBOL")
    expect(alice.locator("#contact-list")).to_contain_text("Grace Hopper")
    expect(alice.locator("#added .notice.done")).to_contain_text("Added Grace Hopper")
    expect(alice.locator("#new-contact").get_by_label("Name")).to_have_value("")
    assert not_reloaded(alice)


def test_save_to_swap_latency_over_20_saves(alice: Page, capsys) -> None:
    alice.get_by_text("Add a contact here").click()
    alice.evaluate("""() => { window.__swaps = [];
        new MutationObserver(() => {
          const done = document.querySelectorAll('#added .notice.done');
          if (done.length > window.__swaps.length)
            window.__swaps.push({at: performance.now(), text: done[0].textContent});
        }).observe(document.getElementById('added'), {childList: true, subtree: true});
        document.addEventListener('submit', () => { window.__clicked = performance.now(); },
                                  true); }""")
    latencies = []
    for n in range(20):
        add_inline(alice, f"Person {n:02d}")
        expect(alice.locator("#added .notice.done")).to_have_count(n + 1)
        swap = alice.evaluate("window.__swaps[window.__swaps.length - 1]")
        # what was timed is this save's projected fragment, not its pending notice
        assert swap["text"] == f"Added Person {n:02d}."
        latencies.append(swap["at"] - alice.evaluate("window.__clicked"))
    expect(alice.locator("#contact-list")).to_contain_text("Person 19")
    with capsys.disabled():
        print(
            f"\nsave -> projected fragment swapped in, 20 saves: median "
            f"{statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms"
        )


def test_other_pages_of_the_account_update_live_and_other_accounts_do_not(
    browser: Browser, base_url: str, alice: Page, tmp_path: Path
) -> None:
    tokens = Tokens((tmp_path / "secret_key").read_text().strip())  # the server fixture's
    alice.context.add_init_script(LISTEN)
    second_tab = alice.context.new_page()
    second_tab.goto("/contacts")
    bob_context = new_context(browser, base_url)
    bob_context.add_init_script(LISTEN)
    bob = bob_context.new_page()
    sign_up(bob, "bob@example.com")
    for page in (second_tab, bob):
        mark_page(page)
        page.wait_for_function("window.__sse_open")  # news from now on reaches the page
    add_inline(alice, "Katherine Johnson")
    expect(second_tab.locator("#contact-list")).to_contain_text("Katherine Johnson")
    assert not_reloaded(second_tab)
    katherine = [position for name, position in heard(second_tab, tokens) if name == "contacts"]
    assert katherine
    # news of bob's own contact comes after alice's on his stream: once it is in, hers would be
    add_inline(bob, "Mary Winston")
    expect(bob.locator("#contact-list")).to_contain_text("Mary Winston")
    bob.wait_for_function("window.__sse.some(([name]) => name === 'contacts')")
    assert all(position > max(katherine) for _, position in heard(bob, tokens)), heard(bob, tokens)
    expect(bob.locator("#contact-list")).not_to_contain_text("Katherine Johnson")
    assert not_reloaded(bob)
    bob_context.close()


def test_edit_and_delete_update_other_pages_live(alice: Page) -> None:
    add_inline(alice, "Dorothy Vaughan")
    open_contact(alice, "Dorothy Vaughan")
    watcher = alice.context.new_page()
    watcher.goto(alice.url)
    mark_page(watcher)
    alice.get_by_text("Edit contact").click()
    edit = alice.locator("#edit-contact")
    edit.get_by_label("Name").fill("Dorothy J. Vaughan")
    edit.get_by_label("Description").fill("FORTRAN")
    edit.get_by_role("button", name="Save changes").click()
    expect(alice.locator("#details h1")).to_contain_text("Dorothy J. Vaughan")
    expect(alice.locator("#details .badge")).to_have_count(0)
    expect(watcher.locator("#details")).to_contain_text("FORTRAN")
    alice.once("dialog", lambda dialog: dialog.accept())
    alice.get_by_role("button", name="Delete contact").click()
    expect(alice).to_have_url("/contacts")
    expect(alice.locator("#flash")).to_contain_text("Contact deleted.")
    expect(alice.locator("#contact-list")).not_to_contain_text("Dorothy")
    expect(watcher.locator(".gone")).to_contain_text("This contact has been deleted")
    assert not_reloaded(watcher)


def test_recording_an_interaction_shows_it_newest_first(alice: Page) -> None:
    add_inline(alice, "Mary Jackson")
    open_contact(alice, "Mary Jackson")
    form = alice.locator("#interaction-form")
    for day, notes in (("2026-10-01", "Wind tunnel tour"), ("2026-11-02", "Lunch")):
        form = alice.locator("#interaction-form")
        form.get_by_label("Date").fill(day)
        form.get_by_label("What happened").fill(notes)
        form.get_by_role("button", name="Record interaction").click()
        expect(alice.locator("#interactions li:not(.pending-item)").first).to_contain_text(notes)
    items = alice.locator("#interactions li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("2026-11-02")
    expect(alice.locator("#details")).to_contain_text("2026-11-02")  # last interaction


def test_markdown_notes_are_rendered_and_scripts_neutralized(alice: Page) -> None:
    add_inline(alice, "Annie Easley")
    open_contact(alice, "Annie Easley")
    alice.get_by_text("Write the notes for the next meeting").click()
    form = alice.locator("#notes-form")
    form.get_by_label("Meeting date").fill("2026-12-03")
    form.get_by_label("Notes").fill(
        "# Agenda\n\n- **Centaur** rocket\n- [docs](javascript:window.__xss=3)\n\n"
        '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    )
    form.get_by_role("button", name="Save notes").click()
    notes = alice.locator("#notes .rendered")
    expect(notes.locator("strong")).to_have_text("Centaur")
    expect(notes.locator("h1")).to_have_text("Agenda")
    assert notes.locator("script").count() == 0
    assert notes.locator("[onerror]").count() == 0
    link = notes.locator("a", has_text="docs")
    href = link.get_attribute("href") or ""
    assert "javascript" not in href.lower()  # the javascript: URL was dropped
    expect(notes).to_contain_text("<script>window.__xss = 1</script>")  # raw HTML shows as text
    link.click()
    assert alice.evaluate("window.__xss") is None
    expect(alice.locator("#notes h2")).to_contain_text("2026-12-03")


def test_invalid_forms_show_inline_errors_and_keep_values(alice: Page) -> None:
    add_inline(alice, "", "no name given")
    name = alice.locator("#new-contact").get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(alice.locator("#new-contact-name-error")).to_have_text("Name is required.")
    expect(alice.locator("#new-contact").get_by_label("Description")).to_have_value("no name given")
    add_inline(alice, "Ada")
    expect(alice.locator("#contact-list")).to_contain_text("Ada")
    add_inline(alice, "Ada")
    expect(alice.locator("#new-contact-name-error")).to_contain_text(
        "is already the name of one of your contacts"
    )
    open_contact(alice, "Ada")
    form = alice.locator("#interaction-form")
    form.get_by_label("What happened").fill("forgot the date")
    form.get_by_role("button", name="Record interaction").click()
    expect(alice.locator("#interaction-interacted_on-error")).to_have_text("Date is required.")
    expect(alice.locator("#interaction-form").get_by_label("What happened")).to_have_value(
        "forgot the date"
    )


def test_everything_works_without_javascript(browser: Browser, base_url: str) -> None:
    context = new_context(browser, base_url, java_script_enabled=False)
    page = context.new_page()
    sign_up(page, "nojs@example.com")
    page.get_by_role("link", name="New contact").click()
    page.get_by_label("Name").fill("Margaret Hamilton")
    page.get_by_label("Contact method").fill("margaret@example.com")
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator("#details h1")).to_contain_text("Margaret Hamilton")
    expect(page.locator("#flash")).to_contain_text("Added Margaret Hamilton.")
    form = page.locator("#interaction-form")
    form.get_by_label("Date").fill("2026-11-25")
    form.get_by_label("What happened").fill("Apollo stories")
    form.get_by_role("button", name="Record interaction").click()
    expect(page.locator("#interactions")).to_contain_text("Apollo stories")
    page.get_by_text("Write the notes for the next meeting").click()  # <details>: no JS needed
    form = page.locator("#notes-form")
    form.get_by_label("Meeting date").fill("2026-12-10")
    form.get_by_label("Notes").fill("*bring* the listing")
    form.get_by_role("button", name="Save notes").click()
    expect(page.locator("#notes .rendered em")).to_have_text("bring")
    page.get_by_text("Edit contact").click()
    page.locator("#edit-contact").get_by_label("Name").fill("")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Name is required.")).to_be_visible()  # the edit page, status 422
    page.get_by_label("Name").fill("Margaret H. Hamilton")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#details h1")).to_contain_text("Margaret H. Hamilton")
    page.get_by_role("button", name="Delete contact").click()
    expect(page).to_have_url("/contacts")
    expect(page.locator("#contact-list")).not_to_contain_text("Margaret")
    context.close()


def test_the_contact_list_sorts_and_searches_in_the_browser(alice: Page) -> None:
    for name in ("Zed", "Amy", "Mo"):
        add_inline(alice, name)
        expect(alice.locator("#contact-list")).to_contain_text(name)
    alice.goto("/contacts")
    names = alice.locator("#contact-list tbody th")
    expect(names).to_have_text(["Amy", "Mo", "Zed"])
    alice.get_by_role("link", name="Name").click()
    expect(names).to_have_text(["Zed", "Mo", "Amy"])
    alice.get_by_label("Search by name").fill("m")
    alice.get_by_role("button", name="Search").click()
    expect(names).to_have_text(["Mo", "Amy"])
    by_next_meeting = alice.goto("/contacts?sort=next_meeting&dir=asc")
    assert by_next_meeting is not None and by_next_meeting.status == 200
    expect(names).to_have_text(["Amy", "Mo", "Zed"])  # none has a next meeting: then by name


def test_an_expired_form_says_so_instead_of_doing_nothing(alice: Page) -> None:
    alice.evaluate("document.body.setAttribute('hx-headers', '{\"X-CSRF-Token\": \"stale\"}')")
    alice.locator("#new-contact input[name=csrf_token]").evaluate("el => el.value = 'stale'")
    add_inline(alice, "Hedy Lamarr")
    expect(alice.locator("#flash")).to_contain_text("This page has expired")
    expect(alice.locator("#contact-list")).not_to_contain_text("Hedy Lamarr")
