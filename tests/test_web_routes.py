"""Every route over HTTP: log-in required, CSRF enforced, accounts isolated, errors inline.

One app and one database serve the module: each test signs up accounts of its own and counts
events as a difference, so none depends on starting from an empty database.
"""

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from crm.web.tokens import tokens_for
from tests.web_support import (
    add_contact,
    another_browser,
    app_client,
    csrf_of,
    event_count,
    sign_up,
)

_accounts = itertools.count()


@pytest.fixture(scope="module")
def site(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(module_db_url, tmp_path_factory.mktemp("crm-data")) as first:
        yield first


@pytest.fixture
def db_url(module_db_url: str) -> str:
    """The database of the module's app (not a fresh one per test, as in conftest)."""
    return module_db_url


@pytest.fixture
def client(site: TestClient) -> TestClient:
    """A browser that has not signed in."""
    return another_browser(site)


@pytest.fixture
def two_accounts(site: TestClient) -> tuple[TestClient, TestClient]:
    """Two browsers, each signed in to a new account of its own."""
    alice, bob = another_browser(site), another_browser(site)
    n = next(_accounts)
    sign_up(alice, f"alice-{n}@example.com")
    sign_up(bob, f"bob-{n}@example.com")
    return alice, bob


PAGES = [
    "/contacts",
    "/contacts/new",
    "/interactions",
    "/contacts/00000000-0000-0000-0000-000000000000",
    "/contacts/00000000-0000-0000-0000-000000000000/edit",
]
POSTS = [
    "/contacts",
    "/contacts/00000000-0000-0000-0000-000000000000",
    "/contacts/00000000-0000-0000-0000-000000000000/delete",
    "/contacts/00000000-0000-0000-0000-000000000000/interactions",
    "/contacts/00000000-0000-0000-0000-000000000000/next_meeting",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_require_a_login(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", POSTS)
def test_writes_require_a_login(client: TestClient, db_url: str, path: str) -> None:
    before = event_count(db_url)
    response = client.post(path, data={"csrf_token": csrf_of(client, "/login"), "name": "x"})
    assert response.status_code == 303 and "/login" in response.headers["location"]
    assert event_count(db_url) == before


def test_the_stream_requires_a_login(client: TestClient) -> None:
    assert client.get("/stream").status_code == 401


@pytest.mark.parametrize("path", [*POSTS, "/logout"])
def test_a_post_without_the_csrf_token_is_refused(two_accounts, db_url: str, path: str) -> None:
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")
    path = path.replace("00000000-0000-0000-0000-000000000000", contact)
    before = event_count(db_url)
    for data in ({"name": "Eve"}, {"name": "Eve", "csrf_token": "forged"}):
        response = alice.post(
            path,
            data={
                **data,
                "interacted_on": "2026-01-02",
                "interaction_notes": "x",
                "meeting_on": "2026-01-02",
                "meeting_notes": "x",
            },
        )
        assert response.status_code == 403
        assert "did not come from crm" in response.text
    assert event_count(db_url) == before


def test_signup_and_login_forms_are_csrf_protected(client: TestClient, db_url: str) -> None:
    before = event_count(db_url)
    response = client.post(
        "/signup", data={"email": "a@example.com", "password": "12345678", "time_zone": "UTC"}
    )
    assert response.status_code == 403
    assert event_count(db_url) == before


def test_an_htmx_request_may_send_the_token_as_a_header(two_accounts) -> None:
    alice, _ = two_accounts
    token = csrf_of(alice, "/contacts")
    response = alice.post(
        "/contacts",
        data={"name": "Ada", "description": "", "contact_method": "", "form_id": "new-contact"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert response.status_code == 200
    assert "Adding <strong>Ada</strong>" in response.text


ATTEMPTS = [
    ("GET", "/contacts/{id}", {}),
    ("GET", "/contacts/{id}/edit", {}),
    ("GET", "/contacts/{id}?section=details", {}),
    ("POST", "/contacts/{id}", {"name": "Mallory", "description": "", "contact_method": ""}),
    ("POST", "/contacts/{id}/delete", {}),
    (
        "POST",
        "/contacts/{id}/interactions",
        {"interacted_on": "2026-01-02", "interaction_notes": "hi"},
    ),
    ("POST", "/contacts/{id}/next_meeting", {"meeting_on": "2026-01-02", "meeting_notes": "hi"}),
]


@pytest.mark.parametrize(("method", "path", "data"), ATTEMPTS)
def test_another_accounts_contact_is_not_found_and_unchanged(
    two_accounts, db_url: str, method: str, path: str, data: dict[str, str]
) -> None:
    alice, bob = two_accounts
    contact = add_contact(alice, "Ada", description="alice's friend")
    before = event_count(db_url)
    url = path.format(id=contact)
    if method == "GET":
        response = bob.get(url)
    else:
        response = bob.post(url, data={**data, "csrf_token": csrf_of(bob, "/contacts")})
    if "section=" in url:
        assert "alice's friend" not in response.text
    else:
        assert response.status_code == 404
    assert "alice&#39;s friend" not in response.text
    assert event_count(db_url) == before
    assert "alice&#39;s friend" in alice.get(f"/contacts/{contact}").text


def test_lists_show_only_the_accounts_own_contacts(two_accounts) -> None:
    alice, bob = two_accounts
    add_contact(alice, "Ada")
    add_contact(bob, "Brian")
    assert "Ada" in alice.get("/contacts").text
    assert "Brian" not in alice.get("/contacts").text
    assert "Ada" not in bob.get("/contacts").text


def test_creating_a_contact_redirects_to_its_page_showing_it(two_accounts) -> None:
    alice, _ = two_accounts
    contact = add_contact(
        alice, "Ada Lovelace", description="Analyst", contact_method="ada@example.com"
    )
    page = alice.get(f"/contacts/{contact}")
    assert page.status_code == 200
    assert "Ada Lovelace" in page.text and "ada@example.com" in page.text
    assert "Added Ada Lovelace." in page.text  # the flash message


def test_a_name_clash_is_an_error_on_the_name_field(two_accounts, db_url: str) -> None:
    alice, bob = two_accounts
    add_contact(alice, "Ada")
    add_contact(bob, "Ada")  # another account may use the same name
    before = event_count(db_url)
    response = alice.post(
        "/contacts",
        data={
            "name": "Ada",
            "description": "kept",
            "contact_method": "",
            "csrf_token": csrf_of(alice, "/contacts"),
        },
    )
    assert response.status_code == 422
    assert (
        'id="contact-page-name" name="name" type="text" value="Ada" aria-invalid="true"'
        in response.text
    )
    assert "Name is already the name of one of your contacts." in response.text
    assert ">kept</textarea>" in response.text
    assert event_count(db_url) == before


@pytest.mark.parametrize(
    ("path", "data", "field", "message"),
    [
        (
            "/contacts/{id}",
            {"name": "  ", "description": "", "contact_method": ""},
            "name",
            "Name is required.",
        ),
        (
            "/contacts/{id}",
            {"name": "x" * 201, "description": "", "contact_method": ""},
            "name",
            "Name must be at most 200 characters.",
        ),
        (
            "/contacts/{id}/interactions",
            {"interacted_on": "26/11/2026", "interaction_notes": "hi"},
            "interacted_on",
            "Date must be a date written YYYY-MM-DD.",
        ),
        (
            "/contacts/{id}/interactions",
            {"interacted_on": "2026-11-26", "interaction_notes": ""},
            "interaction_notes",
            "What happened is required.",
        ),
        (
            "/contacts/{id}/next_meeting",
            {"meeting_on": "2026-02-30", "meeting_notes": "hi"},
            "meeting_on",
            "Meeting date must be a date written YYYY-MM-DD.",
        ),
        (
            "/contacts/{id}/next_meeting",
            {"meeting_on": "2026-02-03", "meeting_notes": "a\x00b"},
            "meeting_notes",
            "Notes must not contain NUL characters.",
        ),
    ],
)
def test_invalid_input_is_a_422_naming_the_field(
    two_accounts, db_url: str, path: str, data: dict[str, str], field: str, message: str
) -> None:
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")
    before = event_count(db_url)
    response = alice.post(
        path.format(id=contact), data={**data, "csrf_token": csrf_of(alice, "/contacts")}
    )
    assert response.status_code == 422
    assert message in response.text
    assert f'name="{field}"' in response.text and 'aria-invalid="true"' in response.text
    assert event_count(db_url) == before


def test_a_second_interaction_on_the_same_day_needs_the_replace_choice(two_accounts) -> None:
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")
    token = csrf_of(alice, "/contacts")
    first = {"interacted_on": "2026-11-20", "interaction_notes": "coffee", "csrf_token": token}
    assert alice.post(f"/contacts/{contact}/interactions", data=first).status_code == 303
    again = {**first, "interaction_notes": "lunch"}
    refused = alice.post(f"/contacts/{contact}/interactions", data=again)
    assert refused.status_code == 422 and "Replace that day" in refused.text
    replaced = alice.post(f"/contacts/{contact}/interactions", data={**again, "replace": "yes"})
    assert replaced.status_code == 303
    page = alice.get(f"/contacts/{contact}").text
    assert "lunch" in page and "coffee" not in page


def test_edit_delete_and_notes_through_plain_posts(two_accounts) -> None:
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")
    token = csrf_of(alice, "/contacts")
    edited = alice.post(
        f"/contacts/{contact}",
        data={
            "name": "Ada King",
            "description": "Countess",
            "contact_method": "",
            "csrf_token": token,
        },
    )
    assert edited.status_code == 303 and edited.headers["location"] == f"/contacts/{contact}"
    notes = alice.post(
        f"/contacts/{contact}/next_meeting",
        data={
            "meeting_on": "2026-12-01",
            "meeting_notes": "**Ask** <script>alert(1)</script>",
            "csrf_token": token,
        },
    )
    assert notes.status_code == 303
    page = alice.get(f"/contacts/{contact}").text
    assert "Ada King" in page and "Countess" in page
    assert "<strong>Ask</strong>" in page and "<script>alert" not in page
    deleted = alice.post(f"/contacts/{contact}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/contacts"
    assert "Ada King" not in alice.get("/contacts").text
    assert alice.get(f"/contacts/{contact}").status_code == 404


def test_signup_errors_and_login(client: TestClient) -> None:
    token = csrf_of(client, "/signup")
    bad = client.post(
        "/signup",
        data={
            "email": "nope",
            "password": "short",
            "time_zone": "Mars/Olympus",
            "csrf_token": token,
        },
    )
    assert bad.status_code == 422
    for message in (
        "E-mail must be an e-mail address",
        "Password must be at least 8",
        "Time zone must be a time zone from the list",
    ):
        assert message in bad.text
    assert 'value="nope"' in bad.text
    sign_up(client, "Grace@Example.com")
    token = csrf_of(client, "/contacts")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/contacts").status_code == 303
    taken = client.post(
        "/signup",
        data={
            "email": "grace@example.com",
            "password": "12345678",
            "time_zone": "UTC",
            "csrf_token": csrf_of(client),
        },
    )
    assert taken.status_code == 422 and "E-mail already belongs to an account." in taken.text
    token = csrf_of(client, "/login")
    wrong = client.post(
        "/login", data={"email": "grace@example.com", "password": "nope nope", "csrf_token": token}
    )
    assert wrong.status_code == 422 and "does not match" in wrong.text
    right = client.post(
        "/login?next=/interactions",
        data={"email": "GRACE@example.com", "password": "correct horse", "csrf_token": token},
    )
    assert right.status_code == 303 and right.headers["location"] == "/interactions"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_the_contact_list_sorts_searches_and_paginates(two_accounts) -> None:
    alice, _ = two_accounts
    token = csrf_of(alice, "/contacts")
    for n in range(55):
        assert (
            alice.post(
                "/contacts",
                data={
                    "name": f"Person {n:02d}",
                    "description": "",
                    "contact_method": "",
                    "csrf_token": token,
                },
            ).status_code
            == 303
        )
    first = alice.get("/contacts?sort=name&dir=asc").text
    assert "Person 00" in first and "Person 55" not in first and "Page 1 of 2" in first
    second = alice.get("/contacts?sort=name&dir=asc&page=2").text
    assert "Person 54" in second and "Person 00" not in second
    descending = alice.get("/contacts?sort=name&dir=desc").text
    assert descending.index("Person 54") < descending.index("Person 40")
    found = alice.get("/contacts?q=person 1").text
    assert "10 contacts" in found and "Person 13" in found and "Person 23" not in found
    assert alice.get("/contacts?sort=evil;drop&dir=sideways&page=-3").status_code == 200


def test_all_interactions_of_the_account_link_to_their_contacts(two_accounts) -> None:
    alice, bob = two_accounts
    token = csrf_of(alice, "/contacts")
    for name, day in (("Ada", "2026-01-05"), ("Brian", "2026-03-01")):
        contact = add_contact(alice, name)
        alice.post(
            f"/contacts/{contact}/interactions",
            data={"interacted_on": day, "interaction_notes": f"met {name}", "csrf_token": token},
        )
    newest_first = alice.get("/interactions").text
    assert newest_first.index("met Brian") < newest_first.index("met Ada")
    by_contact = alice.get("/interactions?sort=contact&dir=asc").text
    assert by_contact.index("met Ada") < by_contact.index("met Brian")
    assert f'href="/contacts/{contact}"' in newest_first
    assert "met Ada" not in bob.get("/interactions").text


def test_a_fragment_asked_for_past_a_position_not_yet_reached_answers_204(two_accounts) -> None:
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")
    tokens = tokens_for(alice.app.state.services.settings)  # type: ignore[attr-defined]
    later = tokens.seal(999999)  # pages are given positions sealed (crm/web/tokens.py)
    response = alice.get(f"/contacts/{contact}?section=details&after={later}")
    assert response.status_code == 204
    ready = alice.get(f"/contacts/{contact}?section=details&after={tokens.seal(1)}")
    assert ready.status_code == 200 and 'id="details"' in ready.text


def test_a_stalled_projector_is_reported_plainly_not_waited_for_forever(
    two_accounts, db_url: str
) -> None:
    import time

    import psycopg

    alice, _ = two_accounts
    token = csrf_of(alice, "/contacts")
    with psycopg.connect(db_url) as blocker:
        # hold the contacts projection's position lock: its projector cannot apply anything
        blocker.execute("SELECT position FROM projections WHERE name = 'contacts' FOR UPDATE")
        started = time.monotonic()
        response = alice.post(
            "/contacts",
            data={"name": "Ada", "description": "", "contact_method": "", "csrf_token": token},
        )
        waited = time.monotonic() - started
        assert response.status_code == 303
        assert response.headers["location"] == "/contacts"  # the contact's page cannot show it
        listing = alice.get("/contacts")
        assert "Added Ada. Saved. The page will show it when processing resumes." in listing.text
        assert "No contacts yet" in listing.text
        assert 1.5 < waited < 5
        blocker.rollback()
    add_contact(alice, "Brian")
    assert "Ada" in alice.get("/contacts").text


def test_htmx_may_use_put_patch_and_delete_on_the_same_paths(two_accounts) -> None:
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")
    token = csrf_of(alice, "/contacts")
    headers = {"X-CSRF-Token": token}
    fields = {"description": "", "contact_method": ""}
    patched = alice.patch(f"/contacts/{contact}", data={"name": "Ada P", **fields}, headers=headers)
    assert patched.status_code == 303
    put = alice.put(f"/contacts/{contact}", data={"name": "Ada Q", **fields}, headers=headers)
    assert put.status_code == 303
    notes = alice.put(
        f"/contacts/{contact}/next_meeting",
        headers=headers,
        data={"meeting_on": "2026-12-01", "meeting_notes": "hi"},
    )
    assert notes.status_code == 303
    assert "Ada Q" in alice.get(f"/contacts/{contact}").text
    deleted = alice.delete(f"/contacts/{contact}", headers=headers)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/contacts"
    assert alice.get(f"/contacts/{contact}").status_code == 404


def test_health_reports_the_database_and_each_projection(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["database"] == "ok"
    assert set(body["projector"]["projections"]) == {
        "accounts",
        "contacts",
        "interactions",
        "meeting_notes_emails",
    }
    assert all(p["lag"] >= 0 for p in body["projector"]["projections"].values())


def test_an_unknown_method_or_page_is_a_clear_error_not_a_500(two_accounts) -> None:
    alice, _ = two_accounts
    assert alice.get("/nowhere").status_code == 404
    assert alice.post("/interactions", data={}).status_code == 405


def test_the_session_cookie_is_https_only_when_configured(db_url: str, tmp_path: Path) -> None:
    secure = {"CRM_COOKIE_SECURE": "true"}
    with app_client(db_url, tmp_path, secure, base_url="https://127.0.0.1") as client:
        response = sign_up(client, "s@example.com")
    assert "secure" in response.headers["set-cookie"].lower()


def test_line_breaks_count_once_whether_a_browser_sends_crlf_or_lf(two_accounts) -> None:
    """A plain form post sends a textarea's line breaks as CRLF (htmx sends LF): the 2,000
    characters the browser let through are 2,000 here too, and stored the same way."""
    alice, _ = two_accounts
    contact = add_contact(alice, "Ada")
    description = "\r\n".join(["d" * 399] * 5)  # 1,999 characters with LF, 2,003 with CRLF
    form = {"name": "Ada", "description": description, "contact_method": ""}
    form["csrf_token"] = csrf_of(alice, f"/contacts/{contact}")
    assert alice.post(f"/contacts/{contact}", data=form).status_code == 303
    assert (
        "\r" not in alice.get(f"/contacts/{contact}").text.split("<dt>Description</dt>")[1][:2100]
    )


def test_a_search_cannot_carry_text_direction_controls_into_the_page(two_accounts) -> None:
    alice, _ = two_accounts
    page = alice.get("/contacts?tag=%E2%80%AEylimaf&q=%E2%80%AEx").text
    assert "\u202e" not in page
    assert "tagged “ylimaf”" in page


def test_a_form_posted_after_the_session_ended_leads_back_to_its_page(client) -> None:
    contact = "00000000-0000-0000-0000-000000000001"
    referer = f"http://127.0.0.1/contacts/{contact}"
    answer = client.post(
        f"/contacts/{contact}/tags", data={"tag": "x"}, headers={"referer": referer}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next=/contacts/{contact}"
    elsewhere = client.post("/contacts", headers={"referer": "https://evil.example//x"})
    assert elsewhere.headers["location"] == "/login?next=/contacts"
