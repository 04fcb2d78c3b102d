"""Scaffolds: a new event type or projection, written the way the existing ones are.

    python -m crm.scaffold event NAME [--description TEXT]
    python -m crm.scaffold version NAME
    python -m crm.scaffold projection NAME --events TYPE[,TYPE...]

`event` writes schemas/NAME.v1.json: a payload of contact_id and account_id (the shared
definitions), with an example it accepts. It does not lock the version: a locked version's meaning
may never change, and the fields are still to come, so locking is the step after them.

`version` writes schemas/NAME.v<n+1>.json, a copy of the latest version n to change, and the
upcaster from n in crm/store/upcasters.py, which starts as a copy of the payload: together they
pass the tests as written, and the step says what to change next.

`projection` writes crm/projections/NAME.py (a row, one pure fold per event type, the
declaration), registers it in crm/projections/registry.py, and writes
tests/test_projection_NAME.py, a story that passes as written: the fold, the live driver and
replay agree.

Each refuses, writing nothing, a badly formed name, a name already taken, or an unknown event
type; each prints what to do next.
"""

import argparse
import ast
import json
import keyword
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm import ROOT
from crm.store.event_types import EventTypes, load_event_types
from crm.store.meanings import LOCK_COMMAND

DOCS_COMMAND = "python -m crm.docs"
EVENT_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")  # kebab-case, as schema files are named
PROJECTION_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")  # snake_case: a module's name
# projected_<name>_<index> must fit in PostgreSQL's 63 characters, and the generated lines in
# ruff's 100
MAX_NAME = 30
LINE_LENGTH = 100  # as ruff formats the code
SHARED = "crm:shared/fields.json#/$defs/"
# The ids every schema's example uses, so that examples of different types agree.
EXAMPLE_IDS = {
    "contact_id": "8f14e45f-ceea-467f-a0e6-8a5cbb6d3a10",
    "account_id": "3c59dc04-8e3a-4d5b-9f2e-1d7a0c6b5e42",
}
KEYS = tuple(EXAMPLE_IDS)  # what a projection's rows may be keyed by, the narrower first
# Past participles that do not end in -ed, for the naming hint.
_IRREGULAR = frozenset({
    "begun", "bought", "brought", "built", "chosen", "done", "drawn", "found", "given", "held",
    "kept", "known", "left", "lost", "made", "met", "paid", "put", "read", "run", "said", "seen",
    "sent", "set", "shown", "sold", "spent", "taken", "told", "undone", "won", "written",
})  # fmt: skip


class Refused(ValueError):
    """A scaffold that would be wrong; nothing was written."""


@dataclass(frozen=True)
class Scaffolded:
    written: list[Path]
    next_steps: list[str]
    notes: list[str]


def scaffold_event(name: str, description: str = "", root: Path = ROOT) -> Scaffolded:
    if not EVENT_NAME.match(name):
        raise Refused(
            f"{name!r} is not an event type name: kebab-case, lower-case letters and digits, "
            "in the past tense (contact-archived)"
        )
    schemas = root / "schemas"
    existing = sorted(schemas.glob(f"{name}.v*.json"))
    if existing:
        raise Refused(
            f"schemas/{existing[-1].name} exists: {name} is an event type already. To change its "
            f"payload, add its next version beside it (a copy, changed), then `{LOCK_COMMAND}`."
        )
    path = schemas / f"{name}.v1.json"
    path.write_text(
        json.dumps(_event_schema(name, description), indent=2, ensure_ascii=False) + "\n"
    )
    return Scaffolded(
        [path],
        [
            f"give schemas/{path.name} its description and its fields: a shared one by "
            '"$ref" to schemas/shared/fields.json, each described; add them to "required" '
            "and to the example, which must stay valid",
            "have a projection consume it (every event type has a consumer): "
            f"python -m crm.scaffold projection NAME --events {name}, or a handler in one",
            f"once the schema is final, lock its meaning: {LOCK_COMMAND}",
            f"regenerate the reference: {DOCS_COMMAND}",
        ],
        _past_tense_hint(name),
    )


