"""The docs stay true: every setting, command and event type is documented."""

import re
from pathlib import Path

from crm import ROOT

README = (ROOT / "README.md").read_text()
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    source = (ROOT / "crm" / "settings.py").read_text()
    names = set(re.findall(r'"((?:CRM_|DATABASE_|PORT)[A-Z_]*)"', source))
    assert names >= {"DATABASE_URL", "CRM_DATA_DIR", "PORT", "CRM_SMTP_URL"}
    for name in names:
        assert f"`{name}`" in README, f"{name} is not documented in README.md"


def test_the_architecture_doc_points_to_the_generated_reference() -> None:
    # every event type, version and projection is documented in docs/events.md and
    # docs/projections.md, generated from the declarations (python -m crm.docs) and checked fresh
    # by tests/test_generated_docs.py: a new event type costs no hand-written line here
    assert "events.md" in ARCHITECTURE
    assert "projections.md" in ARCHITECTURE


def test_every_sql_table_is_in_the_architecture_doc() -> None:
    for path in sorted(Path(ROOT / "sql").glob("*.sql")):
        for table in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", path.read_text()):
            assert f"`{table}`" in ARCHITECTURE, f"{table} ({path.name})"


def test_the_readme_states_the_two_commands_and_ci_runs_the_second() -> None:
    assert "pip install -e . && python -m crm" in README
    assert "<!-- test-command -->" in README
    assert "test-command" in (ROOT / ".ci" / "run").read_text()
