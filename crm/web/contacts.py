"""Contacts: the list, a contact's page, and adding, editing and deleting contacts."""

from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import Response

from crm.projections.contacts import CONTACTS, MAX_TAGS
from crm.store import commands
from crm.web import history
from crm.web.answers import (
    Answer,
    attempt,
    location_for_htmx,
    not_yet,
    redirect_after_write,
    respond,
    still_pending,
    wait_for_projections,
)
from crm.web.contact_page import (
    CONTACT,
    PARTS,
    PROJECTIONS,
    TAG,
    TAGGING,
    UNTAG,
    ContactWrite,
    contact_id_in,
    page_context,
    read_contact,
    respond_on_page,
)
from crm.web.forms import Form, posted_form
from crm.web.listing import PER_PAGE, Listing, like
from crm.web.params import a_choice
from crm.web.requests import NotFound, is_htmx, services_of
from crm.web.routing import Routes
from crm.web.security import check_csrf, current_account, flash
from crm.web.templating import templates

routes = Routes()
CONTACT_PAGE = "/contacts/{contact_id}"
SORTS = {
    "name": "lower(name)",
    "last_interaction": "last_interacted_on",
    "next_meeting": "next_meeting_on",
}
# a list filter's URL parameter -> its condition on the contact's row
FILTERS = {"tag": "%(tag)s = ANY(tags)"}
# Characters of a contact's rendered notes the list reads: enough for its 90-character snippet
# (templating.plain_text), where the whole note may be ~100 KB of HTML and every row's would be
# cleaned on the event loop.
SNIPPET_SOURCE = 2000


def _list_columns() -> sql.Composed:
    """The contacts projection's columns as the list reads them: rendered notes cut to what its
    snippet needs, and their Markdown sources (up to 20,000 characters each) left out."""
    html = CONTACTS.markdown_columns
    return sql.SQL(", ").join(
        sql.SQL("left({0}, {1}) AS {0}").format(sql.Identifier(name), SNIPPET_SOURCE)
        if name in html
        else sql.Identifier(name)
        for name in CONTACTS.columns
        if name not in html.values()
    )


async def contacts_page(
    conn: AsyncConnection[Any], account_id: str, listing: Listing
) -> tuple[list[dict[str, Any]], int]:
    conditions = [
        "account_id = %(account)s",
        *(["name ILIKE %(q)s"] if listing.q else []),
        *(FILTERS[name] for name in listing.filters),
    ]
    where = sql.SQL(" AND ".join(conditions))
    params = {"account": account_id, "q": like(listing.q), **listing.filters}
    order = f"{SORTS[listing.sort]} {listing.direction} NULLS LAST, lower(name), contact_id"
    cursor = conn.cursor(row_factory=dict_row)
    query = "SELECT {} FROM projected_contacts WHERE {} ORDER BY {} LIMIT {} OFFSET {}"
    await cursor.execute(
        sql.SQL(query).format(_list_columns(), where, sql.SQL(order), PER_PAGE, listing.offset),
        params,
    )
    rows = await cursor.fetchall()
    count = sql.SQL("SELECT count(*) AS n FROM projected_contacts WHERE {}").format(where)
    await cursor.execute(count, params)
    total = await cursor.fetchone()
    return rows, int(total["n"]) if total else 0


@routes.get("/contacts")
async def index(request: Request) -> Response:
    account = await current_account(request)
    listing = Listing.parse(request.query_params, SORTS, "name", "asc", tuple(FILTERS))
    async with services_of(request).pool.connection() as conn:
        rows, total = await contacts_page(conn, account, listing)
    context = {
        "contacts": rows,
        "total": total,
        "listing": listing,
        "per_page": PER_PAGE,
        "form": CONTACT.blank(services_of(request).types),
    }
    if request.query_params.get("section") == "list":
        return templates.TemplateResponse(request, "contacts/_list.html", context)
    return templates.TemplateResponse(request, "contacts/index.html", context)


@routes.get("/contacts/new")
async def new(request: Request) -> Response:
    await current_account(request)
    form = CONTACT.blank(services_of(request).types)
    return templates.TemplateResponse(request, "contacts/new.html", {"form": form})


@routes.post("/contacts")
async def create(request: Request) -> Response:
    account = await current_account(request)
    data = await posted_form(request)
    check_csrf(request, data)
    types = services_of(request).types
    form = CONTACT.read(data, types)
    payload = CONTACT.payload(form)
    done = await attempt(
        request, form, lambda conn, types: commands.add_contact(conn, types, account, payload)
    )
    form_id = "new-contact" if data.get("form_id") == "new-contact" else "contact-page"
    answer = Answer(
        page="contacts/new.html",
        form="contacts/_form.html",
        form_id=form_id,
        form_key="form",
        pending="contacts/_added.html",
        projections=PROJECTIONS,
        location=f"/contacts/{done.subject_id}" if done else "/contacts",
        message=f"Added {form['name']}.",
        location_if_behind="/contacts",
    )

    async def context() -> dict[str, object]:
        return {"form": CONTACT.blank(types), "form_id": form_id}

    pending = {**payload, "contact_id": done.subject_id} if done else None
    return await respond(request, answer, form, done, context, pending)


