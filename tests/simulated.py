"""A hostile simulated Tamio server for the page engine, and the listing contract it checks.

Everything runs in one event loop, without sockets: `SimulatedServer` answers
``fetch_page(page)`` from an in-memory listing (ids in listing order) that misbehaves as a
`Scenario` says, and `check_contract` runs a `PageStream` over it and judges the outcome:

(a) termination within budget: the listing ends, and the engine's ``fetch_page`` calls (a
    page and its retries count once) stay within ``stats.request_budget`` when the engine
    sets one, and within ``max_requests`` when it was passed. The safety nets count as not
    ending: a 30 s ``wait_for``, and a guard that fails every call after
    ``10 * (pages + 2 * max_concurrency) + 100`` (or the engine's budget, if larger, up to
    50,000);
(b) no ticket yielded twice, and none that never existed on the server;
(c) no silent loss, when nothing is deleted: the survivors (the ids of the listing as it
    stood when the first request was answered, not failed, restricted to the
    ``start_page..end_page`` window of that snapshot) are all yielded unless the run raised,
    or stopped at ``limit``.
    `IncompleteListingError` is allowed (the engine saying so), and so is any other
    `TamioError` (a fatal fault). Whichever it is, if it carries ``resume_page``, a second run
    from there over the server, its changes and faults now off, must yield every survivor the
    first run missed and nothing the first run yielded. (The hint is held to that only if
    the listing did not change after the first answer, or the engine saw that it did.)

With deletions only (a) and (b) hold; the survivors missed are counted, not asserted.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import math
import random
from typing import Any, Literal

from tamio_async import (
    InternalServerError,
    ListingStats,
    PageStream,
    RetryPolicy,
    TamioError,
    Ticket,
    TicketList,
)
from tamio_async._ratecontrol import RateController
from tamio_async._retry import call_with_retries

try:
    from tamio_async import IncompleteListingError
except ImportError:  # the engine before its rewrite does not export it yet
    from tamio_async._exceptions import IncompleteListingError

__all__ = [
    "CATEGORIES",
    "MAX_RETRIES",
    "Outcome",
    "Run",
    "RunawayListing",
    "Scenario",
    "SimulatedServer",
    "Verdict",
    "check_contract",
    "run_listing",
]

MAX_RETRIES = 3
#: Seconds one run may take before it counts as not terminating (a safety net, never a wait).
TIMEOUT = 30.0
#: However large a budget the engine claims, a run is stopped after this many calls.
HARD_GUARD = 50_000
#: The contract's clauses, in the order a test asserts them (one line each, so that
#: Hypothesis shrinks a counterexample per clause).
CATEGORIES = ("crash", "termination", "budget", "duplicate", "invented", "limit", "loss", "resume")

Outcome = Literal["complete", "limit", "incomplete", "fatal", "crash", "timeout", "runaway"]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One hostile server and one listing over it; every decision follows from these fields."""

    size: int  # tickets at the start
    per_page: int
    max_concurrency: int = 4
    seed: int = 0
    # The page size the server uses: min(per_page, cap), or fixed_size whatever per_page says.
    cap: int | None = None
    fixed_size: int | None = None
    clamp: bool = False  # a page past the end answers the last page
    empty_page: int | None = None  # this page number comes back with no tickets (true total)
    empty_answers: int | None = None  # ... for its first m answers; None: always
    omit_total: bool = False  # total_results is None (only without changes)
    stale_lag: int = 0  # total_results is the count of this many requests ago
    dup_rate: float = 0.0  # chance that a page shows one id twice
    # "slot": the repeat takes the place of the page's last id; "extra": it is added.
    dup_mode: Literal["slot", "extra"] = "slot"
    # Changes, applied at each request before it is answered.
    insert_at: Literal["random", "front", "end"] = "front"
    inserts: tuple[int, int] = (0, 0)  # new ids per request: uniform in this range
    deletes: tuple[int, int] = (0, 0)  # ids deleted per request
    change_requests: int | None = None  # change only on the first n requests; None: always
    # Faults: a transient 500 on this share of requests (never more than the retries of one
    # call), and a page that fails every attempt (exhausting the retries).
    fault_rate: float = 0.0
    fatal_page: int | None = None
    # Out of order: up to this many loop turns before and after a request takes its snapshot.
    max_yields: int = 0
    consumer_yields: int = 0  # loop turns the consumer takes after each page
    # The listing asked for.
    start_page: int = 1
    end_page: int | None = None
    limit: int | None = None
    max_requests: int | None = None
    # Pages asked with the first one, before its total is known (the client asks 2).
    speculative_pages: int = 0

    def __post_init__(self) -> None:
        if self.cap is not None and self.fixed_size is not None:
            raise ValueError("a server either caps per_page or ignores it, not both")
        # Without total_results no engine can tell these from the truth: no guarantee exists.
        if self.omit_total and self.changes:
            raise ValueError("without total_results nothing can detect changes")
        if self.omit_total and self.empty_page is not None:
            raise ValueError("without total_results an empty page is the end of the listing")

    @property
    def eff(self) -> int:
        """The page size the server actually uses."""
        if self.fixed_size is not None:
            return self.fixed_size
        return self.per_page if self.cap is None else min(self.per_page, self.cap)

    @property
    def changes(self) -> bool:
        """The listing changes while it is read."""
        return self.inserts[1] > 0 or self.deletions

    @property
    def deletions(self) -> bool:
        """Tickets are deleted while it is read (clause (c) does not apply)."""
        return self.deletes[1] > 0

    @property
    def outside_c(self) -> bool:
        """Clause (c) does not apply: deletions, or totals that lag behind changes.

        A total that lags behind changes describes another listing than the page it came
        with; no client can place such pages (README: "The listing contract").
        """
        return self.deletions or (self.stale_lag > 0 and self.changes)

    @property
    def pages(self) -> int:
        """Pages of the listing at the start (at least 1)."""
        return max(1, math.ceil(self.size / self.eff))


