"""Errors that guide (issue #12, item 5) and the per-request DEBUG line the CLI's --debug shows.

A setup mistake must say what to check: a 404 names the URL and base_url, a 401 names where
the key came from, a refused connection reads as such; none of them shows the key.
"""

from __future__ import annotations

import logging
import socket

import pytest

from tamio_async import (
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    RetryPolicy,
    TamioClient,
)
from tamio_async.testing import FakeTamioServer

KEY = "sk-live-very-secret-1234"
NO_RETRY = RetryPolicy(max_retries=0)


async def test_a_404_names_the_url_and_points_at_base_url() -> None:
    async with FakeTamioServer(api_key=KEY) as server:
        root = server.base_url.removesuffix("/v2")
        async with TamioClient(api_key=KEY, base_url=root, retry=NO_RETRY) as client:
            with pytest.raises(NotFoundError) as caught:
                await client.tickets.list()
    message = str(caught.value)
    assert f"GET {root}/agency/tickets/list" in message
    assert "base_url" in message and "/v2" in message
    assert KEY not in message


@pytest.mark.parametrize("source", ["argument", "environment", "provider"])
async def test_a_401_says_where_the_key_came_from_without_showing_it(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-wrong-" + KEY

    async def provider() -> str:
        return wrong

    async with FakeTamioServer(api_key=KEY) as server:
        options: dict[str, object] = {"base_url": server.base_url, "retry": NO_RETRY}
        if source == "argument":
            options["api_key"] = wrong
        elif source == "provider":
            options["api_key"] = provider
        else:
            monkeypatch.setenv("TAMIO_API_KEY", wrong)
        async with TamioClient(**options) as client:  # type: ignore[arg-type]
            with pytest.raises(AuthenticationError) as caught:
                await client.tickets.list()
    message = str(caught.value)
    expected = {
        "argument": "the api_key argument",
        "environment": "the TAMIO_API_KEY environment variable",
        "provider": "the api_key provider",
    }[source]
    assert f"check the API key, which came from {expected}" in message
    assert wrong not in message and KEY not in message


async def test_a_refused_connection_reads_as_one() -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        async with TamioClient(
            api_key=KEY, base_url=f"http://127.0.0.1:{port}/v2", retry=NO_RETRY
        ) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.tickets.list()
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in str(caught.value)


async def test_every_request_logs_one_debug_line_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tamio_async")
    async with FakeTamioServer(api_key=KEY, tickets=250) as server:
        async with TamioClient(api_key=KEY, base_url=server.base_url) as client:
            await client.tickets.list_all(per_page=100, speculative_pages=0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GET ")]
    assert len(lines) == len(server.requests) == 3
    assert all(" -> 200 in " in line and "per_page=100" in line for line in lines)
    assert {f"page={n}&" in " ".join(lines) for n in (1, 2, 3)} == {True}
    assert KEY not in caplog.text
