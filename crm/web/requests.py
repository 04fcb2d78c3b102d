"""What a handler asks of a request: the app's services, whether htmx sent it, and NotFound."""

from starlette.requests import Request

from crm.bootstrap import Services


class NotFound(Exception):
    """Something that does not exist, or is another account's: both answer 404."""


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"
