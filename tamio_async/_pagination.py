"""The concurrent page engine and the listing contract it keeps.

It knows nothing of HTTP: it calls ``fetch_page(page) -> TicketList``. The first page's
``total_results`` and length give the plan (the server's real page size, the last page); the
rest are fetched in a sliding window of at most ``max_concurrency`` requests, at most
``2 * max_concurrency`` pages held, yielded in page order with back-pressure. Two things
spare small listings round trips while the first page is in flight: ``speculative_pages``
pages after it are asked at once (each one past the end is a wasted request, never a wrong
answer: an answer the plan does not need is dropped unread), and ``warm(n)`` readies the
connections the first window will use.

**The contract** (README, "The listing contract"), whatever the server does:

(a) a listing ends within ``stats.request_budget`` page requests (``max_requests``, default
    ``3 * pages_planned + 4 * max_concurrency + 16``; retries of one request count once);
(b) it never yields a ticket id twice;
(c) it yields every ticket present from the start to the end of the listing, or, after
    yielding all it could, raises `IncompleteListingError` saying what is uncovered.
    Deletions during a listing are outside (c); they cannot cause (a) or (b) to fail.

How (c) is decided, in `_Coverage`, the one place that says "done": every answered page is a
contiguous block of the listing as it stood at that moment. Tickets keep their relative order
when others are inserted, so two blocks that share an id overlap, and two consecutive page
numbers are adjacent when the earlier page is full, was answered no later than the next one
(its ``total_results`` is not larger, or its answer arrived before the next was asked), and
fewer than a page of tickets arrived in between (else the next could lie wholly before it).
A chain of such links from a block that starts the range to one that reaches its end proves
that no ticket present throughout was skipped; positions are never trusted alone. When no
chain exists the engine repairs: from the end of each connected stretch it asks the page that
now holds what follows (estimated from the latest ``total_results``, falling back to the next
page number, which always links), concurrently, round after round, until the chain is whole,
two rounds bring no progress, or the budget is spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from ._exceptions import IncompleteListingError, TamioError
from ._params import check_paging
from ._stats import ListingStats, Progress
from .models import Ticket, TicketList

__all__ = [
    "FetchPage",
    "ListingStats",
    "OnProgress",
    "PageStream",
    "Progress",
    "TicketStream",
    "Warm",
]

logger = logging.getLogger("tamio_async")

T = TypeVar("T")
S = TypeVar("S", bound="_Stream[Any]")
FetchPage = Callable[[int], Awaitable[TicketList]]
#: Make ``n`` connections ready for the requests to come (the client's pre-connect).
Warm = Callable[[int], Coroutine[Any, Any, None]]
#: One page's answer and the listing's clock ticks when it was asked and answered.
Answer = tuple[TicketList, int, int]
#: Called after each page; may be a coroutine function (it is then awaited).
OnProgress = Callable[[Progress], object]
#: Repair rounds in a row that may bring no progress before the listing gives up.
_STALLED_ROUNDS = 3
#: Without total_results nothing plans the listing: this many requests at the most.
_SEQUENTIAL_BUDGET = 100_000


def default_budget(pages_planned: int, max_concurrency: int) -> int:
    """The request budget of a listing that planned ``pages_planned`` pages (README)."""
    return 3 * pages_planned + 4 * max_concurrency + 16


class _Block(NamedTuple):
    """One answered page, as the coverage sees it."""

    number: int
    total: int | None
    length: int
    #: Ticks of the listing's clock when the request went out and when the answer came in.
    sent: int
    answered: int


#: Gives the page number to ask when the request is launched (from the latest total then).
PageAt = Callable[[], int]


class _Verdict(NamedTuple):
    done: bool
    #: The start page's stretch of the listing reaches this far (positions as at page one).
    reach: int
    repairs: list[PageAt]
    missing: tuple[tuple[int, int], ...]


class _Coverage:
    """What the listing has covered against what the server said exists.

    Positions are those of the listing as it stood when the first page was answered
    (``first_total`` tickets); a block answered with ``total`` tickets is placed as if the
    difference had happened at the front (the worst case), but only id overlaps and
    adjacency links prove coverage (see the module docstring).
    """

    def __init__(self, *, start: int, end: int | None, size: int, first_total: int) -> None:
        self.start = start
        self.end = end
        self.size = size
        self.first_total = first_total
        #: The total of the most recent answer: where tickets are now.
        self.latest_total = first_total
        self.blocks: list[_Block] = []
        self._parent: list[int] = []
        # Every id seen; and, once blocks first share an id, which block first brought each
        # (shared ids link blocks).
        self._seen: set[str] = set()
        self._ids: list[list[str]] = []
        self._owner: dict[str, int] | None = None
        # Links by shared ids (kept to rebuild the links if the page size turns out larger),
        # blocks by page number, and how many blocks were already checked for adjacency.
        self._shared: list[tuple[int, int]] = []
        self._by_number: dict[int, list[int]] = {}
        self._checked = 0
        self._checked_size = size
        # How often the end of a stretch was asked for: each attempt aims elsewhere.
        self._attempts: dict[int, int] = {}

    def add(self, block: _Block, tickets: tuple[Ticket, ...]) -> list[Ticket] | None:
        """Record a block; return its tickets not seen before (None: all of them, unchanged)."""
        index = len(self.blocks)
        self.blocks.append(block)
        self._parent.append(index)
        ids = [t.id for t in tickets]
        self._ids.append(ids)
        seen = self._seen
        if seen.isdisjoint(ids):  # the hot path: nothing seen before
            known = len(seen)
            seen.update(ids)
            if len(seen) - known == len(ids):
                if self._owner is not None:
                    self._owner.update(zip(ids, itertools.repeat(index)))
                return None
            seen.difference_update(ids)  # the page repeats an id within itself
        owner = self._owners()
        distinct = len(set(ids))
        if distinct < len(ids):
            # A page that repeats an id within itself may have lost the ticket it displaced:
            # it counts as short (asked again), and yields the repeated ticket once.
            self.blocks[index] = block._replace(length=distinct)
        fresh: list[Ticket] = []
        for ticket in tickets:
            other = owner.get(ticket.id)
            if other is None:
                owner[ticket.id] = index
                seen.add(ticket.id)
                fresh.append(ticket)
            elif other != index:
                self._union(index, other)
                self._shared.append((index, other))
        return fresh

    def _owners(self) -> dict[str, int]:
        """Which block first brought each id; built on the first overlap (no drift, no cost)."""
        if self._owner is None:
            owner: dict[str, int] = {}
            for index, ids in enumerate(self._ids[:-1]):
                for ticket_id in ids:
                    owner.setdefault(ticket_id, index)
            self._owner = owner
        return self._owner

    def knows_all(self, tickets: tuple[Ticket, ...]) -> bool:
        """True if every one of these tickets was seen before."""
        return all(t.id in self._seen for t in tickets)

    @property
    def lo(self) -> int:
        return (self.start - 1) * self.size

    @property
    def hi(self) -> int:
        end = self.first_total if self.end is None else min(self.first_total, self.end * self.size)
        return max(end, self.lo)

    def offset(self, block: _Block) -> int:
        return (block.number - 1) * self.size

    def credited(self, block: _Block) -> bool:
        """A block counts toward coverage if it holds tickets where its own total says some are."""
        return block.total is not None and block.length > 0 and self.offset(block) < block.total

    def claimed_start(self, block: _Block) -> int:
        """Where the block starts on the listing as at page one, if the change was in front."""
        assert block.total is not None
        return self.offset(block) - (block.total - self.first_total)

    def claimed_end(self, block: _Block) -> int:
        # A page longer than the page size is credited with one page: where the rest of its
        # tickets sit is unknown (they are yielded all the same).
        return self.claimed_start(block) + min(block.length, self.size)

    def verdict(self, *, wide: bool = True) -> _Verdict:
        """Is the range covered? If not: the pages to ask now, and what is missing."""
        lo, hi = self.lo, self.hi
        if hi <= lo:
            return _Verdict(True, hi, [], ())
        blocks = self.blocks
        self._link_adjacent()
        members = [i for i, b in enumerate(blocks) if self.credited(b)]
        groups: dict[int, list[int]] = {}
        for i in members:
            groups.setdefault(self._find(i), []).append(i)
        stretches = []  # (claimed start, claimed end, frontier block, starts, ends)
        for group in groups.values():
            first = min(self.claimed_start(blocks[i]) for i in group)
            frontier = max(group, key=lambda i: (self.claimed_end(blocks[i]), blocks[i].number))
            last = self.claimed_end(blocks[frontier])
            starts = any(self.offset(blocks[i]) <= lo for i in group)
            stretches.append((first, last, frontier, starts, last >= hi))
        if any(starts and ends for _, _, _, starts, ends in stretches):
            return _Verdict(True, hi, [], ())
        stretches.sort()
        reach = max((last for _, last, _, starts, _ in stretches if starts), default=lo)
        repairs: list[PageAt] = []
        if not any(starts for *_, starts, _ in stretches):
            start = self.start  # the start page itself came back empty or short: ask again
            repairs.append(lambda: start)
        tail = max((last for _, last, *_ in stretches), default=lo)
        for _, last, frontier, starts, ends in stretches:
            if ends or last < reach or (last == reach and not starts):
                continue  # reaches the end, or lies inside the start's stretch already
            repairs.extend(self._next_pages(frontier, wide, tail))
        return _Verdict(False, reach, repairs, _gaps(stretches, lo, hi))

    def _link_adjacent(self) -> None:
        """Link consecutive page numbers that are provably adjacent (each pair checked once)."""
        if self.size != self._checked_size:  # links made with another page size are void
            self._parent = list(range(len(self.blocks)))
            for i, j in self._shared:
                self._union(i, j)
            self._by_number, self._checked, self._checked_size = {}, 0, self.size
        blocks, by_number = self.blocks, self._by_number
        for i in range(self._checked, len(blocks)):
            block = blocks[i]
            if self.credited(block):
                for j in by_number.get(block.number - 1, ()):
                    if self._adjacent(blocks[j], block):
                        self._union(j, i)
                for j in by_number.get(block.number + 1, ()):
                    if self._adjacent(block, blocks[j]):
                        self._union(i, j)
                by_number.setdefault(block.number, []).append(i)
        self._checked = len(blocks)

    def _adjacent(self, left: _Block, right: _Block) -> bool:
        """``right`` (the next page number) starts where ``left`` ends, or overlaps it.

        True when ``left`` is full, ``right`` was answered no earlier (by its total, or by
        our own clock) and fewer than a page of tickets arrived in between: then it cannot
        lie wholly before ``left`` either.
        """
        assert left.total is not None
        assert right.total is not None
        grown = right.total - left.total
        return (
            left.length >= self.size
            and grown < self.size
            and (grown >= 0 or left.answered < right.sent)
        )

    def _next_pages(self, index: int, wide: bool, tail: int) -> list[PageAt]:
        """Pages that should hold what follows block ``index``, resolved when launched.

        Since that block was answered, ``moved`` tickets came (or went). Whatever follows
        it now sits between its own page (all of them arrived after it) and the page its
        last ticket reaches if all arrived in front. Each guess is a pair of pages (the
        first links by a shared id, the second by adjacency): first the in-front estimate,
        from the total known at launch (newest-first listings, the common case); when that
        missed, the estimate again beside its own page (growth at the end) or, the next
        time, halfway between.
        """
        block, size = self.blocks[index], self.size
        if block.length < size:
            return [lambda: block.number]  # a short page where more should be: ask it again
        assert block.total is not None
        end = self.claimed_end(block)
        attempt = self._attempts.get(index, 0)
        self._attempts[index] = attempt + 1

        def at(step: int, where: int = 0) -> PageAt:
            def page() -> int:
                front = max(end - 1 + self.latest_total - self.first_total, 0) // size + 1
                return (front, block.number, (front + block.number) // 2)[where] + step

            return page

        if self.latest_total == block.total and attempt == 0:
            after = block.number + 1
            first = [lambda: after]  # nothing moved: the next page links
        elif attempt == 0:
            first = [at(0), at(1)]
        else:  # the estimate missed: try it again (fresher) beside a second guess
            other = 2 - attempt % 2
            first = [at(0), at(1), at(0, other), at(1, other)]
        if end < tail:
            return first
        if not wide:
            return first  # after a round without progress: the data may end here
        # The stretch at the tail: read on toward the estimated end in the same round (the
        # window bounds how many run at once; an empty page stops the round).
        shift = self.latest_total - self.first_total
        more = math.ceil((self.hi + shift) / size) - (max(end - 1 + shift, 0) // size + 2)
        return first + [at(2 + k) for k in range(max(more, 0))]

    def _find(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _union(self, i: int, j: int) -> None:
        self._parent[self._find(i)] = self._find(j)


def _gaps(
    stretches: list[tuple[int, int, int, bool, bool]], lo: int, hi: int
) -> tuple[tuple[int, int], ...]:
    """Positions no stretch covers, clipped to the range (estimates when the listing moved)."""
    gaps: list[tuple[int, int]] = []
    cursor = lo
    for first, last, *_ in stretches:
        if first > cursor:
            gaps.append((cursor, min(first, hi)))
        cursor = max(cursor, last)
        if cursor >= hi:
            break
    if cursor < hi:
        gaps.append((cursor, hi))
    return tuple((a, b) for a, b in gaps if a < b)


def _initial_size(start: int, per_page: int, got: int, total: int) -> tuple[int, bool]:
    """The server's page size from the first page: (size, whether the next page must tell).

    A page shorter than asked while more exist means the server caps ``per_page``; a longer
    one means it ignores it. Past page one a short page may also be the last page at the
    size asked for; then only the next page can tell the two apart.
    """
    if got in (0, per_page):
        return per_page, False
    if start == 1:
        return (got, False) if got > per_page or total > got else (per_page, False)
    own = (start - 1) * got + got <= total
    asked = got < per_page and (start - 1) * per_page + got == total
    if own and asked:
        return per_page, True
    return (got, False) if own else (per_page, False)


class _Listing:
    """The engine's state: plan, window, coverage, budget. See `PageStream`."""

    def __init__(
        self,
        fetch_page: FetchPage,
        *,
        per_page: int,
        max_concurrency: int,
        start_page: int,
        end_page: int | None,
        limit: int | None,
        on_progress: OnProgress | None,
        max_requests: int | None,
        stats: ListingStats,
        speculative_pages: int,
        warm: Warm | None,
    ) -> None:
        check_paging(
            per_page=per_page,
            max_concurrency=max_concurrency,
            start_page=start_page,
            end_page=end_page,
            limit=limit,
            max_requests=max_requests,
            speculative_pages=speculative_pages,
        )
        if on_progress is not None and not callable(on_progress):
            raise TypeError("on_progress must be a callable taking a Progress")
        self._fetch_page = fetch_page
        self._per_page = per_page
        self._concurrency = max_concurrency
        self._start = start_page
        self._end = end_page
        self._limit = limit
        self._on_progress = on_progress
        self._max_requests = max_requests
        self.stats = stats
        self._speculate = speculative_pages
        self._warm = warm
        # Requests launched with the first page, by page number, until a phase takes them;
        # and the background work (pre-connect, answers nobody needs) to stop at the end.
        self._speculative: dict[int, asyncio.Task[Answer]] = {}
        self._background: list[asyncio.Task[Any]] = []
        self._tasks: dict[int, asyncio.Task[tuple[TicketList, int, int, int]]] = {}
        self._coverage: _Coverage | None = None
        self._seen: set[str] = set()  # sequential mode only: there is no coverage to keep
        self._clock = itertools.count()
        self._sent = 0
        self._budget = _SEQUENTIAL_BUDGET if max_requests is None else max_requests
        self._pages_done = 0
        # Set when the listing did something that makes page numbers an unsafe resume point.
        self._unsafe_resume = False
        self._warned: set[str] = set()
        self._stale_total = False  # a page past its own total brought new tickets
        self._ambiguous = False  # the first page alone cannot tell the server's page size
        self._repeating: set[int] = set()  # pages whose last answer repeated an id in itself
        # The window: how many to launch, which page each is, requests running, where to stop.
        self._page_at: Callable[[int], int] = int
        self._count = self._next = 0
        self._running = 0
        self._stopping = False
        self._cut: int | None = None

    def cancel_now(self) -> None:
        """Cancel every in-flight request (synchronous: usable from ``__del__``)."""
        self._stopping = True
        for task in [*self._tasks.values(), *self._speculative.values(), *self._background]:
            task.cancel()

    # -- the phases -------------------------------------------------------------------------

    async def run(self) -> AsyncGenerator[TicketList, None]:
        try:
            if self._limit == 0:
                self.stats.request_budget = 0
                return
            answer = await self._first_wave()
            first, _, _ = answer
            if first.total_results is None or first.total_results < 0:
                async for page in self._sequential(answer):
                    yield page
                self._check_repeats()
                return
            last = self._plan(first)
            if self._start > 1 and not first.tickets and first.total_results > 0:
                last = await self._probe_size()
            if not self._ambiguous:  # else the next page may still change the plan
                self._drop_speculation(beyond=last)
            head = await self._process(self._start, answer)
            if head is not None:
                yield head
            following = self._start + 1
            if self._ambiguous and not self._full and self._sent < self._budget:
                async for page in self._settle_size(following):
                    yield page
                last = self._plan_pages()
                following += 1
                self._drop_speculation(beyond=last)
            async for page in self._round(last + 1 - following, lambda i: following + i):
                yield page
            async for page in self._repair():
                yield page
            async for page in self._read_past():
                yield page
            self._check_repeats()
        except TamioError as exc:
            self._annotate(exc)
            raise
        finally:
            await self._cancel_all()

    async def _first_wave(self) -> Answer:
        """Ask the first page, the speculative pages after it, and warm the window's pool.

        Nothing is known before the first answer, so the speculation is bounded only by
        what the caller said: ``end_page``, ``limit`` at ``per_page``, the budget and the
        window (a server that caps ``per_page`` makes these pages smaller, never wrong).
        """
        start, extra = self._start, self._speculate
        extra = min(extra, self._concurrency - 1)
        if self._end is not None:
            extra = min(extra, self._end - start)
        if self._limit is not None:
            extra = min(extra, math.ceil(self._limit / self._per_page) - 1)
        if self._max_requests is not None:
            extra = min(extra, self._max_requests - 1)
        self._sent += 1  # the first page: its task is this one, started below
        for page in range(start + 1, start + 1 + max(extra, 0)):
            self._sent += 1
            self._speculative[page] = asyncio.create_task(self._send(page))
        room = self._concurrency - 1 - len(self._speculative)
        if self._warm is not None and room > 0:
            self._background.append(asyncio.create_task(self._warm(room)))
        return await self._fetch(start, counted=True)

    def _drop_speculation(self, *, beyond: int) -> None:
        """Stop waiting for speculative pages past the plan (their answers are not read)."""
        for page in [p for p in self._speculative if p > beyond]:
            task = self._speculative.pop(page)
            task.cancel()
            self._background.append(task)
            self.stats.speculative_unused += 1

    def _plan(self, first: TicketList) -> int:
        """Learn the page size and total from the first page; return the last page to fetch."""
        total = first.total_results
        assert total is not None
        size, self._ambiguous = _initial_size(
            self._start, self._per_page, len(first.tickets), total
        )
        self.stats.first_total_results = self.stats.last_total_results = total
        self._coverage = _Coverage(start=self._start, end=self._end, size=size, first_total=total)
        self._note_size(size)
        return self._plan_pages()

    def _plan_pages(self) -> int:
        coverage = self._coverage
        assert coverage is not None
        size, lo, hi = coverage.size, coverage.lo, coverage.hi
        last = self._start + max(math.ceil((hi - lo) / size), 1) - 1
        if self._limit is not None:
            last = min(last, self._start + math.ceil(self._limit / size) - 1)
        self.stats.pages_planned = planned = last - self._start + 1
        if self._max_requests is None:
            self._budget = default_budget(planned, self._concurrency)
        self.stats.request_budget = self._budget
        total = coverage.first_total
        if self._end is None and self._limit is None and total > lo and total % size == 0:
            # An exactly full last page may hide a total that lags: check the page after it
            # inside the window, not in a round trip of its own.
            last += 1
        return last

    async def _probe_size(self) -> int:
        """An empty start page past page one: the end, or a hole at a smaller page size?

        At the size asked for it lies past the end; but a server that caps ``per_page``
        puts it inside the listing, and then its emptiness is an anomaly to repair, not
        the end. Page one's length tells the size (its tickets are outside the listing and
        not yielded). Returns the last page of the plan at the size found.
        """
        coverage = self._coverage
        assert coverage is not None
        if self._sent >= self._budget:
            self._incomplete(
                f"the start page was empty and the request budget ({self._budget}) is spent "
                "before page 1 could tell whether it lies past the end",
                coverage.verdict(),
            )
        self.stats.extra_pages += 1
        probe = (await self._fetch(1))[0]
        got, total = len(probe.tickets), probe.total_results or 0
        if 0 < got < self._per_page and total > got:
            coverage.size = got
            self._note_size(got)
        return self._plan_pages()

    async def _settle_size(self, page: int) -> AsyncGenerator[TicketList, None]:
        """Past page one a short first page is a cap or the last page: the next page tells."""
        coverage = self._coverage
        assert coverage is not None
        answer = await self._fetch(page)
        if not coverage.knows_all(answer[0].tickets):  # more data: the server caps per_page
            coverage.size = coverage.blocks[0].length
            self._note_size(coverage.size)
        processed = await self._process(page, answer)
        if processed is not None:
            yield processed

    async def _repair(self) -> AsyncGenerator[TicketList, None]:
        """Rounds of repair until the coverage is whole, stalls, or the budget is spent."""
        coverage = self._coverage
        assert coverage is not None
        stalled, best = 0, -1
        while not self._full:
            # After a round without progress, look just past the gaps: the data may end there.
            verdict = coverage.verdict(wide=not stalled)
            if verdict.done:
                return
            stalled = 0 if verdict.reach > best else stalled + 1
            best = max(best, verdict.reach)
            if stalled >= _STALLED_ROUNDS:
                self._incomplete("the server kept answering without the missing tickets", verdict)
            repairs = verdict.repairs[: self._budget - self._sent]
            if not repairs:
                self._incomplete(f"the request budget ({self._budget}) is spent", verdict)
            self._unsafe_resume = True
            self.stats.repair_rounds += 1
            self.stats.extra_pages += len(repairs)
            self._warn_once(
                "repair",
                "re-fetching %d pages to cover tickets the listing moved or the server skipped",
                len(repairs),
            )
            async for page in self._round(len(repairs), _caller(repairs)):
                yield page

    async def _read_past(self) -> AsyncGenerator[TicketList, None]:
        """A total that lags the data: read on while pages bring new tickets.

        Positions mean nothing once totals lag, so if the listing also moved nothing can
        show it is whole: after reading on, that is said with `IncompleteListingError`.
        """
        coverage = self._coverage
        assert coverage is not None
        page = max(b.number for b in coverage.blocks) + 1
        while self._stale_total and not self._full and (self._end is None or page <= self._end):
            if self._sent >= self._budget:
                self._incomplete(
                    f"the request budget ({self._budget}) is spent and the server kept "
                    "answering past its own total_results",
                    coverage.verdict(),
                )
            self._unsafe_resume = self.stats.sequential = True
            self.stats.extra_pages += 1
            answer = await self._fetch(page)
            fresh = await self._process(page, answer)
            if fresh is not None:
                yield fresh
            if fresh is None or len(answer[0].tickets) < coverage.size:
                break
            page += 1
        if self._stale_total and self.stats.drift_detected and not self._full:
            self._incomplete(
                "total_results lagged behind the data while the listing changed, so no "
                "page position can be trusted",
                coverage.verdict(),
            )

    async def _sequential(self, answer: Answer) -> AsyncGenerator[TicketList, None]:
        """No usable total_results: one page at a time while pages bring new tickets.

        Stops at the first page that is empty, brings nothing new (a server that repeats its
        last page) or is shorter than an earlier page; a short first page is not trusted to
        be the last (the server may cap ``per_page``), so one more page is asked.
        """
        stats = self.stats
        stats.sequential = True
        stats.request_budget = self._budget
        first = answer[0]
        self._warn_once(
            "sequential",
            "total_results is %s on page %d; paging one page at a time",
            first.total_results,
            self._start,
        )
        page, largest = self._start, 0
        while True:
            result = answer[0]
            fresh = await self._process(page, answer)
            if fresh is not None:
                yield fresh
            got = len(result.tickets)
            if self._full or got == 0 or fresh is None or got < largest:
                return
            largest = max(largest, got)
            stats.page_size = largest
            page += 1
            if self._end is not None and page > self._end:
                return
            if self._sent >= self._budget:
                raise IncompleteListingError(
                    f"listing incomplete: the request budget ({self._budget}) is spent and "
                    f"page {page - 1} still brought new tickets; {stats.tickets_yielded} "
                    "tickets were yielded, each once",
                    stats=stats,
                )
            answer = await self._fetch(page)

    # -- one page ---------------------------------------------------------------------------

    async def _fetch(self, page: int, *, counted: bool = False) -> Answer:
        """One page's answer: the speculative request's if one is out, else a new request.

        ``counted`` when the window already charged it to the budget.
        """
        speculative = self._speculative.pop(page, None)
        if speculative is not None:
            answer = await speculative
        else:
            if not counted:
                self._sent += 1
            answer = await self._send(page)
        self.stats.pages_fetched += 1
        total = answer[0].total_results
        if self._coverage is not None and total is not None:
            self._coverage.latest_total = total
        return answer

    async def _send(self, page: int) -> Answer:
        sent = next(self._clock)
        try:
            result = await self._fetch_page(page)
        except TamioError as exc:
            exc.page = page
            raise
        return result, sent, next(self._clock)

    async def _process(self, number: int, answer: Answer) -> TicketList | None:
        """Account for one answered page; return what it brings to yield (None: nothing)."""
        result, sent, answered = answer
        tickets = result.tickets
        coverage = self._coverage
        if coverage is None:  # sequential: only de-duplication
            fresh = _fresh(tickets, self._seen)
            counts = bool(tickets)
        else:
            block = _Block(number, result.total_results, len(tickets), sent, answered)
            fresh = coverage.add(block, tickets)
            # (``add`` counts a page that repeats an id within itself by its distinct ids.)
            counts = self._check_block(coverage.blocks[-1], fresh is None or bool(fresh))
        stats = self.stats
        if fresh is not None:  # the slow path: something was seen before, maybe in this page
            stats.duplicates_dropped += len(tickets) - len(fresh)
            if len({t.id for t in tickets}) < len(tickets):
                self._repeating.add(number)
                self._unsafe_resume = True  # the ticket it displaced lies behind a resume
            else:
                self._repeating.discard(number)
        elif self._repeating:
            self._repeating.discard(number)
        kept: tuple[Ticket, ...] = tickets if fresh is None else tuple(fresh)
        if self._limit is not None and stats.tickets_yielded + len(kept) > self._limit:
            room = self._limit - stats.tickets_yielded
            stats.limit_dropped += len(kept) - room
            kept = kept[:room]
        stats.tickets_yielded += len(kept)
        if counts:
            self._pages_done += 1
            if self._on_progress is not None:
                await self._report()
        if not kept:
            return None
        return result if kept is tickets else msgspec.structs.replace(result, tickets=kept)

    def _check_block(self, block: _Block, brought_new: bool) -> bool:
        """Compare a page with its own total; note drift, caps and anomalies. Counts as done?"""
        coverage = self._coverage
        assert coverage is not None
        stats, total = self.stats, block.total
        if total is None:
            self._warn_once("no-total", "page %d came without total_results", block.number)
            self._unsafe_resume = True
            return True
        stats.last_total_results = total
        if total != coverage.first_total and not stats.drift_detected:
            stats.drift_detected = self._unsafe_resume = True
            logger.warning(
                "listing changed while paging: total_results %d -> %d (page %d)",
                coverage.first_total,
                total,
                block.number,
            )
        if block.length > coverage.size and block.length <= max(self._per_page, coverage.size):
            coverage.size = block.length  # the first pages under-stated the server's size
            self._note_size(block.length)
        room = total - coverage.offset(block)
        expected = min(max(room, 0), coverage.size)
        if block.length < expected:
            self._unsafe_resume = True
            self._warn_once(
                "short",
                "page %d came back with %d tickets where total_results %d says %d exist; "
                "it will be asked again",
                block.number,
                block.length,
                total,
                expected,
            )
        elif block.length > expected:  # more than its own total leaves room for
            if brought_new:
                self._stale_total = self._unsafe_resume = True
                self._warn_once(
                    "stale",
                    "page %d holds more tickets than total_results %d allows; reading on",
                    block.number,
                    total,
                )
            if room <= 0:
                return brought_new  # a page past the end is data only if it brought some
        return block.length > 0 or room > 0

    async def _report(self) -> None:
        assert self._on_progress is not None
        stats = self.stats
        planned = stats.pages_planned
        result = self._on_progress(
            Progress(
                pages_done=self._pages_done,
                pages_total=None if planned is None else planned + stats.extra_pages,
                tickets_done=stats.tickets_yielded,
                total_results=stats.last_total_results,
            )
        )
        if inspect.isawaitable(result):
            await result

    def _note_size(self, size: int) -> None:
        self.stats.page_size = size
        if size != self._per_page:
            self._warn_once(
                "size", "the server sends %d tickets per page (per_page=%d)", size, self._per_page
            )

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        """One WARNING per kind of event per listing; repeats go to DEBUG."""
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        logger.log(level, message, *args)

    @property
    def _full(self) -> bool:
        return self._limit is not None and self.stats.tickets_yielded >= self._limit

    # -- outcomes ---------------------------------------------------------------------------

    def _check_repeats(self) -> None:
        """A page that repeated an id within itself may have lost the ticket it displaced.

        With a trusted total the coverage already counted such a page as short (and asked it
        again); without one, or past a total that lagged, nothing else can tell.
        """
        trusted = self._coverage is not None and not self._stale_total
        if self._repeating and not self._full and not trusted:
            pages = ", ".join(map(str, sorted(self._repeating)))
            raise IncompleteListingError(
                f"listing incomplete: page(s) {pages} repeated a ticket within the page and "
                "never came back whole, so the ticket it displaced may be missing; "
                f"{self.stats.tickets_yielded} tickets were yielded, each once",
                stats=self.stats,
            )

    def _incomplete(self, reason: str, verdict: _Verdict) -> None:
        stats = self.stats
        shown = ", ".join(f"{a}-{b - 1}" for a, b in verdict.missing[:5])
        more = f" and {len(verdict.missing) - 5} more" if len(verdict.missing) > 5 else ""
        raise IncompleteListingError(
            f"listing incomplete: {reason}. {stats.tickets_yielded} tickets were yielded, each "
            f"once; not covered: positions {shown or 'unknown'}{more} of the "
            f"{stats.first_total_results} the first page reported (estimates when the listing "
            "moved). Run the listing again later",
            stats=stats,
            missing=verdict.missing,
        )

    def _annotate(self, exc: TamioError) -> None:
        """Say how to resume after a failed page, and only when following it is correct."""
        if isinstance(exc, IncompleteListingError) or exc.page is None:
            return
        if exc.page == self._start and self.stats.pages_fetched == 0:
            return  # nothing was delivered: there is nothing to resume from
        if self._unsafe_resume:
            exc.resume_page = None
            exc.hint = (
                "the tickets delivered so far are each delivered once, but the listing moved "
                "or the server skipped data, so page numbers are no safe place to resume: "
                "run the listing again and skip the ids you have"
            )
        else:
            exc.resume_page = exc.page
            exc.hint = (
                f"the tickets of pages before {exc.page} were delivered; "
                f"resume with start_page={exc.page}"
            )

    # -- the window -------------------------------------------------------------------------

    async def _round(
        self, count: int, page_at: Callable[[int], int]
    ) -> AsyncGenerator[TicketList, None]:
        """Fetch ``count`` pages concurrently in a sliding window; yield them in launch order.

        ``page_at(i)`` names the i-th page when it is launched, so a repair aims at where
        tickets are then, not where they were when the round was planned. No page is
        launched after one that came back empty (the data ends there; the coverage decides
        what to ask next) or past the budget.
        """
        self._page_at = page_at
        self._count = count
        self._next = 0
        self._cut = None
        for head in range(count):
            self._fill()
            task = self._tasks.get(head)
            if task is None:
                return  # never launched: the round was cut short
            if not task.done():
                await asyncio.wait((task,))
            del self._tasks[head]
            answer = task.result()
            page = await self._process(answer[3], answer[:3])
            if page is not None:
                yield page
            if self._full:
                return

    def _fill(self) -> None:
        """Launch pages while fewer than ``max_concurrency`` run and ``2 *`` are held.

        Called by each finishing request itself, so its slot is refilled at once rather
        than when the consumer's task next runs; finished pages waiting for a slower head
        page count as held, which bounds memory however slow the consumer.
        """
        tasks, limit = self._tasks, self._concurrency
        while (
            self._next < self._count
            and not self._stopping
            and self._running < limit
            and len(tasks) < 2 * limit
            and (self._cut is None or self._next <= self._cut)
            and self._sent < self._budget
        ):
            self._running += 1
            index = self._next
            page = self._page_at(index)
            if page not in self._speculative:  # (a speculative page was charged when asked)
                self._sent += 1  # charged at launch: the task starts after this loop
            tasks[index] = asyncio.create_task(self._fetch_in_window(index, page))
            self._next += 1

    async def _fetch_in_window(self, index: int, page: int) -> tuple[TicketList, int, int, int]:
        try:
            result, sent, answered = await self._fetch(page, counted=True)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._stopping = True  # this page will fail the listing: launch nothing more
            raise
        else:
            if not result.tickets and (self._cut is None or index < self._cut):
                self._cut = index
            return result, sent, answered, page
        finally:
            self._running -= 1
            self._fill()

    async def _cancel_all(self) -> None:
        self._stopping = True
        self.stats.speculative_unused += len(self._speculative)
        tasks = [*self._tasks.values(), *self._speculative.values(), *self._background]
        self._tasks.clear()
        self._speculative.clear()
        self._background.clear()
        for task in tasks:
            task.cancel()
        # Waiting retrieves every outcome: no "exception was never retrieved" warnings.
        await asyncio.gather(*tasks, return_exceptions=True)


