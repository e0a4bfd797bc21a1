"""The listing contract, one regression test per defect of issue #9, on a hostile local server.

Each test is named for the behaviour the engine must have and cites its item of issue #9.
`hostile_server.HostileServer` misbehaves on purpose (capped and clamped pages, empty or
missing pages, repeated ids, front insertions, failures); everything runs on 127.0.0.1 through
the public client. No sleep synchronises anything: tests wait on events or on bounded polls of
state, and ``BOUND`` is a safety net that a correct engine never comes near. Every test that
gets tickets checks that no id came twice.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import pytest
from hostile_server import HostileServer

from tamio_async import (
    APIStatusError,
    ClientClosedError,
    IncompleteListingError,
    InternalServerError,
    PageStream,
    Progress,
    RetryPolicy,
    TamioClient,
    Ticket,
    TicketList,
    TicketStream,
)

T = TypeVar("T")

BOUND = 30.0  # seconds: an upper bound on any wait, never a duration relied on
NEWEST_FIRST: dict[str, Any] = {"order": "desc", "sort_by": "created_at"}
#: Server-side latency per request: uneven, so concurrent pages are answered out of order.
UNEVEN = (0.0, 0.01)


async def no_sleep(seconds: float) -> None:
    """A retry backoff that takes no time."""


def client_for(server: HostileServer, **options: Any) -> TamioClient:
    """A client of ``server`` whose retries never wait."""
    options.setdefault("retry", RetryPolicy(sleep=no_sleep))
    return TamioClient(api_key=server.api_key, base_url=server.url, **options)


async def bounded(awaitable: Awaitable[T]) -> T:
    """Await with the safety-net bound: a listing that never ends fails instead of hanging."""
    return await asyncio.wait_for(awaitable, BOUND)


async def until(predicate: Callable[[], bool]) -> None:
    """Let the loop run until ``predicate()`` holds (bounded polling of state, not a wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"condition still false after {BOUND} s")
        await asyncio.sleep(0.002)


async def collect(stream: TicketStream, into: list[str]) -> list[str]:
    """Append every ticket id of ``stream`` to ``into`` as it comes (kept if the stream fails)."""
    async with stream:
        async for ticket in stream:
            into.append(ticket.id)
    return into


async def collect_pages(stream: PageStream) -> list[TicketList]:
    """Every page of ``stream``."""
    async with stream:
        return [page async for page in stream]


def ids_of(tickets: Sequence[Ticket]) -> list[str]:
    return [ticket.id for ticket in tickets]


def assert_unique(ids: Sequence[str]) -> None:
    repeated = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
    assert not repeated, f"yielded more than once: {repeated[:10]}"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.split(".")[0] == "tamio_async"
    ]


# --- item 1: a server that caps per_page --------------------------------------------------------


async def test_a_capped_page_size_is_learned_and_every_ticket_is_listed() -> None:
    """Issue #9, item 1 (i): asked for 100, served 50: all 1000 tickets, page_size 50."""
    async with HostileServer(1000, cap=50) as server, client_for(server) as client:
        stream = client.tickets.iterate(per_page=100)
        got = await bounded(collect(stream, []))
    assert_unique(got)
    assert got == server.ids_at_start
    assert stream.stats.page_size == 50


async def test_a_failure_under_a_capped_page_size_resumes_at_the_failed_page() -> None:
    """Issue #9, item 1 (ii): page 12 fails for good; resuming there loses and repeats nothing."""
    async with (
        HostileServer(1000, cap=50, fail={12: (503, None)}) as server,
        client_for(server, max_retries=1) as client,
    ):
        first: list[str] = []
        with pytest.raises(APIStatusError) as caught:
            await bounded(collect(client.tickets.iterate(per_page=100), first))
        error = caught.value
        assert isinstance(error, InternalServerError) and error.status_code == 503
        assert error.page == 12
        assert error.resume_page == 12
        server.fail.clear()
        rest = ids_of(await bounded(client.tickets.list_all(per_page=100, start_page=12)))
    assert_unique(first)
    assert_unique(rest)
    assert not set(first) & set(rest)
    assert first == server.ids_at(0, 550)  # server pages 1-11 of 50
    assert rest == server.ids_at(550, 1000)  # the other 450
    assert set(first) | set(rest) == set(server.ids_at_start)


