"""Malformed input is a 4xx or a documented fallback, never a 500, and it writes nothing.

Every query parameter, header and form field the app reads, sent the way a hostile client
would: Unicode digits, 5,000 digits, NUL, line breaks, non-ASCII tokens, fields as file parts.
One account, one contact and one interaction serve the whole module (an app per request is slow):
each hostile request is checked to append no event and to leave the account signed in.
"""

import asyncio
import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from crm.web import params
from crm.web.forms import Form
from crm.web.stream import _last_seen
from crm.web.tokens import Tokens
from tests.web_support import add_contact, app_client, csrf_of, event_count, sign_up

NOBODY = "00000000-0000-0000-0000-000000000000"
# What str.isdigit() accepts and int() refuses, what int() refuses by length, and plain junk.
MALFORMED_NUMBERS = [
    "²",
    "\u0661\u0662",  # ARABIC-INDIC DIGITs ONE TWO
    "\uff11",  # FULLWIDTH DIGIT ONE
    "9" * 5000,
    "9" * 19,
    "-1",
    "+1",
    " 1",
    "1.5",
    "1e3",
    "0x10",
    "\x00",
    "",
]
# Every line break str.splitlines() knows, other controls, and invisible format characters.
NOT_ONE_LINE = [
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
    "\t",
    "\x01",
    "\x1b",
    "\x7f",
    "\x9b",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\U000e0041",
]

# Every route that writes, with a form it would accept if its CSRF token were right.
WRITES = [
    ("POST", "/contacts", {"name": "Eve", "description": "", "contact_method": ""}),
    ("POST", "/contacts/{id}", {"name": "Eve", "description": "", "contact_method": ""}),
    ("PUT", "/contacts/{id}", {"name": "Eve", "description": "", "contact_method": ""}),
    ("PATCH", "/contacts/{id}", {"name": "Eve", "description": "", "contact_method": ""}),
    ("DELETE", "/contacts/{id}", {}),
    ("POST", "/contacts/{id}/delete", {}),
    (
        "POST",
        "/contacts/{id}/interactions",
        {"interacted_on": "2026-11-21", "interaction_notes": "x"},
    ),
    ("POST", "/contacts/{id}/next_meeting", {"meeting_on": "2026-12-01", "meeting_notes": "x"}),
    ("PUT", "/contacts/{id}/next_meeting", {"meeting_on": "2026-12-01", "meeting_notes": "x"}),
    ("POST", "/logout", {}),
    ("POST", "/login", {"email": "alice@example.com", "password": "correct horse"}),
    (
        "POST",
        "/signup",
        {"email": "eve@example.com", "password": "correct horse", "time_zone": "UTC"},
    ),
]


def short(value: object) -> str:
    """A test id: a long value goes by its length, so that ids stay readable."""
    text = repr(value)
    return text if len(text) <= 24 else f"{len(text)}-chars"


def with_query(path: str, **values: str) -> str:
    """path with values added to its query (httpx's params= would replace the query)."""
    return f"{path}{'&' if '?' in path else '?'}{urlencode(values)}"


@dataclass(frozen=True)
class Account:
    client: TestClient
    contact: str
    db_url: str

    def token(self) -> str:
        return csrf_of(self.client, "/contacts")


