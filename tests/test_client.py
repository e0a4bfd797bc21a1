"""TamioClient end to end: request shape, errors, retries, auth refresh, sockets, lifecycle.

aioresponses checks how statuses map to errors; everything that involves a socket (query
strings as received, resets, timeouts, redirects) runs against a local aiohttp.web server.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import traceback
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import STATUS_CLASSES

from tamio_async import (
    DEFAULT_BASE_URL,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    InternalServerError,
    RateLimitError,
    TamioClient,
    TamioError,
    Ticket,
    __version__,
)

if TYPE_CHECKING:
    from conftest import FakeClock

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]

KEY = "sk-test-key"
CANARY = "sk-canary-SECRET-1234"
BOUND = 5.0  # seconds: an upper bound on any wait, never a duration we rely on
PAGE = {"status": 200, "total_results": 1, "tickets": [{"id": "t-1", "title": "Refund"}]}
PAGE_BODY = json.dumps(PAGE).encode()
MOCKED = re.compile(r"^https://api\.tamio\.com/v2/agency/tickets/list\?")


@pytest.fixture(autouse=True)
def _no_tamio_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAMIO_API_KEY", raising=False)
    monkeypatch.delenv("TAMIO_BASE_URL", raising=False)


# --- the local server ------------------------------------------------------------------------


class FakeAPI:
    """A handler that plays its answers in turn (the last one repeats) and keeps each request."""

    base_url: str

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers
        self.requests: list[web.Request] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return await answer(request)


StartAPI = Callable[..., Awaitable[FakeAPI]]


@pytest.fixture
def start(serve: Callable[[Answer], Awaitable[str]]) -> StartAPI:
    """Serve a FakeAPI with these answers (default: one good page) on 127.0.0.1."""

    async def start_api(*answers: Answer) -> FakeAPI:
        api = FakeAPI(*(answers or (respond(),)))
        api.base_url = await serve(api.handle)
        return api

    return start_api


@pytest.fixture
async def stall(serve: object) -> AsyncIterator[Answer]:
    """An answer that never comes; stalled handlers are released at teardown.

    Depends on ``serve`` so that it is torn down first: a handler still waiting would
    otherwise hold the server's graceful shutdown for its full timeout.
    """
    release = asyncio.Event()
    stalled: set[asyncio.Task[Any]] = set()

    async def answer(request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        stalled.add(task)
        await release.wait()
        return web.Response(status=504)

    yield answer
    release.set()
    if stalled:
        await asyncio.wait(stalled, timeout=BOUND)


def respond(
    status: int = 200, payload: object = PAGE_BODY, headers: dict[str, str] | None = None
) -> Answer:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status,
            body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    return answer


def accept_only(token: str) -> Answer:
    """200 for ``Bearer <token>``, 401 for any other key."""

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") == f"Bearer {token}":
            return await respond()(request)
        return await respond(401, {"error": "invalid token"})(request)

    return answer


async def reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection before answering."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


async def partial_then_reset(request: web.Request) -> web.StreamResponse:
    """Start a 200, send part of the body, then drop the connection."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = 1000
    await response.prepare(request)
    await response.write(b'{"status": 200, "tick')
    assert request.transport is not None
    request.transport.abort()
    return response


async def truncated(request: web.Request) -> web.StreamResponse:
    """Promise 1000 bytes, send 20, close cleanly."""
    assert request.transport is not None
    request.transport.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        b'{"status": 200, "to'
    )
    request.transport.close()
    return web.Response()


def client_for(base_url: str, **options: Any) -> TamioClient:
    options.setdefault("api_key", KEY)
    return TamioClient(base_url=base_url, **options)


