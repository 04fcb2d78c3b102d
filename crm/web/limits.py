"""A cap on request bodies, applied before anything reads one.

Starlette parses a form (1,000 fields of up to 1 MB each, or files spooled to disk) before a
route can check the log-in or the CSRF token: anonymous requests of a gigabyte each would hold
that much memory. The largest form crm takes is a 20,000-character note, at most ~240 KB
percent-encoded, so bodies are refused beyond MAX_BODY_BYTES with 413, whether the client
announces the length or streams it.
"""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 512 * 1024
TOO_LARGE = "The request is too large: at most 512 KB."


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._announced(scope) > self.max_bytes:
            await _refuse(send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised inside the route that reads the body: answered like any HTTP error
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, counting_receive, send)

    def _announced(self, scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return int(value) if value.isdigit() and len(value) <= 18 else self.max_bytes + 1
        return 0


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE.encode()})
