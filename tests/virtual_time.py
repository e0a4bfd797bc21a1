"""Virtual time for simulations: an asyncio loop whose sleeps cost nothing, and a quota to test.

`run` drives a coroutine on a `VirtualTimeLoop`: ``loop.time()`` is a simulated clock that
jumps straight to the next timer whenever nothing is ready, so ``asyncio.sleep(20)`` returns
at once in real time while ``loop.time()`` moves on by exactly 20. Everything scheduled on
the loop (``asyncio.sleep``, ``call_later``, ``wait_for``, tenacity's waits) follows that
clock, and a run is deterministic: the same seed gives the same numbers on any machine.

`Quota` is the server side of the quota scenario (a token bucket, as real APIs keep one per
API key), and `listing` reads ``pages`` pages through it with ``concurrency`` workers, each
page through the library's own `call_with_retries` and a `RateController` on the virtual
clock. It reports how long the listing took against the ideal, and how many of its requests
were answered 429: contract checks on the rate control, never claims about this machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import selectors
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from tamio_async import RetryPolicy, TicketList
from tamio_async._exceptions import RateLimitError, status_error
from tamio_async._ratecontrol import RateController, RateLimit
from tamio_async._retry import call_with_retries

__all__ = [
    "ListingResult",
    "Quota",
    "RetryAfterStyle",
    "VirtualTimeLoop",
    "listing",
    "run",
    "simulate_listing",
]

T = TypeVar("T")
RetryAfterStyle = Literal["s", "ms"]

#: Virtual seconds (a day) a `run` may take by default before it counts as hanging.
DEFAULT_RUN_LIMIT = 86_400.0
_PAGE = TicketList(status=200, total_results=0)


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that never blocks: waiting ``timeout`` seconds moves the clock instead.

    The event loop calls ``select(timeout)`` with the time until its next timer (0 when
    callbacks are ready, None when no timer exists). Real file descriptors (the loop's own
    self-pipe) are still polled, without waiting, so ``call_soon_threadsafe`` keeps working.
    """

    def __init__(self, start: float) -> None:
        super().__init__()
        self.now = start

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # Every task waits and no timer will ever wake one: in real time this would hang.
            raise RuntimeError("virtual time: every task is waiting and nothing is scheduled")
        self.now += timeout
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a simulated clock that starts at ``start`` and moves only when idle."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual = _VirtualSelector(start)
        super().__init__(selector=self._virtual)

    def time(self) -> float:
        """The simulated monotonic clock, in seconds."""
        return self._virtual.now


def run(coro: Coroutine[Any, Any, T], *, start: float = 0.0, limit: float = DEFAULT_RUN_LIMIT) -> T:
    """Run ``coro`` to completion in virtual time, like ``asyncio.run``; return its result.

    ``limit`` is a budget in virtual seconds: a run that would take longer raises
    ``TimeoutError`` (it costs no real time to get there, only the loop's turns).
    """
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, limit))
    finally:
        try:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


