"""Markdown notes to sanitized HTML: deterministic, bounded, and never on the event loop.

The renderer is mistune 3 with escape=True (raw HTML in a note is shown as text), then nh3 with
an allow-list. Python-Markdown, the seed's renderer, raised RecursionError on 1.5 KB of "1. " and
took over 30 s on 20 KB of "["; mistune renders a realistic 20,000-character note in ~13 ms of CPU,
but some inputs still cost seconds (reference definitions full of entities) or expand a hundred
times (one long link reference used hundreds of times). Notes are untrusted, so every note is
rendered in a worker process, under two limits checked per note inside the worker:

- CPU time (a virtual-time timer interrupts the renderer): NOTE_CPU_LIMIT in the projections, the
  much smaller RENDER_BUDGET at the write, where `Renderer.measure` refuses a costly note with a
  field error, so a stored note renders fast;
- the size of the HTML: MAX_HTML characters.

A note over either limit is a RenderFailed: the projector parks the event at once (rendering is
deterministic; retrying cannot help), replay parks it the same way. A worker that stops answering
altogether is killed by a wall-clock timeout and replaced.
"""

import asyncio
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from types import FrameType
from typing import TypeVar

import mistune
import nh3
from pebble import ProcessExpired, ProcessPool

# Bump when the HTML a note renders to changes (a mistune option, an nh3 rule): every projection
# holding rendered notes is then rebuilt at start, since its stored HTML is reused otherwise.
HTML_VERSION = 1
# CPU seconds a note may cost, checked at the write. A note that merely looks odd must pass with
# room to spare ("[" * 10,000 costs ~70 ms here), a pathological one not ("*_" * 10,000: ~210 ms)
RENDER_BUDGET = 0.100
NOTE_CPU_LIMIT = 1.0  # CPU seconds for one note in the projections: 10 times the budget
MAX_HTML = 100_000  # characters of HTML a note may become (a 20,000-character note: ~30,000)
WALL_TIMEOUT = 30.0  # seconds a worker may take for one task before it is killed
_GRACE = 5.0  # beyond WALL_TIMEOUT: pebble has not answered at all, its pool is wedged
_CHUNK_CHARACTERS = 200_000  # of notes sent to the worker per task
_CACHE_CHARACTERS = 16_000_000  # of notes and HTML remembered in the app process

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
    """A note that cannot be rendered within the limits (or at all)."""

    def __init__(self, reason: str, text: str | None = None) -> None:
        super().__init__(reason)
        self.text = text


def render_markdown(text: str) -> str:
    """The sanitized HTML of a note: the same text always gives the same HTML. Unbounded: call
    it through a Renderer."""
    html = _markdown(text)
    assert isinstance(html, str)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
    )


@dataclass(frozen=True)
class Rendered:
    """What the worker made of one note: its HTML and CPU cost, or why it has none."""

    html: str | None
    cpu_seconds: float
    problem: str = ""


class _OverLimit(Exception):
    pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _OverLimit


def _render_within(text: str, cpu_limit: float) -> Rendered:
    """Runs in the worker's main thread, where the timer's signal is delivered."""
    signal.signal(signal.SIGVTALRM, _interrupt)
    started = time.process_time()
    signal.setitimer(signal.ITIMER_VIRTUAL, cpu_limit)
    try:
        html = render_markdown(text)
    except _OverLimit:
        return Rendered(None, cpu_limit, f"took more than {cpu_limit:g}s of CPU to render")
    except Exception as error:  # the renderer's own failure on this text, e.g. RecursionError
        return Rendered(None, time.process_time() - started, f"rendering failed: {error!r}")
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    seconds = time.process_time() - started
    if len(html) > MAX_HTML:
        problem = f"renders to {len(html):,} characters of HTML (at most {MAX_HTML:,})"
        return Rendered(None, seconds, problem)
    return Rendered(html, seconds)


def render_each(texts: list[str], cpu_limit: float = NOTE_CPU_LIMIT) -> list[Rendered]:
    """The worker's task: every note rendered within the limits."""
    return [_render_within(text, cpu_limit) for text in texts]


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
class _Remembered:
    """An LRU of note -> HTML bounded by characters, not entries: one note may be 100 KB."""

    limit: int = _CACHE_CHARACTERS
    size: int = 0
    entries: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def get(self, text: str) -> str | None:
        html = self.entries.get(text)
        if html is not None:
            self.entries.move_to_end(text)
        return html

    def put(self, text: str, html: str) -> None:
        if text in self.entries:
            return
        self.entries[text] = html
        self.size += len(text) + len(html)
        while self.size > self.limit:
            old_text, old_html = self.entries.popitem(last=False)
            self.size -= len(old_text) + len(old_html)


