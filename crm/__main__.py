"""python -m crm: serve the app, with an embedded PostgreSQL unless DATABASE_URL is set."""

import argparse
import logging
import sys

import uvicorn

from crm import settings as settings_module
from crm.web.app import create_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _arguments(defaults: settings_module.Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m crm", description=__doc__)
    parser.add_argument("--host", default=defaults.host, help="address to bind (CRM_HOST)")
    parser.add_argument("--port", type=int, default=defaults.port, help="port to bind (PORT)")
    return parser.parse_args()


def main() -> None:
    try:
        settings = settings_module.load()
    except settings_module.SettingError as error:  # the message names the variable; no traceback
        sys.exit(f"crm cannot start: {error}")
    args = _arguments(settings)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if (
        args.host not in LOOPBACK
        and settings.allowed_hosts == settings_module.DEFAULT_ALLOWED_HOSTS
    ):
        logging.getLogger("crm").warning(
            "listening on %s, but only requests for localhost are answered (others get 400):"
            " set CRM_ALLOWED_HOSTS to the names crm is reached by",
            args.host,
        )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )


if __name__ == "__main__":
    main()
