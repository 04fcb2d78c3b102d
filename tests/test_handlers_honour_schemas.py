"""The schema is the contract: every payload a schema allows is handled by every handler (issue 7).

For each event type and version in schemas/, hypothesis generates payloads the schema accepts:
hypothesis-jsonschema's own, and hostile ones (line breaks a mail header refuses, other control,
bidi and format characters, astral code points, Markdown that is slow or deep to render, strings
of exactly maxLength). Every projection that handles the type folds each one, on no state and on
a realistic one, turns the state into rows and back, and renders its Markdown columns; the morning
e-mail is composed from generated names and notes. No exception, and each call within a CPU
budget. Pure functions: no database.

A payload a handler cannot handle is a finding, not a reason to edit its schema: a stored version's
meaning never changes (crm/store/event_types.py). Fix the handler, or refuse it at the write in a
successor version.
"""

import email
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from functools import reduce
from typing import Any, TypeVar

import pytest
from hypothesis import Phase, example, find, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from crm.ids import canonical_key
from crm.jobs.morning_email import DueEmail, compose
from crm.projections.base import Projection
from crm.projections.contacts import CONTACTS
from crm.projections.meeting_notes_emails import MEETING_NOTES_EMAILS
from crm.projections.registry import ALL
from crm.rendering import render_markdown
from crm.store.event_types import EventType, load_event_types
from crm.store.events import Event
from crm.store.validation import validate_payload
from tests.support import FAKE_HASH

TYPES = load_event_types()
CPU_BUDGET = 1.0  # seconds per call; the renderer's worst input measured so far takes ~0.2 s
AT = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
SENDER = "crm@example.com"
CONTACT_ID = "7c3a9a52-9f57-4b53-9d4c-0e9f5d3c1a11"
ACCOUNT_ID = "0b6f3e1c-52d4-4a8e-8a0d-3f1e2d4c5b6a"
T = TypeVar("T")
Payload = dict[str, Any]

# Characters that broke a handler or could: every line break a mail header refuses (CR, LF, VT,
# FF, U+001C-1E, NEL, U+2028/2029), other C0/C1 controls, bidi controls, zero-width and format
# characters, a combining mark, non-characters, astral code points up to the last one, spaces
# that are not ASCII, and Markdown / HTML syntax. No NUL: PostgreSQL cannot hold U+0000 in jsonb
# or text, so append() refuses a payload with one at the database and no stored event has it.
EDGE = (
    "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x01\x07\x1b\x7f\x9b\t"
    "\u202e\u2066\u2069\u200b\u200d\ufeff\xad\u0301\ufffe\uffff\U0001f600\U0010ffff\xa0\u3000 "
    "<>&\"'[]()!*_`#|\\-=~:/.1aZé"
)
# Markdown that was slow or deep to render (issue 7, ../shared/STACK.md), and raw HTML.
MARKDOWN_UNITS = ("1. ", "[", "![", "[a](", "*_", "> ", "- ", "`", "<div>", "&#", "| a ", "\\")
# Any character a stored payload can hold: not NUL (see EDGE), and no lone surrogate, which
# orjson refuses to encode in append() (and jsonb to store), though JSON text could spell one.
STORABLE = st.characters(codec="utf-8", exclude_characters="\x00")
UUIDS = st.uuids().map(str)
# The uuid format (UUID() parses it, dashes at 8, 13, 18, 23) also takes capitals.
FORMATS = {"uuid": UUIDS | UUIDS.map(str.upper)}


