"""Reading crm's pages as a script does."""

import re

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_in(html: str) -> str | None:
    """The CSRF token a page's forms carry, if it has one."""
    match = _CSRF.search(html)
    return match.group(1) if match else None