class RunawayListing(Exception):
    """Raised to the engine by the request guard: the listing did not stop on its own."""


@dataclasses.dataclass
class _Call:
    """One call of ``fetch_page``: its retries share this."""

    page: int
    transient_faults: int = 0


class _Clock:
    """A clock that moves only when something sleeps on it; the sleep yields once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class SimulatedServer:
    """An in-memory listing that misbehaves as its `Scenario` says."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.ids = [f"t{i}" for i in range(scenario.size)]
        self.ever = set(self.ids)  # every id that was ever in the listing
        self.deleted: set[str] = set()
        #: The listing when its start page was first answered, not failed (the survivors').
        self.first_snapshot: tuple[str, ...] | None = None
        self.requests = 0  # HTTP requests (attempts, retries included)
        self.counts: list[int] = [len(self.ids)]  # the listing's size after each request
        self.answers: collections.Counter[int] = collections.Counter()
        #: The listing changed after the first answer (so a resume hint may rest on a listing
        #: the engine never saw).
        self.changed = False
        self.changing = True
        self.clamped: set[str] = set()  # ids served for a page past the end (since freeze)
        self.faulty = True
        self._new = 0

    def freeze(self) -> None:
        """No more changes and no more faults (for checking a resume hint)."""
        self.changing = self.faulty = False
        self.clamped.clear()

    def survivors(self, start_page: int, end_page: int | None) -> set[str]:
        """Ids of the first answer's snapshot whose positions lie in the window of these pages.

        With no answer yet the listing as it stands now is the reference.
        """
        snapshot = self.first_snapshot if self.first_snapshot is not None else tuple(self.ids)
        eff = self.scenario.eff
        lo = (start_page - 1) * eff
        hi = len(snapshot) if end_page is None else end_page * eff
        return set(snapshot[lo:hi])

    async def answer(self, call: _Call) -> TicketList:
        """One HTTP request for ``call.page``: change, maybe fail, snapshot, return late."""
        s, rng = self.scenario, self.rng
        self.requests += 1
        for _ in range(rng.randint(0, s.max_yields)):
            await asyncio.sleep(0)
        if self.changing and (s.change_requests is None or self.requests <= s.change_requests):
            self._change()
        self.counts.append(len(self.ids))
        if self.faulty:
            fatal = call.page == s.fatal_page
            if fatal or (call.transient_faults < MAX_RETRIES and rng.random() < s.fault_rate):
                call.transient_faults += not fatal
                raise InternalServerError("HTTP 500: boom", status_code=500, page=call.page)
        # The reference is the listing as its first page saw it (README: a shard's range is
        # its positions at its first page); speculative pages may be answered before it.
        if self.first_snapshot is None and call.page == s.start_page:
            self.first_snapshot = tuple(self.ids)
        page = self._page(call.page)
        for _ in range(rng.randint(0, s.max_yields)):
            await asyncio.sleep(0)
        return page

    def _change(self) -> None:
        s, rng, ids = self.scenario, self.rng, self.ids
        before = len(self.deleted), self._new
        for _ in range(rng.randint(*s.deletes)):
            if ids:
                self.deleted.add(ids.pop(rng.randrange(len(ids))))
        new = []
        for _ in range(rng.randint(*s.inserts)):
            self._new += 1
            new.append(f"n{self._new}")
        self.ever.update(new)
        if s.insert_at == "front":
            ids[0:0] = reversed(new)  # newest first
        elif s.insert_at == "end":
            ids.extend(new)
        else:
            for ticket in new:
                ids.insert(rng.randint(0, len(ids)), ticket)
        if self.first_snapshot is not None and before != (len(self.deleted), self._new):
            self.changed = True

    def _page(self, page: int) -> TicketList:
        s, rng = self.scenario, self.rng
        eff, count = s.eff, len(self.ids)
        last = max(1, math.ceil(count / eff))
        clamped = s.clamp and page > last
        if clamped:
            page = last
        chunk = self.ids[(page - 1) * eff : page * eff]
        if clamped:
            self.clamped.update(chunk)
        if page == s.empty_page and (
            s.empty_answers is None or self.answers[page] < s.empty_answers
        ):
            chunk = []
        self.answers[page] += 1
        if chunk and rng.random() < s.dup_rate:
            repeat = chunk[rng.randrange(len(chunk))]
            if s.dup_mode == "extra":
                chunk.insert(rng.randint(0, len(chunk)), repeat)
            elif len(chunk) > 1:
                chunk[-1] = chunk[rng.randrange(len(chunk) - 1)]
        total: int | None = None
        if not s.omit_total:
            total = self.counts[max(0, len(self.counts) - 1 - s.stale_lag)]
        return TicketList(
            status=200, total_results=total, tickets=tuple(Ticket(id=i) for i in chunk)
        )