@pytest.fixture(scope="module")
def alice(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    with app_client(module_db_url, tmp_path_factory.mktemp("crm-data")) as client:
        sign_up(client, "alice@example.com")
        contact = add_contact(client, "Ada")
        met = {"interacted_on": "2026-11-20", "interaction_notes": "met Ada"}
        token = csrf_of(client, "/contacts")
        recorded = client.post(
            f"/contacts/{contact}/interactions", data={**met, "csrf_token": token}
        )
        assert recorded.status_code == 303
        yield Account(client, contact, module_db_url)


@contextmanager
def nothing_written(account: Account) -> Iterator[None]:
    before = event_count(account.db_url)
    yield
    assert event_count(account.db_url) == before
    assert account.client.get("/contacts").status_code == 200  # still signed in


# ---- query parameters -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/contacts", "/interactions", "/interactions?section=list"])
@pytest.mark.parametrize("page", MALFORMED_NUMBERS, ids=short)
def test_a_malformed_page_number_shows_the_first_page(alice: Account, path: str, page: str) -> None:
    response = alice.client.get(with_query(path, page=page))
    assert response.status_code == 200
    assert "Ada" in response.text  # the only contact, on page 1


@pytest.mark.parametrize(
    ("q", "finds_ada"),
    [
        ("\x00", True),  # nothing left to search for: every contact
        ("Ada\x00", True),
        ("\x00Ada", True),
        ("A\r\nda", False),  # controls become spaces, not nothing
        ("\x1b[2J", False),
        ("%", False),  # LIKE's wildcards are searched for as themselves
        ("\\", False),
        ("x" * 10_000, False),
    ],
    ids=short,
)
def test_a_search_with_control_characters_is_cleaned_never_a_database_error(
    alice: Account, q: str, finds_ada: bool
) -> None:
    response = alice.client.get(with_query("/contacts", q=q))
    assert response.status_code == 200
    assert (f'href="/contacts/{alice.contact}"' in response.text) == finds_ada


def test_a_search_that_is_not_utf_8_is_answered(alice: Account) -> None:
    assert alice.client.get("/contacts?q=%ED%A0%80%FF").status_code == 200


@pytest.mark.parametrize("path", ["/contacts", "/interactions"])
@pytest.mark.parametrize("name", ["sort", "dir", "section"])
@pytest.mark.parametrize("value", ["\x00", "²", "name; DROP TABLE events", "x" * 10_000], ids=short)
def test_an_unknown_sort_direction_or_section_falls_back_to_the_default(
    alice: Account, path: str, name: str, value: str
) -> None:
    response = alice.client.get(with_query(path, **{name: value}))
    assert response.status_code == 200
    assert "Ada" in response.text


FRAGMENTS = [
    "/contacts/{id}?section=details",
    "/contacts/{id}?section=interactions",
    "/contacts/{id}?section=notes",
    "/contacts/{id}/added",
    "/interactions?section=list",
]


@pytest.mark.parametrize("path", FRAGMENTS)
@pytest.mark.parametrize("after", MALFORMED_NUMBERS, ids=short)
def test_a_malformed_after_position_is_treated_as_absent(
    alice: Account, path: str, after: str
) -> None:
    response = alice.client.get(with_query(path.format(id=alice.contact), after=after))
    assert response.status_code == 200  # answered as it is now, not "still pending" (204)


@pytest.mark.parametrize("page", ["", "/edit", "?section=details", "?section=notes"])
@pytest.mark.parametrize("contact", ["%00", "%C2%B2", "9" * 5000, "%E2%80%A8", NOBODY], ids=short)
def test_a_malformed_contact_id_in_a_page_url_is_not_found(
    alice: Account, contact: str, page: str
) -> None:
    response = alice.client.get(f"/contacts/{contact}{page}")
    if contact == NOBODY and page.startswith("?section="):  # well formed: a section goes quiet
        assert response.status_code == 200 and "Ada" not in response.text
    else:
        assert response.status_code == 404


@pytest.mark.parametrize(("method", "path", "data"), [w for w in WRITES if "{id}" in w[1]])
@pytest.mark.parametrize("contact", ["%00", "%C2%B2", "9" * 5000, "%E2%80%A8", NOBODY], ids=short)
def test_a_write_to_a_malformed_contact_id_is_not_found(
    alice: Account, method: str, path: str, data: dict[str, str], contact: str
) -> None:
    with nothing_written(alice):
        response = alice.client.request(
            method, path.format(id=contact), data={**data, "csrf_token": alice.token()}
        )
        assert response.status_code == 404


# The contact's id written as uuid.UUID reads it and PostgreSQL does not, or as neither writes
# it: only 8-4-4-4-12 names a contact (in either case), anything else is not found.
NON_CANONICAL_IDS = {
    "urn": lambda contact: f"urn:uuid:{contact}",
    "uuid prefix": lambda contact: f"uuid:{contact}",
    "braces": lambda contact: f"%7B{contact}%7D",
    "trailing dash": lambda contact: f"{contact}-",
    "dashes everywhere": lambda contact: "-".join(contact.replace("-", "")),
    "no dashes": lambda contact: contact.replace("-", ""),
    "plus sign": lambda contact: f"%2B{contact[1:]}",
    "fullwidth": lambda contact: contact.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}),
}
CONTACT_PAGES = [
    "",
    "/edit",
    "/added",
    "?section=details",
    "?section=interactions",
    "?section=notes",
]


