"""The transport on its own: the response-size cap, the closed state, the pool and timeouts.

Each test builds a `Transport` directly and talks to a local aiohttp.web server.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import brotli
import pytest
from aiohttp import web

from tamio_async import APIResponseValidationError, APITimeoutError, ClientClosedError
from tamio_async._transport import Transport

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[Handler], Awaitable[str]]

PATH = "/agency/tickets/list"
PAGE = {"status": 200, "total_results": 1, "tickets": [{"id": "t-1", "title": "Refund"}]}
CAP = 1000
#: A page the size of 20 caps once inflated; it compresses to a small fraction of one cap.
BIG_PAGE = json.dumps({**PAGE, "padding": "x" * (20 * CAP)}).encode()
SMALL_PAGE = json.dumps(PAGE).encode()
TIMEOUT = aiohttp.ClientTimeout(total=10)


def transport(**options: object) -> Transport:
    settings: dict[str, object] = {
        "timeout": TIMEOUT,
        "max_connections": 4,
        "max_response_bytes": CAP,
    }
    settings.update(options)
    return Transport(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def closing() -> AsyncIterator[list[Transport]]:
    """Transports to close at the end of the test, whatever happened in it."""
    made: list[Transport] = []
    yield made
    for each in made:
        await each.aclose()


#: The encodings the client must decode out of the box (issue #11), with their compressors.
ENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "zstd": zstd.compress,
}


def encoded(body: bytes, encoding: str) -> Handler:
    payload = ENCODINGS[encoding](body)  # once, here: the handler's memory is not the client's

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=payload,
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
        )

    return handler


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(body=SMALL_PAGE, content_type="application/json")


# --- the response-size cap counts decompressed bytes ------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_body_that_inflates_past_the_cap_is_refused(
    serve: Serve, closing: list[Transport], encoding: str
) -> None:
    assert len(ENCODINGS[encoding](BIG_PAGE)) < CAP < len(BIG_PAGE)
    base_url = await serve(encoded(BIG_PAGE, encoding))
    closing.append(sender := transport())
    with pytest.raises(APIResponseValidationError, match=r"max_response_bytes \(1000 bytes\)"):
        await sender.get(base_url + PATH, {}, {})


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_decompression_bomb_is_refused_without_inflating_it_whole(
    serve: Serve, closing: list[Transport], encoding: str
) -> None:
    """256 MB of zeros, a few hundred KB on the wire, against a 1 MB cap."""
    bomb = bytes(256 * 1024 * 1024)
    base_url = await serve(encoded(bomb, encoding))
    del bomb
    closing.append(sender := transport(max_response_bytes=1024 * 1024))
    tracemalloc.start()
    try:
        with pytest.raises(APIResponseValidationError, match="max_response_bytes"):
            await sender.get(base_url + PATH, {}, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024  # inflated chunk by chunk, never whole


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_compressed_body_under_the_cap_is_accepted_decompressed(
    serve: Serve, closing: list[Transport], encoding: str
) -> None:
    base_url = await serve(encoded(SMALL_PAGE, encoding))
    closing.append(sender := transport())
    response = await sender.get(base_url + PATH, {}, {})
    assert response.status == 200
    assert response.body == SMALL_PAGE


async def test_zstd_and_brotli_are_offered_to_the_server(
    serve: Serve, closing: list[Transport]
) -> None:
    offered: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        offered.append(request.headers.get("Accept-Encoding", ""))
        return await ok(request)

    base_url = await serve(handler)
    closing.append(sender := transport())
    await sender.get(base_url + PATH, {}, {})
    assert {"zstd", "br", "gzip"} <= {part.strip() for part in offered[0].split(",")}


async def test_an_unencoded_body_over_the_cap_is_refused_by_its_content_length(
    serve: Serve, closing: list[Transport]
) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(body=BIG_PAGE, content_type="application/json")

    base_url = await serve(big)
    closing.append(sender := transport())
    with pytest.raises(APIResponseValidationError, match="max_response_bytes"):
        await sender.get(base_url + PATH, {}, {})


async def test_an_unencoded_body_exactly_at_the_cap_is_accepted(
    serve: Serve, closing: list[Transport]
) -> None:
    base_url = await serve(ok)
    closing.append(sender := transport(max_response_bytes=len(SMALL_PAGE)))
    assert (await sender.get(base_url + PATH, {}, {})).body == SMALL_PAGE


# --- a closed transport refuses with ClientClosedError ----------------------------------------


class Stalling:
    """A handler that holds each request until released, and says when one has arrived."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.count = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.count += 1
        self.arrived.set()
        await self.release.wait()
        return web.Response(body=SMALL_PAGE, content_type="application/json")


@pytest.fixture
async def stalling() -> AsyncIterator[Stalling]:
    handler = Stalling()
    yield handler
    handler.release.set()  # let the server's handlers finish so it stops promptly


