"""The Jinja environment: templates/ with autoescaping, and the helpers every page uses."""

import html as html_lib
from typing import Any

import nh3
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from crm import ROOT
from crm.web.security import CSRF_FIELD, csrf_token, take_flashes
from crm.web.writes import is_htmx


def _page_context(request: Request) -> dict[str, Any]:
    return {
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request),
        "account_email": request.session.get("email"),
        # a callable, so that only full pages (base.html) consume the flash messages
        "take_flashes": lambda: take_flashes(request),
    }


def plain_text(html: str, length: int = 90) -> str:
    """A one-line snippet of rendered notes: tags dropped, entities decoded, white space folded.

    Decoded before the cut, so that the cut counts characters, never splits "&lt;", and the
    snippet is escaped once, by the template.
    """
    text = " ".join(html_lib.unescape(nh3.clean(html, tags=set())).split())
    return text if len(text) <= length else text[: length - 1] + "…"


templates = Jinja2Templates(directory=ROOT / "templates", context_processors=[_page_context])
templates.env.filters["plain_text"] = plain_text


def form_error(
    request: Request, page: str, partial: str, form_id: str, context: dict[str, Any]
) -> Response:
    """422: the form again, entered values kept, each problem beside its field.

    htmx gets just the form's partial, retargeted onto the form (a 422 is swapped because
    base.html's htmx-config says so); a plain post gets the whole page.
    """
    if is_htmx(request):
        return templates.TemplateResponse(
            request,
            partial,
            {**context, "form_id": form_id},
            status_code=422,
            headers={"HX-Retarget": f"#{form_id}", "HX-Reswap": "outerHTML"},
        )
    return templates.TemplateResponse(request, page, context, status_code=422)
