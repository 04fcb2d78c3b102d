"""Finding the database: DATABASE_URL, or an embedded PostgreSQL in the data directory; and how
connections load its values."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import BaseConnection
from psycopg.types.string import TextLoader

from crm.embedded import EmbeddedServer

log = logging.getLogger(__name__)


@dataclass
class Database:
    url: str
    embedded: EmbeddedServer | None = None  # the embedded server, when this process uses one

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def start_embedded(data_dir: Path) -> Database:
    server = EmbeddedServer(data_dir)
    url = server.start()
    log.info("DATABASE_URL is not set: using the embedded PostgreSQL in %s", server.pgdata)
    return Database(url, server)


def open_database(database_url: str | None, data_dir: Path) -> Database:
    if database_url:
        log.info("using the PostgreSQL server at DATABASE_URL; starting none")
        return Database(database_url)
    return start_embedded(data_dir)


def use_text_for_ids_and_dates(conn: BaseConnection[Any]) -> None:
    """Projections keep ids and dates as the strings events carry; load them that way."""
    for type_name in ("uuid", "date"):
        conn.adapters.register_loader(type_name, TextLoader)
