"""Driving the app in headless Chromium (Playwright): the launch, and steps every user takes."""

import shutil

from playwright.sync_api import Page, expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's, see the README
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"


def sign_up(page: Page, email: str) -> None:
    page.goto("/signup")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url("/contacts")


def add_inline(page: Page, name: str, description: str = "") -> None:
    form = page.locator("#new-contact")
    if not form.is_visible():
        page.get_by_text("Add a contact here").click()
    form.get_by_label("Name").fill(name)
    form.get_by_label("Description").fill(description)
    form.get_by_role("button", name="Add contact").click()
