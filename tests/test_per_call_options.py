"""Per-call options (issue #12, item 2): `with_options` and `list_with_response`.

A copy made by `with_options` must share what makes a client expensive or coordinated (the
pool, the rate gate, the token) and differ only in what was asked; closing it must not close
what it shares.
"""

from __future__ import annotations

import re

import pytest

from tamio_async import (
    APITimeoutError,
    ClientClosedError,
    PageResponse,
    RetryPolicy,
    TamioClient,
)
from tamio_async.testing import FakeTamioServer

KEY = "sk-per-call-1234"


async def test_a_shorter_timeout_applies_to_the_copy_only() -> None:
    async with FakeTamioServer(api_key=KEY, latency=0.5) as server:
        async with TamioClient(api_key=KEY, base_url=server.base_url, timeout=10) as client:
            hasty = client.with_options(timeout=0.05, max_retries=0)
            with pytest.raises(APITimeoutError):
                await hasty.tickets.list()
            page = await client.tickets.list()  # the original keeps its 10 s
    assert len(page.tickets) == 100


async def test_the_copy_shares_the_pool_the_gate_and_the_token() -> None:
    async with FakeTamioServer(api_key=KEY, tickets=300) as server:
        async with TamioClient(api_key=KEY, base_url=server.base_url) as client:
            other = client.with_options(max_retries=7, max_concurrency=2, speculative_pages=0)
            assert other._transport is client._transport
            assert other._pacer is client._pacer
            assert other._credentials is client._credentials
            assert (other.retry.max_retries, client.retry.max_retries) == (7, 3)
            assert (other.max_concurrency, client.max_concurrency) == (2, 8)
            got = await other.tickets.list_all(per_page=100)
            assert len(got) == 300 and server.max_in_flight <= 2
            # One connection pool: the copy's connections are the original's.
            connector = client._transport._get_session().connector
            assert connector is other._transport._get_session().connector


async def test_closing_the_copy_closes_nothing_shared_and_closing_the_original_closes_both() -> (
    None
):
    async with FakeTamioServer(api_key=KEY) as server:
        client = TamioClient(api_key=KEY, base_url=server.base_url)
        copy = client.with_options(max_retries=1)
        await copy.tickets.list()
        await copy.aclose()
        with pytest.raises(ClientClosedError):
            await copy.tickets.list()
        await client.tickets.list()  # still open
        second = client.with_options(max_retries=1)
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await second.tickets.list()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": -1}, r"^timeout must be"),
        ({"max_retries": -1}, r"^max_retries must be an int >= 0"),
        ({"retry": 3}, r"^retry must be a RetryPolicy"),
        ({"max_concurrency": 500}, r"^max_concurrency=500 exceeds the shared connection pool"),
        ({"speculative_pages": -1}, r"^speculative_pages must be an int >= 0"),
        ({"preconnect": "no"}, r"^preconnect must be a bool"),
    ],
)
def test_bad_per_call_options_are_refused_naming_them(
    options: dict[str, object], message: str
) -> None:
    client = TamioClient(api_key=KEY)
    with pytest.raises((TypeError, ValueError), match=message):
        client.with_options(**options)  # type: ignore[arg-type]


def test_shared_options_cannot_be_changed_per_call() -> None:
    client = TamioClient(api_key=KEY)
    with pytest.raises(TypeError, match="base_url"):
        client.with_options(base_url="https://elsewhere.example/v2")  # type: ignore[call-arg]


async def test_list_with_response_gives_status_headers_and_request_id() -> None:
    async with FakeTamioServer(api_key=KEY, tickets=150) as server:
        async with TamioClient(api_key=KEY, base_url=server.base_url) as client:
            response = await client.tickets.list_with_response(page=2, per_page=100)
            plain = await client.tickets.list(page=2, per_page=100)
    assert isinstance(response, PageResponse)
    assert response.status == 200
    assert response.page == plain and len(response.page.tickets) == 50
    assert response.request_id is not None and re.fullmatch(r"req-\d+", response.request_id)
    assert response.headers["Content-Type"].startswith("application/json")


async def test_list_with_response_validates_like_list() -> None:
    client = TamioClient(api_key=KEY)
    with pytest.raises(ValueError, match=r"^page must be an int >= 1"):
        await client.tickets.list_with_response(page=0)
    with pytest.raises(TypeError, match="unknown filter argument"):
        await client.tickets.list_with_response(colour="red")  # type: ignore[call-arg]
    await client.aclose()


async def test_a_copy_with_other_retries_retries_that_many_times() -> None:
    async with FakeTamioServer(api_key=KEY, fault_rate=1.0, fault_kinds=("500",)) as server:
        async with TamioClient(
            api_key=KEY,
            base_url=server.base_url,
            retry=RetryPolicy(initial_wait=0.001, max_wait=0.001, jitter=0),
        ) as client:
            with pytest.raises(Exception, match="HTTP 500"):
                await client.with_options(max_retries=2).tickets.list()
            assert len(server.requests) == 3