@dataclasses.dataclass
class Run:
    """What one `PageStream` did: the ids it yielded and how it ended."""

    yielded: list[str]
    error: BaseException | None
    outcome: Outcome
    calls: int  # calls of fetch_page (a page and its retries count once)
    requests: int  # HTTP requests the server answered or failed, retries included
    budget: int | None  # stats.request_budget, if the engine has it
    max_requests: int | None  # as passed to the engine (None if it does not take it)
    stats: ListingStats


def _accepts_max_requests() -> bool:
    return "max_requests" in inspect.signature(PageStream).parameters


async def run_listing(
    server: SimulatedServer,
    *,
    start_page: int,
    end_page: int | None,
    limit: int | None,
    max_requests: int | None,
    timeout: float = TIMEOUT,
) -> Run:
    """Run one `PageStream` over ``server`` to its end, whatever that end is."""
    s = server.scenario
    clock = _Clock()
    policy = RetryPolicy(max_retries=MAX_RETRIES, sleep=clock.sleep, clock=clock)
    pacer = RateController(clock=policy.clock, sleep=policy.sleep)
    stats = ListingStats()
    calls = 0
    requests_before = server.requests
    guard = 10 * (s.pages + 2 * s.max_concurrency) + 100

    async def fetch_page(page: int) -> TicketList:
        nonlocal calls
        calls += 1
        budget: int | None = getattr(stats, "request_budget", None)
        limit_here = guard if budget is None else min(max(guard, budget), HARD_GUARD)
        if calls > limit_here:
            raise RunawayListing(f"request {calls} > {limit_here} (budget {budget})")
        call = _Call(page)
        return await call_with_retries(
            lambda: server.answer(call),
            policy=policy,
            pacer=pacer,
            what=f"GET page {page}",
            on_retry=stats.note_retry,
        )

    # Typed loosely: the engine before its rewrite has no max_requests to type-check against.
    options: dict[str, Any] = {}
    if max_requests is not None and _accepts_max_requests():
        options["max_requests"] = max_requests
    yielded: list[str] = []

    async def consume() -> None:
        stream = PageStream(
            fetch_page,
            per_page=s.per_page,
            max_concurrency=s.max_concurrency,
            start_page=start_page,
            end_page=end_page,
            limit=limit,
            stats=stats,
            speculative_pages=s.speculative_pages,
            **options,
        )
        async with stream:
            async for page in stream:
                yielded.extend(ticket.id for ticket in page.tickets)
                for _ in range(s.consumer_yields):
                    await asyncio.sleep(0)

    error: BaseException | None = None
    outcome: Outcome
    try:
        await asyncio.wait_for(consume(), timeout)
    except IncompleteListingError as exc:
        error, outcome = exc, "incomplete"
    except TamioError as exc:
        error, outcome = exc, "fatal"
    except RunawayListing as exc:
        error, outcome = exc, "runaway"
    except asyncio.TimeoutError as exc:  # the built-in TimeoutError from 3.11
        error, outcome = exc, "timeout"
    except Exception as exc:
        error, outcome = exc, "crash"
    else:
        outcome = "limit" if limit is not None and len(yielded) >= limit else "complete"
    if isinstance(error, TamioError) and isinstance(error.__cause__, RunawayListing):
        outcome = "runaway"
    return Run(
        yielded=yielded,
        error=error,
        outcome=outcome,
        calls=calls,
        requests=server.requests - requests_before,
        budget=getattr(stats, "request_budget", None),
        max_requests=options.get("max_requests"),
        stats=stats,
    )