async def test_start_page_counts_in_the_pages_the_server_really_serves() -> None:
    """Issue #9, item 1 (iii): start_page=11 under a cap of 50 is server pages 11-20."""
    async with HostileServer(1000, cap=50) as server, client_for(server) as client:
        got = ids_of(await bounded(client.tickets.list_all(per_page=100, start_page=11)))
    assert_unique(got)
    assert got == server.ids_at(500, 1000)


async def test_a_capped_listing_without_total_results_is_read_to_the_end() -> None:
    """Issue #9, item 1 (iv): no total_results and a cap of 50: a 50-ticket page is not the end."""
    async with HostileServer(1000, cap=50, omit_total=True) as server, client_for(server) as client:
        got = ids_of(await bounded(client.tickets.list_all(per_page=100)))
    assert_unique(got)
    assert got == server.ids_at_start


# --- item 2: a server that clamps pages past the end ---------------------------------------------


async def test_a_server_that_clamps_pages_past_the_end_is_not_paged_forever() -> None:
    """Issue #9, item 2: page 11 answering page 10 again ends the listing, within its budget."""
    async with HostileServer(1000, clamp=True) as server, client_for(server) as client:
        stream = client.tickets.iterate(per_page=100)
        got = await bounded(collect(stream, []))
    assert_unique(got)
    assert got == server.ids_at_start
    budget = stream.stats.request_budget
    assert budget is not None and len(server.requests) <= budget
    assert len(server.requests) <= 12


# --- items 3 and 4: insertions at the front ------------------------------------------------------


async def test_growth_faster_than_reading_ends_with_incomplete_listing_error() -> None:
    """Issue #9, item 3: 60 new tickets per request at 50 per page: the listing gives up, loudly."""
    async with (
        HostileServer(1000, insert_front_per_request=60) as server,
        client_for(server) as client,
    ):
        got: list[str] = []
        with pytest.raises(IncompleteListingError) as caught:
            await bounded(collect(client.tickets.iterate(per_page=50, order="desc"), got))
    assert got, "the listing raised before yielding what it had"
    assert_unique(got)
    budget = caught.value.stats.request_budget
    assert budget is not None and len(server.requests) <= budget
    assert not server.fuse_blown


@pytest.mark.parametrize(
    ("tickets", "concurrency", "growth"),
    [(6000, 16, 2), (2000, 4, (2, 5))],
    ids=["6000-c16-2-per-request", "2000-c4-2to5-per-request"],
)
async def test_steady_front_insertions_lose_no_ticket_present_at_the_start(
    tickets: int, concurrency: int, growth: int | tuple[int, int]
) -> None:
    """Issue #9, item 4: moderate growth at the front: every ticket of the start, once, no error."""
    async with (
        HostileServer(tickets, insert_front_per_request=growth, latency=UNEVEN, seed=4) as server,
        client_for(server, max_concurrency=concurrency) as client,
    ):
        got = await bounded(collect(client.tickets.iterate(per_page=50, **NEWEST_FIRST), []))
    assert_unique(got)
    lost = set(server.ids_at_start) - set(got)
    assert not lost, f"{len(lost)} tickets present at the start were not yielded"
    assert set(got) <= set(server.ids_now)  # nothing made up
    assert not server.fuse_blown


async def test_fast_front_insertions_never_lose_a_ticket_silently() -> None:
    """Issue #9, item 4: 5-15 new per request: every ticket of the start, or an error saying so."""
    async with (
        HostileServer(2000, insert_front_per_request=(5, 15), latency=UNEVEN, seed=9) as server,
        client_for(server, max_concurrency=8) as client,
    ):
        got: list[str] = []
        incomplete: IncompleteListingError | None = None
        try:
            await bounded(collect(client.tickets.iterate(per_page=50, **NEWEST_FIRST), got))
        except IncompleteListingError as error:
            incomplete = error
    assert_unique(got)
    if incomplete is None:
        lost = set(server.ids_at_start) - set(got)
        assert not lost, f"{len(lost)} tickets lost without an IncompleteListingError"
    else:
        assert incomplete.missing, "an incomplete listing must say what it is missing"
    assert not server.fuse_blown


