"""Reliability and security, end to end on 127.0.0.1: faults, drift, exhaustion, hostile bodies,
secrets, cancellation storms and bad arguments.

Every wait is bounded and no sleep synchronises anything (the cancellation storm's random
delays choose *where* a cancellation lands; they are the input, not a wait). The long fault
soak is marked ``soak`` and deselected by default: ``pytest -m soak -s tests/test_reliability.py``.
Figures measured here are printed (visible with ``-s``) and kept in ``MEASURED`` for the README.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime
import gc
import logging
import random
import re
import ssl
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import aiohttp
import msgspec
import pytest
import trustme
import yarl
from aiohttp import web
from conftest import FakeClock, LocalServers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tamio_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    IncompleteListingError,
    InternalServerError,
    ListingStats,
    NotFoundError,
    PermissionDeniedError,
    Progress,
    RateLimitError,
    RetryPolicy,
    TamioClient,
    TamioError,
    Ticket,
    TicketList,
    models,
)
from tamio_async._exceptions import parse_retry_after, status_error
from tamio_async.models import decode_ticket_list
from tamio_async.testing import FakeTamioServer, generate_tickets

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[Handler], Awaitable[str]]

BOUND = 30.0  # seconds: an upper bound on any wait, never a duration relied on
CANARY = "sk-canary-7f3a9c-DO-NOT-LEAK"
LIST_PATH = "/v2/agency/tickets/list"

#: Figures for the README, filled in by the tests below; printed at the end of the module.
MEASURED: dict[str, dict[str, object]] = {}
#: How many generated inputs each property test tried (for the same summary).
TRIED: collections.Counter[str] = collections.Counter()


def record(name: str, **figures: object) -> None:
    """Keep one test's figures and print them (visible with ``pytest -s``)."""
    MEASURED[name] = figures
    print(f"\n[{name}] " + ", ".join(f"{key}={value}" for key, value in figures.items()))


@pytest.fixture(scope="module", autouse=True)
def _print_measured() -> Iterator[None]:
    yield
    if TRIED:
        MEASURED["examples tried"] = dict(TRIED)
    if MEASURED:
        print("\n== tests/test_reliability.py: measured ==")
        for name, figures in MEASURED.items():
            print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


@pytest.fixture(autouse=True)
def _no_tamio_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAMIO_API_KEY", raising=False)
    monkeypatch.delenv("TAMIO_BASE_URL", raising=False)


# --- helpers ---------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], bool], timeout: float = BOUND) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded).

    It polls in the calling task: ``wait_for`` would add a task of its own, which a
    predicate about tasks would then count.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"condition still false after {timeout} s")
        await asyncio.sleep(0.005)


def client_for(server: FakeTamioServer, **options: Any) -> TamioClient:
    options.setdefault("api_key", server.api_key)
    return TamioClient(base_url=server.base_url, **options)


def ids_of(tickets: Sequence[Ticket] | Sequence[dict[str, Any]]) -> list[str]:
    return [t["id"] if isinstance(t, dict) else t.id for t in tickets]


async def drain_ids(pages: AsyncIterator[TicketList]) -> list[str]:
    """Every ticket id of a page stream, in order (bounded)."""

    async def drain() -> list[str]:
        return [t.id async for page in pages for t in page.tickets]

    return await asyncio.wait_for(drain(), BOUND)


def foreign_tasks() -> set[asyncio.Task[Any]]:
    """Every pending task but this one and the fake servers' keep-alive connection handlers."""
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not task.done()
        and task.get_coro().__qualname__ != "RequestHandler.start"  # type: ignore[union-attr]
    }


def chain_of(error: BaseException) -> list[BaseException]:
    """The error and every exception reachable through __cause__ / __context__."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo and len(seen) < 100:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def texts_of(error: BaseException) -> list[str]:
    """Everything an error can show a reader: str and repr of the whole chain, the traceback."""
    shown = ["".join(traceback.format_exception(error))]
    for link in chain_of(error):
        shown += [str(link), repr(link), *map(repr, link.args)]
    return shown


# --- 1. fault soak ---------------------------------------------------------------------------

SOAK_KINDS = ("429", "500", "503", "reset", "truncate", "stall")
#: Backoff short enough that the soak measures the faults, not our patience.
SOAK_RETRY = RetryPolicy(max_retries=10, initial_wait=0.01, max_wait=0.05, jitter=0.01)


@dataclasses.dataclass(frozen=True)
class Soak:
    tickets: int
    per_page: int
    concurrency: int
    fault_rate: float
    stall: float  # the server's stall...
    timeout: float  # ... against this client timeout
    bound: float


SHORT_SOAK = Soak(2000, 50, 8, 0.2, stall=0.6, timeout=0.3, bound=120.0)
LONG_SOAK = Soak(20_000, 100, 16, 0.2, stall=2.0, timeout=1.0, bound=600.0)


async def run_soak(name: str, soak: Soak, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tamio_async")
    async with FakeTamioServer(
        tickets=soak.tickets,
        seed=2024,
        fault_rate=soak.fault_rate,
        fault_kinds=SOAK_KINDS,
        retry_after=(0.0, 1.0),
        stall_seconds=soak.stall,
    ) as server:
        # One of each kind on its own page, so even a short run meets every kind.
        for page, kind in enumerate(SOAK_KINDS, start=2):
            server.inject(kind, page=page)
        expected = ids_of(server.expected())
        started = time.perf_counter()
        async with client_for(
            server, timeout=soak.timeout, max_concurrency=soak.concurrency, retry=SOAK_RETRY
        ) as client:
            tickets = await asyncio.wait_for(
                client.tickets.list_all(per_page=soak.per_page), soak.bound
            )
        wall = time.perf_counter() - started
    # The server is stopped: stalled handlers were woken and every request is recorded.
    got = ids_of(tickets)
    by_kind = collections.Counter(r.fault for r in server.requests if r.fault)
    retries = sum("; retry " in r.getMessage() for r in caplog.records)
    lost = len(set(expected) - set(got))
    duplicated = len(got) - len(set(got))
    record(
        name,
        tickets=len(got),
        requests=len(server.requests),
        faults=server.faults_injected,
        by_kind=dict(sorted(by_kind.items())),
        retries=retries,
        lost=lost,
        duplicated=duplicated,
        wall_s=round(wall, 2),
    )
    assert got == expected
    assert lost == 0 and duplicated == 0
    assert set(by_kind) == set(SOAK_KINDS)
    assert 1 <= retries <= server.faults_injected + len(server.requests)


async def test_fault_soak_short_returns_every_ticket_once_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_soak("soak short", SHORT_SOAK, caplog)


@pytest.mark.soak
async def test_fault_soak_long_returns_every_ticket_once_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_soak("soak long", LONG_SOAK, caplog)


# --- 2. drift --------------------------------------------------------------------------------

NEWEST_FIRST = {"order": "desc", "sort_by": "created_at"}


async def list_with_stats(
    server: FakeTamioServer, concurrency: int
) -> tuple[list[str], ListingStats]:
    """Every ticket id of the newest-first listing, and the listing's stats."""
    async with client_for(server, max_concurrency=concurrency) as client:
        async with client.tickets.pages(per_page=50, **NEWEST_FIRST) as pages:
            got = await drain_ids(pages)
    return got, pages.stats


