"""Markdown notes to sanitized HTML, memoized: a replay renders each distinct text once."""

from functools import lru_cache

import markdown as markdown_lib
import nh3

_ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
# One converter, reset between texts: building a Markdown instance costs more than converting.
_converter = markdown_lib.Markdown(extensions=["tables", "fenced_code", "sane_lists"])


@lru_cache(maxsize=8192)
def render_markdown(text: str) -> str:
    html = _converter.reset().convert(text)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
    )
