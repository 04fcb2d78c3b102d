"""Markdown notes to sanitized HTML: deterministic, bounded, and never on the event loop.

The renderer is mistune 3 with escape=True (raw HTML in a note is shown as text), then nh3 with
an allow-list. Python-Markdown, the seed's renderer, raised RecursionError on 1.5 KB of "1. " and
took over 30 s on 20 KB of "["; measured here, mistune stays linear: a realistic 20,000-character
note takes ~13 ms of CPU, the worst hostile one found ~120 ms (docs/architecture.md, "Untrusted
text"). Notes are still untrusted, so rendering runs in a worker process:

- at the write, `Renderer.measure` refuses a note whose rendering costs more than RENDER_BUDGET
  of CPU (a field error), so a stored note renders fast;
- in the projections, `Renderer.render` renders with a hard timeout (HARD_TIMEOUT per 20,000
  characters); the worker is killed and replaced when it runs over, and the caller gets
  RenderFailed, which the projector answers by parking the event (crm/projections/poison.py).
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import TypeVar

import mistune
import nh3
from pebble import ProcessExpired, ProcessPool

RENDER_BUDGET = 0.050  # CPU seconds a note may cost to render, checked at the write
HARD_TIMEOUT = 2.0  # wall seconds per 20,000 characters before the worker is killed
_CHUNK_CHARACTERS = 200_000  # texts sent to the worker per task
_CACHE_SIZE = 4096

_ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
A = TypeVar("A")
R = TypeVar("R")
_markdown = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])


class RendererUnavailable(Exception):
    """The worker process could not be started or reached: a transient failure, not the text's."""


class RenderFailed(Exception):
    """A note that could not be rendered in time (or at all)."""

    def __init__(self, reason: str, text: str | None = None) -> None:
        super().__init__(reason)
        self.text = text


def render_markdown(text: str) -> str:
    """The sanitized HTML of a note: the same text always gives the same HTML."""
    html = _markdown(text)
    assert isinstance(html, str)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
    )


def _render_all(texts: list[str]) -> list[str]:
    return [render_markdown(text) for text in texts]


def _measure(text: str) -> tuple[str, float]:
    started = time.process_time()
    html = render_markdown(text)
    return html, time.process_time() - started


def _time_limit(texts: list[str]) -> float:
    return HARD_TIMEOUT * max(1.0, sum(map(len, texts)) / 20_000)


def _chunks(texts: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for text in texts:
        if chunk and size + len(text) > _CHUNK_CHARACTERS:
            yield chunk
            chunk, size = [], 0
        chunk.append(text)
        size += len(text)
    if chunk:
        yield chunk


@dataclass
class Renderer:
    """Renders notes in a worker process (started on first use), memoizing the results."""

    timeout_scale: float = 1.0  # tests shrink the hard timeout with this
    # what the worker runs on a list of texts; tests give one that is slow on purpose
    render_all: Callable[[list[str]], list[str]] = _render_all
    _pool: ProcessPool | None = field(default=None, init=False, repr=False)
    _cache: OrderedDict[str, str] = field(default_factory=OrderedDict, init=False, repr=False)

    def _worker(self) -> ProcessPool:
        if self._pool is None:
            # spawn, not fork: the app has threads (the event reader, psycopg's) a fork would copy
            self._pool = ProcessPool(max_workers=1, context=get_context("spawn"))
        return self._pool

    async def _run(self, function: Callable[[A], R], argument: A, limit: float) -> R:
        try:
            future = self._worker().schedule(function, args=(argument,), timeout=limit)
            result: R = await asyncio.wrap_future(future)
        except (FutureTimeout, TimeoutError):  # pebble has killed the worker and starts another
            raise RenderFailed(f"rendering took longer than {limit:g}s") from None
        except ProcessExpired as died:
            raise RenderFailed(f"the renderer died ({died})") from None
        except Exception as error:
            if hasattr(error, "traceback"):  # pebble marks what the function itself raised
                raise RenderFailed(f"rendering failed: {error!r}") from error
            self.close()  # a broken pool: start afresh next time
            raise RendererUnavailable(f"the Markdown renderer is unavailable: {error!r}") from error
        return result

    def _remember(self, text: str, html: str) -> None:
        self._cache[text] = html
        self._cache.move_to_end(text)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    async def render(self, texts: Iterable[str]) -> dict[str, str]:
        """Each distinct text's HTML. Raises RenderFailed naming the first text that failed."""
        unique = dict.fromkeys(texts)
        result = {text: self._cache[text] for text in unique if text in self._cache}
        missing = [text for text in unique if text not in result]
        for chunk in _chunks(missing):
            try:
                htmls = await self._run(self.render_all, chunk, self._limit(chunk))
            except RenderFailed:
                htmls = [await self.render_one(text) for text in chunk]  # find the culprit
            for text, html in zip(chunk, htmls, strict=True):
                self._remember(text, html)
                result[text] = html
        return result

    async def render_one(self, text: str) -> str:
        if text in self._cache:
            return self._cache[text]
        try:
            (html,) = await self._run(self.render_all, [text], self._limit([text]))
        except RenderFailed as failed:
            raise RenderFailed(str(failed), text) from failed
        self._remember(text, html)
        return html

    async def measure(self, text: str) -> float:
        """The CPU seconds this text takes to render (remembering its HTML); RenderFailed if it
        runs past the hard timeout."""
        html, seconds = await self._run(_measure, text, self._limit([text]))
        self._remember(text, html)
        return seconds

    def _limit(self, texts: list[str]) -> float:
        return _time_limit(texts) * self.timeout_scale

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None
