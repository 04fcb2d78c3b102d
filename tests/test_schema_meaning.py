"""A stored version's meaning never changes: schemas/meanings.lock holds each version's hash."""

from crm.store.event_types import load_event_types
from crm.store.meanings import lock_problems, read_lock


def test_every_schema_version_means_what_its_lock_entry_says() -> None:
    problems = lock_problems(load_event_types(), read_lock())
    assert not problems, "\n".join(problems)