@pytest.mark.parametrize(
    ("seed", "after_page", "concurrency"),
    [
        (1, 1, 16),  # right after page 1: before any other page is requested
        (2, 2, 16),  # while ~16 pages are in flight
        (3, 5, 4),
        (5, 12, 2),
        (6, 19, 16),  # near the end
        (7, 3, 1),  # sequential
    ],
)
async def test_front_insertions_lose_and_duplicate_no_ticket_and_are_reported(
    seed: int, after_page: int, concurrency: int
) -> None:
    async with FakeTamioServer(tickets=1000, seed=seed, latency=0.005) as server:
        before = ids_of(server.expected(**NEWEST_FIRST))
        server.drift_after(after_page, insert=500)
        got, stats = await list_with_stats(server, concurrency)
        everything = set(ids_of(server.expected(**NEWEST_FIRST)))
    record(
        f"drift insert 500 after page {after_page}, concurrency {concurrency}",
        extra_pages=stats.extra_pages,
        duplicates_dropped=stats.duplicates_dropped,
        pages_fetched=stats.pages_fetched,
        requests=len(server.requests),
    )
    assert set(before) <= set(got)
    assert len(got) == len(set(got))
    assert set(got) <= everything  # nothing made up
    assert stats.drift_detected
    assert (stats.first_total_results, stats.last_total_results) == (1000, 1500)


@pytest.mark.parametrize(
    ("seed", "after_page", "delete", "concurrency"),
    [(11, 1, 150, 8), (12, 3, 40, 16), (13, 6, 333, 4), (15, 2, 999, 1)],
)
async def test_deletions_mid_listing_never_duplicate_and_the_listing_terminates(
    seed: int, after_page: int, delete: int, concurrency: int
) -> None:
    # The promise: deleted tickets may or may not appear, shifted ones may be missed, but
    # nothing is ever duplicated, nothing is made up, and the listing ends.
    async with FakeTamioServer(tickets=1000, seed=seed, latency=0.005) as server:
        before = set(ids_of(server.expected(**NEWEST_FIRST)))
        server.drift_after(after_page, delete=delete)
        got, stats = await list_with_stats(server, concurrency)
    record(
        f"drift delete {delete} after page {after_page}, concurrency {concurrency}",
        returned=len(got),
        extra_pages=stats.extra_pages,
        duplicates_dropped=stats.duplicates_dropped,
        requests=len(server.requests),
    )
    assert len(got) == len(set(got))
    assert set(got) <= before
    # It ended (within BOUND) and without a runaway: the plan plus at most 3 repair rounds.
    assert stats.pages_planned is not None
    assert len(server.requests) <= 4 * stats.pages_planned + 1


async def test_insertions_and_deletions_together_never_duplicate_or_make_up_tickets() -> None:
    async with FakeTamioServer(tickets=1000, seed=21, latency=0.005) as server:
        ever = set(ids_of(server.expected(**NEWEST_FIRST)))
        insert = server.insert_tickets

        def insert_and_remember(count: int) -> list[dict[str, Any]]:
            new = insert(count)
            ever.update(ids_of(new))
            return new

        server.insert_tickets = insert_and_remember  # type: ignore[method-assign]
        server.drift_after(2, insert=300, delete=120)
        server.drift_after(9, insert=50, delete=400)  # deletes some of the first insert too
        got, _ = await list_with_stats(server, concurrency=8)
    assert len(got) == len(set(got))
    assert set(got) <= ever  # every ticket returned existed at some point


@pytest.mark.parametrize(("tickets", "concurrency"), [(1000, 8), (1025, 1)])
async def test_deletions_at_the_front_after_every_page_was_fetched_lose_nothing(
    tickets: int, concurrency: int
) -> None:
    async with FakeTamioServer(tickets=tickets, seed=31, latency=0.002) as server:
        before = ids_of(server.expected(**NEWEST_FIRST))
        holder: list[ListingStats] = []

        def delete_once_all_planned_pages_are_in(progress: Progress) -> None:
            stats = holder[0]
            if progress.pages_done == stats.pages_planned and not stats.drift_detected:
                server.delete_newest(250)

        async with client_for(server, max_concurrency=concurrency) as client:
            pages = client.tickets.pages(
                per_page=50, on_progress=delete_once_all_planned_pages_are_in, **NEWEST_FIRST
            )
            holder.append(pages.stats)
            async with pages:
                got = await drain_ids(pages)
        assert len(server.expected()) == tickets - 250  # the deletion did happen
    assert sorted(got) == sorted(before)
    assert len(got) == len(set(got))


# --- 3. exhaustion ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exhaustion:
    fault: str | int
    error: type[TamioError]
    retryable: bool