@pytest.mark.parametrize("page", CONTACT_PAGES)
@pytest.mark.parametrize("written", NON_CANONICAL_IDS.values(), ids=NON_CANONICAL_IDS.keys())
def test_a_contact_id_written_another_way_is_not_found(
    alice: Account, written: Any, page: str
) -> None:
    response = alice.client.get(f"/contacts/{written(alice.contact)}{page}")
    assert response.status_code == 404


@pytest.mark.parametrize(("method", "path", "data"), [w for w in WRITES if "{id}" in w[1]])
@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
@pytest.mark.parametrize("written", NON_CANONICAL_IDS.values(), ids=NON_CANONICAL_IDS.keys())
def test_a_write_to_a_contact_id_written_another_way_is_not_found_and_saves_nothing(
    alice: Account, method: str, path: str, data: dict[str, str], htmx: bool, written: Any
) -> None:
    with nothing_written(alice):
        response = alice.client.request(
            method,
            path.format(id=written(alice.contact)),
            data={**data, "csrf_token": alice.token()},
            headers={"HX-Request": "true"} if htmx else {},
        )
        assert response.status_code == 404


@pytest.mark.parametrize("page", CONTACT_PAGES)
def test_a_contact_id_in_capitals_is_the_same_contact(alice: Account, page: str) -> None:
    response = alice.client.get(f"/contacts/{alice.contact.upper()}{page}")
    assert response.status_code == 200


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_a_write_to_a_contact_id_in_capitals_answers_for_the_contact(
    alice: Account, htmx: bool
) -> None:
    day = "2026-10-02" if htmx else "2026-10-01"
    response = alice.client.post(
        f"/contacts/{alice.contact.upper()}/interactions",
        data={"interacted_on": day, "interaction_notes": "met", "csrf_token": alice.token()},
        headers={"HX-Request": "true"} if htmx else {},
    )
    if htmx:
        assert response.status_code == 200 and day in response.text
    else:
        assert response.status_code == 303
        assert response.headers["location"] == f"/contacts/{alice.contact}"


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https://evil.example"])
@pytest.mark.parametrize("suffix", ["", "\x00", "\r\nSet-Cookie: x=1", "\u2028"])
def test_a_log_in_page_never_sends_anyone_to_another_site(
    alice: Account, target: str, suffix: str
) -> None:
    response = alice.client.get(with_query("/login", next=target + suffix))
    assert response.status_code == 200
    assert 'action="/login?next=/contacts"' in response.text


def test_a_local_next_page_with_control_characters_falls_back_to_the_contacts() -> None:
    assert params.a_local_path("/contacts?page=2", "/contacts") == "/contacts?page=2"
    assert params.a_local_path("/contacts\r\nLocation: //evil", "/contacts") == "/contacts"
    assert params.a_local_path("/" + "a" * 3000, "/contacts") == "/contacts"


# ---- /stream: ?since= and Last-Event-ID --------------------------------------------------


def _request(query: bytes, headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"type": "http", "query_string": query, "headers": headers})


TOKENS = Tokens("a secret key")  # /stream takes only tokens of positions (crm/web/tokens.py)


@pytest.mark.parametrize("raw", [n.encode() for n in MALFORMED_NUMBERS] + [b"\xff\xfe"], ids=short)
def test_a_malformed_last_event_id_or_since_means_news_from_now_on(raw: bytes) -> None:
    assert _last_seen(_request(b"since=" + raw.replace(b"\x00", b"%00"), []), TOKENS) is None
    assert _last_seen(_request(b"", [(b"last-event-id", raw)]), TOKENS) is None


def test_a_malformed_last_event_id_leaves_since_to_decide() -> None:
    since = b"since=" + TOKENS.seal(7).encode()
    assert _last_seen(_request(since, [(b"last-event-id", b"\xc2\xb2")]), TOKENS) == 7
    assert _last_seen(_request(since, [(b"last-event-id", b"12")]), TOKENS) == 7
    twelve = TOKENS.seal(12).encode()
    assert _last_seen(_request(since, [(b"last-event-id", twelve)]), TOKENS) == 12


