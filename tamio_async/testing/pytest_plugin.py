"""pytest fixtures for the fake Tamio API: ``fake_tamio`` and ``fake_tamio_factory``.

pytest loads this plugin for everyone who installs tamio-async, so importing it must never
fail: without pytest-asyncio it defines nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, TypedDict

from ._data import Ticket
from ._server import FakeTamioServer

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ServerOptions"]


class ServerOptions(TypedDict, total=False):
    """Keyword options of FakeTamioServer."""

    tickets: int | list[Ticket]
    seed: int
    api_key: str
    latency: float
    host: str
    port: int
    max_per_page: int
    default_order: str
    fault_rate: float
    fault_kinds: Sequence[str]
    retry_after: tuple[float, float]
    stall_seconds: float


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixtures need pytest-asyncio
    pass
else:
    __all__ += ["fake_tamio", "fake_tamio_factory"]

    @pytest_asyncio.fixture
    async def fake_tamio() -> AsyncIterator[FakeTamioServer]:
        """A started FakeTamioServer with default options."""
        async with FakeTamioServer() as server:
            yield server

    @pytest_asyncio.fixture
    async def fake_tamio_factory() -> AsyncIterator[Callable[..., FakeTamioServer]]:
        """Build FakeTamioServers to use as ``async with factory(tickets=50) as server``."""
        made: list[FakeTamioServer] = []

        def factory(**options: Unpack[ServerOptions]) -> FakeTamioServer:
            server = FakeTamioServer(**options)
            made.append(server)
            return server

        yield factory
        # A test that failed inside its `async with` may still leave a server running.
        for server in made:
            await server.stop()