def _filled(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def hostile_texts(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Short texts of edge characters, and a unit repeated to a length up to exactly max_size."""
    short = st.text(st.sampled_from(EDGE) | STORABLE, min_size=min_size, max_size=min(64, max_size))
    unit = st.sampled_from(MARKDOWN_UNITS) | st.text(st.sampled_from(EDGE), min_size=1, max_size=6)
    size = st.just(max_size) | st.integers(min_size, max_size)
    return short | st.builds(_filled, unit, size)


def _hostile_string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    texts = hostile_texts(schema.get("minLength", 0), schema.get("maxLength", 2_000))
    pattern = schema.get("pattern")
    if pattern is None:
        return texts
    # a text the pattern refuses (a blank name) is swapped for one of hypothesis-jsonschema's
    own = from_schema(schema, allow_x00=False)
    return st.builds(lambda text, other: text if re.search(pattern, text) else other, texts, own)


def _hostile_email(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    # the format checker asks only for an "@": any text around one is a valid address
    half = (schema.get("maxLength", 320) - 1) // 2
    return st.builds("{}@{}".format, hostile_texts(0, half), hostile_texts(0, half))


def _hostile_property(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if schema.get("type") == "string" and "format" not in schema:
        return _hostile_string(schema)
    if schema.get("type") == "string" and schema["format"] == "email":
        return _hostile_email(schema)
    return from_schema(schema, custom_formats=FORMATS, allow_x00=False)


def payloads(event_type: EventType) -> st.SearchStrategy[Payload]:
    schema = event_type.schema
    generated = from_schema(schema, custom_formats=FORMATS, allow_x00=False, codec="utf-8")
    if schema.get("type") != "object" or "properties" not in schema:
        return generated
    required = set(schema.get("required", ()))
    fields = {name: _hostile_property(s) for name, s in schema["properties"].items()}
    hostile = st.fixed_dictionaries(
        {name: s for name, s in fields.items() if name in required},
        optional={name: s for name, s in fields.items() if name not in required},
    )
    return generated | hostile


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def check_generated(event_type: EventType, payload: Payload) -> None:
    """What the generator yields is what the schema validator accepts, and storable."""
    validate_payload(event_type, payload)
    for text in _strings(payload):
        assert "\x00" not in text
        assert not any("\ud800" <= char <= "\udfff" for char in text), repr(text)


def within_budget(function: Callable[..., T], *args: Any) -> T:
    started = time.process_time()
    result = function(*args)
    spent = time.process_time() - started
    assert spent <= CPU_BUDGET, f"{getattr(function, '__name__', function)} took {spent:.2f}s"
    return result


def event(event_type: str, payload: Payload, position: int = 100) -> Event:
    return Event(position, event_type, 1, payload, payload["account_id"], AT)


def history(payload: Payload) -> list[Event]:
    """Realistic events before this payload, for the same contact and account (same keys)."""
    ids = {"account_id": payload["account_id"]}
    contact = {**ids, "contact_id": payload.get("contact_id", CONTACT_ID)}
    events = [
        ("account-created", {
            **ids, "email": "ada@example.com", "password_hash": FAKE_HASH,
            "time_zone": "Europe/London",
        }),
        ("contact-created", {
            **contact, "name": "Ada Lovelace", "description": "Analyst.",
            "contact_method": "ada@example.com",
        }),
        ("interaction-recorded", {
            **contact, "interacted_on": payload.get("interacted_on", "2026-11-20"),
            "notes": "Talked about the engine.",
        }),
        ("next-meeting-notes-written", {
            **contact, "meeting_on": payload.get("meeting_on", "2026-12-01"),
            "notes": "- ask about the **loom**\n- [notes](https://example.com)",
        }),
    ]  # fmt: skip
    return [event(name, body, position) for position, (name, body) in enumerate(events, 1)]


def prior_state(projection: Projection[Any], payload: Payload) -> Any:
    handled = [e for e in history(payload) if projection.handles(e)]
    return reduce(projection.fold, handled, None)


def check_markdown(text: str) -> str:
    html = within_budget(render_markdown, text)
    assert isinstance(html, str)
    assert within_budget(render_markdown, text) == html, "the same text rendered differently"
    return html


def as_stored(value: Any) -> Any:
    """The value as PostgreSQL gives it back: its uuid columns hold ids in lower case."""
    if isinstance(value, str):
        return canonical_key(value) if len(value) == 36 else value
    if isinstance(value, tuple):
        return (
            type(value)(*map(as_stored, value))
            if hasattr(value, "_fields")
            else tuple(map(as_stored, value))
        )
    if isinstance(value, dict):
        return {as_stored(k): as_stored(v) for k, v in value.items()}
    return value


def check_state(projection: Projection[Any], key: str, state: Any) -> None:
    rows = within_budget(projection.to_rows, state)
    assert all(len(row) == len(projection.columns) for row in rows)
    # the live driver reads a state back from the rows it wrote
    assert as_stored(projection.from_rows(rows)) == as_stored(state)
    markdown = [source for _html, source in projection.markdown_sources()]
    for text in {row[index] for row in rows for index in markdown} - {None}:
        check_markdown(text)


def check_projection(projection: Projection[Any], new: Event) -> None:
    """Fold the event on no state and on a realistic one; check what comes out."""
    for state in (None, prior_state(projection, new.payload)):
        folded = within_budget(projection.fold, state, new)
        if folded is not None:
            check_state(projection, projection.key_of(new), folded)


def check_compose(composer: Callable[[DueEmail, str], EmailMessage], due: DueEmail) -> None:
    message = within_budget(composer, due, SENDER)
    subject = str(message["Subject"])
    assert subject.splitlines() == [subject], repr(subject)
    sent = email.message_from_bytes(within_budget(bytes, message), policy=policy.default)
    assert str(sent["Subject"]).splitlines() == [str(sent["Subject"])]


def due_email(contact: Payload, notes: Payload) -> DueEmail:
    """The e-mail the job would read for this contact and notes, via the projection."""
    created = event("contact-created", contact, 1)
    same_contact = {"contact_id": contact["contact_id"], "account_id": contact["account_id"]}
    written = event("next-meeting-notes-written", {**notes, **same_contact}, 2)
    pending = reduce(MEETING_NOTES_EMAILS.fold, (created, written), None)
    assert pending is not None and pending.meeting_on is not None
    return DueEmail(
        contact["contact_id"],
        contact["account_id"],
        "ada@example.com",
        pending.contact_name,
        pending.meeting_on,
        pending.notes,
        check_markdown(pending.notes),
    )


KEYS = sorted(TYPES.by_key)


def test_every_event_type_is_handled_by_some_projection():
    handled = {name for projection in ALL for name in projection.handlers}
    assert {name for name, _ in KEYS} <= handled


@pytest.mark.parametrize("key", KEYS, ids=[f"{name}.v{version}" for name, version in KEYS])
@given(data=st.data())
def test_every_payload_the_schema_allows_is_folded_stored_and_rendered(key, data):
    event_type = TYPES.by_key[key]
    payload = data.draw(payloads(event_type), label="payload")
    check_generated(event_type, payload)
    new = Event(100, event_type.name, event_type.version, payload, payload["account_id"], AT)
    for projection in ALL:
        if projection.handles(new):
            check_projection(projection, new)


def _reported(name: str, notes: str) -> dict[str, Payload]:
    ids = {"contact_id": CONTACT_ID, "account_id": ACCOUNT_ID}
    return {
        "contact": {**ids, "name": name, "description": "", "contact_method": ""},
        "notes": {**ids, "meeting_on": "2026-12-24", "notes": notes},
    }


@given(
    contact=payloads(TYPES.get("contact-created", 1)),
    notes=payloads(TYPES.get("next-meeting-notes-written", 1)),
)
# the cases issue 7 reported, always among the examples
@example(**_reported("Eve\u2028Mallory", "1. " * 6_666))
@example(**_reported("Eve\r\nBcc: spy@example.com\x0b", "[" * 20_000))
@example(**_reported("\u202e\x85\u2029", "![" * 10_000))
def test_every_name_and_notes_the_schemas_allow_make_a_morning_email(contact, notes):
    check_generated(TYPES.get("contact-created", 1), contact)
    check_generated(TYPES.get("next-meeting-notes-written", 1), notes)
    check_compose(compose, due_email(contact, notes))


# The checks above must be able to fail: a handler that breaks on a name the schema allows is
# caught, and hypothesis finds a name that shows it.


def _refuses_line_breaks(handler: Callable[[Any, Event], Any]) -> Callable[[Any, Event], Any]:
    def broken(state: Any, new: Event) -> Any:
        if len(new.payload["name"].splitlines()) > 1:
            raise ValueError("a name with a line break")
        return handler(state, new)

    return broken


def _fails(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except Exception:
        return True
    return False


def test_a_projection_that_breaks_on_a_line_break_in_a_name_is_caught():
    handlers = {**CONTACTS.handlers}
    handlers["contact-created"] = _refuses_line_breaks(handlers["contact-created"])
    broken = replace(CONTACTS, handlers=handlers)
    found = find(
        payloads(TYPES.get("contact-created", 1)),
        lambda payload: _fails(check_projection, broken, event("contact-created", payload)),
        settings=settings(phases=[Phase.generate]),  # any example will do: shrinking takes 10 s
    )
    assert len(found["name"].splitlines()) > 1
    assert not _fails(check_projection, CONTACTS, event("contact-created", found))


def _subject_with_the_raw_name(due: DueEmail, sender: str) -> EmailMessage:
    message = compose(due, sender)
    del message["Subject"]
    message["Subject"] = f"Your meeting with {due.contact_name}"  # refuses a line break
    return message


def test_a_composer_that_breaks_on_a_line_break_in_a_name_is_caught():
    due = due_email(**_reported("Eve\u2028Mallory", "hi"))
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        check_compose(_subject_with_the_raw_name, due)
    check_compose(compose, due)