@dataclasses.dataclass
class Verdict:
    """The contract's judgement of one scenario, with the counts a report needs."""

    scenario: Scenario
    outcome: Outcome
    violations: dict[str, list[str]]
    yielded: int
    survivors: int  # in the window, at the first answer (and, with deletions, never deleted)
    missed: int  # survivors not yielded (by the first run)
    calls: int
    requests: int
    budget: int | None
    #: "none" (no resume_page), "ok", "bad", "bad after unseen changes" (not a violation), or
    #: "inconclusive" (the second run raised too).
    resume: str = "none"
    max_requests_supported: bool = True

    def of(self, category: str) -> list[str]:
        """The violations of one clause of the contract."""
        return self.violations.get(category, [])

    def summary(self) -> str:
        """One line of figures: outcome, tickets, requests."""
        return (
            f"{self.outcome}: yielded {self.yielded}, missed {self.missed} of {self.survivors} "
            f"survivors, {self.calls} calls ({self.requests} requests), budget {self.budget}, "
            f"resume hint {self.resume}"
        )

    def __str__(self) -> str:
        lines = [repr(self.scenario), self.summary()]
        lines += [f"[{c}] {m}" for c, msgs in self.violations.items() for m in msgs]
        return "\n".join(lines)


def _judge_run(
    run: Run, server: SimulatedServer, limit: int | None, label: str
) -> dict[str, list[str]]:
    """Clauses (a) and (b), and the limit, for one run."""
    found: dict[str, list[str]] = collections.defaultdict(list)
    if run.outcome == "crash":
        found["crash"].append(f"{label}raised {type(run.error).__name__}: {run.error}")
    if run.outcome in ("timeout", "runaway"):
        found["termination"].append(f"{label}did not end: {run.outcome} ({run.error})")
    if run.budget is not None and run.calls > run.budget:
        found["budget"].append(f"{label}{run.calls} fetch_page calls > budget {run.budget}")
    if run.max_requests is not None and run.calls > run.max_requests:
        found["budget"].append(f"{label}{run.calls} calls > max_requests {run.max_requests}")
    twice = [i for i, n in collections.Counter(run.yielded).items() if n > 1]
    if twice:
        found["duplicate"].append(f"{label}{len(twice)} ids yielded twice, e.g. {twice[:3]}")
    invented = set(run.yielded) - server.ever
    if invented:
        found["invented"].append(f"{label}{len(invented)} ids never on the server")
    if limit is not None and len(run.yielded) > limit:
        found["limit"].append(f"{label}{len(run.yielded)} tickets yielded > limit {limit}")
    return found