def _caller(pages: list[PageAt]) -> Callable[[int], int]:
    return lambda i: pages[i]()


def _fresh(tickets: tuple[Ticket, ...], seen: set[str]) -> list[Ticket] | None:
    """Tickets whose id is not in ``seen`` (adding them); None when that is all of them."""
    ids = [t.id for t in tickets]
    if seen.isdisjoint(ids):
        known = len(seen)
        seen.update(ids)
        if len(seen) - known == len(ids):
            return None
        seen.difference_update(ids)
    fresh = []
    for ticket in tickets:
        if ticket.id not in seen:
            seen.add(ticket.id)
            fresh.append(ticket)
    return fresh


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

    Only pages that bring at least one ticket are yielded. ``stats`` is live during and
    after iteration. Use ``async with`` (or ``aclose()``) to stop early deterministically;
    after a plain ``break`` the in-flight requests are cancelled as soon as the stream is
    dropped. Arguments are validated here, before any request.
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
        on_progress: OnProgress | None = None,
        stats: ListingStats | None = None,
        max_requests: int | None = None,
        speculative_pages: int = 0,
        warm: Warm | None = None,
    ) -> None:
        listing = _Listing(
            fetch_page,
            per_page=per_page,
            max_concurrency=max_concurrency,
            start_page=start_page,
            end_page=end_page,
            limit=limit,
            on_progress=on_progress,
            max_requests=max_requests,
            stats=stats if stats is not None else ListingStats(),
            speculative_pages=speculative_pages,
            warm=warm,
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
