"""The concurrent page engine: a sliding window of page requests, yielded in page order.

It knows nothing of HTTP: it calls ``fetch_page(page) -> TicketList`` and plans from what
comes back. The first page is fetched alone; its ``total_results`` gives the last page, and
the rest are fetched with at most ``max_concurrency`` requests in flight and at most
``2 * max_concurrency`` pages held (in flight, or finished and waiting for a slower head page
or for the consumer). A request starts as soon as one finishes (no batches), and only while
the consumer asks for more (back-pressure).

Drift (tickets created or deleted while the listing runs) shifts offset pages. Every page
reports the ``total_results`` it was served with, so each page's window can be placed on the
listing as it stood when the first page came back, assuming the change happened at the front
(newest-first listings, the hard case). Once the planned pages are in, any stretch of that
original listing no page covered is fetched again where it now lives, and tickets are
de-duplicated by id. Growth at the end is caught by reading past the plan until a short page.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import msgspec

from ._config import check_int
from ._exceptions import TamioError
from .models import Ticket, TicketList

__all__ = ["FetchPage", "ListingStats", "PageStream", "Progress", "TicketStream"]

logger = logging.getLogger("tamio_async")

T = TypeVar("T")
S = TypeVar("S", bound="_Stream[Any]")
FetchPage = Callable[[int], Awaitable[TicketList]]
#: Rounds of gap repair before we accept that the listing will not hold still.
_REPAIR_ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a listing stands, passed to ``on_progress`` after each page."""

    pages_done: int
    pages_total: int | None
    tickets_done: int
    total_results: int | None


@dataclasses.dataclass
class ListingStats:
    """Live counters of one listing; readable during and after iteration."""

    pages_fetched: int = 0
    tickets_yielded: int = 0
    duplicates_dropped: int = 0
    retries: int = 0
    first_total_results: int | None = None
    last_total_results: int | None = None
    pages_planned: int | None = None
    #: Pages fetched beyond the plan because the listing moved (tail or gap repair).
    extra_pages: int = 0
    drift_detected: bool = False
    sequential: bool = False

    def note_retry(self) -> None:
        """Count one retry (the client calls this from its retry hook)."""
        self.retries += 1