async def test_closing_while_a_request_is_in_flight_raises_client_closed_error(
    serve: Serve, stalling: Stalling
) -> None:
    base_url = await serve(stalling.handle)
    sender = transport()
    request = asyncio.create_task(sender.get(base_url + PATH, {}, {}))
    await stalling.arrived.wait()
    await sender.aclose()
    with pytest.raises(ClientClosedError, match="closed; create a new one"):
        await request


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="needs Task.cancelling() to tell a real cancellation"
)
async def test_a_session_closed_while_a_request_waits_for_the_pool_raises_client_closed_error(
    serve: Serve, stalling: Stalling
) -> None:
    # aiohttp cancels the pool's waiters on close: that must not look like a cancellation.
    queued = asyncio.Event()

    async def on_queued(*_: object) -> None:
        queued.set()

    tracing = aiohttp.TraceConfig()
    tracing.on_connection_queued_start.append(on_queued)
    base_url = await serve(stalling.handle)
    connector = aiohttp.TCPConnector(limit=1)
    session = aiohttp.ClientSession(connector=connector, trace_configs=[tracing])
    sender = transport(session=session)
    holding = asyncio.create_task(sender.get(base_url + PATH, {}, {}))
    await stalling.arrived.wait()
    waiting = asyncio.create_task(sender.get(base_url + PATH, {}, {}))
    await queued.wait()
    await session.close()
    for request in (holding, waiting):
        with pytest.raises(ClientClosedError):
            await request
    assert stalling.count == 1


async def test_a_request_after_aclose_raises_client_closed_error(serve: Serve) -> None:
    base_url = await serve(ok)
    sender = transport()
    await sender.get(base_url + PATH, {}, {})
    await sender.aclose()
    with pytest.raises(ClientClosedError, match="closed; create a new one"):
        await sender.get(base_url + PATH, {}, {})


async def test_a_transport_closed_before_its_first_request_opens_no_session(
    serve: Serve, stalling: Stalling
) -> None:
    base_url = await serve(stalling.handle)
    sender = transport()
    await sender.aclose()
    with pytest.raises(ClientClosedError):
        await sender.get(base_url + PATH, {}, {})
    assert stalling.count == 0
    assert not sender.owns_open_session


async def test_after_aclose_a_borrowed_session_stays_open_but_is_not_used(
    serve: Serve, stalling: Stalling
) -> None:
    base_url = await serve(stalling.handle)
    async with aiohttp.ClientSession() as session:
        sender = transport(session=session)
        await sender.aclose()
        with pytest.raises(ClientClosedError):
            await sender.get(base_url + PATH, {}, {})
        assert not session.closed
    assert stalling.count == 0


async def test_a_borrowed_session_closed_by_its_lender_raises_client_closed_error(
    serve: Serve,
) -> None:
    base_url = await serve(ok)
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(ClientClosedError, match="ClientSession lent to this TamioClient"):
        await transport(session=session).get(base_url + PATH, {}, {})


async def test_a_borrowed_session_closed_mid_request_raises_client_closed_error(
    serve: Serve, stalling: Stalling
) -> None:
    base_url = await serve(stalling.handle)
    session = aiohttp.ClientSession()
    request = asyncio.create_task(transport(session=session).get(base_url + PATH, {}, {}))
    await stalling.arrived.wait()
    await session.close()
    with pytest.raises(ClientClosedError):
        await request


async def test_a_cancelled_request_stays_cancelled_when_the_transport_closes(
    serve: Serve, stalling: Stalling
) -> None:
    base_url = await serve(stalling.handle)
    sender = transport()
    request = asyncio.create_task(sender.get(base_url + PATH, {}, {}))
    await stalling.arrived.wait()
    request.cancel()
    await sender.aclose()
    with pytest.raises(asyncio.CancelledError):
        await request


# --- the pool: waiting for a connection is not connecting -------------------------------------


async def test_waiting_for_a_pooled_connection_is_not_a_connect_timeout(
    serve: Serve, closing: list[Transport]
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.6)  # the latency under test, longer than the connect timeout
        return web.Response(body=SMALL_PAGE, content_type="application/json")

    base_url = await serve(slow)
    timeout = aiohttp.ClientTimeout(total=10, connect=0.5)
    closing.append(sender := transport(max_connections=2, timeout=timeout))
    responses = await asyncio.gather(*(sender.get(base_url + PATH, {}, {}) for _ in range(8)))
    assert [r.status for r in responses] == [200] * 8


async def test_a_silent_socket_still_times_out_when_connect_is_set(
    serve: Serve, stalling: Stalling, closing: list[Transport]
) -> None:
    base_url = await serve(stalling.handle)
    timeout = aiohttp.ClientTimeout(total=10, connect=5, sock_read=0.2)
    closing.append(sender := transport(timeout=timeout))
    with pytest.raises(APITimeoutError):
        await sender.get(base_url + PATH, {}, {})


def test_pool_limit_of_an_own_session_is_max_connections() -> None:
    assert transport(max_connections=3).pool_limit == 3


@pytest.mark.parametrize(
    ("limit", "per_host", "expected"),
    [(10, 3, 3), (2, 5, 2), (4, 0, 4), (0, 6, 6), (0, 0, None)],
)
async def test_pool_limit_of_a_borrowed_session_is_its_per_host_limit(
    limit: int, per_host: int, expected: int | None
) -> None:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert transport(session=session).pool_limit == expected
