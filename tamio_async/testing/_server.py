"""FakeTamioServer: GET /v2/agency/tickets/list on aiohttp.web, with faults and data drift.

Pages are made when they are asked for (see `_store`): a million tickets start at once and
serve in flat memory. What is kept grows with use only within bounds: the request log
(``request_log`` records), encoded tickets (`_ENCODED_CACHE`) and the listings of filtered
or title-sorted queries (`_LISTING_BUDGET` indices in all, 4 bytes each).

Faults, decided per request in arrival order (scripted ones first, then the seeded random ones):
"429", "500", "503" or any int status (JSON error body, 429 with Retry-After), "reset" (half a
body then abort), "truncate" (half a body then close), "stall" (answer after `stall_seconds`),
"invalid_json" (200 with a cut-off body).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import ipaddress
import math
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType

import msgspec
from aiohttp import web

from ._data import GeneratedTickets, Ticket
from ._store import Dataset, Listing, Query, TicketView

__all__ = [
    "DEFAULT_REQUEST_LOG",
    "ENDPOINT",
    "FAULT_KINDS",
    "FakeTamioServer",
    "RecordedRequest",
    "RequestLog",
]

ENDPOINT = "/v2/agency/tickets/list"
FAULT_KINDS = ("429", "500", "503", "reset", "truncate", "stall", "invalid_json")
# The spec's wording, en dash included.
_UNAUTHORIZED = "Unauthorized \u2013 invalid or missing Bearer token"
_POSITIVE_INT = re.compile(r"[0-9]+")
_UNIX = re.compile(r"[+-]?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: How many requests `FakeTamioServer.requests` keeps by default (the oldest are dropped).
DEFAULT_REQUEST_LOG = 10_000
#: Encoded tickets kept for pages asked again (about 1.8 KB each).
_ENCODED_CACHE = 10_000
#: Indices kept for the listings of filtered or title-sorted queries, all together.
_LISTING_BUDGET = 4_000_000
_LISTING_LIMIT = 256


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake server saw it and what it answered."""

    method: str
    path: str
    query_string: str
    query: dict[str, str]
    headers: dict[str, str]
    page: int | None
    status: int | str  # the HTTP status answered, or "reset" / "truncate" when none was
    fault: str | None
    start: float
    end: float


class _BadParam(ValueError):
    """A query parameter the API would answer with 400."""


class RequestLog(collections.deque[RecordedRequest]):
    """The last requests, oldest first: a deque with a maxlen, equal to a list of the same.

    It used to be a list, so ``server.requests == []`` keeps meaning "nothing was sent".
    """

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return list(self) == other
        return super().__eq__(other)

    __hash__ = None  # mutable, like the deque it is


@dataclass
class _Scripted:
    kind: str
    page: int | None
    remaining: int | None
    retry_after: float | None


def _positive_int(raw: str | None) -> int | None:
    if raw is None or not _POSITIVE_INT.fullmatch(raw) or int(raw) == 0:
        return None
    return int(raw)


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = params.get(name)
    if raw is not None and raw not in allowed:
        raise _BadParam(f"{name} must be one of {', '.join(allowed)}; got {raw!r}")
    return raw


