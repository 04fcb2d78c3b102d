"""A list page's state in its URL: sort, direction, search, page and filters."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from crm.web.params import a_choice, a_page, a_search_text

PER_PAGE = 50


@dataclass(frozen=True)
class Listing:
    sort: str
    direction: str
    q: str
    page: int
    filters: dict[str, str] = field(default_factory=dict)  # e.g. {"tag": "family"}, if set

    @classmethod
    def parse(
        cls,
        params: Any,
        sorts: Mapping[str, str],
        default_sort: str,
        default_dir: str,
        filters: tuple[str, ...] = (),
    ) -> "Listing":
        """Malformed values fall back (default sort and direction, page 1); a search and each
        filter are cleaned like a search, and an empty one is no filter."""
        chosen = {name: a_search_text(params.get(name)) for name in filters}
        return cls(
            a_choice(params.get("sort"), sorts, default_sort),
            a_choice(params.get("dir"), ("asc", "desc"), default_dir),
            a_search_text(params.get("q")),
            a_page(params.get("page")),
            {name: value for name, value in chosen.items() if value},
        )

    @property
    def offset(self) -> int:
        return (self.page - 1) * PER_PAGE

    def query(self, **changes: Any) -> str:
        values = {
            "sort": self.sort,
            "dir": self.direction,
            "q": self.q,
            **self.filters,
            "page": self.page,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def like(q: str) -> str:
    """A LIKE pattern matching q anywhere, its wildcards taken literally."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