class _Listing:
    """The engine's state: plan, in-flight tasks, coverage, seen ids. See `PageStream`."""

    def __init__(
        self,
        fetch_page: FetchPage,
        *,
        per_page: int,
        max_concurrency: int,
        start_page: int,
        end_page: int | None,
        limit: int | None,
        on_progress: Callable[[Progress], object] | None,
        stats: ListingStats,
    ) -> None:
        check_int("per_page", per_page, minimum=1)
        check_int("max_concurrency", max_concurrency, minimum=1)
        check_int("start_page", start_page, minimum=1)
        if end_page is not None:
            check_int("end_page", end_page, minimum=start_page)
        if limit is not None:
            check_int("limit", limit, minimum=0)
        if on_progress is not None and not callable(on_progress):
            raise TypeError("on_progress must be a callable taking a Progress")
        self._fetch_page = fetch_page
        self._per_page = per_page
        self._concurrency = max_concurrency
        self._start = start_page
        self._end = end_page
        self._limit = limit
        self._on_progress = on_progress
        self.stats = stats
        self._tasks: dict[int, asyncio.Task[TicketList]] = {}
        self._seen: set[str] = set()
        self._pages_done = 0
        # (start, end) of each fetched page on the listing as it stood at the first page.
        self._covered: list[tuple[int, int]] = []
        self._lengths: dict[int, int] = {}
        # The first page past the start that came back empty: the listing ends there, whatever
        # total_results claimed (a total far beyond the data must not page forever).
        self._empty_at: int | None = None
        # The sliding window: pages still to launch, requests running, and whether to stop.
        self._queue: Iterator[int] = iter(())
        self._upcoming: int | None = None
        self._running = 0
        self._stopping = False
        self._size = per_page  # the page size the server actually uses

    def cancel_now(self) -> None:
        """Cancel every in-flight request (synchronous: usable from ``__del__``)."""
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()

    async def run(self) -> AsyncGenerator[TicketList, None]:
        try:
            first = await self._fetch(self._start)
            last = self._plan(first)
            yield self._emit(first)
            if self._full:
                return
            if last is None:
                async for page in self._sequential(self._start + 1, self._end):
                    yield page
                return
            async for page in self._window(range(self._start + 1, last + 1)):
                yield page
            if self._full:
                return
            if self._empty_at is not None:
                last = min(last, self._empty_at)
            async for page in self._after_plan(last):
                yield page
        finally:
            await self._cancel_all()

    def _plan(self, first: TicketList) -> int | None:
        """The last page to fetch concurrently, or None to page sequentially."""
        total, got = first.total_results, len(first.tickets)
        stats = self.stats
        stats.first_total_results = stats.last_total_results = total
        before = (self._start - 1) * self._per_page
        if total is None or total < before + got or (got == 0 and total > before):
            logger.warning(
                "total_results is %s on page %d with %d tickets; paging sequentially",
                total,
                self._start,
                got,
            )
            stats.sequential = True
            return None
        if got and got != self._per_page and total > before + got:
            # The server uses its own page size (it capped per_page): plan with it.
            logger.warning("server sent %d tickets for per_page=%d", got, self._per_page)
            self._size = got
        last = whole = max(self._start, math.ceil(total / self._size))
        if self._end is not None:
            last = min(last, self._end)
        if self._limit is not None:
            last = min(last, self._start + math.ceil(self._limit / self._size) - 1)
        if last == whole and total and total % self._size == 0 and last != self._end:
            # An exactly full last page may hide more tickets: probe the page after it
            # inside the window instead of in a round trip of its own at the end.
            last += 1
        stats.pages_planned = last - self._start + 1
        return last

    @property
    def _full(self) -> bool:
        return self._limit is not None and self.stats.tickets_yielded >= self._limit

    async def _fetch(self, page: int) -> TicketList:
        try:
            result = await self._fetch_page(page)
        except TamioError as exc:
            exc.page = page
            if page != self._start:  # on the first page there is nothing to resume from
                exc.hint = (
                    f"the tickets of pages before {page} were delivered; "
                    f"resume with start_page={page}"
                )
            raise
        stats = self.stats
        stats.pages_fetched += 1
        total = result.total_results
        if total is not None:
            stats.last_total_results = total
            first_total = stats.first_total_results
            if first_total is not None and total != first_total and not stats.drift_detected:
                stats.drift_detected = True
                logger.warning(
                    "listing changed while paging: total_results %d -> %d (page %d)",
                    first_total,
                    total,
                    page,
                )
        self._cover(page, result)
        return result

    def _cover(self, page: int, result: TicketList) -> None:
        """Record which stretch of the original listing this page showed."""
        first_total = self.stats.first_total_results
        shift = 0
        if first_total is not None and result.total_results is not None:
            shift = result.total_results - first_total
        offset = (page - 1) * self._size - shift
        self._covered.append((offset, offset + len(result.tickets)))
        self._lengths[page] = len(result.tickets)
        if not result.tickets and page > self._start:
            self._empty_at = page if self._empty_at is None else min(self._empty_at, page)

    def _emit(self, page: TicketList) -> TicketList:
        """De-duplicate, apply the limit, count, report progress."""
        stats, seen = self.stats, self._seen
        fresh = [t for t in page.tickets if t.id not in seen]
        if self._limit is not None:
            del fresh[max(self._limit - stats.tickets_yielded, 0) :]
        seen.update(t.id for t in fresh)
        stats.duplicates_dropped += len(page.tickets) - len(fresh)
        if len(fresh) != len(page.tickets):
            page = msgspec.structs.replace(page, tickets=tuple(fresh))
        stats.tickets_yielded += len(fresh)
        self._pages_done += 1
        if self._on_progress is not None:
            planned = stats.pages_planned
            self._on_progress(
                Progress(
                    pages_done=self._pages_done,
                    pages_total=None if planned is None else planned + stats.extra_pages,
                    tickets_done=stats.tickets_yielded,
                    total_results=stats.last_total_results,
                )
            )
        return page

    async def _window(self, pages: range) -> AsyncGenerator[TicketList, None]:
        """Fetch ``pages`` concurrently in a sliding window; yield them in order."""
        self._queue = iter(pages)
        self._upcoming = next(self._queue, None)
        for head in pages:
            self._fill()
            task = self._tasks[head]
            if not task.done():
                await asyncio.wait((task,))
            del self._tasks[head]
            yield self._emit(task.result())
            if self._full or head == self._empty_at:
                return

    def _fill(self) -> None:
        """Launch pages while fewer than ``max_concurrency`` run and ``2 *`` are held.

        Called by each finishing request itself, so its slot is refilled at once rather
        than when the consumer's task next runs; finished pages waiting for a slower head
        page count as held, which bounds memory however slow the consumer.
        """
        tasks, limit = self._tasks, self._concurrency
        while (
            self._upcoming is not None
            and not self._stopping
            and self._running < limit
            and len(tasks) < 2 * limit
            and (self._empty_at is None or self._upcoming <= self._empty_at)
        ):
            self._running += 1
            tasks[self._upcoming] = asyncio.create_task(self._fetch_in_window(self._upcoming))
            self._upcoming = next(self._queue, None)

    async def _fetch_in_window(self, page: int) -> TicketList:
        try:
            return await self._fetch(page)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._stopping = True  # this page will fail the listing: launch nothing more
            raise
        finally:
            self._running -= 1
            self._fill()

    async def _sequential(
        self, page: int, end: int | None, *, extra: bool = False
    ) -> AsyncGenerator[TicketList, None]:
        """One page at a time until a short or empty page (or ``end``)."""
        while end is None or page <= end:
            result = await self._fetch(page)
            self.stats.extra_pages += extra
            yield self._emit(result)
            if self._full or len(result.tickets) < self._size:
                return
            page += 1

    async def _after_plan(self, last: int) -> AsyncGenerator[TicketList, None]:
        """Read past the plan if the listing grew, then fetch what drift left uncovered."""
        stats = self.stats
        grew = (stats.last_total_results or 0) > (stats.first_total_results or 0)
        if self._end is None and (grew or self._lengths.get(last) == self._size):
            async for page in self._sequential(last + 1, None, extra=True):
                yield page
        for _ in range(_REPAIR_ROUNDS):
            if not stats.drift_detected or self._full:
                return
            gaps = self._gap_pages(last)
            if not gaps:
                return
            logger.warning("re-fetching pages %s to cover tickets that drift moved", gaps)
            stats.extra_pages += len(gaps)
            for number in gaps:
                yield self._emit(await self._fetch(number))
                if self._full:
                    return
        logger.warning("listing kept changing; gave up repairing after %d rounds", _REPAIR_ROUNDS)

    def _gap_pages(self, last: int) -> list[int]:
        """Current page numbers holding stretches of the original listing no page showed."""
        stats = self.stats
        first_total = stats.first_total_results or 0
        lo = (self._start - 1) * self._size
        hi = min(first_total, last * self._size)
        shift = (stats.last_total_results or first_total) - first_total
        pages: set[int] = set()
        cursor = lo
        for start, end in sorted(self._covered):
            if start > cursor:
                pages.update(self._pages_for(cursor, min(start, hi), shift))
            cursor = max(cursor, end)
            if cursor >= hi:
                break
        if cursor < hi:
            pages.update(self._pages_for(cursor, hi, shift))
        return sorted(pages)

    def _pages_for(self, start: int, end: int, shift: int) -> range:
        """Pages that now hold original positions [start, end)."""
        first = max(start + shift, 0) // self._size + 1
        last = max(end + shift - 1, 0) // self._size + 1
        return range(first, last + 1)

    async def _cancel_all(self) -> None:
        self._stopping = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        # Waiting retrieves every outcome: no "exception was never retrieved" warnings.
        await asyncio.gather(*tasks, return_exceptions=True)