def _timestamp(name: str, raw: str, *, upper: bool) -> int:
    """Parse a unix timestamp or ISO 8601 date/datetime (naive means UTC) to whole seconds."""
    if _UNIX.fullmatch(raw):
        return int(raw)
    try:
        if _DATE.fullmatch(raw):
            midnight = dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(), dt.timezone.utc)
            # A bare date as the upper bound covers that whole day, as users mean it.
            return int(midnight.timestamp()) + (86_399 if upper else 0)
        # Python 3.10's fromisoformat does not know the "Z" suffix.
        text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _BadParam(
            f"{name} must be an ISO 8601 date or datetime, or a unix timestamp; got {raw!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    # Round inwards so the bounds stay inclusive on whole-second created_at values.
    return math.floor(when.timestamp()) if upper else math.ceil(when.timestamp())


def _parse_paging(params: Mapping[str, str], max_per_page: int) -> tuple[int, int]:
    numbers = []
    for name in ("page", "per_page"):
        raw = params.get(name)
        if raw is None:
            raise _BadParam(f"{name} is required")
        number = _positive_int(raw)
        if number is None:
            raise _BadParam(f"{name} must be a positive integer; got {raw!r}")
        numbers.append(number)
    if numbers[1] > max_per_page:
        raise _BadParam(f"per_page must be at most {max_per_page}; got {numbers[1]}")
    return numbers[0], numbers[1]


def _parse_filters(params: Mapping[str, str], default_order: str) -> Query:
    order = _choice(params, "order", ("asc", "desc")) or default_order
    sort_by = _choice(params, "sort_by", ("created_at", "title")) or "created_at"
    closed = _choice(params, "closed", ("true", "false"))
    raw_from, raw_to = params.get("from"), params.get("to")
    since = None if raw_from is None else _timestamp("from", raw_from, upper=False)
    until = None if raw_to is None else _timestamp("to", raw_to, upper=True)
    if since is not None and until is not None and since > until:
        raise _BadParam(f"from must not be after to; got from={raw_from!r}, to={raw_to!r}")
    text = params.get("filter")
    return Query(
        closed=None if closed is None else closed == "true",
        teammate_id=params.get("teammate_id"),
        client_id=params.get("client_id"),
        since=since,
        until=until,
        text=None if text is None else text.casefold(),
        sort_by=sort_by,
        order=order,
    )


def _wire(value: object) -> str:
    """Spell a Python value the way it travels in a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _error_body(status: int, message: str | None = None) -> bytes:
    if message is None:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "Error"
    return msgspec.json.encode({"status": status, "message": message})


def _json(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _at_least(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _seconds_option(name: str, value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be at least 0 seconds, got {value!r}")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class FakeTamioServer:
    """A local, deterministic Tamio tickets API for tests, demos and benchmarks."""

    def __init__(
        self,
        *,
        tickets: int | Sequence[Ticket] = 1000,
        seed: int = 0,
        api_key: str = "test-key",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        max_per_page: int = 1000,
        default_order: str = "desc",
        fault_rate: float = 0.0,
        fault_kinds: Sequence[str] = ("429", "500", "503", "reset", "truncate", "stall"),
        retry_after: tuple[float, float] = (0.0, 1.0),
        stall_seconds: float = 2.0,
        request_log: int | None = DEFAULT_REQUEST_LOG,
    ) -> None:
        """Options are checked here, each error naming its option.

        `tickets` is a count of generated tickets (made on demand, see `tickets`) or the
        ticket dicts to serve. `request_log` bounds `requests` (None: keep every request).
        """
        if isinstance(tickets, int) and not isinstance(tickets, bool):
            _at_least("tickets", tickets, 0)
            data = Dataset.generated(tickets, seed=seed)
        elif isinstance(tickets, Sequence) and not isinstance(tickets, (str, bytes)):
            data = Dataset.given(tickets)
        else:
            raise TypeError(f"tickets must be an int or a list of tickets, got {tickets!r}")
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        unknown = set(fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if default_order not in ("asc", "desc"):
            raise ValueError("default_order must be 'asc' or 'desc'")
        _seconds_option("latency", latency)
        _seconds_option("stall_seconds", stall_seconds)
        _at_least("max_per_page", max_per_page, 1)
        _at_least("port", port, 0)
        if port > 65_535:
            raise ValueError(f"port must be at most 65535, got {port}")
        if not isinstance(fault_rate, (int, float)) or not 0 <= fault_rate <= 1:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate!r}")
        if (
            len(retry_after) != 2
            or not all(isinstance(v, (int, float)) and 0 <= v < math.inf for v in retry_after)
            or retry_after[0] > retry_after[1]
        ):
            raise ValueError(
                f"retry_after must be (low, high) seconds, 0 <= low <= high; got {retry_after!r}"
            )
        if request_log is not None:
            _at_least("request_log", request_log, 0)
        self.api_key = api_key
        self.latency = latency
        self.max_per_page = max_per_page
        self.default_order = default_order
        self.fault_rate = fault_rate
        self.fault_kinds: tuple[str, ...] = tuple(fault_kinds)
        self.retry_after = retry_after
        self.stall_seconds = stall_seconds
        #: The last `request_log` requests, oldest first (a deque; it equals a list too).
        self.requests: RequestLog = RequestLog(maxlen=request_log)
        self.max_in_flight: int = 0
        self.faults_injected: int = 0
        self._host, self._port = host, port
        self._in_flight = 0
        self._served = 0
        self._fault_rng = random.Random(seed ^ 0xFA017)
        self._drift_rng = random.Random(seed ^ 0xD41F7)
        self._scripted: list[_Scripted] = []
        self._drifts: list[tuple[int, int, int]] = []
        self._data = data
        self._listings: collections.OrderedDict[Query, Listing] = collections.OrderedDict()
        self._listed = 0  # indices held by _listings
        self._encoded: dict[int, bytes] = {}
        self._encoded_limit: int | None = _ENCODED_CACHE  # None once preloaded
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving."""
        if self._runner is not None:
            raise RuntimeError("FakeTamioServer is already started")
        app = web.Application()
        app.router.add_get(ENDPOINT, self._handle)
        # Stalled handlers wake up on stop, so a short grace period is enough.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        # Bound to every interface: the URL a client on this machine uses is loopback's.
        if ipaddress.ip_address(host).is_unspecified:
            host = "127.0.0.1" if ipaddress.ip_address(host).version == 4 else "::1"
        host = f"[{host}]" if ":" in host else host
        # A fresh event per start: an Event binds to the loop it is first awaited on.
        self._stopping = asyncio.Event()
        self._runner = runner
        self._base_url = f"http://{host}:{port}/v2"

    async def stop(self) -> None:
        """Stop serving; stalled and sleeping handlers are woken up first."""
        if self._runner is None:
            return
        self._stopping.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeTamioServer:
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
    def base_url(self) -> str:
        """The API root, e.g. http://127.0.0.1:PORT/v2 (the client appends the endpoint).

        Bound to every interface (host "0.0.0.0" or "::"), it names loopback, the address
        a client on this machine reaches it by.
        """
        if self._base_url is None:
            raise RuntimeError("FakeTamioServer is not started")
        return self._base_url

    @property
    def url(self) -> str:
        """The full URL of GET /v2/agency/tickets/list."""
        return self.base_url + ENDPOINT.removeprefix("/v2")

    @property
    def in_flight(self) -> int:
        """Requests being handled right now, latency included."""
        return self._in_flight

    # -- data --------------------------------------------------------------------------------

    @property
    def tickets(self) -> Sequence[Ticket]:
        """The tickets alive, in storage order (oldest first for generated data).

        A snapshot, made as it is read: indexing and slicing cost only the tickets they
        return, so ``server.tickets[0]`` is cheap with a million tickets; iterating them all
        generates them all. Generated tickets are new dicts on every read.
        """
        return TicketView(self._data)

    def expected(
        self, query: Mapping[str, object] | None = None, /, **filters: object
    ) -> list[Ticket]:
        """Every ticket the server would page through for these query parameters, in order.

        Takes the query as sent (``{"closed": "true", "from": "2024-01-01"}``) or as Python
        values (``closed=True, from_=date(2024, 1, 1)``); None means not sent. It generates
        every ticket it returns: with large data sets, `expected_ids` is much cheaper.
        """
        data = self._data
        return [data.ticket(g) for g in self._expected(query, filters)]

    def expected_ids(
        self, query: Mapping[str, object] | None = None, /, **filters: object
    ) -> list[str]:
        """The ids of `expected` (same arguments), computed without making the tickets."""
        data = self._data
        return [data.ticket_id(g) for g in self._expected(query, filters)]

    def _expected(
        self, query: Mapping[str, object] | None, filters: dict[str, object]
    ) -> list[int]:
        params = {**(query or {}), **filters}
        wire = {
            ("from" if k == "from_" else k): _wire(v) for k, v in params.items() if v is not None
        }
        listing = self._listing(_parse_filters(wire, self.default_order))
        return listing.slice(0, len(listing))

    def insert_tickets(self, count: int) -> list[Ticket]:
        """Add `count` new tickets, newer than every stored one; return them."""
        _at_least("count", count, 0)
        newest = self._data.newest_created_at()
        # About a minute apart: tickets arriving while someone lists, not a new history.
        batch = GeneratedTickets(count, seed=self._drift_rng.getrandbits(64), start=newest, gap=60)
        self._change(self._data.plus(batch))
        return [batch.ticket(i) for i in range(count)]

    def delete_tickets(self, ids: Iterable[str]) -> int:
        """Remove the tickets with these ids; return how many were removed."""
        found = self._data.find(set(ids))
        if found:
            self._change(self._data.without(found))
        return len(found)

    def delete_newest(self, count: int) -> list[str]:
        """Remove the `count` newest tickets; return their ids."""
        doomed = self._data.newest(count)
        ids = [self._data.ticket_id(g) for g in doomed]
        if doomed:
            self._change(self._data.without(doomed))
        return ids

    def drift_after(self, page: int, *, insert: int = 0, delete: int = 0) -> None:
        """After `page` is first answered, delete the `delete` newest tickets, add `insert` new."""
        self._drifts.append((page, insert, delete))

    def _change(self, data: Dataset) -> None:
        self._data = data
        self._listings.clear()
        self._listed = 0

    def _listing(self, q: Query) -> Listing:
        """The listing of `q`, from a bounded LRU cache (filtered ones cost a scan to make)."""
        hit = self._listings.get(q)
        if hit is not None:
            self._listings.move_to_end(q)
            return hit
        listing = self._data.listing(q)
        cost = listing.cost
        while self._listings and (
            self._listed + cost > _LISTING_BUDGET or len(self._listings) >= _LISTING_LIMIT
        ):
            _, old = self._listings.popitem(last=False)
            self._listed -= old.cost
        self._listings[q] = listing
        self._listed += cost
        return listing

    def preload(self) -> None:
        """Make and encode every ticket now, and keep them all from here on.

        For demos and benchmarks that must time the client, not the fake making pages: the
        listing then costs the server what it cost when data was built ahead (a million
        tickets take about 25 s and 1.8 GB). Tickets added later are kept too.
        """
        self._encoded_limit = None
        everything = self._data.everything()
        for start in range(0, len(everything), 1000):
            for index in everything.slice(start, start + 1000):
                self._encode(index)

    def _encode(self, index: int) -> bytes:
        body = self._encoded.get(index)
        if body is None:
            limit = self._encoded_limit
            if limit is not None and len(self._encoded) >= limit:
                del self._encoded[next(iter(self._encoded))]  # the oldest: pages go in order
            body = self._encoded[index] = self._data.encode(index)
        return body

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self,
        kind: str | int,
        *,
        page: int | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
    ) -> None:
        """Fault the next `times` requests (None: forever) for `page` (None: any page)."""
        name = str(kind)
        if name not in FAULT_KINDS and not (name.isdigit() and 400 <= int(name) <= 599):
            raise ValueError(f"unknown fault {kind!r}; use an HTTP error status or {FAULT_KINDS}")
        if times is not None and times < 1:
            raise ValueError("times must be positive or None")
        self._scripted.append(_Scripted(name, page, times, retry_after))

    def clear_faults(self) -> None:
        """Forget every scripted fault (the random fault_rate is left as is)."""
        self._scripted.clear()

    def _pick_fault(self, page: int | None) -> tuple[str, float] | None:
        # Draw the same numbers on every request, so the random sequence depends only on the
        # request count, whatever the scripted faults do.
        draw = self._fault_rng.random()
        kind = self._fault_rng.choice(self.fault_kinds) if self.fault_kinds else None
        low, high = self.retry_after
        wait = float(round(self._fault_rng.uniform(low, high)))
        for scripted in self._scripted:
            if scripted.page is None or scripted.page == page:
                if scripted.remaining is not None:
                    scripted.remaining -= 1
                    if scripted.remaining == 0:
                        self._scripted.remove(scripted)
                given = scripted.retry_after
                return scripted.kind, wait if given is None else given
        if kind is not None and draw < self.fault_rate:
            return kind, wait
        return None

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- the endpoint ------------------------------------------------------------------------

    def _answer(self, request: web.Request) -> tuple[int, bytes]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token != self.api_key:
            return 401, _error_body(401, _UNAUTHORIZED)
        try:
            page, per_page = _parse_paging(request.query, self.max_per_page)
            q = _parse_filters(request.query, self.default_order)
        except _BadParam as exc:
            return 400, _error_body(400, str(exc))
        listing = self._listing(q)
        start = (page - 1) * per_page
        rows = [self._encode(g) for g in listing.slice(start, start + per_page)]
        return 200, (
            b'{"status":200,"total_results":%d,"tickets":[' % len(listing) + b",".join(rows) + b"]}"
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        self._served += 1
        headers = {"X-Request-Id": f"req-{self._served}"}
        page = _positive_int(request.query.get("page"))
        status: int | str = 500
        # Faults are drawn on arrival, so the random sequence follows the request order.
        picked = self._pick_fault(page)
        fault, wait = picked if picked is not None else (None, 0.0)
        if fault is not None:
            self.faults_injected += 1
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency > 0:
                await self._sleep(self.latency)
            if fault == "stall":
                await self._sleep(self.stall_seconds)
            status, body = self._answer(request)
            if fault is None or fault == "stall":
                if fault is None and status == 200 and page is not None:
                    self._drift(page)
                return _json(status, body, headers)
            if fault == "invalid_json":
                status = 200
                return _json(200, body[: len(body) // 2], headers)
            if fault in ("reset", "truncate"):
                status = fault
                return await self._break(request, body, headers, abort=fault == "reset")
            status = int(fault)
            if status == 429:
                headers["Retry-After"] = _seconds(wait)
            return _json(status, _error_body(status), headers)
        finally:
            self._in_flight -= 1
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query_string=request.query_string,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    page=page,
                    status=status,
                    fault=fault,
                    start=started,
                    end=time.monotonic(),
                )
            )

    async def _break(
        self, request: web.Request, body: bytes, headers: dict[str, str], *, abort: bool
    ) -> web.StreamResponse:
        """Promise the whole body, send half of it, then drop the connection."""
        response = web.StreamResponse(headers=headers)
        response.content_type = "application/json"
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        transport = request.transport
        if transport is not None:
            # abort() drops unsent data and closes at once; close() flushes first.
            if abort:
                transport.abort()
            else:
                transport.close()
        # aiohttp's own write_eof on the dead transport raises ConnectionError, which it expects.
        return response

    def _drift(self, page: int) -> None:
        due = [d for d in self._drifts if d[0] == page]
        if not due:
            return
        self._drifts = [d for d in self._drifts if d[0] != page]
        for _, insert, delete in due:
            # Delete first, so the tickets removed are existing ones, not the fresh inserts.
            self.delete_newest(delete)
            self.insert_tickets(insert)