# --- item 5: empty or missing pages inside the listing -------------------------------------------


@pytest.mark.parametrize(
    "knobs",
    [{"empty_pages": {4: None}}, {"omit_tickets_on": {4}}],
    ids=["tickets-empty", "tickets-key-omitted"],
)
async def test_a_page_that_stays_empty_is_reported_missing_and_later_pages_are_kept(
    knobs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #9, item 5: page 4 never has tickets (total 1000): 900 yielded, 300-400 missing."""
    caplog.set_level(logging.WARNING, logger="tamio_async")
    async with HostileServer(1000, **knobs) as server, client_for(server) as client:
        got: list[str] = []
        with pytest.raises(IncompleteListingError) as caught:
            await bounded(collect(client.tickets.iterate(per_page=100), got))
    assert_unique(got)
    assert got == server.ids_at(0, 300) + server.ids_at(400, 1000)  # pages 5-10 are kept
    missing = caught.value.missing
    assert any(start <= 300 and end >= 400 for start, end in missing), missing
    assert warnings_of(caplog), "no WARNING on the tamio_async logger"


async def test_a_page_empty_only_once_is_fetched_again() -> None:
    """Issue #9, item 5: page 4 empty on its first answer only: all 1000, no error."""
    async with HostileServer(1000, empty_pages={4: 1}) as server, client_for(server) as client:
        got = ids_of(await bounded(client.tickets.list_all(per_page=100)))
    assert_unique(got)
    # Only completeness is promised: the page fetched again may come after the later pages.
    assert sorted(got) == sorted(server.ids_at_start)


# --- item 6: an id repeated within one page ------------------------------------------------------


async def test_an_id_repeated_within_one_page_is_yielded_once() -> None:
    """Issue #9, item 6: the last page repeats its first ticket: yielded once, counted dropped."""
    async with (
        HostileServer(950, duplicate_in_page={10}) as server,
        client_for(server) as client,
    ):
        stream = client.tickets.iterate(per_page=100)
        got = await bounded(collect(stream, []))
    assert_unique(got)
    assert got == server.ids_at_start
    assert stream.stats.duplicates_dropped >= 1


# --- item 9: closing the client mid-request ------------------------------------------------------


async def test_closing_the_client_during_retry_backoff_raises_client_closed_error() -> None:
    """Issue #9, item 9: the client closes while list() waits to retry: ClientClosedError."""
    in_backoff, release = asyncio.Event(), asyncio.Event()

    async def backoff(seconds: float) -> None:
        in_backoff.set()
        await release.wait()

    async with (
        HostileServer(10, fail={1: (503, None)}) as server,
        # Leaving the block closes it again: a no-op when the test passes, cleanup when not.
        client_for(server, retry=RetryPolicy(sleep=backoff), max_retries=3) as client,
    ):
        listing = asyncio.create_task(client.tickets.list())
        await bounded(in_backoff.wait())
        # aclose() may wait for the request in backoff or cancel it: allow both.
        closing = asyncio.create_task(client.aclose())
        await until(lambda: client.closed)
        release.set()
        with pytest.raises(ClientClosedError):
            await bounded(listing)
        await bounded(closing)
    assert len(server.requests) == 1  # nothing went out after the close


async def test_closing_the_client_during_a_bulk_listing_raises_client_closed_error() -> None:
    """Issue #9, item 9: list_all() against a slow server when the client closes."""
    async with (
        HostileServer(2000, latency=0.5) as server,
        client_for(server, max_concurrency=4) as client,
    ):
        listing = asyncio.create_task(client.tickets.list_all(per_page=100))
        await until(lambda: server.in_flight >= 1)
        closing = asyncio.create_task(client.aclose())
        with pytest.raises(ClientClosedError):
            await bounded(listing)
        await bounded(closing)


# --- item 10: concurrency and the connection pool ------------------------------------------------


async def test_a_listing_concurrency_above_the_clients_raises_before_any_request() -> None:
    """Issue #9, item 10: list_all(max_concurrency=8) on a pool of 2 is a ValueError."""
    async with (
        HostileServer(10) as server,
        client_for(server, max_concurrency=2, max_connections=2) as client,
    ):
        with pytest.raises(ValueError, match=r"(?<!\w)max_concurrency=8.*max_connections(?!\w)"):
            await client.tickets.list_all(max_concurrency=8)
    assert server.requests == []


async def test_requests_queued_behind_the_connection_pool_do_not_time_out() -> None:
    """Issue #9, item 10: 8 list() calls, 2 connections, 0.6 s each, connect timeout 0.5 s."""
    timeout = aiohttp.ClientTimeout(total=10, connect=0.5)
    async with (
        HostileServer(80, latency=0.6) as server,
        client_for(
            server, max_concurrency=2, max_connections=2, timeout=timeout, max_retries=0
        ) as client,
    ):
        pages = await bounded(
            asyncio.gather(*(client.tickets.list(page=n, per_page=10) for n in range(1, 9)))
        )
    got = [ticket.id for page in pages for ticket in page.tickets]
    assert_unique(got)
    assert got == server.ids_at_start
    assert len(server.requests) == 8


async def test_the_pool_is_sized_apart_from_the_bulk_window() -> None:
    """Issue #12: a web app's 24 concurrent calls on a client of max_concurrency=2 all run.

    Pages 1-23 are held until page 24 is answered: with a pool of 2 (the old coupling) page
    24 could not even be sent and every hold would time out.
    """
    async with (
        HostileServer(2400, hold=dict.fromkeys(range(1, 24), 24)) as server,
        client_for(server, max_concurrency=2) as client,
    ):
        assert client.max_connections == 100
        pages = await bounded(
            asyncio.gather(*(client.tickets.list(page=n, per_page=100) for n in range(1, 25)))
        )
    assert server.hold_timeouts == 0
    assert server.max_in_flight == 24
    assert [t.id for p in pages for t in p.tickets] == server.ids_at_start


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrency": 16, "max_connections": 8}, r"max_connections=8 .*max_concurrency=16"),
        ({"max_connections": 0}, r"max_connections must be an int >= 1"),
        ({"max_connections": 2.5}, r"max_connections must be an int"),
    ],
)
def test_a_bad_max_connections_is_refused_naming_it(options: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        TamioClient(api_key="k", **options)


def test_the_pool_grows_to_a_window_larger_than_its_default() -> None:
    client = TamioClient(api_key="k", max_concurrency=150)
    assert (client.max_concurrency, client.max_connections) == (150, 150)


# --- item 11: a failure while repairing drift -----------------------------------------------------


async def test_a_failure_while_repairing_drift_offers_no_resume_page() -> None:
    """Issue #9, item 11: the repair request fails: no resume_page, no "resume with" advice.

    Page 2 is answered only after page 3, and 50 tickets are created between the two, so
    original positions 150-200 fall between what page 2 and page 3 showed: the engine must
    fetch again once every planned page is in. Every page's second request answers 503, so
    the failure can only happen in that repair.
    """
    async with (
        HostileServer(1000, hold={2: 3}, insert_after_page={3: 50}, fail_repeats=503) as server,
        client_for(server, max_concurrency=2, max_retries=1) as client,
    ):
        got: list[str] = []
        with pytest.raises(APIStatusError) as caught:
            await bounded(collect(client.tickets.iterate(per_page=100, **NEWEST_FIRST), got))
    assert server.hold_timeouts == 0, "the scenario did not serve page 2 after page 3"
    log = [page for page, _ in server.requests]
    repeat = next(i for i, page in enumerate(log) if page in log[:i])
    assert set(range(1, 11)) <= set(log[:repeat]), "a repeat came before the plan was in"
    error = caught.value
    assert error.status_code == 503
    assert error.resume_page is None
    assert "resume with" not in str(error)
    assert_unique(got)


# --- item 12: limit ------------------------------------------------------------------------------


async def test_tickets_cut_by_limit_are_counted_apart_from_duplicates() -> None:
    """Issue #9, item 12: limit=150 at 100 per page: 150 tickets, 50 limit-dropped, 0 duplicates."""
    async with HostileServer(1000) as server, client_for(server) as client:
        stream = client.tickets.iterate(limit=150, per_page=100)
        got = await bounded(collect(stream, []))
    assert_unique(got)
    assert got == server.ids_at(0, 150)
    assert stream.stats.duplicates_dropped == 0
    assert stream.stats.limit_dropped == 50


async def test_limit_zero_sends_no_request() -> None:
    """Issue #9, item 12: limit=0 is an empty listing without asking the server."""
    async with HostileServer(1000) as server, client_for(server) as client:
        got = await bounded(client.tickets.list_all(limit=0))
    assert got == []
    assert server.requests == []


async def test_a_limit_ending_on_an_exactly_full_last_page_sends_no_probe() -> None:
    """Issue #9, item 12: limit=1000 on 1000 tickets at 100 per page is exactly 10 requests."""
    async with HostileServer(1000) as server, client_for(server) as client:
        got = ids_of(await bounded(client.tickets.list_all(limit=1000, per_page=100)))
    assert_unique(got)
    assert got == server.ids_at_start
    assert len(server.requests) == 10


# --- item 13: the end of a listing ---------------------------------------------------------------


async def test_a_start_page_past_the_end_is_one_quiet_request_and_no_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue #9, item 13: start_page=30 on 10 pages: no ticket, no WARNING, and page 1 asked
    once only to rule out a server that caps per_page (page 30 would then hold tickets).

    Issue #11: with the default speculation the two pages asked with it are the only other
    cost, and they are counted as unused.
    """
    caplog.set_level(logging.WARNING, logger="tamio_async")
    async with HostileServer(1000) as server, client_for(server) as client:
        lone = client.tickets.pages(per_page=100, start_page=30, speculative_pages=0)
        assert await bounded(collect_pages(lone)) == []  # not even an empty TicketList
        assert server.requests == [(30, 100), (1, 100)]
        server.requests.clear()
        default = client.tickets.pages(per_page=100, start_page=30)
        assert await bounded(collect_pages(default)) == []
    assert sorted(server.requests) == [(1, 100), (30, 100), (31, 100), (32, 100)]
    assert (default.stats.speculative_unused, lone.stats.speculative_unused) == (2, 0)
    assert warnings_of(caplog) == []


async def test_pages_never_yields_an_empty_page_at_the_end_of_a_listing() -> None:
    """Issue #9, item 13: after an exactly full last page, the empty check page is not yielded."""
    async with HostileServer(1000) as server, client_for(server) as client:
        pages = await bounded(collect_pages(client.tickets.pages(per_page=100)))
    assert [len(page.tickets) for page in pages] == [100] * 10
    got = [ticket.id for page in pages for ticket in page.tickets]
    assert_unique(got)
    assert got == server.ids_at_start


async def test_the_last_progress_counts_every_page_and_nothing_more() -> None:
    """Issue #9, item 13: 20,000 tickets at 100 per page: the last Progress says 200 of 200."""
    progress: list[Progress] = []
    async with HostileServer(20_000) as server, client_for(server) as client:
        got = ids_of(
            await bounded(client.tickets.list_all(per_page=100, on_progress=progress.append))
        )
    assert_unique(got)
    assert len(got) == 20_000
    assert (progress[-1].pages_done, progress[-1].pages_total) == (200, 200)


# --- item 14: an async on_progress ----------------------------------------------------------------


async def test_an_async_on_progress_is_awaited_once_per_page() -> None:
    """Issue #9, item 14: an ``async def`` on_progress runs once per page, no RuntimeWarning."""
    calls: list[Progress] = []

    async def on_progress(progress: Progress) -> None:
        calls.append(progress)  # runs only if the coroutine is awaited

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with HostileServer(1000) as server, client_for(server) as client:
            got = ids_of(
                await bounded(client.tickets.list_all(per_page=100, on_progress=on_progress))
            )
        gc.collect()  # a coroutine never awaited warns when it is collected
    assert_unique(got)
    assert got == server.ids_at_start
    assert [p.pages_done for p in calls] == list(range(1, 11))
    runtime = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert runtime == []