EXHAUSTION = {
    "500": Exhaustion("500", InternalServerError, retryable=True),
    "503": Exhaustion("503", InternalServerError, retryable=True),
    "429": Exhaustion("429", RateLimitError, retryable=True),
    "reset": Exhaustion("reset", APIConnectionError, retryable=True),
    "truncate": Exhaustion("truncate", APIConnectionError, retryable=True),
    "stall": Exhaustion("stall", APITimeoutError, retryable=True),
    "invalid_json": Exhaustion("invalid_json", APIResponseValidationError, retryable=False),
    "400": Exhaustion(400, BadRequestError, retryable=False),
    "401": Exhaustion(401, AuthenticationError, retryable=False),
    "403": Exhaustion(403, PermissionDeniedError, retryable=False),
    "404": Exhaustion(404, NotFoundError, retryable=False),
}
FAILING_PAGE = 3
MAX_RETRIES = 2
EXHAUSTION_PER_PAGE = 50


def exhausting_server(kind: str, **options: Any) -> FakeTamioServer:
    """A server whose page FAILING_PAGE fails with ``kind`` every time; other pages are fine."""
    server = FakeTamioServer(tickets=500, stall_seconds=BOUND, **options)
    server.inject(EXHAUSTION[kind].fault, page=FAILING_PAGE, times=None, retry_after=0.01)
    return server


def exhausting_client(
    server: FakeTamioServer, kind: str, clock: FakeClock, **options: Any
) -> TamioClient:
    # Only the stalling case gets a short timeout: a loaded machine must not time out the rest.
    timeout = 0.2 if kind == "stall" else 60.0
    return client_for(
        server,
        timeout=timeout,
        max_concurrency=4,
        retry=clock.policy(max_retries=MAX_RETRIES),
        **options,
    )


async def run_listing(client: TamioClient, entry: str, got: list[str]) -> None:
    """Drive ``list_all`` or ``iterate`` to the end, collecting ids into ``got`` as they come."""
    if entry == "list_all":
        got.extend(ids_of(await client.tickets.list_all(per_page=EXHAUSTION_PER_PAGE)))
        return
    async with client.tickets.iterate(per_page=EXHAUSTION_PER_PAGE) as tickets:
        async for ticket in tickets:
            got.append(ticket.id)


@pytest.mark.parametrize("entry", ["list_all", "iterate"])
@pytest.mark.parametrize("kind", EXHAUSTION)
async def test_a_page_that_always_fails_raises_its_class_with_page_and_hint_within_budget(
    kind: str, entry: str, clock: FakeClock
) -> None:
    case = EXHAUSTION[kind]
    got: list[str] = []
    async with exhausting_server(kind) as server:
        expected = ids_of(server.expected())
        async with exhausting_client(server, kind, clock) as client:
            with pytest.raises(case.error) as caught:
                await asyncio.wait_for(run_listing(client, entry, got), BOUND)
    # The server is stopped, so stalled attempts are recorded too.
    error = caught.value
    assert type(error) is case.error
    assert error.page == FAILING_PAGE
    assert f"start_page={FAILING_PAGE}" in str(error)
    attempts = [r for r in server.requests if r.page == FAILING_PAGE]
    if not case.retryable:
        assert len(attempts) == 1
    elif kind in ("reset", "truncate"):
        # aiohttp may silently re-send a GET once when the server drops the connection.
        assert MAX_RETRIES + 1 <= len(attempts) <= 2 * (MAX_RETRIES + 1)
    elif kind == "429":
        # Under rate control a throttle is waited out, not counted as a failure: the page
        # gives up once it has been throttled for max_throttle_time (on the fake clock).
        assert len(attempts) > MAX_RETRIES + 1
        assert clock.now - 1000 >= RetryPolicy().max_throttle_time
    else:
        assert len(attempts) == MAX_RETRIES + 1
    if entry == "iterate":  # every page before the failing one was delivered
        assert got == expected[: (FAILING_PAGE - 1) * EXHAUSTION_PER_PAGE]


# --- 4. hostile responses --------------------------------------------------------------------

HOLE = "@@hole@@"
_SAMPLE = generate_tickets(3, seed=5)
BASE_PAGE: dict[str, Any] = {"status": 200, "total_results": 3, "tickets": _SAMPLE}


def _struct_fields(name: str) -> set[str]:
    return {f.name for f in msgspec.structs.fields(getattr(models, name))}


_NESTED_STRUCTS = {
    "tickets": "Ticket",
    "client": "Customer",
    "replies": "Reply",
    "assets": "Asset",
    "thumbnails": "Thumbnail",
}


def _typed_paths(value: Any, struct: str, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    """Paths to every field the Struct declares and the sample gives a non-null value."""
    known = _struct_fields(struct)
    for key, child in value.items():
        if key not in known or child is None:
            continue
        yield (*path, key)
        nested = _NESTED_STRUCTS.get(key)
        if nested is None:
            continue
        if isinstance(child, dict):
            yield from _typed_paths(child, nested, (*path, key))
        elif isinstance(child, list):
            for i, item in enumerate(child):
                yield from _typed_paths(item, nested, (*path, key, i))


TYPED_PATHS = list(_typed_paths(BASE_PAGE, "TicketList", ()))


def _all_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _all_paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _all_paths(child, (*path, i))


ALL_PATHS = list(_all_paths(BASE_PAGE))


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _replaced(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE_PAGE)
    *parents, last = path
    _at(document, tuple(parents))[last] = value
    return document


def _json_path(path: tuple[Any, ...]) -> str:
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


_SMALL_TEXT = st.text(max_size=8)
_CONTAINERS = st.one_of(
    st.lists(st.integers(), max_size=3), st.dictionaries(_SMALL_TEXT, st.integers(), max_size=2)
)
_FRACTION = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())


