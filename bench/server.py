"""A throwaway PostgreSQL for benchmarks: the embedded server, durable settings untouched."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from crm.database import start_embedded


@contextmanager
def database_url() -> Iterator[str]:
    """BENCH_DATABASE_URL if set (an empty database), else a fresh embedded server."""
    if os.environ.get("BENCH_DATABASE_URL"):
        yield os.environ["BENCH_DATABASE_URL"]
        return
    directory = tempfile.mkdtemp(prefix="crm-bench-")
    database = start_embedded(__import__("pathlib").Path(directory))
    try:
        yield database.url
    finally:
        database.stop()
        shutil.rmtree(directory, ignore_errors=True)
