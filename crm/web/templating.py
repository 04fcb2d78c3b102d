"""The Jinja environment: templates/ with autoescaping, and the helpers every page uses."""

import html as html_lib
from typing import Any

import nh3
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from crm import ROOT
from crm.web.forms import REVISION
from crm.web.security import CSRF_FIELD, csrf_token, take_flashes


def _page_context(request: Request) -> dict[str, Any]:
    return {
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request),
        "account_email": _email_of(request),
        # a callable, so that only full pages (base.html) consume the flash messages
        "take_flashes": lambda: take_flashes(request),
    }


def _email_of(request: Request) -> str | None:
    """Whose page this is: the session a handler looked up (pages that need no log-in, such
    as /login, look up none and show no account)."""
    session = getattr(request.state, "session", None)
    return None if session is None else str(session.email)


def plain_text(html: str, length: int = 90) -> str:
    """A one-line snippet of rendered notes: tags dropped, entities decoded, white space folded.

    Decoded before the cut, so that the cut counts characters, never splits "&lt;", and the
    snippet is escaped once, by the template.
    """
    text = " ".join(html_lib.unescape(nh3.clean(html, tags=set())).split())
    return text if len(text) <= length else text[: length - 1] + "…"


templates = Jinja2Templates(directory=ROOT / "templates", context_processors=[_page_context])
templates.env.filters["plain_text"] = plain_text
templates.env.globals["revision_field"] = REVISION