def _stream_status(account: Account, query: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The status /stream starts answering with; then the client hangs up (it never ends)."""
    cookie = "; ".join(f"{name}={value}" for name, value in account.client.cookies.items())
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1"), (b"cookie", cookie.encode()), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def answer() -> int:
        started = asyncio.Event()
        status = 0

        async def receive() -> dict[str, Any]:
            await started.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                started.set()

        async with asyncio.timeout(5):
            await account.client.app(scope, receive, send)
        return status

    return account.client.portal.call(answer)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (b"since=%C2%B2", []),
        (b"since=" + b"9" * 5000, []),
        (b"since=%00", []),
        (b"", [(b"last-event-id", "²".encode())]),
        (b"", [(b"last-event-id", b"9" * 5000)]),
        (b"", [(b"last-event-id", b"\xff")]),
        (b"since=0", []),
    ],
    ids=short,
)
def test_the_stream_answers_any_since_or_last_event_id(
    alice: Account, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    assert _stream_status(alice, query, headers) == 200


# ---- CSRF tokens --------------------------------------------------------------------------

NON_ASCII_TOKENS = ["é", "²", "\u2603" * 43, "\x00", "\U0001f600"]


@pytest.mark.parametrize(("method", "path", "data"), WRITES)
@pytest.mark.parametrize("token", NON_ASCII_TOKENS)
def test_a_non_ascii_csrf_field_is_refused_with_403(
    alice: Account, method: str, path: str, data: dict[str, str], token: str
) -> None:
    with nothing_written(alice):
        response = alice.client.request(
            method, path.format(id=alice.contact), data={**data, "csrf_token": token}
        )
        assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "data"), WRITES)
@pytest.mark.parametrize("token", NON_ASCII_TOKENS)
def test_a_non_ascii_csrf_header_is_refused_with_403(
    alice: Account, method: str, path: str, data: dict[str, str], token: str
) -> None:
    with nothing_written(alice):
        response = alice.client.request(
            method,
            path.format(id=alice.contact),
            data=data,
            headers={"X-CSRF-Token": token.encode(), "HX-Request": "true"},
        )
        assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "data"), WRITES)
def test_a_csrf_token_sent_as_a_file_is_refused_unread(
    alice: Account, method: str, path: str, data: dict[str, str]
) -> None:
    # a multipart body is refused by its Content-Type alone (crm/web/forms.py, posted_form)
    with nothing_written(alice):
        response = alice.client.request(
            method,
            path.format(id=alice.contact),
            data=data,
            files={"csrf_token": ("token.txt", alice.token().encode())},
        )
        # 400 where the route reads a form; 403 where it reads none (the token must come in
        # the X-CSRF-Token header, and is missing): either way nothing is written
        assert response.status_code in (400, 403)


# ---- form fields --------------------------------------------------------------------------

CONTACT = {"name": "Eve", "description": "", "contact_method": ""}
MEETING = {"meeting_on": "2026-12-01", "meeting_notes": "agenda"}
INTERACTION = {"interacted_on": "2026-11-22", "interaction_notes": "lunch"}
LOGIN = {"email": "alice@example.com", "password": "correct horse"}
SIGNUP = {"email": "eve@example.com", "password": "correct horse", "time_zone": "UTC"}
# route, the form's other fields, the field under test, and its label on the page
SINGLE_LINE_FIELDS = [
    ("/contacts", CONTACT, "name", "Name"),
    ("/contacts", CONTACT, "contact_method", "Contact method"),
    ("/contacts/{id}", CONTACT, "name", "Name"),
    ("/contacts/{id}", CONTACT, "contact_method", "Contact method"),
    ("/signup", SIGNUP, "email", "E-mail"),
    ("/signup", SIGNUP, "time_zone", "Time zone"),
    ("/login", LOGIN, "email", "E-mail"),
]
MULTI_LINE_FIELDS = [
    ("/contacts", CONTACT, "description", "Description"),
    ("/contacts/{id}", CONTACT, "description", "Description"),
    ("/contacts/{id}/interactions", INTERACTION, "interaction_notes", "What happened"),
    ("/contacts/{id}/next_meeting", MEETING, "meeting_notes", "Notes"),
]


def _post(
    account: Account, path: str, data: dict[str, str], files: dict[str, Any] | None = None
) -> httpx.Response:
    return account.client.post(
        path.format(id=account.contact), data={**data, "csrf_token": account.token()}, files=files
    )


@pytest.mark.parametrize("char", NOT_ONE_LINE)
def test_a_contact_name_with_a_line_break_or_control_character_is_refused(
    alice: Account, char: str
) -> None:
    with nothing_written(alice):
        response = _post(alice, "/contacts", {**CONTACT, "name": f"Eve{char}Mallory"})
        assert response.status_code == 422
        assert "Name must be on one line, without control characters (found " in response.text
        assert f"U+{ord(char):04X}" in response.text


@pytest.mark.parametrize(("path", "data", "field", "label"), SINGLE_LINE_FIELDS)
@pytest.mark.parametrize("char", ["\n", "\u2028", "\x0b", "\u202e"])
def test_every_single_line_field_refuses_line_breaks_naming_the_field(
    alice: Account, path: str, data: dict[str, str], field: str, label: str, char: str
) -> None:
    with nothing_written(alice):
        value = f"{data.get(field) or 'x'}{char}x"
        response = _post(alice, path, {**data, field: value})
        assert response.status_code == 422
        assert f"{label} must be on one line, without control characters" in response.text


@pytest.mark.parametrize(("path", "data", "field", "label"), MULTI_LINE_FIELDS)
@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1b", "\x85", "\x7f", "\x01"])
def test_notes_refuse_control_characters_other_than_tabs_and_line_breaks(
    alice: Account, path: str, data: dict[str, str], field: str, label: str, char: str
) -> None:
    with nothing_written(alice):
        response = _post(alice, path, {**data, field: f"one{char}two"})
        assert response.status_code == 422
        assert f"{label} must not contain control characters (found " in response.text


# Text direction controls: embeddings, overrides, isolates and their ends
DIRECTION_CONTROLS = [chr(code) for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]]


@pytest.mark.parametrize(("path", "data", "field", "label"), MULTI_LINE_FIELDS)
@pytest.mark.parametrize("char", DIRECTION_CONTROLS, ids=lambda char: f"U+{ord(char):04X}")
def test_notes_refuse_text_direction_controls(
    alice: Account, path: str, data: dict[str, str], field: str, label: str, char: str
) -> None:
    with nothing_written(alice):
        response = _post(alice, path, {**data, field: f"pay {char}0001$ now"})
        assert response.status_code == 422
        assert (
            f"{label} must not contain control characters (found a text direction control,"
            f" U+{ord(char):04X} "
        ) in response.text


# Nothing a reader can see or click: joiners, fillers, a blank Braille pattern, marks alone
INVISIBLE = {
    "zero-width joiner": "\u200d",
    "joiners": "\u200d\u200c\u200d",
    "Hangul filler": "\u3164",
    "halfwidth Hangul filler": "\uffa0",
    "Hangul choseong and jungseong fillers": "\u115f\u1160",
    "Braille blank": "\u2800",
    "combining marks": "\u0301\u0308\u20dd",
    "filler, joiner and mark": "\u3164\u200d\u0301",
}


@pytest.mark.parametrize(("path", "data", "field", "label"), SINGLE_LINE_FIELDS)
@pytest.mark.parametrize("value", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_one_line_field_with_nothing_visible_is_refused(
    alice: Account, path: str, data: dict[str, str], field: str, label: str, value: str
) -> None:
    with nothing_written(alice):
        response = _post(alice, path, {**data, field: value})
        assert response.status_code == 422
        assert f"{label} must contain a visible character: a letter, digit," in response.text


@pytest.mark.parametrize(
    "address",
    [
        "eve@=?utf-8?q?evil.example=0D=0AX-Spam:_1?=",  # decoded in a To header
        "me@evil.example,root,postmaster",  # a list of recipients
        "x<root>@y.example",  # route syntax: mail for root
        "a;b@c.example",
        '"a b"@c.example',
        "a(comment)@c.example",
    ],
)
def test_a_signup_address_that_is_not_one_plain_mailbox_is_refused(
    alice: Account, address: str
) -> None:
    """The address goes into the To header of the morning e-mail, as the one recipient."""
    with nothing_written(alice):
        response = _post(alice, "/signup", {**SIGNUP, "email": address})
        assert response.status_code == 422
        assert "E-mail must be an e-mail address like you@example.com" in response.text


def test_the_list_snippet_of_notes_full_of_markup_characters_is_those_characters(
    alice: Account,
) -> None:
    notes = _post(alice, "/contacts/{id}/next_meeting", {**MEETING, "meeting_notes": "<" * 500})
    assert notes.status_code == 303
    (snippet,) = re.findall(
        r'<span class="snippet">([^<]*)</span>', alice.client.get("/contacts").text
    )
    assert html.unescape(snippet) == "<" * 89 + "\u2026"


@pytest.mark.parametrize(
    ("path", "data", "field", "label"),
    [
        *SINGLE_LINE_FIELDS,
        *MULTI_LINE_FIELDS,
        ("/login", LOGIN, "password", "Password"),
        ("/signup", SIGNUP, "password", "Password"),
        ("/contacts/{id}/interactions", INTERACTION, "interacted_on", "Date"),
    ],
)
def test_a_field_sent_as_a_file_is_refused_before_the_form_is_read(
    alice: Account, path: str, data: dict[str, str], field: str, label: str
) -> None:
    with nothing_written(alice):
        others = {name: value for name, value in data.items() if name != field}
        response = _post(alice, path, others, files={field: ("f.txt", b"Eve", "text/plain")})
        assert response.status_code == 400
        assert "(no files), not multipart/form-data" in response.text


def _in_digits(text: str, zero: int) -> str:
    """text with its ASCII digits written in another script's digits, from zero on."""
    return text.translate({ord("0") + digit: zero + digit for digit in range(10)})


@pytest.mark.parametrize(
    "day",
    [
        _in_digits("2026-11-23", 0xFF10),  # fullwidth
        _in_digits("2026-11-23", 0x0660),  # Arabic-Indic
        "2026-11-23\x00",
        "9" * 5000,
    ],
    ids=short,
)
def test_a_date_in_other_digits_is_refused_as_a_date(alice: Account, day: str) -> None:
    with nothing_written(alice):
        response = _post(
            alice, "/contacts/{id}/interactions", {**INTERACTION, "interacted_on": day}
        )
        assert response.status_code == 422
        assert 'id="interaction-interacted_on-error">Date must ' in response.text


def test_a_multipart_body_without_a_boundary_is_a_400(alice: Account) -> None:
    with nothing_written(alice):
        response = alice.client.post(
            "/contacts",
            content=b"name=Eve",
            headers={"Content-Type": "multipart/form-data", "X-CSRF-Token": alice.token()},
        )
        assert response.status_code == 400


def test_notes_keep_line_breaks_and_tabs_and_names_keep_joiners(alice: Account) -> None:
    """What the checks must not refuse: a textarea's CR LF, tabs, and an emoji's joiners."""
    name = "Ada \U0001f469\u200d\U0001f4bb Lovelace"
    created = _post(
        alice, "/contacts", {**CONTACT, "name": name, "description": "one\r\ntwo\tthree"}
    )
    assert created.status_code == 303
    assert name in alice.client.get(created.headers["location"]).text
    notes = _post(
        alice, "/contacts/{id}/next_meeting", {**MEETING, "meeting_notes": "- a\r\n- b\u2028c"}
    )
    assert notes.status_code == 303


# ---- the helpers themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "X",
        "\u674e",  # a CJK ideograph
        "\u0663",  # ARABIC-INDIC DIGIT THREE
        "!",
        "\u263a",  # a symbol
        "e\u0301",  # a letter and its combining accent
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with a ZWNJ
        "\u3164Ada",  # a filler beside letters
    ],
)
def test_a_name_with_one_visible_character_is_accepted(name: str) -> None:
    form = Form({"name": name})
    form.single_line("name")
    assert form.ok, form.errors


