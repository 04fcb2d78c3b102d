"""Routes declared beside their handlers: `@routes.get(path)` on each handler of a module."""

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


class Routes(list[Route]):
    """A module's routes, in the order they are declared (Starlette tries them in order)."""

    def route(self, path: str, *methods: str) -> Callable[[Endpoint], Endpoint]:
        def declare(endpoint: Endpoint) -> Endpoint:
            self.append(Route(path, endpoint, methods=list(methods)))
            return endpoint

        return declare

    def get(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, "GET")

    def post(self, path: str, *also: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, "POST", *also)
