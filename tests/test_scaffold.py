"""python -m crm.scaffold: what it writes passes the tests as written; what would be wrong is
refused, with nothing written.

The first test works on a copy of the checkout (what git would commit: tracked and new files,
not ignored ones), runs the scaffolds and the commands they print there as subprocesses, with
the copy first on the path, then the generated test and the tests about what it touched.
The copy's tests use this session's PostgreSQL server, with a template database of their own
(tests/conftest.py names it after the process).
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crm import ROOT
from crm.docs import COMMAND as DOCS_COMMAND
from crm.scaffold import Refused, scaffold_event, scaffold_projection, scaffold_version
from crm.store.event_types import load_event_types
from crm.store.fields import field_rules
from crm.store.meanings import LOCK_COMMAND, read_lock, unlocked_versions
from crm.store.validation import validate_payload

NEW_EVENT = "contact-starred"
NEW_PROJECTION = "stars"
# What the new files concern, beside the generated test: the lock, the reference pages, and
# the checks every event type and projection must pass without a database.
CONCERNED = [
    f"tests/test_projection_{NEW_PROJECTION}.py",
    "tests/test_generated_docs.py",
    "tests/test_schema_meaning.py::test_every_schema_version_means_what_its_lock_entry_says",
    "tests/test_event_types.py::test_every_schema_forbids_unknown_fields_and_describes_every_field",
    "tests/test_event_types.py::test_every_schema_has_an_example_its_own_version_accepts",
    "tests/test_fields.py::test_every_field_of_every_type_has_a_rule_with_a_description",
    "tests/test_handlers_honour_schemas.py::test_every_event_type_is_handled_by_some_projection",
]


def copy_of_the_checkout(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run_in(copy: Path, *command: str, server_url: str | None = None) -> str:
    """`python <command>` in the copy, importing the copy's crm; its output, or the failure."""
    database = {"CRM_TEST_DATABASE_URL": server_url} if server_url else {}
    env = {**os.environ, "PYTHONPATH": str(copy), **database}
    done = subprocess.run(
        [sys.executable, *command], cwd=copy, env=env, capture_output=True, text=True, timeout=180
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"python {' '.join(command)} failed:\n{output}"
    return output


def test_a_new_event_and_projection_pass_the_tests_as_scaffolded(
    tmp_path: Path, server_url: str
) -> None:
    copy = copy_of_the_checkout(tmp_path)
    said = run_in(copy, "-m", "crm.scaffold", "event", NEW_EVENT, "--description", "Starred.")
    assert LOCK_COMMAND in said and DOCS_COMMAND in said
    events = f"contact-created,{NEW_EVENT},contact-deleted"
    said = run_in(copy, "-m", "crm.scaffold", "projection", NEW_PROJECTION, "--events", events)
    assert DOCS_COMMAND in said
    run_in(copy, "-m", *LOCK_COMMAND.removeprefix("python -m ").split())
    run_in(copy, "-m", *DOCS_COMMAND.removeprefix("python -m ").split())

    written = [
        f"schemas/{NEW_EVENT}.v1.json",
        f"crm/projections/{NEW_PROJECTION}.py",
        f"tests/test_projection_{NEW_PROJECTION}.py",
    ]
    assert all((copy / name).exists() and not (ROOT / name).exists() for name in written)
    python = [*written[1:], "crm/projections/registry.py"]
    run_in(copy, "-m", "ruff", "check", "--no-cache", *python)
    run_in(copy, "-m", "ruff", "format", "--check", "--no-cache", *python)
    pytest_args = ("-m", "pytest", "-q", "-p", "no:cacheprovider", *CONCERNED)
    said = run_in(copy, *pytest_args, server_url=server_url)
    assert " passed" in said and "skipped" not in said, said


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Enough of a checkout for the scaffolds: the schemas, the projections, a tests folder."""
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copytree(
        ROOT / "crm" / "projections",
        tmp_path / "crm" / "projections",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (tmp_path / "tests").mkdir()
    return tmp_path


def files_in(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_event_skeleton_accepts_its_example_and_waits_to_be_locked(root: Path) -> None:
    scaffold_event(NEW_EVENT, root=root)
    types = load_event_types(root / "schemas")
    new = types.get(NEW_EVENT, 1)
    validate_payload(new, new.schema["examples"][0])
    assert all(rule.description for rule in field_rules(new).values())
    assert unlocked_versions(types, read_lock(root / "schemas")) == [
        f"{NEW_EVENT}.v1 is not in schemas/meanings.lock: once its schema is final, run "
        f"`{LOCK_COMMAND}` to add it, and commit the lock with it."
    ]


@pytest.mark.parametrize(
    "name", ["Contact-Starred", "contact_starred", "contact--starred", "contact-starred-", "-x"]
)
def test_an_event_type_name_that_is_not_kebab_case_is_refused(root: Path, name: str) -> None:
    before = files_in(root)
    with pytest.raises(Refused, match="kebab-case"):
        scaffold_event(name, root=root)
    assert files_in(root) == before


def test_an_existing_event_type_is_refused_saying_how_to_change_it(root: Path) -> None:
    with pytest.raises(Refused, match=r"contact-created\.v1\.json exists.*next version"):
        scaffold_event("contact-created", root=root)


def test_an_event_type_not_in_the_past_tense_is_written_with_a_hint(root: Path) -> None:
    assert scaffold_event("contact-star", root=root).notes
    assert not scaffold_event("contact-sent", root=root).notes


def test_a_projection_is_keyed_by_the_id_every_event_carries(root: Path) -> None:
    scaffold_projection("signups", ["account-created"], root=root)
    module = (root / "crm" / "projections" / "signups.py").read_text()
    assert "    account_id: Uuid\n    last_updated_at: datetime\n" in module
    assert "contact_id" not in module


def test_a_projection_is_registered_last_and_imported_in_order(root: Path) -> None:
    scaffold_projection(NEW_PROJECTION, ["contact-created"], root=root)
    tree = ast.parse((root / "crm" / "projections" / "registry.py").read_text())
    imported = [n.module for n in tree.body if isinstance(n, ast.ImportFrom)]
    projections = [m for m in imported if m and m.startswith("crm.projections.")]
    assert f"crm.projections.{NEW_PROJECTION}" in projections
    assert projections == sorted(projections)
    (everything,) = [n for n in tree.body if isinstance(n, ast.AnnAssign) and n.target.id == "ALL"]
    assert isinstance(everything.value, ast.Tuple)
    assert ast.unparse(everything.value.elts[-1]) == NEW_PROJECTION.upper()


@pytest.mark.parametrize(
    ("name", "events", "refusal"),
    [
        ("Stars", ["contact-created"], "snake_case"),
        ("contact-stars", ["contact-created"], "snake_case"),
        ("class", ["contact-created"], "snake_case"),
        ("s" * 31, ["contact-created"], "too long"),
        ("stars", [], "name the event types"),
        ("stars", ["contact-created", "contact-starred"], "no schema in schemas/ for 'contact-st"),
        ("contacts", ["contact-created"], r"crm/projections/contacts\.py exists"),
    ],
)
def test_a_projection_that_would_be_wrong_is_refused_and_nothing_written(
    root: Path, name: str, events: list[str], refusal: str
) -> None:
    before = files_in(root)
    with pytest.raises(Refused, match=refusal):
        scaffold_projection(name, events, root=root)
    assert files_in(root) == before


def test_a_new_version_and_its_upcaster_pass_the_tests_as_scaffolded(
    tmp_path: Path, server_url: str
) -> None:
    copy = copy_of_the_checkout(tmp_path)
    said = run_in(copy, "-m", "crm.scaffold", "version", "contact-tagged")
    assert "contact_tagged_v1_to_v2" in said and LOCK_COMMAND in said
    run_in(copy, "-m", *LOCK_COMMAND.removeprefix("python -m ").split())
    run_in(copy, "-m", *DOCS_COMMAND.removeprefix("python -m ").split())
    assert (copy / "schemas" / "contact-tagged.v2.json").exists()
    run_in(copy, "-m", "ruff", "check", "--no-cache", "crm/store/upcasters.py")
    run_in(copy, "-m", "ruff", "format", "--check", "--no-cache", "crm/store/upcasters.py")
    tests = ("tests/test_upcasting.py", "tests/test_event_types.py", "tests/test_tags.py")
    said = run_in(
        copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, server_url=server_url
    )
    assert " passed" in said and "failed" not in said, said


def test_only_an_existing_event_type_gets_a_next_version(root: Path) -> None:
    with pytest.raises(Refused, match="there is no event type 'contact-starred'"):
        scaffold_version("contact-starred", root=root)
