"""Driving the app in headless Chromium (Playwright): the launch, and steps every user takes."""

import shutil

from playwright.sync_api import Browser, BrowserContext, Page, expect

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


def new_context(browser: Browser, base_url: str, **options: object) -> BrowserContext:
    context = browser.new_context(base_url=base_url, **options)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    return context


def open_contact(page: Page, name: str) -> None:
    page.locator("#contact-list").get_by_role("link", name=name).click()
    expect(page.locator("#details h1")).to_contain_text(name)
