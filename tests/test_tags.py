"""Tags on contacts: added and removed on a contact's page, shown in the list, filtering it."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.testclient import TestClient

from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL
from harness.browser import add_inline, new_context, open_contact, sign_up
from tests.web_support import add_contact, another_browser, app_client, csrf_of, event_count
from tests.web_support import sign_up as sign_up_client

HTMX = {"HX-Request": "true"}


def tag(client: TestClient, contact: str, name: str, **headers: str):  # type: ignore[no-untyped-def]
    form = {"csrf_token": csrf_of(client, f"/contacts/{contact}"), "tag": name}
    return client.post(f"/contacts/{contact}/tags", data=form, headers=headers)


def untag(client: TestClient, contact: str, name: str):  # type: ignore[no-untyped-def]
    form = {"csrf_token": csrf_of(client, f"/contacts/{contact}"), "tag": name}
    return client.post(f"/contacts/{contact}/tags/delete", data=form)


def names_listed(client: TestClient, query: str) -> list[str]:
    page = client.get(f"/contacts?{query}").text
    return [name for name in ("Ada", "Grace", "Alan") if f">{name}</a>" in page]


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path) as client:
        sign_up_client(client, "ada@example.com")
        yield client


def test_a_tag_is_added_with_a_303_and_shown_once_however_often_it_is_added(client) -> None:
    ada = add_contact(client, "Ada")
    answer = tag(client, ada, "family")
    assert (answer.status_code, answer.headers["location"]) == (303, f"/contacts/{ada}")
    tag(client, ada, "family")
    page = client.get(f"/contacts/{ada}").text
    assert page.count('href="/contacts?tag=family"') == 1


def test_htmx_gets_the_details_with_the_tag_pending(client) -> None:
    ada = add_contact(client, "Ada")
    answer = tag(client, ada, "met at PyCon", **HTMX)
    assert answer.status_code == 200
    assert 'id="details"' in answer.text and "met at PyCon" in answer.text
    assert "after=" in answer.text  # swapped for the projected details once they show it


def test_the_list_filters_by_tag_combined_with_search_and_sort(client) -> None:
    ada, grace, alan = (add_contact(client, name) for name in ("Ada", "Grace", "Alan"))
    for contact in (ada, alan):
        tag(client, contact, "math")
    tag(client, grace, "navy")
    assert names_listed(client, "tag=math") == ["Ada", "Alan"]
    assert names_listed(client, "tag=math&q=al") == ["Alan"]
    assert names_listed(client, "tag=navy&q=al") == []
    page = client.get("/contacts?tag=math&sort=name&dir=desc").text
    assert page.index(">Alan</a>") < page.index(">Ada</a>")
    assert "tag=math" in page.split('rel="next"')[0]  # the list's links keep the filter


def test_removing_a_tag_takes_it_off_the_page_and_out_of_the_filter(client) -> None:
    ada = add_contact(client, "Ada")
    tag(client, ada, "family")
    assert untag(client, ada, "family").status_code == 303
    assert names_listed(client, "tag=family") == []
    assert 'href="/contacts?tag=family"' not in client.get(f"/contacts/{ada}").text


def test_tags_survive_a_rename(client) -> None:
    ada = add_contact(client, "Ada")
    tag(client, ada, "family")
    form = {"csrf_token": csrf_of(client, f"/contacts/{ada}"), "name": "Ada Lovelace"}
    client.post(f"/contacts/{ada}", data={**form, "description": "", "contact_method": ""})
    assert names_listed(client, "tag=family") == []  # the list shows "Ada Lovelace"
    assert ">Ada Lovelace</a>" in client.get("/contacts?tag=family").text


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "Tag is required"),
        ("x" * 51, "must be at most 50 characters"),
        ("two\nlines", "must be on one line"),
    ],
    ids=["blank", "too long", "two lines"],
)
def test_a_bad_tag_is_refused_beside_the_field(
    client, db_url: str, value: str, problem: str
) -> None:
    ada = add_contact(client, "Ada")
    before = event_count(db_url)
    answer = tag(client, ada, value)
    assert answer.status_code == 422
    assert problem in answer.text
    assert event_count(db_url) == before


def test_another_accounts_contact_cannot_be_tagged_or_seen_by_tag(client, db_url: str) -> None:
    ada = add_contact(client, "Ada")
    tag(client, ada, "secret")
    mallory = another_browser(client)
    sign_up_client(mallory, "mallory@example.com")
    before = event_count(db_url)
    form = {"csrf_token": csrf_of(mallory, "/contacts"), "tag": "mine"}
    assert mallory.post(f"/contacts/{ada}/tags", data=form).status_code == 404
    assert mallory.post(f"/contacts/{ada}/tags/delete", data=form).status_code == 404
    assert event_count(db_url) == before
    assert "Ada" not in mallory.get("/contacts?tag=secret").text
    assert "secret" not in mallory.get("/tags").text


def test_suggestions_are_the_accounts_tags(client) -> None:
    ada, grace = add_contact(client, "Ada"), add_contact(client, "Grace")
    tag(client, ada, "math")
    tag(client, grace, "navy")
    assert client.get("/tags").text.count("<option") == 2


def test_a_contact_has_at_most_50_tags(client) -> None:
    ada = add_contact(client, "Ada")
    for n in range(50):
        assert tag(client, ada, f"t{n}").status_code == 303
    refused = tag(client, ada, "one more")
    assert refused.status_code == 422 and "at most 50 tags" in refused.text
    assert tag(client, ada, "t7").status_code == 303  # one it has is no new tag


async def test_a_full_replay_gives_the_same_pages(client, db_url: str) -> None:
    ada, grace = add_contact(client, "Ada"), add_contact(client, "Grace")
    for contact, name in ((ada, "math"), (ada, "family"), (grace, "navy")):
        tag(client, contact, name)
    untag(client, ada, "family")
    pages = ("/contacts", "/contacts?tag=math", f"/contacts/{ada}", f"/contacts/{grace}")
    client.get("/contacts")  # shows the last flash message, which the pages would otherwise
    before = {path: client.get(path).text for path in pages}
    client.portal.call(rebuild, db_url, client.app.state.services.types, ALL)
    after = {path: client.get(path).text for path in pages}
    for path in pages:
        assert after[path] == before[path], path


def test_tag_filter_and_live_update_in_the_browser(browser: Browser, base_url: str) -> None:
    context = new_context(browser, base_url)
    page = context.new_page()
    sign_up(page, "alice@example.com")
    for name in ("Dorothy Vaughan", "Katherine Johnson", "Mary Jackson"):
        add_inline(page, name)
        expect(page.locator("#contact-list")).to_contain_text(name)
    open_contact(page, "Dorothy Vaughan")
    add_tag(page, "NASA")
    expect(page.locator("#details .tags")).to_contain_text("NASA")
    # a second tab shows the list filtered by the tag, and updates live
    second = context.new_page()
    second.goto("/contacts")
    second.locator("#contact-list").get_by_role("link", name="NASA").click()
    names = second.locator("#contact-list tbody th > a")
    expect(names).to_have_text(["Dorothy Vaughan"])
    second.wait_for_function("document.querySelector('[sse-connect]') !== null")
    page.goto("/contacts")
    open_contact(page, "Katherine Johnson")
    page.get_by_label("Tag", exact=True).fill("NA")
    expect(page.locator("#tag-suggestions option[value='NASA']")).to_have_count(1)
    add_tag(page, "NASA")
    expect(names).to_have_text(["Dorothy Vaughan", "Katherine Johnson"])  # no reload
    # combined with search
    second.get_by_label("Search by name").fill("kath")
    second.get_by_role("button", name="Search").click()
    expect(names).to_have_text(["Katherine Johnson"])
    # removed on the contact's page: gone from the filtered list
    page.get_by_role("button", name="Remove the tag NASA").click()
    expect(page.locator("#details .tags")).not_to_contain_text("NASA")
    expect(second.locator("#contact-list")).to_contain_text("No contact tagged")
    context.close()


def add_tag(page: Page, name: str) -> None:
    page.get_by_label("Tag", exact=True).fill(name)
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_label("Tag", exact=True)).to_have_value("")
