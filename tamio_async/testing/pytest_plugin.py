"""pytest fixtures for the fake Tamio API: ``fake_tamio`` and ``fake_tamio_factory``.

    @pytest.mark.fake_tamio(tickets=500, max_per_page=50, fault_rate=0.1)
    async def test_export(fake_tamio: FakeTamioServer) -> None: ...

pytest loads this plugin for everyone who installs tamio-async, so importing it never fails.
The fixtures are async and need pytest-asyncio (``pip install "tamio-async[testing]"``); a
test that uses one where it cannot work (pytest-asyncio missing or disabled, a test that is
not an asyncio test, a test loop other than the fixtures') errors at setup saying what to
change, instead of hanging or silently lacking the fixture.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import pytest

from ._data import Ticket
from ._server import FakeTamioServer

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ServerOptions",
    "fake_tamio",
    "fake_tamio_factory",
    "pytest_configure",
    "pytest_runtest_setup",
]

FIXTURES = frozenset({"fake_tamio", "fake_tamio_factory"})
_INSTALL = 'pip install "tamio-async[testing]"'
_CONFIGURE = (
    'set asyncio_mode = "auto" in your pytest configuration ([tool.pytest.ini_options] in '
    "pyproject.toml), or mark the test with @pytest.mark.asyncio (strict mode)"
)


class ServerOptions(TypedDict, total=False):
    """Keyword options of FakeTamioServer (and of the ``fake_tamio`` marker)."""

    tickets: int | Sequence[Ticket]
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
    request_log: int | None


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fake_tamio`` marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        "fake_tamio(**options): FakeTamioServer options for the fake_tamio fixture "
        "(tickets=, seed=, max_per_page=, fault_rate=, latency=, api_key=, ...)",
    )


def _marker_options(node: pytest.Item) -> ServerOptions:
    """The ``fake_tamio`` markers' options, the closest (function, class, module) winning."""
    merged: dict[str, Any] = {}
    for marker in node.iter_markers("fake_tamio"):  # closest first
        if marker.args:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.fake_tamio takes keyword options only, "
                f"e.g. fake_tamio(tickets=500); got positional {marker.args!r}"
            )
        unknown = set(marker.kwargs) - set(ServerOptions.__annotations__)
        if unknown:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.fake_tamio got unknown options "
                f"{sorted(unknown)}; FakeTamioServer takes {sorted(ServerOptions.__annotations__)}"
            )
        merged = {**marker.kwargs, **merged}
    options: ServerOptions = merged  # type: ignore[assignment]  # keys checked above
    return options


try:
    import pytest_asyncio
except ImportError:
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True


def _problem(item: pytest.Item) -> str | None:
    """Why the fake_tamio fixtures cannot work for this test, or None if they can."""
    if not _HAVE_PYTEST_ASYNCIO:
        return f"needs pytest-asyncio, which is not installed: {_INSTALL}"
    if not item.config.pluginmanager.has_plugin("asyncio"):
        return "needs pytest-asyncio, which is installed but not loaded (-p no:asyncio?)"
    function = getattr(item, "obj", None)
    is_async_test = getattr(pytest_asyncio, "is_async_test", None)
    if is_async_test is None or is_async_test(item):
        return _loop_mismatch(item)
    if inspect.iscoroutinefunction(function):
        return f"is async, but pytest-asyncio does not run this test: {_CONFIGURE}"
    return "is an async fixture: request it from an `async def` test"


def _loop_mismatch(item: pytest.Item) -> str | None:
    """A test loop scope other than the fixtures' (they would run in another loop)."""
    try:
        fixture_scope = item.config.getini("asyncio_default_fixture_loop_scope")
        test_scope = item.config.getini("asyncio_default_test_loop_scope")
    except ValueError:  # an older pytest-asyncio without these settings: nothing to compare
        return None
    marker = item.get_closest_marker("asyncio")
    if marker is not None:
        test_scope = marker.kwargs.get("loop_scope") or test_scope
    fixture_scope = (
        fixture_scope if fixture_scope not in (None, "", "fixture-scope") else "function"
    )
    test_scope = test_scope or "function"
    if test_scope == fixture_scope:
        return None
    return (
        f"runs in the fixtures' event loop (loop scope {fixture_scope!r}), but this test runs "
        f"in a {test_scope!r}-scoped loop: set asyncio_default_fixture_loop_scope = "
        f'"{test_scope}" in your pytest configuration'
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test that uses the fixtures where they cannot work, saying what to change."""
    used = sorted(FIXTURES.intersection(getattr(item, "fixturenames", ())))
    if not used:
        return
    problem = _problem(item)
    if problem is not None:
        pytest.fail(f"{item.nodeid}: the {used[0]} fixture (tamio-async) {problem}", pytrace=False)
    _marker_options(item)  # a malformed marker fails here, before any fixture runs


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def fake_tamio(request: pytest.FixtureRequest) -> AsyncIterator[FakeTamioServer]:
        """A started FakeTamioServer, configured by ``@pytest.mark.fake_tamio(...)`` if any."""
        async with FakeTamioServer(**_marker_options(request.node)) as server:
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

else:  # The names exist either way; pytest_runtest_setup fails first with the reason.

    @pytest.fixture
    def fake_tamio() -> FakeTamioServer:
        """Unavailable: needs pytest-asyncio."""
        pytest.fail(f"the fake_tamio fixture needs pytest-asyncio: {_INSTALL}", pytrace=False)

    @pytest.fixture
    def fake_tamio_factory() -> Callable[..., FakeTamioServer]:
        """Unavailable: needs pytest-asyncio."""
        pytest.fail(
            f"the fake_tamio_factory fixture needs pytest-asyncio: {_INSTALL}", pytrace=False
        )