async def check_contract(scenario: Scenario, *, timeout: float = TIMEOUT) -> Verdict:
    """Run ``scenario`` and judge it against the listing contract (module docstring)."""
    s = scenario
    server = SimulatedServer(s)
    run = await run_listing(
        server,
        start_page=s.start_page,
        end_page=s.end_page,
        limit=s.limit,
        max_requests=s.max_requests,
        timeout=timeout,
    )
    violations = _judge_run(run, server, s.limit, "")
    survivors = server.survivors(s.start_page, s.end_page) - server.deleted
    got = set(run.yielded)
    missed = survivors - got
    verdict = Verdict(
        scenario=s,
        outcome=run.outcome,
        violations=violations,
        yielded=len(run.yielded),
        survivors=len(survivors),
        missed=len(missed),
        calls=run.calls,
        requests=run.requests,
        budget=run.budget,
        max_requests_supported=s.max_requests is None or run.max_requests is not None,
    )
    if s.outside_c:
        return verdict
    if run.outcome == "complete" and missed:
        violations["loss"].append(
            f"ended without an error but missed {len(missed)} of {len(survivors)} survivors, "
            f"e.g. {sorted(missed)[:3]}"
        )
    resume_page = getattr(run.error, "resume_page", None)
    if isinstance(run.error, TamioError) and resume_page is not None:
        # A hint can only answer for the listing the engine saw: if it changed after the first
        # answer and the engine never noticed (the changes came with failed or cancelled
        # requests), the second run is made and reported but not held against the hint.
        binding = not server.changed or run.stats.drift_detected
        await _check_resume(verdict, server, run, missed, resume_page, timeout, binding=binding)
    return verdict


async def _check_resume(
    verdict: Verdict,
    server: SimulatedServer,
    first: Run,
    missed: set[str],
    resume_page: int,
    timeout: float,
    *,
    binding: bool,
) -> None:
    """A resume hint is correct if a run from it, the server still, loses and repeats nothing.

    ``binding=False`` records a bad hint in ``verdict.resume`` without counting it as a
    violation.
    """
    s = verdict.scenario
    server.freeze()
    remaining = None if s.limit is None else s.limit - len(first.yielded)
    second = await run_listing(
        server,
        start_page=resume_page,
        end_page=s.end_page,
        limit=remaining,
        max_requests=None,
        timeout=timeout,
    )
    # (a) and (b) bind the second run whatever happened before it; a refused hint crashes it.
    for category, messages in _judge_run(second, server, remaining, "resumed run: ").items():
        verdict.violations[category] += messages
    problems = []
    repeated = set(first.yielded) & set(second.yielded)
    if s.omit_total:
        # A clamped page past the end looks like a real page when no total says where the end
        # is: a run started there cannot know it repeats what the first run yielded.
        repeated -= server.clamped
    if repeated:
        problems.append(f"repeated {len(repeated)} ids, e.g. {sorted(repeated)[:3]}")
    lost = missed - set(second.yielded)
    if second.outcome == "complete" and lost:
        problems.append(f"the two runs together missed {len(lost)} survivors")
    if problems:
        verdict.resume = "bad" if binding else "bad after unseen changes"
        if binding:
            verdict.violations["resume"] += [f"resume_page={resume_page}: {p}" for p in problems]
    elif second.outcome in ("complete", "limit"):
        verdict.resume = "ok"
    else:
        verdict.resume = "inconclusive"
