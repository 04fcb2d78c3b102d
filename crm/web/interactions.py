"""Interactions: recording one with a contact, and every interaction of the account."""

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.web.answers import not_yet, still_pending
from crm.web.contact_page import INTERACTION, PARTS, ContactWrite, respond_on_page
from crm.web.listing import PER_PAGE, Listing
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import current_account
from crm.web.templating import templates

routes = Routes()
SORTS = {"date": "i.interacted_on", "contact": "lower(c.name)"}


async def interactions_page(
    conn: AsyncConnection[Any], account_id: str, listing: Listing
) -> tuple[list[dict[str, Any]], int]:
    order = SORTS[listing.sort]
    tie = "lower(c.name), i.contact_id" if listing.sort == "date" else "i.interacted_on DESC"
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT i.contact_id, c.name AS contact_name, i.interacted_on, i.notes"
        " FROM projected_interactions i JOIN projected_contacts c USING (contact_id)"
        " WHERE i.account_id = %s"
        f" ORDER BY {order} {listing.direction}, {tie} LIMIT %s OFFSET %s",
        (account_id, PER_PAGE, listing.offset),
    )
    rows = await cursor.fetchall()
    await cursor.execute(
        "SELECT count(*) AS n FROM projected_interactions WHERE account_id = %s", (account_id,)
    )
    total = await cursor.fetchone()
    return rows, int(total["n"]) if total else 0


@routes.get("/interactions")
async def index(request: Request) -> Response:
    account = await current_account(request)
    listing = Listing.parse(request.query_params, SORTS, "date", "desc")
    fragment = request.query_params.get("section") == "list"
    if fragment and await not_yet(request, ("interactions",)):
        return still_pending()
    async with services_of(request).pool.connection() as conn:
        rows, total = await interactions_page(conn, account, listing)
    context = {"interactions": rows, "total": total, "listing": listing, "per_page": PER_PAGE}
    template = "interactions/_list.html" if fragment else "interactions/index.html"
    return templates.TemplateResponse(request, template, context)


@routes.post("/contacts/{contact_id}/interactions")
async def record(request: Request) -> Response:
    write = await ContactWrite.read(request, INTERACTION)
    replace = bool(write.form["replace"])  # a day already recorded is refused without it
    done = await write.attempt(
        lambda conn, types: commands.record_interaction(
            conn, types, write.account, write.contact_id, write.payload, replace
        )
    )
    message = f"Recorded the interaction of {write.form['interacted_on']}."
    return await respond_on_page(write, done, PARTS["interactions"], message, write.payload)