class _Stream(Generic[T]):
    """What `PageStream` and `TicketStream` share: stats and an early-stop lifecycle."""

    def __init__(self, listing: _Listing, gen: AsyncGenerator[T, None]) -> None:
        # The generator references the engine, never this wrapper: no reference cycle, so
        # dropping the wrapper after a `break` runs __del__ at once.
        self._listing = listing
        self._gen = gen

    @property
    def stats(self) -> ListingStats:
        """Live counters of this listing."""
        return self._listing.stats

    def __aiter__(self: S) -> S:
        return self

    async def __anext__(self) -> T:
        return await self._gen.__anext__()

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: cancel in-flight requests and wait until they are gone."""
        await self._gen.aclose()

    def __del__(self) -> None:
        # `break` out of `async for` never calls aclose(); cancelling is synchronous.
        listing = getattr(self, "_listing", None)
        if listing is not None:
            listing.cancel_now()


class PageStream(_Stream[TicketList]):
    """Async iterator over the pages of a listing, in page order, de-duplicated and limited.

    ``stats`` is live during and after iteration. Use ``async with`` (or ``aclose()``) to
    stop early deterministically; after a plain ``break`` the in-flight requests are
    cancelled as soon as the stream is dropped.
    """

    def __init__(
        self,
        fetch_page: FetchPage,
        *,
        per_page: int,
        max_concurrency: int,
        start_page: int = 1,
        end_page: int | None = None,
        limit: int | None = None,
        on_progress: Callable[[Progress], object] | None = None,
        stats: ListingStats | None = None,
    ) -> None:
        listing = _Listing(
            fetch_page,
            per_page=per_page,
            max_concurrency=max_concurrency,
            start_page=start_page,
            end_page=end_page,
            limit=limit,
            on_progress=on_progress,
            stats=stats if stats is not None else ListingStats(),
        )
        super().__init__(listing, listing.run())


class TicketStream(_Stream[Ticket]):
    """Async iterator over the tickets of a listing (a flattened `PageStream`)."""

    def __init__(self, pages: PageStream) -> None:
        super().__init__(pages._listing, _flatten(pages._gen))
        self._pages = pages  # dropping it would run its __del__, which stops the listing


async def _flatten(pages: AsyncGenerator[TicketList, None]) -> AsyncGenerator[Ticket, None]:
    async with contextlib.aclosing(pages):  # closing the tickets closes the pages
        async for page in pages:
            for ticket in page.tickets:
                yield ticket