def scaffold_version(name: str, root: Path = ROOT) -> Scaffolded:
    """The next version of an event type: its schema, a copy of the latest, and its upcaster."""
    schemas = root / "schemas"
    versions = sorted(
        int(path.name.removeprefix(f"{name}.v").removesuffix(".json"))
        for path in schemas.glob(f"{name}.v*.json")
    )
    if not versions:
        raise Refused(f"there is no event type {name!r} in schemas/: nothing to evolve")
    old, new = versions[-1], versions[-1] + 1
    schema = json.loads((schemas / f"{name}.v{old}.json").read_text())
    schema["$id"], schema["title"] = f"crm:{name}.v{new}", f"{name} v{new}"
    path = schemas / f"{name}.v{new}.json"
    path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    upcasters = root / "crm" / "store" / "upcasters.py"
    function = f"{name.replace('-', '_')}_v{old}_to_v{new}"
    with upcasters.open("a") as module:
        module.write(
            f'\n\n@step("{name}", {old})\n'
            f"def {function}(payload: Payload) -> Payload:\n"
            f'    """{name} v{old} -> v{new}: TODO what changed."""\n'
            "    return dict(payload)\n"
        )
    return Scaffolded(
        [path, upcasters],
        [
            f"change schemas/{path.name}: the fields of v{new}, their descriptions, the example",
            f"make {function} in crm/store/upcasters.py turn a v{old} payload into a v{new} one",
            f"teach the handlers of {name} the v{new} payload (they see only the latest)",
            f"once the schema is final, lock its meaning: {LOCK_COMMAND}",
            f"regenerate the reference: {DOCS_COMMAND}",
        ],
        [],
    )


def _event_schema(name: str, description: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"crm:{name}.v1",
        "title": f"{name} v1",
        "description": description or "TODO: what happened, in the past tense.",
        "type": "object",
        "properties": {key: {"$ref": f"{SHARED}{key}"} for key in KEYS},
        "required": list(KEYS),
        "additionalProperties": False,
        "examples": [dict(EXAMPLE_IDS)],
    }


def _past_tense_hint(name: str) -> list[str]:
    last = name.rsplit("-", 1)[-1]
    if last.endswith("ed") or last in _IRREGULAR:
        return []
    return [f"event types are named in the past tense (contact-archived); {name!r} may not be"]


