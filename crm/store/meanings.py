"""The meanings lock: each schema version's meaning, hashed once and committed.

A stored version is history, and its meaning (crm.store.event_types.meaning) must never change,
including through a shared definition it references. The database refuses a changed version
only where that version is already stored; schemas/meanings.lock refuses it in every checkout:
"name.vN" -> sha256 of the canonical JSON of the version's meaning, checked by the tests.

    python -m crm.store.meanings           # check every version against the lock
    python -m crm.store.meanings --lock    # add the versions not in the lock yet
"""

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crm.store.event_types import SCHEMA_DIR, EventType, EventTypes, load_event_types, meaning

LOCK_NAME = "meanings.lock"
LOCK_COMMAND = "python -m crm.store.meanings --lock"


def version_name(event_type: EventType) -> str:
    return f"{event_type.name}.v{event_type.version}"


def meaning_hash(schema: Any) -> str:
    """sha256 of the meaning as canonical JSON: sorted keys, no spaces, UTF-8."""
    canonical = json.dumps(
        meaning(schema), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_lock(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    path = directory / LOCK_NAME
    return json.loads(path.read_text()) if path.exists() else {}


def write_lock(locked: Mapping[str, str], directory: Path = SCHEMA_DIR) -> None:
    (directory / LOCK_NAME).write_text(json.dumps(dict(sorted(locked.items())), indent=2) + "\n")


def lock_problems(types: EventTypes, locked: Mapping[str, str]) -> list[str]:
    """Every way the schemas disagree with the lock, each saying what to do."""
    return changed_versions(types, locked) + unlocked_versions(types, locked)


def changed_versions(types: EventTypes, locked: Mapping[str, str]) -> list[str]:
    """Locked versions whose meaning differs, or whose schema file is gone."""
    problems = []
    for event_type in types.by_key.values():
        name = version_name(event_type)
        if name in locked and meaning_hash(event_type.schema) != locked[name]:
            problems.append(
                f"{name} no longer means what it meant when it was locked: a stored version's "
                f"meaning never changes. Restore schemas/{name}.json and the shared definitions "
                f"it references, and add {event_type.name}.v{event_type.version + 1}.json "
                "instead (with a newly named shared definition if it needs a changed one)."
            )
    known = {version_name(t) for t in types.by_key.values()}
    for name in sorted(set(locked) - known):
        problems.append(
            f"schemas/{name}.json is gone, but its meaning is locked: stored events may use it. "
            "Restore it."
        )
    return problems


def unlocked_versions(types: EventTypes, locked: Mapping[str, str]) -> list[str]:
    return [
        f"{name} is not in schemas/{LOCK_NAME}: once its schema is final, run "
        f"`{LOCK_COMMAND}` to add it, and commit the lock with it."
        for name in map(version_name, types.by_key.values())
        if name not in locked
    ]


def lock_new_versions(types: EventTypes, directory: Path = SCHEMA_DIR) -> list[str]:
    """Add the versions the lock lacks. Refuses (changes nothing) while a locked version differs
    or is gone, and returns why: locking it anew would hide the change."""
    locked = read_lock(directory)
    problems = changed_versions(types, locked)
    if problems:
        return problems
    for event_type in types.by_key.values():
        locked.setdefault(version_name(event_type), meaning_hash(event_type.schema))
    write_lock(locked, directory)
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm.store.meanings", description=__doc__)
    parser.add_argument("--lock", action="store_true", help="add the versions not locked yet")
    parser.add_argument("--schemas", type=Path, default=SCHEMA_DIR, help="the schema directory")
    args = parser.parse_args(argv)
    types = load_event_types(args.schemas)
    if args.lock:
        problems = lock_new_versions(types, args.schemas)
    else:
        problems = lock_problems(types, read_lock(args.schemas))
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{len(types.by_key)} schema versions agree with schemas/{LOCK_NAME}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
