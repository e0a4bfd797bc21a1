"""examples/fastapi_app.py against the fake Tamio API: JSON out, errors mapped, one client.

The app runs in the test's event loop through httpx's ASGITransport, its lifespan entered
by hand (the transport does not send lifespan events), so the fake API, the app and the test
share one loop. (FastAPI's TestClient would run the app in a thread of its own, and needs
httpx2 in the newest Starlette.)
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tamio_async import ClientClosedError, TamioClient
from tamio_async.testing import FakeTamioServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"
KEY = "fastapi-key"
Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def fake() -> AsyncIterator[FakeTamioServer]:
    async with FakeTamioServer(tickets=300, seed=5, api_key=KEY) as server:
        yield server


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, behind an httpx client (no server, no socket)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as http,
    ):
        http.app = app  # type: ignore[attr-defined]  # for tests that look at its state
        yield http


@pytest.fixture
def serve(example: ModuleType, fake: FakeTamioServer) -> Serve:
    """``async with serve(**options) as http:``: the app in front of the fake, for httpx."""

    def serving(**options: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return running(example.create_app(base_url=fake.base_url, api_key=KEY, **options))

    return serving


def ids(tickets: list[dict[str, Any]]) -> list[str]:
    return [t["id"] for t in tickets]


async def test_one_page_is_the_json_tamio_sent(serve: Serve, fake: FakeTamioServer) -> None:
    async with serve() as http:
        response = await http.get(
            "/tickets", params={"closed": "false", "filter": "order", "page": 2, "per_page": 5}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    expected = fake.expected(closed=False, filter="order")
    assert body["total_results"] == len(expected)
    # Every field, nested replies and assets included, exactly as the fake API served it.
    assert body["tickets"] == expected[5:10]


async def test_every_page_up_to_the_limit_is_one_list(serve: Serve, fake: FakeTamioServer) -> None:
    async with serve() as http:
        response = await http.get("/tickets/all", params={"limit": 120, "closed": "true"})
    assert response.status_code == 200
    assert ids(response.json()) == fake.expected_ids(closed=True)[:120]


async def test_one_client_serves_every_request_of_the_lifespan(serve: Serve) -> None:
    async with serve() as http:
        app: FastAPI = http.app  # type: ignore[attr-defined]
        client: TamioClient = app.state.tamio
        statuses = [(await http.get("/tickets")).status_code for _ in range(3)]
        assert app.state.tamio is client
        assert not client.closed
    assert statuses == [200, 200, 200]
    assert client.closed  # the lifespan closed it
    with pytest.raises(ClientClosedError):
        await client.tickets.list()


async def test_the_pool_serves_more_concurrent_handlers_than_the_bulk_window(
    serve: Serve, fake: FakeTamioServer
) -> None:
    fake.latency = 0.2  # every request is still in flight when the last handler starts
    async with serve(max_connections=16, max_concurrency=4) as http:
        responses = await asyncio.gather(*(http.get("/tickets") for _ in range(40)))
    assert {r.status_code for r in responses} == {200}
    assert fake.max_in_flight == 16  # the pool, not the window of 4, bounds web traffic


async def test_a_bad_argument_is_a_400_before_any_request(
    serve: Serve, fake: FakeTamioServer
) -> None:
    async with serve() as http:
        naive = await http.get("/tickets", params={"from": "2024-01-01T10:00"})
        out_of_range = await http.get("/tickets", params={"per_page": 0})
    assert naive.status_code == 400
    assert "from_" in naive.json()["error"]
    assert out_of_range.status_code == 422  # FastAPI's own validation
    assert fake.requests == []


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        (404, 404, "not found"),
        (500, 502, "failed"),
        (401, 502, "failed"),
        ("invalid_json", 502, "failed"),
    ],
)
async def test_tamio_errors_map_to_http_statuses(
    serve: Serve, fake: FakeTamioServer, fault: int | str, status: int, message: str
) -> None:
    fake.inject(fault, times=None)
    async with serve(max_retries=0) as http:
        response = await http.get("/tickets")
    assert response.status_code == status
    assert message in response.json()["error"]
    assert KEY not in response.text
    assert fake.base_url not in response.text


async def test_an_error_status_carries_tamios_request_id(
    serve: Serve, fake: FakeTamioServer
) -> None:
    fake.inject(404)
    async with serve() as http:
        response = await http.get("/tickets")
    assert response.json()["request_id"] == "req-1"  # the fake's X-Request-Id of its answer


async def test_a_long_retry_after_is_a_503_with_retry_after_not_a_wait(
    serve: Serve, fake: FakeTamioServer
) -> None:
    fake.inject(429, retry_after=30, times=None)  # longer than the app's max_retry_after
    async with serve() as http:
        response = await asyncio.wait_for(http.get("/tickets"), 10)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "try again later" in response.json()["error"]


async def test_a_timeout_is_a_504(serve: Serve, fake: FakeTamioServer) -> None:
    fake.stall_seconds = 30
    fake.inject("stall", times=None)
    async with serve(timeout=0.2, max_retries=0) as http:
        response = await http.get("/tickets")
    assert response.status_code == 504


async def test_a_refused_connection_is_a_502(example: ModuleType) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = example.create_app(base_url=f"http://127.0.0.1:{port}/v2", api_key=KEY, max_retries=0)
    async with running(app) as http:
        response = await http.get("/tickets")
    assert response.status_code == 502


async def test_without_configuration_the_app_serves_an_embedded_fake(
    example: ModuleType,
) -> None:
    async with running(example.create_app()) as http:
        response = await http.get("/tickets", params={"closed": "false", "per_page": 20})
        everything = await http.get("/tickets/all", params={"limit": 250})
    assert response.status_code == 200
    tickets = response.json()["tickets"]
    assert len(tickets) == 20
    assert all(ticket["is_open"] for ticket in tickets)
    assert len(everything.json()) == 250
