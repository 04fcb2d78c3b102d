"""Reading the projections for pages: plain SQL, always scoped to the signed-in account."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm.web.params import a_choice, a_page, a_search_text

PER_PAGE = 50
# Characters of a contact's rendered notes the list reads: enough for its 90-character snippet
# (templating.plain_text), where the whole note may be ~100 KB of HTML and every row's would be
# cleaned on the event loop.
SNIPPET_SOURCE = 2000
CONTACT_SORTS = {
    "name": "lower(name)",
    "last_interaction": "last_interacted_on",
    "next_meeting": "next_meeting_on",
}
INTERACTION_SORTS = {"date": "i.interacted_on", "contact": "lower(c.name)"}


@dataclass(frozen=True)
class Listing:
    sort: str
    direction: str
    q: str
    page: int

    @classmethod
    def parse(
        cls, params: Any, sorts: dict[str, str], default_sort: str, default_dir: str
    ) -> "Listing":
        """Malformed values fall back (default sort and direction, page 1); a search is cleaned."""
        return cls(
            a_choice(params.get("sort"), sorts, default_sort),
            a_choice(params.get("dir"), ("asc", "desc"), default_dir),
            a_search_text(params.get("q")),
            a_page(params.get("page")),
        )

    def query(self, **changes: Any) -> str:
        values = {
            "sort": self.sort,
            "dir": self.direction,
            "q": self.q,
            "page": self.page,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def contacts_page(
    conn: AsyncConnection[Any], account_id: str, listing: Listing
) -> tuple[list[dict[str, Any]], int]:
    where = "account_id = %(account)s" + (" AND name ILIKE %(q)s" if listing.q else "")
    params = {
        "account": account_id,
        "q": _like(listing.q),
        "limit": PER_PAGE,
        "offset": (listing.page - 1) * PER_PAGE,
        "snippet": SNIPPET_SOURCE,
    }
    order = f"{CONTACT_SORTS[listing.sort]} {listing.direction} NULLS LAST, lower(name), contact_id"
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT contact_id, name, description, contact_method, last_interacted_on,"
        " next_meeting_on,"
        " left(next_meeting_notes_html, %(snippet)s) AS next_meeting_notes_html"
        f" FROM projected_contacts WHERE {where} ORDER BY {order}"
        " LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows = await cursor.fetchall()
    await cursor.execute(f"SELECT count(*) AS n FROM projected_contacts WHERE {where}", params)
    total = await cursor.fetchone()
    return rows, int(total["n"]) if total else 0


async def contact(
    conn: AsyncConnection[Any], account_id: str, contact_id: str
) -> dict[str, Any] | None:
    """The contact's row; contact_id is canonical (crm/web/contacts.py, contact_id_in)."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT * FROM projected_contacts WHERE contact_id = %s AND account_id = %s",
        (contact_id, account_id),
    )
    return await cursor.fetchone()


async def contact_interactions(
    conn: AsyncConnection[Any], account_id: str, contact_id: str
) -> list[dict[str, Any]]:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT interacted_on, notes FROM projected_interactions"
        " WHERE contact_id = %s AND account_id = %s ORDER BY interacted_on DESC",
        (contact_id, account_id),
    )
    return await cursor.fetchall()


async def interactions_page(
    conn: AsyncConnection[Any], account_id: str, listing: Listing
) -> tuple[list[dict[str, Any]], int]:
    order = INTERACTION_SORTS[listing.sort]
    tie = "lower(c.name), i.contact_id" if listing.sort == "date" else "i.interacted_on DESC"
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT i.contact_id, c.name AS contact_name, i.interacted_on, i.notes"
        " FROM projected_interactions i JOIN projected_contacts c USING (contact_id)"
        " WHERE i.account_id = %s"
        f" ORDER BY {order} {listing.direction}, {tie} LIMIT %s OFFSET %s",
        (account_id, PER_PAGE, (listing.page - 1) * PER_PAGE),
    )
    rows = await cursor.fetchall()
    await cursor.execute(
        "SELECT count(*) AS n FROM projected_interactions WHERE account_id = %s", (account_id,)
    )
    total = await cursor.fetchone()
    return rows, int(total["n"]) if total else 0