def wrong_value_for(sample: object) -> st.SearchStrategy[object]:
    """Values msgspec must refuse where the sample value's type is declared."""
    if isinstance(sample, bool):
        return st.one_of(st.integers(), _SMALL_TEXT, _FRACTION, _CONTAINERS)
    if isinstance(sample, int):
        return st.one_of(_SMALL_TEXT, st.booleans(), _FRACTION, _CONTAINERS)
    if isinstance(sample, str):
        # Not inf: msgspec encodes it as null, which every optional field accepts.
        finite = st.floats(allow_nan=False, allow_infinity=False)
        return st.one_of(st.integers(), st.booleans(), finite, _CONTAINERS)
    if isinstance(sample, list):
        return st.one_of(st.integers(), st.booleans(), _SMALL_TEXT, st.just({"a": 1}))
    assert isinstance(sample, dict), sample
    return st.one_of(st.integers(), st.booleans(), _SMALL_TEXT, st.just([1]))


@st.composite
def one_field_of_the_wrong_type(draw: st.DrawFn) -> tuple[bytes, str]:
    path = draw(st.sampled_from(TYPED_PATHS))
    value = draw(wrong_value_for(_at(BASE_PAGE, path)))
    return msgspec.json.encode(_replaced(path, value)), _json_path(path)


DEEP = 100_000
#: Raw JSON the encoder could never produce: huge and special numbers, invalid UTF-8, lone
#: surrogates, depth far past any recursion limit, very long strings.
RAW_HOSTILE_VALUES = [
    b"18446744073709551616",  # 2**64
    b"-18446744073709551617",
    b"1" + b"0" * 400,
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"NaN",
    b"Infinity",
    b"-0",
    b"0.5",
    b'"\xff\xfe"',
    b'"\xc3"',
    b'"\\ud800"',
    b'"\\u0000"',
    b'"' + b"x" * 1_000_000 + b'"',
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b"[" * DEEP,
    b"",
    b"nul",
]


@st.composite
def a_raw_hostile_value_anywhere(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(ALL_PATHS))
    raw = draw(
        st.one_of(
            st.sampled_from(RAW_HOSTILE_VALUES),
            st.recursive(
                st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _SMALL_TEXT),
                lambda inner: st.one_of(
                    st.lists(inner, max_size=3), st.dictionaries(_SMALL_TEXT, inner, max_size=3)
                ),
                max_leaves=8,
            ).map(lambda v: msgspec.json.encode(v, order="deterministic")),
        )
    )
    return msgspec.json.encode(_replaced(path, HOLE)).replace(f'"{HOLE}"'.encode(), raw, 1)


VALID_BODY = msgspec.json.encode(BASE_PAGE)
HOSTILE_BODIES = st.one_of(
    st.binary(max_size=512),
    st.integers(0, len(VALID_BODY) - 1).map(lambda n: VALID_BODY[:n]),
    one_field_of_the_wrong_type().map(lambda pair: pair[0]),
    a_raw_hostile_value_anywhere(),
)
HOSTILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_refuse(body: bytes) -> TicketList | APIResponseValidationError:
    """The page, or our refusal; any other exception escapes (and fails the test)."""
    try:
        return decode_ticket_list(body, page=7)
    except APIResponseValidationError as exc:
        return exc


@HOSTILE
@given(body=HOSTILE_BODIES)
def test_hostile_bodies_decode_or_raise_only_our_validation_error(body: bytes) -> None:
    TRIED["hostile page bodies"] += 1
    outcome = decode_or_refuse(body)
    if isinstance(outcome, APIResponseValidationError):
        assert outcome.page == 7 and outcome.status_code == 200
    else:
        assert isinstance(outcome, TicketList)


@HOSTILE
@given(case=one_field_of_the_wrong_type())
def test_a_field_of_the_wrong_type_is_refused_naming_its_json_path(case: tuple[bytes, str]) -> None:
    TRIED["one field of the wrong type"] += 1
    body, path = case
    with pytest.raises(APIResponseValidationError) as caught:
        decode_ticket_list(body)
    assert caught.value.path == path


@settings(HOSTILE, max_examples=100)
@given(
    status=st.integers(400, 599),
    body=st.one_of(HOSTILE_BODIES, st.sampled_from([b'{"message": "\xff"}', b'{"error":"\xc3"}'])),
    headers=st.dictionaries(
        st.sampled_from(["Retry-After", "retry-after-ms", "X-Request-Id"]),
        st.text(max_size=40),
        max_size=3,
    ),
)
def test_hostile_error_answers_build_a_typed_error_with_a_bounded_message(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    TRIED["hostile error answers"] += 1
    error = status_error(status, body, headers, page=2)
    assert isinstance(error, APIStatusError) and error.status_code == status
    assert len(error.message) <= 300
    assert error.retry_after is None or error.retry_after >= 0


@settings(HOSTILE, max_examples=100)
@given(
    value=st.one_of(
        st.text(max_size=60),
        st.sampled_from(["1e400", "nan", "-inf", "Mon, 01 Jan 99999 00:00:00 GMT", "-0"]),
        st.datetimes(timezones=st.just(datetime.timezone.utc)).map(
            lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")
        ),
    ),
    name=st.sampled_from(["Retry-After", "retry-after-ms"]),
)
def test_any_retry_after_header_gives_none_or_a_finite_wait(value: str, name: str) -> None:
    TRIED["Retry-After values"] += 1
    wait = parse_retry_after({name: value}, now=1_700_000_000.0)
    assert wait is None or 0 <= wait < float("inf")


def answer_bytes(body: bytes, status: int = 200) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type="application/json")

    return answer