@pytest.mark.parametrize("mark", ["\u200e", "\u200f", "\u061c"])
def test_notes_keep_direction_marks(mark: str) -> None:
    """Marks set the direction of neutral characters beside them and reorder nothing else."""
    form = Form({"notes": f"\u05e9\u05dc\u05d5\u05dd{mark} (3)"})
    form.multi_line("notes")
    assert form.ok, form.errors


def test_a_whole_number_is_at_most_18_ascii_digits() -> None:
    assert params.a_whole_number("0") == 0
    assert params.a_whole_number("9" * 18) == 10**18 - 1
    assert [params.a_whole_number(n) for n in MALFORMED_NUMBERS] == [None] * len(MALFORMED_NUMBERS)
    assert params.a_whole_number(None) is None


def test_a_page_outside_1_to_the_last_page_is_page_1() -> None:
    assert params.a_page("2") == 2
    assert params.a_page("0") == 1
    assert params.a_page(str(params.LAST_PAGE + 1)) == 1


def test_a_search_text_is_trimmed_and_capped() -> None:
    assert params.a_search_text(" Ada\x00Lovelace\n") == "Ada Lovelace"
    assert len(params.a_search_text("x" * 1000)) == params.SEARCH_LENGTH
    assert params.a_search_text(None) == ""


def test_a_choice_outside_the_set_is_the_default() -> None:
    assert params.a_choice("asc", ("asc", "desc"), "desc") == "asc"
    assert params.a_choice(None, ("asc", "desc"), "desc") == "desc"
