"""Security headers on every response: pages, fragments, redirects, errors, static files, the
stream.

A pure ASGI middleware, not BaseHTTPMiddleware: that one buffers and re-sends a response through
a task, which breaks the SSE stream's cancellation on disconnect.

The policy allows only crm's own scripts and styles: no inline <script>, style="" or onclick=,
no eval. htmx is told not to inject its indicator <style> (templates/base.html, htmx-config) and
crm.css carries those rules instead. Referer stays on for the same origin only: a form posted from
an expired session goes back to the page it came from (app.py, _login_required), and no contact's
URL leaks to the sites a note links to.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # for browsers that ignore frame-ancestors
}
# every dynamic answer may carry someone's contacts: no browser or proxy cache keeps it
NO_STORE = {"Cache-Control": "no-store"}
STATIC_PREFIX = "/static/"  # the vendored scripts, the style sheet, the icon: cacheable


def headers_for(path: str) -> dict[str, str]:
    """The headers a response to path gets, whatever the response set itself."""
    if path.startswith(STATIC_PREFIX):
        return SECURITY_HEADERS
    return SECURITY_HEADERS | NO_STORE


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in added.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