END_TO_END_HOSTILE = {
    "invalid-utf8-in-a-string": b'{"tickets":[{"id":"\xff"}]}',
    "nesting-100k-deep": b'{"x":' + b"[" * DEEP + b"]" * DEEP + b',"tickets":[]}',
    "1e400-timestamp": b'{"tickets":[{"id":"a","created_at":1e400}]}',
    "2**64-status": b'{"status":18446744073709551616,"tickets":[]}',
    "a-10mb-title": b'{"tickets":[{"id":"a","title":"' + b"t" * 10_000_000 + b'"}]}',
    "null-tickets": b'{"status":200,"tickets":null}',
    "array": b"[]",
    "html": b"<html>busy</html>",
    "truncated": VALID_BODY[: len(VALID_BODY) // 3],
}


@pytest.mark.parametrize("name", END_TO_END_HOSTILE)
async def test_a_hostile_page_over_a_socket_decodes_or_raises_only_our_error(
    serve: Serve, name: str
) -> None:
    TRIED["hostile bodies over a socket"] += 2  # this one and its 503 twin below
    base_url = await serve(answer_bytes(END_TO_END_HOSTILE[name]))
    async with TamioClient(api_key="k", base_url=base_url, max_retries=0) as client:
        outcome: TicketList | APIResponseValidationError
        try:
            outcome = await asyncio.wait_for(client.tickets.list(), BOUND)
        except APIResponseValidationError as exc:
            outcome = exc
    if isinstance(outcome, APIResponseValidationError):
        assert outcome.status_code == 200 and outcome.page == 1
    else:
        assert isinstance(outcome, TicketList)


@pytest.mark.parametrize("name", END_TO_END_HOSTILE)
async def test_a_hostile_error_body_over_a_socket_raises_its_typed_error(
    serve: Serve, name: str
) -> None:
    base_url = await serve(answer_bytes(END_TO_END_HOSTILE[name], status=503))
    async with TamioClient(api_key="k", base_url=base_url, max_retries=0) as client:
        with pytest.raises(InternalServerError) as caught:
            await asyncio.wait_for(client.tickets.list(), BOUND)
    assert len(caught.value.message) <= 300


async def test_a_total_results_far_beyond_the_data_yields_it_all_then_raises(serve: Serve) -> None:
    ids = [f"t{i:02d}" for i in range(25)]
    served = 0

    async def claims_too_much(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        if served > 60:  # far past any sane listing: stop the runaway with an error
            return web.Response(status=500)
        page, per_page = int(request.query["page"]), int(request.query["per_page"])
        chunk = ids[(page - 1) * per_page : page * per_page]
        return web.json_response(
            {"status": 200, "total_results": 2**64, "tickets": [{"id": i} for i in chunk]}
        )

    base_url = await serve(claims_too_much)
    async with TamioClient(
        api_key="k", base_url=base_url, max_retries=0, max_concurrency=4
    ) as client:
        got: list[Ticket] = []
        with pytest.raises(IncompleteListingError) as caught:
            async for ticket in client.tickets.iterate(per_page=10):
                got.append(ticket)
    assert ids_of(got) == ids  # every ticket there is, then the honest error
    assert caught.value.missing[0][0] == 25
    assert served <= caught.value.stats.request_budget
    assert served <= 3 + 2 * 4


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_above_the_cap_is_refused_early_with_page_and_hint(
    serve: Serve, chunked: bool
) -> None:
    chunk, most = b" " * 65536, 1024  # page 2 would be up to 64 MiB
    sent = attempts = 0
    finished = asyncio.Event()
    first_page = {
        "status": 200,
        "total_results": 20,
        "tickets": [{"id": f"t{i}"} for i in range(10)],
    }
    empty = {**first_page, "tickets": []}

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent, attempts
        if request.query["page"] != "2":  # page 1, and the probe after the full page 2
            return web.json_response(first_page if request.query["page"] == "1" else empty)
        attempts += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(chunk) * most
        await response.prepare(request)
        try:
            for _ in range(most):
                await response.write(chunk)
                sent += len(chunk)
        except ConnectionError:
            pass  # the client hung up: what we expect
        finally:
            finished.set()
        return response

    base_url = await serve(endless)
    cap = 1024 * 1024
    async with TamioClient(
        api_key="k", base_url=base_url, max_response_bytes=cap, max_retries=3
    ) as client:
        with pytest.raises(APIResponseValidationError, match="max_response_bytes") as caught:
            await asyncio.wait_for(client.tickets.list_all(per_page=10), BOUND)
        await asyncio.wait_for(finished.wait(), BOUND)
    assert caught.value.page == 2 and "start_page=2" in str(caught.value)
    assert attempts == 1  # refused, not retried
    assert sent < len(chunk) * most  # cut off long before the end, not read to the end


# --- 5. secrets and transport ----------------------------------------------------------------


@pytest.mark.parametrize("kind", EXHAUSTION)
async def test_the_key_shows_in_no_log_error_or_repr_on_any_exhausted_listing(
    kind: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with exhausting_server(kind, api_key=CANARY) as server:
        client = exhausting_client(server, kind, clock, api_key=CANARY)
        shown = [repr(client), repr(client._credentials), repr(client.retry)]
        async with client:
            pages = client.tickets.pages(per_page=EXHAUSTION_PER_PAGE)
            with pytest.raises(EXHAUSTION[kind].error) as caught:
                await drain_ids(pages)
            shown += [repr(pages.stats), repr(client)]
    shown += texts_of(caught.value)
    shown += [caplog.text, *(r.getMessage() for r in caplog.records)]
    shown += [repr(r.args) for r in caplog.records]
    assert server.requests[0].headers["Authorization"] == f"Bearer {CANARY}"  # it was sent
    leaked = [text for text in shown if CANARY in text]
    assert leaked == []


async def redirect_loop(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{request.path}?{request.query_string}")


async def test_the_key_shows_nowhere_in_the_chain_of_a_redirect_loop_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    base_url = await serve(redirect_loop)
    async with TamioClient(api_key=CANARY, base_url=base_url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.tickets.list_all()
    leaked = [t for t in [*texts_of(caught.value), caplog.text] if CANARY in t]
    assert leaked == []


async def run_cli(*args: str) -> tuple[int, str]:
    """``python -m tamio_async ARGS`` as an asyncio subprocess; exit status and all output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tamio_async",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), BOUND)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_the_cli_with_debug_never_prints_the_key_through_faults_and_failure() -> None:
    async with FakeTamioServer(tickets=300, api_key=CANARY, stall_seconds=0.05) as server:
        # Pages 1-5 recover from one fault each (retry logs), then page 6 fails for good.
        for page, kind in enumerate(["stall", "503", "reset", "429", "truncate"], start=1):
            server.inject(kind, page=page, retry_after=0)
        server.inject("invalid_json", page=6, times=None)
        code, output = await run_cli(
            "tickets", "--all", "--per-page", "50", "--debug", "-q",
            "--api-key", CANARY, "--base-url", server.base_url,
        )  # fmt: skip
    assert code == 1, output
    assert "DEBUG" in output and "retry" in output  # the verbose paths did run
    assert "error:" in output and "page 6" in output  # and so did the failure
    assert CANARY not in output


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["other-port", "other-host-same-port"])
async def test_a_redirect_to_another_origin_never_carries_the_key(
    serve: Serve, status: int, target: str
) -> None:
    seen: list[dict[str, str]] = []

    async def landing(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return web.json_response({"status": 200, "total_results": 0, "tickets": []})

    other = await serve(landing)

    async def redirect(request: web.Request) -> web.StreamResponse:
        if request.host.startswith("localhost"):  # arrived under the other host name
            return await landing(request)
        if target == "other-port":
            location = f"{other}/agency/tickets/list?{request.query_string}"
        else:  # same server and port, another host name: another origin all the same
            port = yarl.URL(base_url).port
            location = f"http://localhost:{port}{LIST_PATH}?{request.query_string}"
        raise _redirect(status, location)

    base_url = await serve(redirect)
    async with TamioClient(api_key=CANARY, base_url=base_url) as client:
        await asyncio.wait_for(client.tickets.list(), BOUND)
    assert len(seen) == 1
    assert "Authorization" not in seen[0]
    assert all(CANARY not in value for value in seen[0].values())


def _redirect(status: int, location: str) -> web.HTTPException:
    classes: dict[int, type[web.HTTPMove]] = {
        301: web.HTTPMovedPermanently,
        302: web.HTTPFound,
        303: web.HTTPSeeOther,
        307: web.HTTPTemporaryRedirect,
        308: web.HTTPPermanentRedirect,
    }
    return classes[status](location)


@pytest.fixture(scope="module")
def test_ca() -> trustme.CA:
    """A throwaway certificate authority; its certificate for 127.0.0.1 serves TLS locally."""
    return trustme.CA()


@pytest.fixture
async def serve_tls(test_ca: trustme.CA) -> AsyncIterator[Serve]:
    """Like ``serve``, over TLS with the throwaway certificate; returns an https base_url."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("127.0.0.1").configure_cert(context)
    servers = LocalServers(context)
    yield servers.start
    await servers.stop()


async def empty_page(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": 200, "total_results": 0, "tickets": []})


async def test_a_redirect_from_https_to_plain_http_never_carries_the_key(
    serve: Serve, serve_tls: Serve, test_ca: trustme.CA
) -> None:
    plain_seen: list[dict[str, str]] = []
    tls_seen: list[dict[str, str]] = []

    async def landing(request: web.Request) -> web.StreamResponse:
        plain_seen.append(dict(request.headers))
        return await empty_page(request)

    plain = await serve(landing)

    async def downgrade(request: web.Request) -> web.StreamResponse:
        tls_seen.append(dict(request.headers))
        raise web.HTTPFound(f"{plain}/agency/tickets/list?{request.query_string}")

    base_url = await serve_tls(downgrade)
    trust = ssl.create_default_context()
    test_ca.configure_trust(trust)
    # A borrowed session only to trust the test certificate; redirects are aiohttp's.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
        async with TamioClient(api_key=CANARY, base_url=base_url, session=session) as client:
            # Refusing the downgrade would be as good as stripping the key.
            with contextlib.suppress(APIConnectionError):
                await asyncio.wait_for(client.tickets.list(), BOUND)
    assert tls_seen[0]["Authorization"] == f"Bearer {CANARY}"  # it was sent over TLS
    assert all("Authorization" not in headers for headers in plain_seen)
    assert all(CANARY not in str(headers) for headers in plain_seen)


async def test_an_untrusted_certificate_is_refused_before_the_key_is_sent(
    serve_tls: Serve,
) -> None:
    reached: list[web.Request] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        reached.append(request)
        return await empty_page(request)

    base_url = await serve_tls(answer)
    async with TamioClient(api_key=CANARY, base_url=base_url, max_retries=0) as client:
        with pytest.raises(APIConnectionError, match=r"(?i)certificate") as caught:
            await asyncio.wait_for(client.tickets.list(), BOUND)
    assert reached == []  # the handshake failed: no request, so no key, went out
    assert all(CANARY not in text for text in texts_of(caught.value))


REMOTE_HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z][a-z0-9-]{0,8}){0,2}\.[a-z]{2,6}", fullmatch=True),
    st.ip_addresses(v=4).filter(lambda ip: not ip.is_loopback).map(str),
    st.ip_addresses(v=6).filter(lambda ip: not ip.is_loopback).map(lambda ip: f"[{ip}]"),
)


@settings(max_examples=50, deadline=None)
@given(host=REMOTE_HOSTS, port=st.none() | st.integers(1, 65535))
def test_plain_http_to_any_non_loopback_host_is_refused_unless_allowed(
    host: str, port: int | None
) -> None:
    url = f"http://{host}{'' if port is None else f':{port}'}/v2"
    with pytest.raises(ValueError, match="allow_insecure_http"):
        TamioClient(api_key=CANARY, base_url=url)
    assert TamioClient(api_key=CANARY, base_url=url, allow_insecure_http=True).base_url


@settings(max_examples=50, deadline=None)
@given(
    host=st.one_of(
        st.ip_addresses(network="127.0.0.0/8").map(str),
        st.just("[::1]"),
        st.sampled_from(["localhost", "LOCALHOST", "LocalHost"]),
    )
)
def test_plain_http_to_loopback_needs_no_opt_in(host: str) -> None:
    assert TamioClient(api_key=CANARY, base_url=f"http://{host}:8080/v2").base_url


# --- 6. cancellation storm -------------------------------------------------------------------

STORM = 200


async def _list_all(client: TamioClient) -> None:
    await client.tickets.list_all(per_page=50)


async def _iterate(client: TamioClient) -> None:
    async for _ticket in client.tickets.iterate(per_page=50):
        pass


async def _iterate_in_with(client: TamioClient) -> None:
    async with client.tickets.iterate(per_page=50) as tickets:
        async for _ticket in tickets:
            pass


async def _pages_in_with(client: TamioClient) -> None:
    async with client.tickets.pages(per_page=50) as pages:
        async for _page in pages:
            pass


STORM_MODES = [_list_all, _iterate, _iterate_in_with, _pages_in_with]


async def test_a_cancellation_storm_leaks_no_task_connection_or_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    rng = random.Random(20240501)
    cancelled = finished = 0
    started = time.perf_counter()
    async with FakeTamioServer(tickets=2000, latency=0.005) as server:
        async with client_for(server, max_concurrency=8) as client:
            for i in range(STORM):
                task = asyncio.create_task(STORM_MODES[i % len(STORM_MODES)](client))
                # The random delay is the input of this test: where the cancellation lands.
                await asyncio.sleep(rng.uniform(0, 0.02))
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=BOUND)
                assert done, "a cancelled listing did not stop"
                if task.cancelled():
                    cancelled += 1
                else:
                    task.result()  # finished before the cancel landed: must have succeeded
                    finished += 1
            await wait_until(lambda: server.in_flight == 0)
            with contextlib.suppress(TimeoutError):
                await wait_until(lambda: not foreign_tasks())
            assert [task.get_coro() for task in foreign_tasks()] == []
            connector = client._transport._get_session().connector
            assert connector is not None
            await wait_until(lambda: not connector._acquired)
            # The client survived the storm: a full listing still works on the same pool.
            after = await asyncio.wait_for(client.tickets.list_all(per_page=50), BOUND)
            assert ids_of(after) == ids_of(server.expected())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.collect()  # flush "never awaited" / "destroyed but pending" from dropped objects
    complaints = [r.getMessage() for r in caplog.records if r.name.startswith("asyncio")]
    record(
        "cancellation storm",
        cancels=STORM,
        cancelled_mid_listing=cancelled,
        finished_first=finished,
        requests=len(server.requests),
        leaked_tasks=len(foreign_tasks()),
        acquired_connections=len(connector._acquired),
        wall_s=round(time.perf_counter() - started, 2),
    )
    assert complaints == []
    assert cancelled >= STORM // 2


# --- 7. bad arguments ------------------------------------------------------------------------

NOT_AN_INT = st.one_of(
    st.floats(),
    st.text(max_size=4),
    st.booleans(),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
)
NOT_A_STR = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.binary(max_size=4),
    st.lists(_SMALL_TEXT, max_size=2),
)


def bad_int(minimum: int, *, optional: bool) -> st.SearchStrategy[object]:
    """Non-ints and ints below ``minimum``; None too when None is not a meaningful value."""
    strategies = [NOT_AN_INT, st.integers(max_value=minimum - 1)]
    return st.one_of(*strategies) if optional else st.one_of(*strategies, st.none())


def bad_choice(allowed: tuple[str, ...]) -> st.SearchStrategy[object]:
    return st.one_of(st.text(max_size=12).filter(lambda s: s not in allowed), NOT_A_STR)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


MALFORMED_DATES = [
    "2024-13-01",
    "2024-02-30",
    "2024-05-01T25:00:00Z",
    "2024/05/01",
    "01-05-2024",
    "yesterday",
    "2024-05-01T12:00:00+25:00",
    "",
    "   ",
    "Z",
    "2024-05-01 12:00:00 UTC",
    "1714521600s",
]
UTC = datetime.timezone.utc
BAD_TIME = st.one_of(
    st.datetimes(),  # naive
    st.datetimes().map(datetime.datetime.isoformat),  # an ISO string without an offset: naive
    st.sampled_from(MALFORMED_DATES),
    st.text(alphabet=st.characters(exclude_categories=("Nd",)), max_size=12),
    st.integers(max_value=-1),
    st.floats(max_value=-1e-6),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.datetimes(max_value=datetime.datetime(1969, 12, 31), timezones=st.just(UTC)),
    st.booleans(),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.just(datetime.timedelta(days=1)),
    st.just(1j),
)
BAD_UUID = st.one_of(
    st.text(max_size=40).filter(lambda s: not _is_uuid(s)),
    st.integers(),
    st.binary(max_size=16),
    st.floats(),
)
BAD_FILTERS: dict[str, st.SearchStrategy[object]] = {
    "order": bad_choice(("asc", "desc")),
    "sort_by": bad_choice(("created_at", "title")),
    "filter": NOT_A_STR,
    "from_": BAD_TIME,
    "to": BAD_TIME,
    "closed": st.one_of(st.integers(), st.text(max_size=5), st.floats(), st.binary(max_size=3)),
    "teammate_id": BAD_UUID,
    "client_id": BAD_UUID,
}
BAD_LIST = {"page": bad_int(1, optional=False), "per_page": bad_int(1, optional=False)}
BAD_LISTING = {
    "per_page": bad_int(1, optional=False),
    "max_concurrency": bad_int(1, optional=True),
    "start_page": bad_int(1, optional=False),
    "end_page": bad_int(1, optional=True),  # below the default start_page=1
    "limit": bad_int(0, optional=True),
    "on_progress": st.one_of(st.integers(), st.text(max_size=3), st.booleans()),
}
KNOWN_NAMES = {*BAD_FILTERS, *BAD_LIST, *BAD_LISTING}
UNKNOWN_NAME = st.from_regex(r"[a-z][a-z_]{2,11}", fullmatch=True).filter(
    lambda n: n not in KNOWN_NAMES
)


def one_bad_argument(bad: dict[str, st.SearchStrategy[object]]) -> st.SearchStrategy[Any]:
    """(kwargs, name): one parameter set to a bad value; ``name`` must appear in the error."""
    singles = [st.tuples(st.just(name), values) for name, values in bad.items()]
    from_after_to = st.tuples(
        st.datetimes(
            min_value=datetime.datetime(1971, 1, 1),
            max_value=datetime.datetime(9000, 1, 1),
            timezones=st.just(UTC),
        ).map(lambda moment: moment.replace(microsecond=0)),
        st.integers(1, 10**9).map(lambda seconds: datetime.timedelta(seconds=seconds)),
    ).map(lambda pair: ({"from_": pair[0] + pair[1], "to": pair[0]}, "from_"))
    unknown = UNKNOWN_NAME.map(lambda name: ({name: 1}, name))
    return st.one_of(
        *(s.map(lambda pair: ({pair[0]: pair[1]}, pair[0])) for s in singles),
        from_after_to,
        unknown,
    )


def names_it(error: BaseException, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", str(error)) is not None


@pytest.fixture
async def idle_server() -> AsyncIterator[FakeTamioServer]:
    """A fake server that must receive no request at all."""
    async with FakeTamioServer(tickets=10) as server:
        yield server


async def call_entry(client: TamioClient, entry: str, kwargs: dict[str, Any]) -> None:
    tickets = client.tickets
    if entry == "list":
        await tickets.list(**kwargs)
    elif entry == "list_all":
        await tickets.list_all(**kwargs)
    elif entry == "iterate":
        tickets.iterate(**kwargs)
    else:
        tickets.pages(**kwargs)


ARGUMENTS = settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_LIST_CASES = one_bad_argument({**BAD_LIST, **BAD_FILTERS})
_LISTING_CASES = one_bad_argument({**BAD_LISTING, **BAD_FILTERS})


@pytest.mark.parametrize("entry", ["list", "list_all", "iterate", "pages"])
@ARGUMENTS
@given(data=st.data())
async def test_a_bad_listing_argument_raises_naming_it_before_any_request(
    idle_server: FakeTamioServer, entry: str, data: st.DataObject
) -> None:
    kwargs, name = data.draw(_LIST_CASES if entry == "list" else _LISTING_CASES)
    TRIED["bad listing arguments"] += 1
    sent_before = len(idle_server.requests)  # the server is shared by every example
    async with client_for(idle_server) as client:
        with pytest.raises((TypeError, ValueError)) as caught:
            await call_entry(client, entry, kwargs)
    assert names_it(caught.value, name), (name, str(caught.value))
    assert len(idle_server.requests) == sent_before == 0


def _with_control_character(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    unsafe = st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x7f", "\x1b"])
    return st.tuples(text, unsafe, text).map("".join)


_KEYLIKE = st.text(alphabet="abcdefXYZ0123456789-_", min_size=4, max_size=12)
BAD_CLIENT_OPTIONS: dict[str, st.SearchStrategy[object]] = {
    "api_key": st.one_of(
        st.text(alphabet=" \t\r\n", max_size=3),
        st.integers(),
        st.binary(max_size=4),
        st.lists(st.integers(), max_size=2),
        _with_control_character(_KEYLIKE),
    ),
    "base_url": st.one_of(
        NOT_A_STR,
        st.sampled_from(
            [
                "api.tamio.com/v2",
                "ftp://api.tamio.com/v2",
                "https://",
                "https://x.example/v2?a=1",
                "https://x.example/v2#top",
                "https://user:hunter2@x.example/v2",
                "http://api.tamio.com/v2",
                "http://10.0.0.1/v2",
                "http://[2001:db8::1]/v2",
                "file:///etc/passwd",
                "javascript:alert(1)",
                "   ",
            ]
        ),
        st.text(min_size=1, max_size=20).filter(lambda s: not s.strip().startswith("http")),
    ),
    "timeout": st.one_of(
        st.floats(max_value=0),
        st.integers(max_value=0),
        st.just(float("nan")),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
    ),
    "max_retries": bad_int(0, optional=True),
    "retry": st.one_of(st.integers(), st.text(max_size=3), st.none(), st.just({"max_retries": 1})),
    "max_concurrency": bad_int(1, optional=False),
    "session": st.one_of(st.integers(), st.text(max_size=3), st.booleans()),
    "user_agent": st.one_of(NOT_A_STR, _with_control_character(_SMALL_TEXT)),
    "allow_insecure_http": st.one_of(
        st.sampled_from(["false", "no", "0", ""]), st.integers(), st.none()
    ),
    "max_response_bytes": bad_int(1, optional=False),
}


@settings(max_examples=150, deadline=None)
@given(case=st.sampled_from(sorted(BAD_CLIENT_OPTIONS)).flatmap(
    lambda name: st.tuples(st.just(name), BAD_CLIENT_OPTIONS[name])
))  # fmt: skip
def test_a_bad_client_option_raises_naming_it(case: tuple[str, object]) -> None:
    TRIED["bad client options"] += 1
    name, value = case
    options: dict[str, Any] = {"api_key": "sk-test", name: value}
    with pytest.raises((TypeError, ValueError)) as caught:
        TamioClient(**options)
    assert names_it(caught.value, name), (name, str(caught.value))
    if name == "api_key" and isinstance(value, str) and value.strip():
        assert value.strip() not in str(caught.value)  # a refused key is not echoed


# --- a guard for the helpers above ------------------------------------------------------------


def test_the_hostile_strategies_reach_every_declared_field() -> None:
    reached = {str(p[-1]) for p in TYPED_PATHS}
    declared = set().union(
        *(_struct_fields(n) for n in ["Ticket", "Customer", "Reply", "Asset", "Thumbnail"])
    )
    # "folder" is null in the sample data, so its type cannot be inferred from it.
    assert declared - reached <= {"folder"}
