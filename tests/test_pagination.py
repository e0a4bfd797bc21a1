"""Concurrent pagination: the engine with scripted pages, then end to end on a local server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from aiohttp import web
from conftest import FakeClock

from tamio_async import (
    IncompleteListingError,
    InternalServerError,
    PageStream,
    Progress,
    RateLimitError,
    TamioClient,
    Ticket,
    TicketList,
)
from tamio_async.testing import FakeTamioServer

BOUND = 10.0  # generous upper bound for any wait in this module


async def wait_for_condition(predicate: Callable[[], bool], timeout: float = BOUND) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded)."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


# -- the engine, driven by an in-memory listing ---------------------------------------------


class Listing:
    """An in-memory paged listing whose pages can be held back and released one by one."""

    def __init__(self, count: int, per_page: int, *, gated: bool = False) -> None:
        self.ids = [f"t{i:05d}" for i in range(count)]
        self.per_page = per_page
        self.report_total: Callable[[], int | None] = lambda: len(self.ids)
        self.started: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._gates: dict[int, asyncio.Event] = {}
        self._gated = gated
        self.fail: dict[int, BaseException] = {}

    def gate(self, page: int) -> asyncio.Event:
        return self._gates.setdefault(page, asyncio.Event())

    def release(self, *pages: int) -> None:
        for page in pages:
            self.gate(page).set()

    def snapshot(self, page: int) -> TicketList:
        chunk = self.ids[(page - 1) * self.per_page : page * self.per_page]
        return TicketList(
            status=200,
            total_results=self.report_total(),
            tickets=tuple(Ticket(id=i) for i in chunk),
        )

    async def fetch(self, page: int) -> TicketList:
        self.started.append(page)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._gated:
                await self.gate(page).wait()
            if page in self.fail:
                raise self.fail[page]
            return self.snapshot(page)
        finally:
            self.in_flight -= 1


def stream(listing: Listing, **options: object) -> PageStream:
    kwargs: dict[str, object] = {"per_page": listing.per_page, "max_concurrency": 3}
    kwargs.update(options)
    return PageStream(listing.fetch, **kwargs)  # type: ignore[arg-type]


async def collect(pages: AsyncIterator[TicketList]) -> list[str]:
    async def drain() -> list[str]:
        return [t.id async for page in pages for t in page.tickets]

    return await asyncio.wait_for(drain(), BOUND)


async def test_pages_come_out_in_order_with_every_ticket_once() -> None:
    listing = Listing(1000, 30)
    assert await collect(stream(listing, max_concurrency=5)) == listing.ids


async def test_first_page_is_fetched_alone_then_window_never_exceeds_concurrency() -> None:
    listing = Listing(300, 10, gated=True)
    pages = stream(listing, max_concurrency=4)
    first = asyncio.ensure_future(anext(pages))
    await wait_for_condition(lambda: listing.started == [1])
    listing.release(1)
    await asyncio.wait_for(first, BOUND)
    assert listing.started == [1]  # nothing else starts before the consumer asks again
    nxt = asyncio.ensure_future(anext(pages))
    await wait_for_condition(lambda: len(listing.started) == 5)
    assert listing.started == [1, 2, 3, 4, 5] and listing.in_flight == 4
    listing.release(*range(2, 32))  # 30 pages and the check page
    await asyncio.wait_for(nxt, BOUND)
    rest = await collect(pages)
    assert len(rest) == 280
    assert listing.max_in_flight == 4


async def test_a_finished_request_is_replaced_at_once_without_waiting_for_the_head() -> None:
    listing = Listing(200, 10, gated=True)
    listing.release(1)
    pages = stream(listing, max_concurrency=3)
    await anext(pages)
    head = asyncio.ensure_future(anext(pages))  # waits for page 2
    await wait_for_condition(lambda: listing.started == [1, 2, 3, 4])
    listing.release(3)  # not the head: its slot is refilled while page 2 is still out
    await wait_for_condition(lambda: 5 in listing.started)
    assert not head.done()
    listing.release(*range(2, 21))
    assert [t.id for t in (await asyncio.wait_for(head, BOUND)).tickets] == listing.ids[10:20]
    await pages.aclose()


async def test_finished_but_unconsumed_pages_are_bounded_by_concurrency() -> None:
    listing = Listing(1000, 10)
    pages = stream(listing, max_concurrency=3)
    await anext(pages)
    await anext(pages)
    # The consumer stops reading: everything in flight finishes, nothing new starts.
    await wait_for_condition(lambda: listing.in_flight == 0)
    started = len(listing.started)
    assert started <= 2 + 3 + 3  # consumed + buffered + in flight, far from 100 pages
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(listing.started) == started
    await pages.aclose()


async def test_failure_on_page_k_yields_pages_before_k_then_raises_with_page_and_hint() -> None:
    listing = Listing(200, 10)
    listing.fail[7] = InternalServerError("HTTP 500: boom", status_code=500)
    got: list[str] = []
    with pytest.raises(InternalServerError) as caught:
        async for page in stream(listing, max_concurrency=4):
            got.extend(t.id for t in page.tickets)
    assert got == listing.ids[:60]
    assert caught.value.page == 7
    assert "start_page=7" in str(caught.value)


async def test_a_failure_on_the_first_page_carries_the_page_but_no_resume_hint() -> None:
    listing = Listing(50, 10)
    listing.fail[1] = InternalServerError("HTTP 500: boom", status_code=500)
    with pytest.raises(InternalServerError) as caught:
        await collect(stream(listing))
    assert caught.value.page == 1
    assert caught.value.hint is None


async def test_resuming_at_the_failed_page_delivers_the_rest() -> None:
    listing = Listing(200, 10)
    rest = await collect(stream(listing, start_page=7))
    assert rest == listing.ids[60:]


async def test_end_page_bounds_a_shard_of_the_listing() -> None:
    listing = Listing(200, 10)
    assert await collect(stream(listing, start_page=3, end_page=5)) == listing.ids[20:50]
    assert sorted(listing.started) == [3, 4, 5]


async def test_limit_requests_only_the_pages_needed() -> None:
    listing = Listing(1000, 50)
    got = await collect(stream(listing, limit=120, max_concurrency=8))
    assert got == listing.ids[:120]
    assert sorted(listing.started) == [1, 2, 3]


async def test_limit_zero_requests_one_page_and_yields_nothing() -> None:
    listing = Listing(100, 10)
    assert await collect(stream(listing, limit=0)) == []


async def test_missing_total_falls_back_to_sequential_paging() -> None:
    listing = Listing(95, 10)
    listing.report_total = lambda: None
    pages = stream(listing, max_concurrency=8)
    assert await collect(pages) == listing.ids
    assert listing.max_in_flight == 1
    assert listing.started == list(range(1, 11))
    assert pages.stats.sequential


@pytest.mark.parametrize("total", [-5, 0])
async def test_an_implausible_total_falls_back_to_sequential_paging(total: int) -> None:
    listing = Listing(45, 10)
    listing.report_total = lambda: total
    pages = stream(listing, max_concurrency=8)
    assert await collect(pages) == listing.ids
    assert pages.stats.sequential


async def test_a_total_far_beyond_the_data_yields_the_data_then_says_it_is_incomplete() -> None:
    listing = Listing(25, 10)
    listing.report_total = lambda: 10**18
    pages = stream(listing, max_concurrency=4)
    got: list[str] = []
    with pytest.raises(IncompleteListingError) as caught:
        async for page in pages:
            got.extend(t.id for t in page.tickets)
    assert got == listing.ids
    assert caught.value.missing[0][0] == 25  # everything past what the pages held
    # the empty page stops the window; two rounds of asking again, then it gives up
    assert len(listing.started) <= 1 + 4 + 4 + 1


async def test_a_server_that_caps_per_page_is_paged_with_its_own_page_size() -> None:
    listing = Listing(250, 20)  # the server serves 20 whatever we ask for
    pages = stream(listing, per_page=100)
    assert await collect(pages) == listing.ids
    assert pages.stats.pages_planned == 13


async def test_an_exactly_full_last_page_is_probed_inside_the_window() -> None:
    listing = Listing(100, 10, gated=True)
    listing.release(1)
    pages = stream(listing, max_concurrency=20)
    await anext(pages)
    head = asyncio.ensure_future(anext(pages))
    # the probe for page 11 goes out with the others, not in a round trip after them
    await wait_for_condition(lambda: len(listing.started) == 11)
    assert sorted(listing.started) == list(range(1, 12))
    listing.release(*range(2, 12))
    await asyncio.wait_for(head, BOUND)
    assert len(await collect(pages)) == 80
    assert pages.stats.pages_planned == 10  # pages of data; the check page is not one
    assert pages.stats.extra_pages == 0


async def test_a_full_probe_page_keeps_reading_until_a_short_page() -> None:
    listing = Listing(100, 10)
    pages = PageStream(listing.fetch, per_page=10, max_concurrency=4)
    listing.report_total = lambda: 90  # stale total: 100 tickets are really there
    assert await collect(pages) == listing.ids
    assert sorted(listing.started) == list(range(1, 12))
    assert pages.stats.extra_pages == 1


async def test_growth_at_the_end_is_read_past_the_plan() -> None:
    listing = Listing(95, 10)

    async def growing(page: int) -> TicketList:
        if page == 5 and len(listing.ids) == 95:  # 35 tickets are appended while it runs
            listing.ids.extend(f"n{i:03d}" for i in range(35))
        return await listing.fetch(page)

    pages = PageStream(growing, per_page=10, max_concurrency=1)
    got = await collect(pages)
    assert got == listing.ids
    assert pages.stats.drift_detected and pages.stats.extra_pages > 0


async def test_front_insertions_between_out_of_order_pages_lose_nothing() -> None:
    """The race offset pagination is bad at: page 6 served before the insert, 2-5 after."""
    listing = Listing(100, 10, gated=True)
    original = list(listing.ids)

    async def fetch(page: int) -> TicketList:
        result = await listing.fetch(page)
        if page == 6:  # 25 new tickets land at the front right after page 6 is served
            listing.ids[:0] = [f"new{i:02d}" for i in range(25)]
            listing.release(*range(2, 6))
        return result

    listing.release(1, 6, *range(7, 20))
    pages = PageStream(fetch, per_page=10, max_concurrency=8)
    got = await collect(pages)
    assert set(original) <= set(got)
    assert len(got) == len(set(got))
    assert pages.stats.drift_detected and pages.stats.duplicates_dropped > 0


async def test_on_progress_reports_each_page_with_consistent_numbers() -> None:
    listing = Listing(95, 10)
    seen: list[Progress] = []
    await collect(stream(listing, on_progress=seen.append))
    assert [p.pages_done for p in seen] == list(range(1, 11))
    assert [p.tickets_done for p in seen] == [min(10 * i, 95) for i in range(1, 11)]
    assert {p.pages_total for p in seen} == {10}
    assert {p.total_results for p in seen} == {95}


async def test_an_exception_in_on_progress_propagates_and_stops_the_listing() -> None:
    listing = Listing(100, 10)

    def explode(progress: Progress) -> None:
        if progress.pages_done == 3:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        await collect(stream(listing, on_progress=explode))


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"per_page": 0}, "per_page"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"start_page": 0}, "start_page"),
        ({"start_page": 5, "end_page": 4}, "end_page"),
        ({"limit": -1}, "limit"),
        ({"on_progress": 3}, "on_progress"),
    ],
)
def test_bad_engine_arguments_are_refused_by_name(options: dict[str, object], name: str) -> None:
    with pytest.raises((TypeError, ValueError), match=name):
        stream(Listing(10, 10), **options)


# -- end to end, against the fake Tamio API on 127.0.0.1 --------------------------------------


def ids_of(tickets: Sequence[Ticket]) -> list[str]:
    return [t.id for t in tickets]


def expected_ids(server: FakeTamioServer, **filters: object) -> list[str]:
    return [t["id"] for t in server.expected(**filters)]


def client_for(server: FakeTamioServer, **options: object) -> TamioClient:
    return TamioClient(api_key=server.api_key, base_url=server.base_url, **options)  # type: ignore[arg-type]


async def other_tasks_finish() -> None:
    """Every task but this one ends (bounded): nothing was leaked."""
    others = {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        # the fake server's keep-alive handlers are not ours
        and task.get_coro().__qualname__ != "RequestHandler.start"  # type: ignore[union-attr]
    }
    if others:
        _done, pending = await asyncio.wait(others, timeout=BOUND)
        assert not pending


async def test_list_all_returns_every_ticket_in_order_with_bounded_concurrency() -> None:
    async with FakeTamioServer(tickets=1500, latency=0.02) as server:
        async with client_for(server, max_concurrency=5) as client:
            tickets = await client.tickets.list_all(per_page=50)
        assert ids_of(tickets) == expected_ids(server)
        assert server.max_in_flight == 5
        # Page 1 and the two speculative pages after it first, then the rest once it answered.
        by_start = sorted(server.requests, key=lambda r: r.start)
        assert {r.page for r in by_start[:3]} == {1, 2, 3}
        first = next(r for r in by_start if r.page == 1)
        assert all(first.end <= r.start for r in by_start[3:])


async def test_filters_pass_through_to_every_page() -> None:
    async with FakeTamioServer(tickets=600) as server, client_for(server) as client:
        got = await client.tickets.list_all(per_page=25, closed=True, order="asc")
        assert ids_of(got) == expected_ids(server, closed="true", order="asc")
        assert all(r.query.get("closed") == "true" for r in server.requests)


async def test_a_consumer_that_stops_reading_stops_the_fetching() -> None:
    async with FakeTamioServer(tickets=5000, latency=0.01) as server:
        async with client_for(server, max_concurrency=4) as client:
            async with client.tickets.iterate(per_page=50) as tickets:
                for _ in range(60):  # into the second page
                    await anext(tickets)
                await wait_for_condition(lambda: server.in_flight == 0)
                assert len(server.requests) <= 2 + 2 * 4  # of 100 pages
    await other_tasks_finish()


async def test_break_cancels_in_flight_requests_and_leaks_nothing() -> None:
    async with FakeTamioServer(tickets=5000, latency=0.05) as server:
        async with client_for(server, max_concurrency=6) as client:
            seen = 0
            async for _ticket in client.tickets.iterate(per_page=50):
                seen += 1
                if seen == 51:  # first ticket of page 2: the window is out
                    break
            await other_tasks_finish()
            await wait_for_condition(lambda: server.in_flight == 0)
        assert len(server.requests) <= 1 + 2 * 6  # of 100 pages


async def test_cancelling_the_consumer_cancels_requests_promptly() -> None:
    async with FakeTamioServer(tickets=5000, latency=0.2) as server:
        async with client_for(server, max_concurrency=6) as client:
            task = asyncio.ensure_future(client.tickets.list_all(per_page=50))
            await wait_for_condition(lambda: server.in_flight >= 6)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, BOUND)
            await other_tasks_finish()
            connector = client._transport._get_session().connector
            assert connector is not None
            await wait_for_condition(lambda: not connector._acquired)  # no connection in use


async def test_a_page_that_keeps_failing_raises_after_the_pages_before_it(
    clock: FakeClock,
) -> None:
    async with FakeTamioServer(tickets=1000, latency=0.005) as server:
        server.inject(500, page=4, times=None)
        async with client_for(server, retry=clock.policy(max_retries=1)) as client:
            got: list[str] = []
            with pytest.raises(InternalServerError) as caught:
                async for ticket in client.tickets.iterate(per_page=50):
                    got.append(ticket.id)
            assert got == expected_ids(server)[:150]
            assert caught.value.page == 4 and "start_page=4" in str(caught.value)
            server.clear_faults()
            rest = await client.tickets.list_all(per_page=50, start_page=4)
            assert got + ids_of(rest) == expected_ids(server)
            await other_tasks_finish()


async def test_tickets_inserted_at_the_front_mid_listing_cause_no_loss_and_no_duplicate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeTamioServer(tickets=2000, latency=0.01) as server:
        before = set(expected_ids(server))
        server.drift_after(3, insert=130)
        async with client_for(server, max_concurrency=6) as client:
            with caplog.at_level(logging.WARNING, logger="tamio_async"):
                async with client.tickets.iterate(per_page=50) as tickets:
                    got = [t.id async for t in tickets]
        assert before <= set(got)
        assert len(got) == len(set(got))
        assert tickets.stats.drift_detected
        assert tickets.stats.first_total_results == 2000
        assert tickets.stats.last_total_results == 2130
        assert any("changed while paging" in r.getMessage() for r in caplog.records)


async def test_a_missing_total_results_pages_sequentially_on_a_real_server(
    serve: Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[str]],
) -> None:
    ids = [f"id-{i}" for i in range(73)]
    in_flight = [0, 0]

    async def handler(request: web.Request) -> web.Response:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        await asyncio.sleep(0.005)
        in_flight[0] -= 1
        page, per_page = int(request.query["page"]), int(request.query["per_page"])
        chunk = ids[(page - 1) * per_page : page * per_page]
        return web.json_response({"status": 200, "tickets": [{"id": i} for i in chunk]})

    base_url = await serve(handler)
    async with TamioClient(api_key="k", base_url=base_url, max_concurrency=8) as client:
        pages = client.tickets.pages(per_page=10)
        got = [t.id async for page in pages for t in page.tickets]
    assert got == ids
    # Sequential: only the first wave (page 1 and the speculative pages 2, 3) overlaps.
    assert in_flight[1] == 3 and pages.stats.sequential


async def test_limit_on_a_real_server_requests_only_the_needed_pages() -> None:
    async with FakeTamioServer(tickets=1000) as server, client_for(server) as client:
        got = await client.tickets.list_all(per_page=50, limit=120)
        assert ids_of(got) == expected_ids(server)[:120]
        assert sorted(r.page or 0 for r in server.requests) == [1, 2, 3]


async def test_on_progress_is_called_once_per_page_end_to_end() -> None:
    async with FakeTamioServer(tickets=730) as server, client_for(server) as client:
        seen: list[Progress] = []
        await client.tickets.list_all(per_page=100, on_progress=seen.append)
        assert [(p.pages_done, p.tickets_done) for p in seen] == [
            (i, min(100 * i, 730)) for i in range(1, 9)
        ]
        assert {(p.pages_total, p.total_results) for p in seen} == {(8, 730)}


async def test_a_429_with_retry_after_holds_back_every_request_of_the_client() -> None:
    async with FakeTamioServer(tickets=2000, latency=0.01) as server:
        server.inject(429, page=3, times=1, retry_after=1)
        async with client_for(server, max_concurrency=4) as client:
            pages = client.tickets.pages(per_page=50)
            got = [t.id async for page in pages for t in page.tickets]
        assert got == expected_ids(server)
        limited = next(r for r in server.requests if r.status == 429)
        # Requests the client sent before the 429 reached it may still arrive; without the
        # gate all 40 pages would be fetched within that second.
        held = [r for r in server.requests if limited.end < r.start < limited.end + 0.9]
        assert len(held) <= 4
        assert any(r.start >= limited.end + 0.9 for r in server.requests)
        assert pages.stats.retries == 1


async def test_a_retry_after_beyond_the_cap_surfaces_as_rate_limit_error() -> None:
    async with FakeTamioServer(tickets=300) as server:
        server.inject(429, page=2, times=None, retry_after=120)
        async with client_for(server) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.tickets.list_all(per_page=50)
        assert caught.value.page == 2 and caught.value.retry_after == 120
