"""docs/events.md and docs/projections.md are what `python -m crm.docs` writes from the
declarations (schemas/, crm/projections/): a committed page that differs fails, naming the command.
"""

from pathlib import Path

import pytest

from crm.docs import COMMAND, DOCS_DIR, EVENTS_PAGE, PROJECTIONS_PAGE, main, pages
from crm.projections.registry import ALL
from crm.store.event_types import load_event_types

TYPES = load_event_types()
PAGES = pages(TYPES, ALL)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_committed_page_is_what_the_declarations_give(name: str) -> None:
    path = DOCS_DIR / name
    committed = path.read_text() if path.exists() else None
    assert committed == PAGES[name], f"docs/{name} is stale: run `{COMMAND}` and commit it"


def test_every_event_type_version_and_projection_has_its_section() -> None:
    for name, version in TYPES.by_key:
        assert f"\n## {name} v{version}\n" in PAGES[EVENTS_PAGE]
    for projection in ALL:
        section = PAGES[PROJECTIONS_PAGE].split(f"\n## {projection.name}\n")[1].split("\n## ")[0]
        assert f"`{projection.table}`" in section
        assert all(f"| `{column}` |" in section for column in projection.columns)
        assert all(f"`{name}` [v" in section for name in projection.handlers)


def test_a_field_shows_its_type_limits_and_whether_it_fits_on_one_line() -> None:
    section = PAGES[EVENTS_PAGE].split("\n## contact-created v1\n")[1].split("\n## ")[0]
    assert "| `name` | string | 1 to 200 characters; not blank | yes | yes |" in section
    assert "| `description` | string | at most 2,000 characters | yes | no |" in section
    assert "| `contact_id` | string (uuid) |" in section


def test_check_names_the_stale_page_and_writing_makes_it_current(tmp_path: Path, capsys) -> None:
    # events.md edited by hand, projections.md missing
    (tmp_path / EVENTS_PAGE).write_text(PAGES[EVENTS_PAGE].replace("account", "acount"))
    assert main(["--check", "--docs", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / EVENTS_PAGE} is stale: run `{COMMAND}`" in err
    assert f"{tmp_path / PROJECTIONS_PAGE} is missing" in err
    assert main(["--docs", str(tmp_path)]) == 0
    assert main(["--check", "--docs", str(tmp_path)]) == 0
    assert (tmp_path / PROJECTIONS_PAGE).read_text() == PAGES[PROJECTIONS_PAGE]