@routes.get(CONTACT_PAGE + "/added")
async def added(request: Request) -> Response:
    """The confirmation that replaces a pending 'adding...' line once the contact is projected."""
    account = await current_account(request)
    if await not_yet(request, ("contacts",)):
        return still_pending()
    async with services_of(request).pool.connection() as conn:
        row = await read_contact(conn, account, contact_id_in(request))
    return templates.TemplateResponse(request, "contacts/_added.html", {"contact": row})


@routes.get(CONTACT_PAGE)
async def show(request: Request) -> Response:
    if "as_of" in request.query_params:  # the contact as it was then (crm/web/history.py)
        return await history.contact_as_of(request)
    account = await current_account(request)
    contact_id = contact_id_in(request)
    section = a_choice(request.query_params.get("section"), PARTS, "")
    if section not in PARTS:
        context = await page_context(request, account, contact_id)
        return templates.TemplateResponse(request, "contacts/show.html", context)
    part = PARTS[section]
    if await not_yet(request, part.projections):
        return still_pending()
    try:
        context = await page_context(request, account, contact_id)
    except NotFound:  # deleted meanwhile: the details say so, the other sections go quiet
        return templates.TemplateResponse(
            request, "contacts/_gone.html", {"announce": section == "details"}
        )
    return templates.TemplateResponse(request, part.fragment, context)


@routes.get(CONTACT_PAGE + "/edit")
async def edit(request: Request) -> Response:
    account = await current_account(request)
    context = await page_context(request, account, contact_id_in(request))
    return templates.TemplateResponse(request, "contacts/edit.html", context)


@routes.post(CONTACT_PAGE, "PUT", "PATCH")
async def update(request: Request) -> Response:
    write = await ContactWrite.read(request, CONTACT)
    done = await write.attempt(
        lambda conn, types: commands.edit_contact(
            conn, types, write.account, write.contact_id, write.payload, write.based_on
        )
    )
    saved = write.saved(done)
    return await respond_on_page(
        write, done, PARTS["details"], f"Saved {saved.get('name', '')}.", saved
    )


@routes.route(CONTACT_PAGE, "DELETE")
@routes.post(CONTACT_PAGE + "/delete")
async def delete(request: Request) -> Response:
    account = await current_account(request)
    check_csrf(request, await posted_form(request))
    contact_id = contact_id_in(request)
    done = await attempt(
        request,
        Form({}),
        lambda conn, types: commands.delete_contact(conn, types, account, contact_id),
    )
    assert done is not None  # no form to fail: a refusal raised NotFound or a 409
    position = done.appended.position
    if not is_htmx(request):
        return await redirect_after_write(
            request, PROJECTIONS, position, "/contacts", "Contact deleted."
        )
    reached = await wait_for_projections(services_of(request), PROJECTIONS, position)
    flash(
        request,
        "Contact deleted."
        if reached
        else "Contact deleted. The list will update when processing resumes.",
    )
    return location_for_htmx("/contacts")


@routes.post(CONTACT_PAGE + "/tags")
async def tag(request: Request) -> Response:
    write = await ContactWrite.read(request, TAG)
    await _refuse_too_many_tags(write)
    done = await write.append()
    message = f"Tagged {write.form['tag']}."
    return await respond_on_page(write, done, TAGGING, message, write.payload)


@routes.post(CONTACT_PAGE + "/tags/delete")
async def untag(request: Request) -> Response:
    write = await ContactWrite.read(request, UNTAG)
    done = await write.append()
    message = f"Removed the tag {write.form['tag']}."
    return await respond_on_page(write, done, TAGGING, message, {**write.payload, "untag": True})


async def _refuse_too_many_tags(write: ContactWrite) -> None:
    """At most MAX_TAGS per contact, counted on the projection (whose fold keeps the bound
    when a burst outruns this count)."""
    if not write.form.ok:
        return
    async with services_of(write.request).pool.connection() as conn:
        row = await read_contact(conn, write.account, write.contact_id)
    tags = (row and row["tags"]) or []  # None while an older table is rebuilt
    if len(tags) >= MAX_TAGS and write.form["tag"] not in tags:
        write.form.fail("tag", f"cannot be added: a contact has at most {MAX_TAGS} tags")


@routes.get("/tags")
async def suggestions(request: Request) -> Response:
    """The account's tags, for the tag field's suggestions (a <datalist>)."""
    account = await current_account(request)
    async with services_of(request).pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT DISTINCT unnest(tags) AS tag FROM projected_contacts"
            " WHERE account_id = %s ORDER BY 1 LIMIT 500",
            (account,),
        )
        tags = [tag for (tag,) in await cursor.fetchall()]
    return templates.TemplateResponse(request, "contacts/_tag_suggestions.html", {"tags": tags})
