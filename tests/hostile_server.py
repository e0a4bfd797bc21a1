"""A small, configurable, misbehaving Tamio listing server for contract tests.

``HostileServer`` serves ``GET /v2/agency/tickets/list?page=&per_page=`` on 127.0.0.1 (port 0)
with Bearer auth, over ``tickets`` generated tickets sorted newest-first (ids ``t000001`` ...,
the highest number is the newest). Each knob is one way real servers break offset paging:

* ``cap``: the page size it really uses, whatever ``per_page`` asks;
* ``clamp``: a page past the end answers the last page instead of an empty one;
* ``empty_pages={page: times}``: ``tickets: []`` with the true total, the first ``times``
  answers of that page (``None``: always);
* ``omit_tickets_on={page}``: the ``tickets`` key is left out (the true total stays);
* ``duplicate_in_page={page}``: the page repeats its first ticket as one extra entry at its
  end (no ticket is displaced: only the repeat is wrong);
* ``insert_front_per_request``: k new tickets at the front on the arrival of every request
  (from the ``insert_from_request``-th on); an ``int``, or ``(lo, hi)`` drawn with ``seed``;
* ``insert_after_page={page: k}``: k new tickets at the front right after ``page`` was first
  answered with tickets (an error answer does not count);
* ``hold={page: other}``: ``page`` is first answered only once ``other`` was (bounded
  by ``hold_timeout``): a deterministic way to serve pages out of order;
* ``omit_total``: no ``total_results``;
* ``fail={page: (status, times)}``: that status for the first ``times`` requests of the page
  (``None``: always); ``fail_repeats=status``: every page's second and later requests fail;
* ``latency``: seconds before each answer, or ``(lo, hi)`` drawn per request with ``seed``
  (uneven latency answers concurrent pages out of order); woken early by ``stop``;
* ``max_requests``: a fuse: past it every request gets 400, so a listing that never ends
  fails fast instead of hanging the test run (``fuse_blown`` tells).

Observations: ``requests`` (``(page, per_page)`` per authorised request, in arrival order),
``ids_at_start`` (newest-first ids present when the first request arrived), ``ids_now``,
``in_flight`` and ``max_in_flight``. Knobs are plain attributes and may be changed between
listings (``server.fail.clear()`` stops the failures).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Collection, Mapping
from types import TracebackType

from aiohttp import web

__all__ = ["ENDPOINT", "HostileServer", "ticket_id"]

ENDPOINT = "/v2/agency/tickets/list"
_EPOCH = 1_700_000_000


def ticket_id(number: int) -> str:
    """The id of the ``number``-th ticket ever created on a server (1-based)."""
    return f"t{number:06d}"


def _encode(number: int) -> bytes:
    ticket = {"id": ticket_id(number), "title": f"Ticket {number}", "created_at": _EPOCH + number}
    return json.dumps(ticket, separators=(",", ":")).encode()


def _error(status: int, message: str) -> web.Response:
    body = json.dumps({"status": status, "message": message}).encode()
    return web.Response(status=status, body=body, content_type="application/json")


class HostileServer:
    """A misbehaving listing endpoint; ``async with HostileServer(...) as server:``."""

    def __init__(
        self,
        tickets: int = 1000,
        *,
        api_key: str = "sk-hostile-test-key",
        seed: int = 0,
        cap: int | None = None,
        clamp: bool = False,
        empty_pages: Mapping[int, int | None] | None = None,
        omit_tickets_on: Collection[int] = (),
        duplicate_in_page: Collection[int] = (),
        insert_front_per_request: int | tuple[int, int] = 0,
        insert_from_request: int = 1,
        insert_after_page: Mapping[int, int] | None = None,
        hold: Mapping[int, int] | None = None,
        hold_timeout: float = 5.0,
        omit_total: bool = False,
        fail: Mapping[int, tuple[int, int | None]] | None = None,
        fail_repeats: int | None = None,
        latency: float | tuple[float, float] = 0.0,
        max_requests: int = 1000,
    ) -> None:
        self.api_key = api_key
        self.cap = cap
        self.clamp = clamp
        self.empty_pages: dict[int, int | None] = dict(empty_pages or {})
        self.omit_tickets_on = set(omit_tickets_on)
        self.duplicate_in_page = set(duplicate_in_page)
        self.insert_front_per_request = insert_front_per_request
        self.insert_from_request = insert_from_request
        self.insert_after_page: dict[int, int] = dict(insert_after_page or {})
        self.hold: dict[int, int] = dict(hold or {})
        self.hold_timeout = hold_timeout
        self.omit_total = omit_total
        self.fail: dict[int, tuple[int, int | None]] = dict(fail or {})
        self.fail_repeats = fail_repeats
        self.latency = latency
        self.max_requests = max_requests
        #: ``(page, per_page)`` of every authorised request, in arrival order.
        self.requests: list[tuple[int, int]] = []
        self.fuse_blown = False
        self.max_in_flight = 0
        self.hold_timeouts = 0
        self._in_flight = 0
        self._rng = random.Random(seed)
        self._latency_rng = random.Random(seed ^ 0x1A7E)
        # Oldest first, so a front insertion (newest) is an append.
        self._numbers: list[int] = list(range(1, tickets + 1))
        self._encoded: list[bytes] = [_encode(n) for n in self._numbers]
        self._ids_at_start: list[str] | None = None
        self._asked: dict[int, int] = {}  # page -> requests that arrived for it
        self._failed: dict[int, int] = {}  # page -> failures served by ``fail``
        self._emptied: dict[int, int] = {}  # page -> empty answers served by ``empty_pages``
        self._answered: dict[int, asyncio.Event] = {}
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve."""
        app = web.Application()
        app.router.add_get(ENDPOINT, self._handle)
        # Sleeping and held handlers wake on stop, so a short grace period is enough.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._stopping = asyncio.Event()
        self._runner = runner
        self._url = f"http://127.0.0.1:{runner.addresses[0][1]}/v2"

    async def stop(self) -> None:
        """Wake every sleeping or held handler, then stop serving."""
        if self._runner is None:
            return
        self._stopping.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> HostileServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The API root to pass as ``base_url`` (the client appends the endpoint path)."""
        if self._url is None:
            raise RuntimeError("HostileServer is not started")
        return self._url

    # -- data --------------------------------------------------------------------------------

    @property
    def ids_now(self) -> list[str]:
        """Every id on the server now, newest first."""
        return [ticket_id(n) for n in reversed(self._numbers)]

    @property
    def ids_at_start(self) -> list[str]:
        """The ids present when the first request arrived, newest first (now, if none has)."""
        return self.ids_now if self._ids_at_start is None else list(self._ids_at_start)

    def ids_at(self, start: int, end: int) -> list[str]:
        """Newest-first positions ``[start, end)`` of the listing as it stood at the start."""
        return self.ids_at_start[start:end]

    def insert_front(self, count: int) -> None:
        """Create ``count`` tickets, newer than every existing one."""
        first = (self._numbers[-1] if self._numbers else 0) + 1
        for number in range(first, first + count):
            self._numbers.append(number)
            self._encoded.append(_encode(number))

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._in_flight

    def requests_for(self, page: int) -> int:
        """How many requests arrived for ``page``."""
        return self._asked.get(page, 0)

    # -- the endpoint ------------------------------------------------------------------------

    async def _wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for ``event`` (or the server stopping) at most ``timeout``; True if it is set."""
        waiters = {
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return event.is_set()

    def _answered_event(self, page: int) -> asyncio.Event:
        return self._answered.setdefault(page, asyncio.Event())

    def _delay(self) -> float:
        latency = self.latency
        return self._latency_rng.uniform(*latency) if isinstance(latency, tuple) else latency

    def _insertions(self) -> int:
        if len(self.requests) < self.insert_from_request:
            return 0
        growth = self.insert_front_per_request
        return self._rng.randint(*growth) if isinstance(growth, tuple) else growth

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid API key")
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("per_page", "100"))
        except ValueError:
            return _error(400, "page and per_page must be integers")
        if page < 1 or per_page < 1:
            return _error(400, "page and per_page must be >= 1")
        if self._ids_at_start is None:
            self._ids_at_start = self.ids_now
        self.requests.append((page, per_page))
        if len(self.requests) > self.max_requests:
            self.fuse_blown = True
            return _error(400, f"hostile server: more than {self.max_requests} requests")
        nth = self._asked[page] = self._asked.get(page, 0) + 1
        self.insert_front(self._insertions())
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            delay = self._delay()
            if delay > 0:
                await self._wait(self._stopping, delay)
            other = self.hold.get(page)
            if (
                other is not None
                and nth == 1
                and not await self._wait(self._answered_event(other), self.hold_timeout)
            ):
                self.hold_timeouts += 1
            failure = self._failure(page, nth)
            if failure is not None:
                return _error(failure, f"hostile server: HTTP {failure} on page {page}")
            body = self._page(page, per_page)
        finally:
            self._in_flight -= 1
        answered = self._answered_event(page)
        if not answered.is_set():
            self.insert_front(self.insert_after_page.pop(page, 0))
            answered.set()
        return web.Response(body=body, content_type="application/json")

    def _failure(self, page: int, nth: int) -> int | None:
        scripted = self.fail.get(page)
        if scripted is not None:
            status, times = scripted
            served = self._failed.get(page, 0)
            if times is None or served < times:
                self._failed[page] = served + 1
                return status
        if self.fail_repeats is not None and nth > 1:
            return self.fail_repeats
        return None

    def _page(self, page: int, per_page: int) -> bytes:
        size = per_page if self.cap is None else min(per_page, self.cap)
        total = len(self._encoded)
        offset = (page - 1) * size
        if self.clamp and total and offset >= total:
            offset = (math.ceil(total / size) - 1) * size
        # Newest-first position i is oldest-first index total - 1 - i.
        hi, lo = total - offset, max(total - offset - size, 0)
        rows = self._encoded[lo:hi][::-1] if hi > 0 else []
        times = self.empty_pages.get(page, 0)
        if page in self.empty_pages and (times is None or self._emptied.get(page, 0) < times):
            self._emptied[page] = self._emptied.get(page, 0) + 1
            rows = []
        if page in self.duplicate_in_page and rows:
            rows = [*rows, rows[0]]
        parts = [b'{"status":200']
        if not self.omit_total:
            parts.append(b',"total_results":%d' % total)
        if page not in self.omit_tickets_on:
            parts.append(b',"tickets":[' + b",".join(rows) + b"]")
        return b"".join(parts) + b"}"
