"""The first wave of a listing (issue #11): speculative pages and pre-connected connections.

Speculation asks the pages after the first one before ``total_results`` is known; the engine
must use their answers where the plan needs them, drop the others unread, count them, and
never let one it does not need fail the listing. Pre-connect must leave the first window's
connections ready when page 1 answers, and must never wait for a pool slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from test_pagination import BOUND, Listing, collect, stream, wait_for_condition

from tamio_async import InternalServerError, TamioClient

ENDPOINT = "/v2/agency/tickets/list"


async def loop_turns(count: int = 5) -> None:
    """Let every task that is ready run to its next await (loop turns, not wall time)."""
    for _ in range(count):
        await asyncio.sleep(0)


# -- the engine -----------------------------------------------------------------------------


async def test_the_speculative_pages_go_out_with_page_one_then_the_window_follows() -> None:
    listing = Listing(800, 100, gated=True)
    pages = stream(listing, max_concurrency=4, speculative_pages=2)
    first = asyncio.ensure_future(anext(pages))
    await wait_for_condition(lambda: len(listing.started) == 3)
    await loop_turns()
    assert listing.started == [1, 2, 3]  # nothing more before page 1 says how many exist
    listing.release(1)
    await asyncio.wait_for(first, BOUND)
    following = asyncio.ensure_future(anext(pages))  # the window opens when asked for more
    await wait_for_condition(lambda: len(listing.started) == 5)
    await loop_turns()
    # Pages 2 and 3 still count against the window of 4: only 4 and 5 join them.
    assert listing.started == [1, 2, 3, 4, 5] and listing.in_flight == 4
    listing.release(*range(2, 10))
    second = await asyncio.wait_for(following, BOUND)
    assert [t.id for t in second.tickets] + await collect(pages) == listing.ids[100:]
    assert listing.started.count(2) == listing.started.count(3) == 1  # answers reused
    assert pages.stats.speculative_unused == 0
    assert pages.stats.pages_fetched == 9  # 8 pages and the check page after a full last


async def test_speculative_pages_past_the_end_are_not_waited_for_and_are_counted() -> None:
    listing = Listing(50, 100, gated=True)
    pages = stream(listing, max_concurrency=4, speculative_pages=2)
    head = asyncio.ensure_future(anext(pages))
    await wait_for_condition(lambda: len(listing.started) == 3)
    listing.release(1)  # pages 2 and 3 never answer: the listing must not wait for them
    page = await asyncio.wait_for(head, BOUND)
    assert [t.id for t in page.tickets] + await collect(pages) == listing.ids
    await wait_for_condition(lambda: listing.in_flight == 0)  # cancelled, not left running
    assert sorted(listing.started) == [1, 2, 3]
    assert pages.stats.speculative_unused == 2


async def test_a_speculative_page_the_listing_does_not_need_cannot_fail_it() -> None:
    listing = Listing(150, 100)
    listing.fail[3] = InternalServerError("boom", status_code=500)
    pages = stream(listing, max_concurrency=4, speculative_pages=2)
    assert await collect(pages) == listing.ids
    assert pages.stats.speculative_unused == 1


async def test_a_speculative_page_the_listing_needs_fails_it_naming_the_page() -> None:
    listing = Listing(450, 100)
    listing.fail[3] = InternalServerError("boom", status_code=500)
    pages = stream(listing, max_concurrency=4, speculative_pages=2)
    with pytest.raises(InternalServerError) as caught:
        await collect(pages)
    assert caught.value.page == 3


@pytest.mark.parametrize(
    ("options", "first_wave"),
    [
        ({}, [1, 2, 3]),
        ({"speculative_pages": 0}, [1]),
        ({"speculative_pages": 5, "max_concurrency": 3}, [1, 2, 3]),  # the window bounds it
        ({"end_page": 2}, [1, 2]),
        ({"limit": 150}, [1, 2]),  # 150 tickets need 2 pages of 100
        ({"max_requests": 2}, [1, 2]),
        ({"start_page": 4}, [4, 5, 6]),
    ],
)
async def test_speculation_never_asks_beyond_what_the_caller_allowed(
    options: dict[str, int], first_wave: list[int]
) -> None:
    listing = Listing(2000, 100, gated=True)
    kwargs: dict[str, int] = {"max_concurrency": 8, "speculative_pages": 2, **options}
    pages = stream(listing, **kwargs)
    head = asyncio.ensure_future(anext(pages))
    await wait_for_condition(lambda: len(listing.started) == len(first_wave))
    await loop_turns()
    assert listing.started == first_wave
    head.cancel()
    with pytest.raises(asyncio.CancelledError):
        await head
    await pages.aclose()
    await wait_for_condition(lambda: listing.in_flight == 0)


async def test_the_pool_is_warmed_for_the_rest_of_the_window_while_page_one_is_out() -> None:
    listing = Listing(2000, 100, gated=True)
    warmed: list[int] = []

    async def warm(count: int) -> None:
        warmed.append(count)

    pages = stream(listing, max_concurrency=8, speculative_pages=2, warm=warm)
    head = asyncio.ensure_future(anext(pages))
    await wait_for_condition(lambda: warmed != [])
    assert warmed == [5] and not head.done()  # 8 in the window: page 1 and 2 speculative
    listing.release(*range(1, 22))
    await asyncio.wait_for(head, BOUND)
    assert len(await collect(pages)) == 1900
    assert warmed == [5]  # once per listing


# -- end to end, with connections counted at the server ---------------------------------------


class CountingServer:
    """Ten pages of 100 tickets; page 1 can be held until the server holds N connections."""

    def __init__(self, tickets: int = 1000) -> None:
        self.ids = [f"t{i:05d}" for i in range(tickets)]
        self.hold_page_one_until: int | None = None
        self.peak_connections = 0
        self.transports: set[int] = set()
        self.requests: list[int] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def connections(self) -> int:
        assert self._runner is not None and self._runner.server is not None
        return len(self._runner.server.connections)

    async def handler(self, request: web.Request) -> web.Response:
        page, per_page = int(request.query["page"]), int(request.query["per_page"])
        self.requests.append(page)
        assert request.transport is not None
        self.transports.add(id(request.transport))
        if page == 1 and self.hold_page_one_until is not None:
            wanted = self.hold_page_one_until
            await wait_for_condition(lambda: self.connections >= wanted)
        self.peak_connections = max(self.peak_connections, self.connections)
        chunk = self.ids[(page - 1) * per_page : page * per_page]
        return web.json_response(
            {"status": 200, "total_results": len(self.ids), "tickets": [{"id": i} for i in chunk]}
        )

    async def __aenter__(self) -> CountingServer:
        app = web.Application()
        app.router.add_get(ENDPOINT, self.handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v2"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    async with CountingServer() as running:
        yield running


async def test_the_first_windows_connections_are_open_before_page_one_answers(
    server: CountingServer,
) -> None:
    """Page 1 is answered only once 8 connections are open: pre-connect must open them."""
    server.hold_page_one_until = 8
    async with TamioClient(api_key="k", base_url=server.url, max_concurrency=8) as client:
        got = await asyncio.wait_for(client.tickets.list_all(per_page=100), BOUND)
    assert [t.id for t in got] == server.ids
    # The window went out on those connections: not one more was opened after page 1.
    assert len(server.transports) == 8
    assert sorted(server.requests) == [*range(1, 11), 11]  # the check page after a full last


async def test_without_preconnect_only_the_requests_open_connections(
    server: CountingServer,
) -> None:
    async with TamioClient(
        api_key="k", base_url=server.url, max_concurrency=8, preconnect=False
    ) as client:
        await asyncio.wait_for(client.tickets.list_all(per_page=100), BOUND)
    assert len(server.transports) == server.peak_connections <= 8


async def test_an_exact_multiple_of_two_pages_is_one_wave_check_page_included(
    server: CountingServer,
) -> None:
    server.ids = server.ids[:200]
    async with TamioClient(api_key="k", base_url=server.url) as client:
        pages = client.tickets.pages(per_page=100)
        got = [t.id async for page in pages for t in page.tickets]
    assert got == server.ids
    assert sorted(server.requests) == [1, 2, 3]  # page 3 (empty) answers the check
    assert pages.stats.speculative_unused == 0


async def test_preconnect_never_waits_for_a_pool_slot_that_others_hold(
    server: CountingServer,
) -> None:
    """Six listings share a pool of 8, each with a window of 8: none may hang on another."""
    async with TamioClient(
        api_key="k", base_url=server.url, max_concurrency=8, max_connections=8
    ) as client:
        results = await asyncio.wait_for(
            asyncio.gather(*(client.tickets.list_all(per_page=100) for _ in range(6))), BOUND
        )
    assert all([t.id for t in got] == server.ids for got in results)
    assert server.peak_connections <= 8