class Tokens:
    """A key provider that hands out ``tokens`` in turn (the last repeats) and counts calls."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = tokens
        self.calls = 0

    def next(self) -> str:
        token = self.tokens[min(self.calls, len(self.tokens) - 1)]
        self.calls += 1
        return token

    async def next_async(self) -> str:
        await asyncio.sleep(0)  # a real provider awaits I/O here
        return self.next()


# --- request shape ---------------------------------------------------------------------------


async def test_every_filter_is_sent_as_the_documented_query(start: StartAPI) -> None:
    api = await start()
    teammate = uuid.UUID("770e8400-e29b-41d4-a716-446655440000")
    async with client_for(api.base_url) as client:
        await client.tickets.list(
            page=2,
            per_page=50,
            order="desc",
            sort_by="title",
            filter="Payment failed & refund",
            from_="2024-05-01",
            to="2024-05-31T23:59:59Z",
            closed=False,
            teammate_id=teammate,
            client_id="660E8400-E29B-41D4-A716-446655440000",
        )
    [request] = api.requests
    assert list(request.query.items()) == [
        ("page", "2"),
        ("per_page", "50"),
        ("order", "desc"),
        ("sort_by", "title"),
        ("filter", "Payment failed & refund"),
        ("from", "1714521600"),
        ("to", "1717199999"),
        ("closed", "false"),
        ("teammate_id", "770e8400-e29b-41d4-a716-446655440000"),
        ("client_id", "660e8400-e29b-41d4-a716-446655440000"),
    ]


async def test_a_bare_call_sends_only_page_and_per_page(start: StartAPI) -> None:
    api = await start()
    async with client_for(api.base_url) as client:
        await client.tickets.list()
    assert list(api.requests[0].query.items()) == [("page", "1"), ("per_page", "100")]


async def test_requests_carry_bearer_key_accept_and_user_agent(start: StartAPI) -> None:
    api = await start()
    async with client_for(api.base_url) as client:
        await client.tickets.list()
    headers = api.requests[0].headers
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith(f"tamio-async/{__version__} ")


async def test_user_agent_suffix_is_appended(start: StartAPI) -> None:
    api = await start()
    async with client_for(api.base_url, user_agent="acme-sync/2.0") as client:
        await client.tickets.list()
    user_agent = api.requests[0].headers["User-Agent"]
    assert user_agent.startswith(f"tamio-async/{__version__} ")
    assert user_agent.endswith(" acme-sync/2.0")


async def test_a_page_decodes_into_tickets(start: StartAPI) -> None:
    api = await start()
    async with client_for(api.base_url) as client:
        page = await client.tickets.list()
    assert page.total_results == 1
    assert page.tickets == (Ticket(id="t-1", title="Refund"),)


async def test_invalid_arguments_fail_before_any_request(start: StartAPI) -> None:
    api = await start()
    async with client_for(api.base_url) as client:
        with pytest.raises(ValueError, match="order"):
            await client.tickets.list(order="sideways")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="per_page"):
            await client.tickets.list(per_page=0)
    assert api.requests == []


# --- status -> error -------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
async def test_error_status_raises_its_class_with_status_body_and_message(
    status: int, cls: type[APIStatusError]
) -> None:
    body = b'{"message": "nope"}'
    with aioresponses() as mocked:
        mocked.get(MOCKED, status=status, body=body, headers={"X-Request-Id": "req-7"})
        async with TamioClient(api_key=KEY, max_retries=0) as client:
            with pytest.raises(cls) as info:
                await client.tickets.list(page=3)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.body == body
    # The server's message first; after it, for a setup mistake, what to check (test_guidance).
    assert error.message.startswith(f"HTTP {status}: nope")
    assert (error.message == f"HTTP {status}: nope") is (status not in (401, 403, 404))
    assert error.request_id == "req-7"
    assert error.page == 3


async def test_rate_limit_error_carries_retry_after() -> None:
    with aioresponses() as mocked:
        mocked.get(MOCKED, status=429, headers={"Retry-After": "7"})
        async with TamioClient(api_key=KEY, max_retries=0) as client:
            with pytest.raises(RateLimitError) as info:
                await client.tickets.list()
    assert info.value.retry_after == 7.0


async def test_unmapped_status_raises_plain_api_status_error() -> None:
    with aioresponses() as mocked:
        mocked.get(MOCKED, status=418, body=b"teapot")
        async with TamioClient(api_key=KEY, max_retries=0) as client:
            with pytest.raises(APIStatusError) as info:
                await client.tickets.list()
    assert type(info.value) is APIStatusError
    assert info.value.status_code == 418


async def test_a_redirect_status_that_was_not_followed_is_an_api_status_error() -> None:
    with aioresponses() as mocked:
        mocked.get(MOCKED, status=304)
        async with TamioClient(api_key=KEY, max_retries=0) as client:
            with pytest.raises(APIStatusError) as info:
                await client.tickets.list()
    assert info.value.status_code == 304


# --- retries over a real socket --------------------------------------------------------------


async def test_two_503s_then_a_200_succeeds_in_three_requests(
    start: StartAPI, clock: FakeClock
) -> None:
    api = await start(respond(503), respond(503), respond())
    async with client_for(api.base_url, retry=clock.policy()) as client:
        page = await client.tickets.list()
    assert page.tickets[0].id == "t-1"
    assert len(api.requests) == 3
    assert len(clock.sleeps) == 2


async def test_a_400_is_requested_exactly_once(start: StartAPI, clock: FakeClock) -> None:
    api = await start(respond(400, {"message": "bad filter"}), respond())
    async with client_for(api.base_url, retry=clock.policy()) as client:
        with pytest.raises(BadRequestError, match="bad filter"):
            await client.tickets.list()
    assert len(api.requests) == 1
    assert clock.sleeps == []


async def test_retry_after_one_second_makes_the_retry_wait_one_second(
    start: StartAPI, clock: FakeClock
) -> None:
    api = await start(respond(429, {"error": "slow down"}, {"Retry-After": "1"}), respond())
    async with client_for(api.base_url, retry=clock.policy(initial_wait=0.01, jitter=0)) as client:
        await client.tickets.list()
    assert clock.sleeps == [1.0]
    assert len(api.requests) == 2


async def test_max_retries_option_bounds_the_attempts(start: StartAPI, clock: FakeClock) -> None:
    api = await start(respond(500))
    async with client_for(api.base_url, retry=clock.policy(), max_retries=1) as client:
        with pytest.raises(InternalServerError):
            await client.tickets.list()
    assert len(api.requests) == 2


# --- authentication --------------------------------------------------------------------------


async def test_401_with_an_async_provider_refreshes_once_and_succeeds(start: StartAPI) -> None:
    api = await start(accept_only("fresh"))
    tokens = Tokens("stale", "fresh")
    async with client_for(api.base_url, api_key=tokens.next_async) as client:
        page = await client.tickets.list()
    assert page.tickets[0].id == "t-1"
    assert tokens.calls == 2
    assert [r.headers["Authorization"] for r in api.requests] == [
        "Bearer stale",
        "Bearer fresh",
    ]


async def test_401_with_a_sync_provider_refreshes_once_and_succeeds(start: StartAPI) -> None:
    api = await start(accept_only("fresh"))
    tokens = Tokens("stale", "fresh")
    async with client_for(api.base_url, api_key=tokens.next) as client:
        await client.tickets.list()
    assert tokens.calls == 2


async def test_concurrent_401s_refresh_the_token_only_once(
    serve: Callable[[Answer], Awaitable[str]],
) -> None:
    concurrent = 5
    stale_requests = 0
    all_stale_arrived = asyncio.Event()

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal stale_requests
        if request.headers["Authorization"] == "Bearer stale":
            # Hold every stale request until all have arrived, so each one gets its 401.
            stale_requests += 1
            if stale_requests == concurrent:
                all_stale_arrived.set()
            await asyncio.wait_for(all_stale_arrived.wait(), BOUND)
        return await accept_only("fresh")(request)

    base_url = await serve(answer)
    tokens = Tokens("stale", "fresh", "fresher")
    async with client_for(
        base_url, api_key=tokens.next_async, max_concurrency=concurrent
    ) as client:
        pages = await asyncio.gather(
            *(client.tickets.list(page=n) for n in range(1, concurrent + 1))
        )
    assert len(pages) == concurrent
    assert stale_requests == concurrent
    assert tokens.calls == 2


async def test_a_refreshed_key_that_is_also_refused_raises(start: StartAPI) -> None:
    api = await start(accept_only("never"))
    tokens = Tokens("stale", "also-stale")
    async with client_for(api.base_url, api_key=tokens.next_async) as client:
        with pytest.raises(AuthenticationError):
            await client.tickets.list()
    assert tokens.calls == 2
    assert len(api.requests) == 2


async def test_401_with_a_plain_key_raises_after_one_request(start: StartAPI) -> None:
    api = await start(accept_only("another-key"))
    async with client_for(api.base_url) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.tickets.list()
    assert info.value.status_code == 401
    assert len(api.requests) == 1


async def test_provider_returning_a_non_string_is_an_authentication_error(
    start: StartAPI,
) -> None:
    api = await start()
    async with client_for(api.base_url, api_key=lambda: 42) as client:
        with pytest.raises(AuthenticationError, match=r"api_key provider .* no request was sent"):
            await client.tickets.list()
    assert api.requests == []


# --- bad answers -----------------------------------------------------------------------------


async def test_response_that_does_not_fit_the_schema_names_the_json_path(
    start: StartAPI, clock: FakeClock
) -> None:
    api = await start(respond(200, {"tickets": [{"id": "t-1", "created_at": "today"}]}))
    async with client_for(api.base_url, retry=clock.policy()) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.tickets.list(page=4)
    assert info.value.path == "$.tickets[0].created_at"
    assert info.value.page == 4
    assert "$.tickets[0].created_at" in str(info.value)
    assert len(api.requests) == 1


async def test_a_200_that_is_not_json_is_a_validation_error(start: StartAPI) -> None:
    api = await start(respond(200, b"<html>maintenance</html>"))
    async with client_for(api.base_url) as client:
        with pytest.raises(APIResponseValidationError, match="not valid JSON") as info:
            await client.tickets.list()
    assert info.value.status_code == 200


async def test_body_above_max_response_bytes_is_refused(start: StartAPI) -> None:
    api = await start(respond(200, {**PAGE, "padding": "x" * 2000}))
    async with client_for(api.base_url, max_response_bytes=1000) as client:
        with pytest.raises(APIResponseValidationError, match="max_response_bytes"):
            await client.tickets.list()
    assert len(api.requests) == 1


async def test_chunked_body_above_max_response_bytes_is_refused(start: StartAPI) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(4):
            await response.write(b" " * 600)
        await response.write(PAGE_BODY)
        await response.write_eof()
        return response

    api = await start(chunked)
    async with client_for(api.base_url, max_response_bytes=1000) as client:
        with pytest.raises(APIResponseValidationError, match="max_response_bytes"):
            await client.tickets.list()


async def test_body_exactly_at_max_response_bytes_is_accepted(start: StartAPI) -> None:
    api = await start()
    size = len(PAGE_BODY)
    async with client_for(api.base_url, max_response_bytes=size) as client:
        assert (await client.tickets.list()).tickets[0].id == "t-1"


# --- failed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout", [0.2, aiohttp.ClientTimeout(sock_read=0.2)], ids=["total", "sock_read"]
)
async def test_a_stalled_server_raises_api_timeout_error_after_retries(
    start: StartAPI, stall: Answer, clock: FakeClock, timeout: float | aiohttp.ClientTimeout
) -> None:
    api = await start(stall)
    async with client_for(
        api.base_url, timeout=timeout, retry=clock.policy(max_retries=1)
    ) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.tickets.list()
    assert isinstance(info.value, TimeoutError)
    # asyncio.TimeoutError is the built-in TimeoutError from Python 3.11 on; 3.10 keeps both
    assert isinstance(info.value.__cause__, (asyncio.TimeoutError, TimeoutError))
    assert len(api.requests) == 2


@pytest.mark.parametrize(
    "answer", [reset, partial_then_reset, truncated], ids=["reset", "partial-reset", "truncated"]
)
async def test_a_broken_connection_raises_api_connection_error_after_retries(
    start: StartAPI, clock: FakeClock, answer: Answer
) -> None:
    api = await start(answer)
    async with client_for(api.base_url, retry=clock.policy(max_retries=2)) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.tickets.list()
    assert type(info.value) is APIConnectionError
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert info.value.page == 1
    assert len(clock.sleeps) == 2
    # aiohttp may silently re-send a GET once when a reused connection is dropped.
    assert 3 <= len(api.requests) <= 6


async def test_a_connection_reset_then_a_good_answer_succeeds(
    start: StartAPI, clock: FakeClock
) -> None:
    api = await start(reset, reset, reset, respond())
    async with client_for(api.base_url, retry=clock.policy(max_retries=3)) as client:
        assert (await client.tickets.list()).tickets[0].id == "t-1"


async def test_an_unreachable_server_raises_api_connection_error(clock: FakeClock) -> None:
    # Take a free port from a server that is then stopped: nothing listens there any more.
    runner = web.AppRunner(web.Application())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    await runner.cleanup()
    async with client_for(
        f"http://127.0.0.1:{port}/v2", retry=clock.policy(max_retries=1)
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.tickets.list()
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError)
    assert len(clock.sleeps) == 1


# --- construction ----------------------------------------------------------------------------


def test_missing_key_is_a_value_error_naming_the_environment_variable() -> None:
    with pytest.raises(ValueError, match="TAMIO_API_KEY"):
        TamioClient()


def test_empty_environment_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAMIO_API_KEY", "")
    with pytest.raises(ValueError, match="TAMIO_API_KEY"):
        TamioClient()


@pytest.mark.parametrize(("key", "error"), [("  ", ValueError), (42, TypeError)])
def test_unusable_api_key_is_refused(key: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="api_key"):
        TamioClient(api_key=key)  # type: ignore[arg-type]


async def test_key_is_read_from_the_environment(
    start: StartAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMIO_API_KEY", "sk-from-env")
    api = await start()
    async with TamioClient(base_url=api.base_url) as client:
        await client.tickets.list()
    assert api.requests[0].headers["Authorization"] == "Bearer sk-from-env"


async def test_base_url_is_read_from_the_environment(
    start: StartAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await start()
    monkeypatch.setenv("TAMIO_BASE_URL", api.base_url)
    async with TamioClient(api_key=KEY) as client:
        await client.tickets.list()
    assert client.base_url == api.base_url
    assert len(api.requests) == 1


def test_explicit_base_url_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAMIO_BASE_URL", "https://env.example/v2")
    assert TamioClient(api_key=KEY, base_url="https://arg.example/v2").base_url == (
        "https://arg.example/v2"
    )


def test_default_base_url_is_the_public_api() -> None:
    assert TamioClient(api_key=KEY).base_url == DEFAULT_BASE_URL == "https://api.tamio.com/v2"


def test_trailing_slash_of_base_url_is_dropped() -> None:
    assert TamioClient(api_key=KEY, base_url="https://x.example/v2/").base_url == (
        "https://x.example/v2"
    )


def test_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        TamioClient(api_key=KEY, base_url="http://api.tamio.com/v2")


def test_plain_http_to_a_remote_host_is_allowed_when_asked() -> None:
    client = TamioClient(api_key=KEY, base_url="http://proxy.internal/v2", allow_insecure_http=True)
    assert client.base_url == "http://proxy.internal/v2"


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8080/v2", "http://localhost:8080/v2", "http://[::1]:8080/v2"]
)
def test_plain_http_to_loopback_is_allowed(base_url: str) -> None:
    assert TamioClient(api_key=KEY, base_url=base_url).base_url == base_url


def test_credentials_in_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        TamioClient(api_key=KEY, base_url="https://user:hunter2@api.tamio.com/v2")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "base_url",
    ["api.tamio.com/v2", "ftp://api.tamio.com/v2", "https://", "https://x.example/v2?a=1"],
)
def test_malformed_base_url_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        TamioClient(api_key=KEY, base_url=base_url)


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("timeout", 0, ValueError),
        ("timeout", -1, ValueError),
        ("timeout", "30", ValueError),
        ("timeout", True, ValueError),
        ("max_concurrency", 0, ValueError),
        ("max_concurrency", 2.5, TypeError),
        ("max_retries", -1, ValueError),
        ("max_retries", "3", TypeError),
        ("max_response_bytes", 0, ValueError),
        ("retry", 3, TypeError),
        ("session", object(), TypeError),
        ("user_agent", 1, TypeError),
    ],
)
def test_bad_option_is_refused_naming_it(
    option: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=option):
        TamioClient(api_key=KEY, **{option: value})


def test_max_retries_overrides_the_policy() -> None:
    assert TamioClient(api_key=KEY, max_retries=7).retry.max_retries == 7


# --- lifecycle -------------------------------------------------------------------------------


async def test_async_with_closes_the_session_it_created(start: StartAPI) -> None:
    api = await start()
    async with client_for(api.base_url) as client:
        await client.tickets.list()
        session = client._transport._session
        assert session is not None
        assert not session.closed
    assert session.closed
    assert client.closed


async def test_closed_client_refuses_requests(start: StartAPI) -> None:
    api = await start()
    async with client_for(api.base_url) as client:
        pass
    with pytest.raises(ClientClosedError):
        await client.tickets.list()
    with pytest.raises(ClientClosedError):
        client.tickets.iterate()
    assert api.requests == []


async def test_closed_client_cannot_be_entered_again() -> None:
    client = TamioClient(api_key=KEY)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        async with client:
            pass


async def test_aclose_twice_is_harmless(start: StartAPI) -> None:
    api = await start()
    client = client_for(api.base_url)
    await client.tickets.list()
    await client.aclose()
    await client.aclose()
    assert client.closed


async def test_a_borrowed_session_carries_the_requests_and_stays_open(start: StartAPI) -> None:
    api = await start()
    async with aiohttp.ClientSession(headers={"X-Lender": "app"}) as session:
        async with client_for(api.base_url, session=session) as client:
            await client.tickets.list()
        assert not session.closed
    assert api.requests[0].headers["X-Lender"] == "app"


async def test_an_unclosed_client_warns_when_collected(start: StartAPI) -> None:
    api = await start()
    client = client_for(api.base_url)
    await client.tickets.list()
    session = client._transport._session
    assert session is not None
    del client  # the client and its `tickets` form a cycle: only the collector frees them
    with pytest.warns(ResourceWarning, match="unclosed"):
        gc.collect()
    await session.close()


def test_a_client_that_never_sent_a_request_holds_nothing_to_close() -> None:
    client = TamioClient(api_key=KEY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


# --- redirects -------------------------------------------------------------------------------


async def test_redirect_to_another_origin_drops_the_authorization_header(
    start: StartAPI,
) -> None:
    other_origin = await start()

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{other_origin.base_url}/agency/tickets/list?{request.query_string}")

    first = await start(redirect)
    async with client_for(first.base_url) as client:
        page = await client.tickets.list()
    assert page.tickets[0].id == "t-1"
    assert first.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in other_origin.requests[0].headers


# --- secrets ---------------------------------------------------------------------------------


def texts_of(error: BaseException) -> list[str]:
    """What an error can show: its traceback, and str and repr of it and every chained error."""
    texts = ["".join(traceback.format_exception(error))]
    link: BaseException | None = error
    while link is not None:
        texts += [str(link), repr(link)]
        link = link.__cause__ or link.__context__
    return texts


async def redirect_loop(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{request.path}?{request.query_string}")


SECRET_SCENARIOS: dict[str, tuple[Answer | None, dict[str, Any], type[TamioError]]] = {
    "401": (respond(401, {"error": "bad key"}), {}, AuthenticationError),
    "503": (respond(503, b"upstream down"), {}, InternalServerError),
    "schema": (respond(200, {"tickets": [{"title": "no id"}]}), {}, APIResponseValidationError),
    "too-large": (respond(), {"max_response_bytes": 10}, APIResponseValidationError),
    "reset": (reset, {}, APIConnectionError),
    "truncated": (truncated, {}, APIConnectionError),
    "redirect-loop": (redirect_loop, {}, APIConnectionError),
    "timeout": (None, {"timeout": 0.2}, APITimeoutError),  # None: the stalling answer
}


@pytest.mark.parametrize("scenario", SECRET_SCENARIOS)
async def test_the_key_never_shows_in_reprs_errors_or_logs(
    start: StartAPI,
    stall: Answer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    scenario: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    answer, options, expected = SECRET_SCENARIOS[scenario]
    api = await start(answer or stall)
    client = client_for(api.base_url, api_key=CANARY, retry=clock.policy(max_retries=1), **options)
    shown = [repr(client), repr(client._credentials)]
    async with client:
        with pytest.raises(expected) as info:
            await client.tickets.list()
    shown += texts_of(info.value)
    with pytest.raises(ClientClosedError) as closed:
        await client.tickets.list()
    shown += texts_of(closed.value)
    shown += [repr(client), caplog.text, *(r.getMessage() for r in caplog.records)]
    assert api.requests[0].headers["Authorization"] == f"Bearer {CANARY}"  # it was sent
    assert all(CANARY not in text for text in shown)
