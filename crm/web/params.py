"""Query parameters and headers, parsed: anything malformed is a documented fallback, never a 500.

Each helper takes the raw value (None when absent) and returns what the app may use. URLs and
headers are written by anyone, so nothing here raises: a value that does not parse is treated
as absent (or as the fallback the helper names), the way a hand-edited URL deserves.
"""

import re
from collections.abc import Container

from crm.ids import canonical_uuid
from crm.text import is_control, is_direction_control

# ASCII digits only: str.isdigit() accepts "²" and other Unicode digits that int() refuses, and
# int() refuses more than 4,300 digits. 18 digits always fit PostgreSQL's bigint.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
LAST_PAGE = 999_999  # 50 million rows in: no list is that long, and OFFSET stays small
SEARCH_LENGTH = 200
LOCAL_PATH_LENGTH = 2_000


def a_whole_number(raw: str | None) -> int | None:
    """A whole number, 0 or more, of at most 18 ASCII digits (a page, a revision); None if absent
    or malformed."""
    if raw is None or not _WHOLE_NUMBER.fullmatch(raw):
        return None
    return int(raw)


def a_page(raw: str | None) -> int:
    """A page number from 1 to LAST_PAGE; anything else (absent, 0, "²", 5,000 digits) is 1."""
    page = a_whole_number(raw)
    return page if page is not None and 1 <= page <= LAST_PAGE else 1


def a_contact_id(raw: str | None) -> str | None:
    """A contact's id as events and projections store it (lower case, 8-4-4-4-12), from one
    written so in either case; None for anything else."""
    return None if raw is None else canonical_uuid(raw)


def a_choice(raw: str | None, choices: Container[str], default: str) -> str:
    """raw if it is one of choices (a sort, a direction, a section), else default."""
    return raw if raw is not None and raw in choices else default


def a_search_text(raw: str | None) -> str:
    """Search words: control characters made spaces, direction controls dropped, trimmed, at most
    SEARCH_LENGTH characters.

    Cleaned rather than refused: a search box has no field to put an error beside, and names and
    tags cannot contain these characters (the forms refuse them), so they could never match. A
    direction control would let a crafted link make the page that repeats the search say
    something else ("tagged “friends”" written backwards).
    """
    text = "".join(
        " " if is_control(char) else char for char in raw or "" if not is_direction_control(char)
    )
    return text.strip()[:SEARCH_LENGTH]


def a_local_path(raw: str | None, default: str) -> str:
    """A path on this site to go to next ("/contacts?page=2"); anything else is default.

    "//host" and "/\\host" are read by browsers as another site, so both are refused.
    """
    if (
        raw is None
        or not raw.startswith("/")
        or raw[1:2] in ("/", "\\")
        or len(raw) > LOCAL_PATH_LENGTH
        or any(map(is_control, raw))
    ):
        return default
    return raw