@dataclass(frozen=True)
class _Plan:
    """What a new projection's files say."""

    name: str
    events: list[str]
    key: str  # the partition key: a field every event consumed carries
    columns: list[str]  # the id columns, the key first

    @property
    def constant(self) -> str:
        return self.name.upper()

    @property
    def row(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_")) + "Row"

    @property
    def entity(self) -> str:
        return self.key.removesuffix("_id")

    def removes(self, event_type: str) -> bool:
        """An event named <entity>-...-deleted removes its entity's row."""
        return event_type.startswith(f"{self.entity}-") and event_type.endswith("-deleted")


def scaffold_projection(name: str, events: Sequence[str], root: Path = ROOT) -> Scaffolded:
    plan = _plan(name, events, root)
    module = root / "crm" / "projections" / f"{name}.py"
    test = root / "tests" / f"test_projection_{name}.py"
    for path in (module, test):
        if path.exists():
            raise Refused(f"{path.relative_to(root)} exists: choose another name")
    registry = root / "crm" / "projections" / "registry.py"
    registered = _registered(registry.read_text(), name, plan.constant)
    module.write_text(_projection_module(plan))
    test.write_text(_projection_test(plan))
    registry.write_text(registered)
    return Scaffolded(
        [module, test, registry],
        [
            f"give {plan.row} the columns projected_{name} needs and each handler what its "
            f"event changes (crm/projections/{name}.py); the table is derived from the row",
            f"say which rows you expect in tests/test_projection_{name}.py and run "
            f"python -m pytest tests/test_projection_{name}.py",
            f"regenerate the reference: {DOCS_COMMAND}",
        ],
        [],
    )


def _plan(name: str, events: Sequence[str], root: Path) -> _Plan:
    if not PROJECTION_NAME.match(name) or keyword.iskeyword(name):
        raise Refused(
            f"{name!r} is not a projection name: snake_case, lower-case letters and digits "
            "(contact_stars), a Python module's name"
        )
    if len(name) > MAX_NAME:
        raise Refused(f"{name!r} is too long: at most {MAX_NAME} characters")
    if not events:
        raise Refused("name the event types it consumes: --events contact-created,...")
    types = load_event_types(root / "schemas")
    known = sorted({n for n, _ in types.by_key})
    unknown = [e for e in events if e not in known]
    if unknown:
        raise Refused(
            f"no schema in schemas/ for {', '.join(map(repr, unknown))}; "
            f"the event types are: {', '.join(known)}"
        )
    ordered = list(dict.fromkeys(events))
    carried = [k for k in KEYS if all(_carries(types, e, k) for e in ordered)]
    if not carried:
        raise Refused(
            f"{', '.join(ordered)} share no {' or '.join(KEYS)}: a projection's rows are keyed "
            "by a field every event it consumes carries"
        )
    return _Plan(name, ordered, carried[0], carried)


def _carries(types: EventTypes, event_type: str, field: str) -> bool:
    """Every version of the event type requires the field."""
    schemas = [t.schema for (n, _), t in types.by_key.items() if n == event_type]
    return all(field in schema.get("required", ()) for schema in schemas)


def _handler_name(event_type: str) -> str:
    name = event_type.replace("-", "_")
    # a keyword, or a name the module imports, would not do as a function's name
    return f"on_{name}" if keyword.iskeyword(name) or name == "datetime" else name


def _projection_module(plan: _Plan) -> str:
    columns = "".join(f"    {c}: Uuid\n" for c in plan.columns)
    values = "".join(f'        {c}=p["{c}"],\n' for c in plan.columns)
    handlers = "".join(_handler(plan, e) for e in plan.events)
    entries = "".join(f'        "{e}": {_handler_name(e)},\n' for e in plan.events)
    return f'''"""projected_{plan.name}: one row per {plan.entity}.

TODO: what it shows, and who reads it.
"""

from datetime import datetime
from typing import NamedTuple

from crm.projections.base import Projection, Uuid
from crm.store.events import Event


class {plan.row}(NamedTuple):
{columns}    last_updated_at: datetime


def _row(event: Event) -> {plan.row}:
    """The {plan.entity}'s row as the event leaves it. TODO: what each event changes."""
    p = event.payload
    return {plan.row}(
{values}        last_updated_at=event.created_at,
    )
{handlers}

{plan.constant}: Projection[{plan.row}] = Projection(
    name="{plan.name}",
    table="projected_{plan.name}",
    row={plan.row},
    handlers={{
{entries}    }},
    describes="its {plan.name.replace("_", " ")}",
)
'''


def _handler(plan: _Plan, event_type: str) -> str:
    removes = plan.removes(event_type)
    name, returns = _handler_name(event_type), "None" if removes else plan.row
    parameters = f"state: {plan.row} | None, event: Event"
    signature = f"def {name}({parameters}) -> {returns}:"
    if len(signature) > LINE_LENGTH:  # as ruff wraps it
        signature = f"def {name}(\n    {parameters}\n) -> {returns}:"
    return f"\n\n{signature}\n    return {'None' if removes else '_row(event)'}\n"


def _projection_test(plan: _Plan) -> str:
    kept = [e for e in plan.events if not plan.removes(e)]
    ids = {c: c.removesuffix("_id").upper() for c in plan.columns}  # tests.stories' ACCOUNT, ...
    stories, names, preamble = [], ["Story", "event", "given", "story_tests"], ""
    if kept:
        row = {**ids, "last_updated_at": f"START + timedelta(minutes={len(kept)})"}
        title = "each event leaves the row as of that event"
        stories.append(_story(title, kept, plan.constant, row))
        names = [*sorted(ids.values()), "START", *names]
        preamble = "from datetime import timedelta\n\n"
    stories += [
        _story(f"{e} removes the row", [*kept, e], plan.constant, None)
        for e in plan.events
        if plan.removes(e)
    ]
    return f'''"""projected_{plan.name} as sentences: given events, then rows (tests/stories.py).

The pure fold, and the live driver and replay on PostgreSQL agreeing with it.
"""

{preamble}from crm.projections.{plan.name} import {plan.constant}
from tests.stories import {", ".join(names)}

STORIES: dict[str, Story] = {{
{"".join(stories)}}}

test_the_fold, test_the_drivers_agree_with_the_fold = story_tests(STORIES)
'''


def _story(title: str, events: list[str], constant: str, row: dict[str, str] | None) -> str:
    given = "".join(f'        event("{e}"),\n' for e in events)
    if row is None:
        return f'    "{title}": given(\n{given}    ).then({constant}),\n'
    columns = "".join(f'            "{c}": {value},\n' for c, value in row.items())
    then = f"        {constant},\n        {{\n{columns}        }},\n"
    return f'    "{title}": given(\n{given}    ).then(\n{then}    ),\n'


def _registered(source: str, module: str, constant: str) -> str:
    """registry.py with the projection imported and appended to ALL (existing indexes in ALL
    keep their meaning)."""
    tree = ast.parse(source)
    imports = [
        node
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crm.projections.")
    ]
    everything = next(
        (
            node
            for node in tree.body
            if isinstance(node, ast.AnnAssign | ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "ALL" for t in _targets(node))
        ),
        None,
    )
    value = getattr(everything, "value", None)
    if (
        not imports
        or not isinstance(value, ast.Tuple)
        or not all(isinstance(e, ast.Name) for e in value.elts)
    ):
        raise Refused(
            "crm/projections/registry.py has no `ALL = (...)` of imported projections: "
            f"register {constant} there by hand"
        )
    lines = source.splitlines(keepends=True)
    names = [e.id for e in value.elts if isinstance(e, ast.Name)] + [constant]
    start, end = value.lineno - 1, (value.end_lineno or value.lineno) - 1
    head, tail = lines[start][: value.col_offset], lines[end][value.end_col_offset :]
    one_line = f"{head}({', '.join(names)}){tail}"
    if start == end and len(one_line.rstrip("\n")) <= LINE_LENGTH:
        lines[start : end + 1] = [one_line]
    else:
        lines[start : end + 1] = [f"{head}(\n", *(f"    {n},\n" for n in names), f"){tail}"]
    module_name = f"crm.projections.{module}"
    later = [n for n in imports if (n.module or "") > module_name]
    at = later[0].lineno - 1 if later else (imports[-1].end_lineno or imports[-1].lineno)
    lines.insert(at, f"from {module_name} import {constant}\n")
    return "".join(lines)


def _targets(node: ast.AnnAssign | ast.Assign) -> list[ast.expr]:
    return [node.target] if isinstance(node, ast.AnnAssign) else node.targets


def _print(done: Scaffolded, root: Path) -> None:
    for path in done.written:
        print(f"wrote {path.relative_to(root)}")
    for note in done.notes:
        print(f"note: {note}")
    print("next:")
    for number, step in enumerate(done.next_steps, start=1):
        print(f"  {number}. {step}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm.scaffold",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    event = kinds.add_parser("event", help="schemas/NAME.v1.json")
    event.add_argument("name", metavar="NAME", help="kebab-case, past tense: contact-archived")
    event.add_argument("--description", default="", help="what happened, one sentence")
    version = kinds.add_parser("version", help="schemas/NAME.v<n+1>.json and its upcaster")
    version.add_argument("name", metavar="NAME", help="an event type: contact-created")
    projection = kinds.add_parser("projection", help="crm/projections/NAME.py, registered, tested")
    projection.add_argument("name", metavar="NAME", help="snake_case: contact_stars")
    projection.add_argument(
        "--events", required=True, metavar="TYPE,...", help="the event types it consumes"
    )
    args = parser.parse_args(argv)
    try:
        if args.kind == "event":
            done = scaffold_event(args.name, args.description)
        elif args.kind == "version":
            done = scaffold_version(args.name)
        else:
            events = [e.strip() for e in args.events.split(",") if e.strip()]
            done = scaffold_projection(args.name, events)
    except Refused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 1
    _print(done, ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
