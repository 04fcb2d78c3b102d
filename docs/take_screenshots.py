"""Take the README's screenshots: the real app, a fresh database, headless Chromium.

python docs/take_screenshots.py
"""

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.browser import ARGS, CHROMIUM, add_inline, sign_up
from harness.processes import App

OUT = Path(__file__).resolve().parent / "screenshots"
PEOPLE = [
    ("Grace Hopper", "Rear admiral; COBOL. Met at the Navy museum.", "grace@example.com"),
    ("Katherine Johnson", "Orbital mechanics; friend of a friend.", "+1 757 555 0100"),
    ("Ada Lovelace", "Writes about the Analytical Engine.", "ada@example.org"),
    ("Alan Kay", "Smalltalk, Dynabook; conference dinner.", "alan@example.net"),
]


def main() -> None:
    with tempfile.TemporaryDirectory() as data, sync_playwright() as playwright:
        app = App({"CRM_DATA_DIR": data, "CRM_LOG_LEVEL": "WARNING"}).start()
        app.health()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(
            viewport={"width": 1100, "height": 760}, base_url=f"http://127.0.0.1:{app.port}"
        )
        page.set_default_timeout(10_000)
        sign_up(page, "you@example.com")
        page.get_by_text("Add a contact here").click()
        for name, description, method in PEOPLE:
            page.locator("#new-contact").get_by_label("Contact method").fill(method)
            add_inline(page, name, description)
            page.wait_for_selector(f"#contact-list >> text={name}")
        for name, tags in (("Katherine Johnson", ("NASA",)), ("Grace Hopper", ("Navy", "COBOL"))):
            page.goto("/contacts")
            page.locator("#contact-list").get_by_role("link", name=name).click()
            for tag in tags:
                page.get_by_label("Tag", exact=True).fill(tag)
                page.get_by_role("button", name="Add tag").click()
                page.wait_for_selector(f"#details:not(.pending) .tags >> text={tag}")
        for day, notes in (
            ("2026-10-14", "Coffee at the harbour. She wants the compiler history for her talk."),
            ("2026-11-20", "Call: agreed to meet in December at the museum."),
        ):
            page.get_by_label("Date", exact=True).fill(day)
            page.get_by_label("What happened").fill(notes)
            page.get_by_role("button", name="Record interaction").click()
            page.wait_for_selector(f"#interactions li:not(.pending-item) >> text={day}")
        page.get_by_text("Write the notes for the next meeting").click()
        page.get_by_label("Meeting date").fill("2026-12-03")
        page.get_by_label("Notes", exact=True).fill(
            "## Agenda\n\n- Bring the **1952 A-0** printout\n"
            "- Ask about *nanoseconds* wire\n- Museum tour at 3pm"
        )
        page.get_by_role("button", name="Save notes").click()
        page.wait_for_selector("#notes .rendered h2")
        page.get_by_text("Write the notes for the next meeting").click()
        page.screenshot(path=OUT / "contact.png", full_page=True)
        page.goto("/contacts?sort=next_meeting&dir=asc")
        page.get_by_text("Add a contact here").click()
        page.locator("#new-contact").get_by_role("button", name="Add contact").click()
        page.wait_for_selector("#new-contact-name-error:not(:empty)")
        page.screenshot(path=OUT / "contacts.png", full_page=True)
        phone = browser.new_page(base_url=f"http://127.0.0.1:{app.port}")
        phone.set_extra_http_headers({"User-Agent": "Mozilla/5.0 (iPhone) Mobile Safari"})
        phone.goto("/login")
        phone.get_by_label("E-mail").fill("you@example.com")
        phone.get_by_label("Password").fill("correct horse battery")
        phone.get_by_role("button", name="Log in").click()
        page.goto("/account")
        page.get_by_label("Current password").fill("not the password")
        page.get_by_label("New password").fill("short")
        page.get_by_role("button", name="Change password").click()
        page.screenshot(path=OUT / "account.png", full_page=True)
        browser.close()
        app.stop()


if __name__ == "__main__":
    main()