@dataclass
class Renderer:
    """A worker process (started on first use) that renders notes, and what it rendered."""

    # what the worker runs on a list of notes; tests give one that hangs on purpose
    render_all: Callable[[list[str]], list[Rendered]] = render_each
    wall_timeout: float = WALL_TIMEOUT
    # checks waiting for the worker beyond which measure() refuses at once: with one check per
    # account at a time and at most RENDER_BUDGET each, a save waits 32 x 100 ms at worst
    max_waiting: int = 32
    _pool: ProcessPool | None = field(default=None, init=False, repr=False)
    _cache: _Remembered = field(default_factory=_Remembered, init=False, repr=False)
    _waiting: int = field(default=0, init=False, repr=False)

    def _worker(self) -> ProcessPool:
        if self._pool is None:
            # spawn, not fork: the app has threads (the event reader, psycopg's) a fork would copy
            self._pool = ProcessPool(max_workers=1, context=get_context("spawn"))
        return self._pool

    async def _run(self, function: Callable[..., R], *arguments: object) -> R:
        self._waiting += 1
        pool = self._worker()
        answer: asyncio.Future[R] | None = None
        try:
            try:
                scheduled = pool.schedule(function, args=arguments, timeout=self.wall_timeout)
            except Exception as error:  # a pool that cannot take work: start afresh next time
                await self._discard(pool)
                raise RendererUnavailable(
                    f"the Markdown renderer is unavailable: {error!r}"
                ) from error
            answer = asyncio.wrap_future(scheduled)
            # pebble answers within wall_timeout; if it never does (a wedged pool), no request
            # may wait for ever: a caller blocked here also blocks a graceful shutdown
            done, _ = await asyncio.wait({answer}, timeout=self.wall_timeout + _GRACE)
            if not done:
                await self._discard(pool)
                raise RendererUnavailable("the Markdown renderer did not answer")
            try:
                return answer.result()
            except TimeoutError:  # pebble has killed the worker and started another
                raise RenderFailed(
                    f"the renderer took longer than {self.wall_timeout:g}s"
                ) from None
            except ProcessExpired as died:
                raise RenderFailed(f"the renderer died ({died})") from None
            except Exception as error:  # the pool itself broke: the next call starts a new one
                await self._discard(pool)
                raise RendererUnavailable(
                    f"the Markdown renderer is unavailable: {error!r}"
                ) from error
        finally:
            self._waiting -= 1
            if answer is not None and not answer.done():
                answer.cancel()

    async def _discard(self, pool: ProcessPool) -> None:
        # only the pool this call used: another caller may already have started a new one
        if self._pool is pool:
            self._pool = None
            pool.stop()
            await asyncio.to_thread(pool.join)

    async def render(self, texts: Iterable[str]) -> dict[str, str]:
        """Each distinct note's HTML. Raises RenderFailed naming the first note that failed."""
        html, failed = await self.render_some(texts)
        for text, problem in failed.items():
            raise RenderFailed(problem, text)
        return html

    async def render_some(self, texts: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
        """The HTML of each distinct note that renders, and the problem of each that does not."""
        html: dict[str, str] = {}
        failed: dict[str, str] = {}
        missing = []
        for text in dict.fromkeys(texts):
            known = self._cache.get(text)
            if known is None:
                missing.append(text)
            else:
                html[text] = known
        for chunk in _chunks(missing):
            try:
                outcomes = await self._run(self.render_all, chunk)
            except RenderFailed:  # a worker that hung: one note at a time finds which
                outcomes = [await self._render_alone(text) for text in chunk]
            for text, outcome in zip(chunk, outcomes, strict=True):
                if outcome.html is None:
                    failed[text] = outcome.problem
                else:
                    self._cache.put(text, outcome.html)
                    html[text] = outcome.html
        return html, failed

    async def _render_alone(self, text: str) -> Rendered:
        try:
            (outcome,) = await self._run(self.render_all, [text])
        except RenderFailed as failed:
            return Rendered(None, 0.0, str(failed))
        return outcome

    async def measure(self, text: str) -> Rendered:
        """Render one note within RENDER_BUDGET, to decide at the write whether to take it.

        Refuses at once (RendererUnavailable) when more than max_waiting tasks wait: a flood of
        costly notes must not queue everyone's saves behind it. Remembers nothing: a refused
        note, or one posted to a contact that is not the poster's, leaves no trace.
        """
        if self._waiting >= self.max_waiting:
            raise RendererUnavailable("too many notes are being checked; try again shortly")
        (outcome,) = await self._run(render_each, [text], RENDER_BUDGET)
        return outcome

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None