@dataclasses.dataclass
class Quota:
    """A token bucket quota, the server side of the simulation; it starts full.

    A request that finds a token takes it and is accepted. One that finds none is refused
    and takes nothing (a refusal costs the client a round trip, not quota); its answer says
    when the next token is due, as ``Retry-After`` in whole seconds rounded up (style
    ``"s"``, so usually ``1``) or as ``retry-after-ms`` in whole milliseconds rounded up
    (style ``"ms"``). ``halve_after=N`` halves the rate once N requests were accepted: a
    quota that changes under a running listing.
    """

    rate: float = 50.0
    burst: int = 10
    style: RetryAfterStyle = "s"
    halve_after: int | None = None
    accepted: int = 0
    throttled: int = 0

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError(f"a quota needs rate > 0 and burst >= 1, got {self}")
        self._initial_rate = self.rate
        self._tokens = float(self.burst)
        self._updated: float | None = None

    def check(self, now: float) -> dict[str, str] | None:
        """None when a request arriving at ``now`` is accepted, else its 429's headers."""
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.accepted += 1
            if self.accepted == self.halve_after:
                self.rate /= 2
            return None
        self.throttled += 1
        wait = (1.0 - self._tokens) / self.rate
        if self.style == "ms":
            return {"retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
        return {"Retry-After": str(max(1, math.ceil(wait)))}

    @property
    def throttle_share(self) -> float:
        """The share of the requests answered 429."""
        total = self.accepted + self.throttled
        return self.throttled / total if total else 0.0

    def ideal_seconds(self, pages: int) -> float:
        """How long ``pages`` accepted requests take at the quota's rate (the burst ignored)."""
        halve = self.halve_after
        if halve is None or halve >= pages:
            return pages / self._initial_rate
        return halve / self._initial_rate + (pages - halve) / (self._initial_rate / 2)


@dataclasses.dataclass(frozen=True)
class ListingResult:
    """What a simulated listing measured, in virtual seconds."""

    wall: float
    #: The shortest the listing could take: the quota's rate or the client's own capacity
    #: (``concurrency`` requests per ``latency``), whichever is slower.
    ideal: float
    accepted: int
    throttled: int
    #: Pages whose request gave up (raised) instead of completing.
    failed: int
    #: The controller's own count of throttles, and its send rate at the end.
    controller_throttled: int
    final_rate: float | None

    @property
    def ratio(self) -> float:
        """Wall time over ideal time: 1.0 is a client that never wastes a token."""
        return self.wall / self.ideal

    @property
    def throttle_share(self) -> float:
        """The share of requests answered 429."""
        total = self.accepted + self.throttled
        return self.throttled / total if total else 0.0


async def listing(
    quota: Quota,
    *,
    pages: int = 1000,
    concurrency: int = 16,
    latency: float = 0.02,
    jitter: float | None = None,
    seed: int = 0,
    limit: RateLimit | None = None,
    adaptive: bool = True,
    policy: RetryPolicy | None = None,
) -> ListingResult:
    """Read ``pages`` pages through ``quota`` the way a bulk listing does, in virtual time.

    The first page goes alone, then ``concurrency`` workers take the rest in turn. Each
    request takes ``latency`` plus up to ``jitter`` seconds (seeded; default a quarter of
    the latency), reaching the quota half-way. A refusal raises the library's own 429
    (`status_error` with the quota's headers), so `call_with_retries` and the
    `RateController` handle it exactly as they handle a real one. Run it with `run`.
    """
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    spread = latency / 4 if jitter is None else jitter
    if policy is None:
        policy = RetryPolicy(sleep=asyncio.sleep, clock=loop.time)
    pacer = RateController(limit=limit, adaptive=adaptive, clock=policy.clock, sleep=policy.sleep)
    todo = list(range(pages, 0, -1))
    failed = 0

    async def fetch(page: int) -> None:
        nonlocal failed

        async def send() -> TicketList:
            half = (latency + rng.uniform(0, spread)) / 2
            await asyncio.sleep(half)
            headers = quota.check(loop.time())
            await asyncio.sleep(half)
            if headers is not None:
                raise status_error(429, b'{"message": "Too Many Requests"}', headers, page=page)
            return _PAGE

        try:
            await call_with_retries(send, policy=policy, pacer=pacer, what=f"GET page {page}")
        except RateLimitError:
            failed += 1

    async def worker() -> None:
        while todo:
            await fetch(todo.pop())

    start = loop.time()
    await fetch(todo.pop())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    state = pacer.state
    return ListingResult(
        wall=loop.time() - start,
        ideal=max(quota.ideal_seconds(pages), pages * latency / concurrency),
        accepted=quota.accepted,
        throttled=quota.throttled,
        failed=failed,
        controller_throttled=state.throttled,
        final_rate=state.rate,
    )


def simulate_listing(quota: Quota, **options: Any) -> ListingResult:
    """`listing` run to the end in virtual time (options as `listing`)."""
    return run(listing(quota, **options))
