"""FakeTamioServer, exercised over real HTTP on 127.0.0.1 with aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tamio_async.testing import (
    CLIENTS,
    DATA_END,
    TEAMMATE_IDS,
    FakeTamioServer,
    RequestLog,
    _server,
    _store,
    generate_tickets,
)

AUTH = {"Authorization": "Bearer test-key"}
TIMEOUT = aiohttp.ClientTimeout(total=5)
Factory = Callable[..., FakeTamioServer]


@pytest.fixture
async def server() -> AsyncIterator[FakeTamioServer]:
    async with FakeTamioServer(tickets=300, seed=1) as started:
        yield started


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        yield client


async def get(
    session: aiohttp.ClientSession,
    server: FakeTamioServer,
    headers: dict[str, str] | None = None,
    **params: str,
) -> tuple[int, Any]:
    """GET the endpoint (page 1, per_page 1000 unless given); return status and JSON body."""
    query = {"page": "1", "per_page": "1000", **params}
    async with session.get(
        server.url, params=query, headers=AUTH if headers is None else headers
    ) as r:
        return r.status, await r.json()


def ids(tickets: list[dict[str, Any]]) -> list[str]:
    return [t["id"] for t in tickets]


def utc(stamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc)


# -- lifecycle ---------------------------------------------------------------------------------


async def test_base_url_points_at_the_bound_port(server: FakeTamioServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v2")
    assert server.url == server.base_url + "/agency/tickets/list"


async def test_base_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeTamioServer(tickets=1).base_url


async def test_explicit_start_and_stop(session: aiohttp.ClientSession) -> None:
    fake = FakeTamioServer(tickets=3)
    await fake.start()
    try:
        status, body = await get(session, fake)
    finally:
        await fake.stop()
    assert (status, body["total_results"]) == (200, 3)


async def test_bound_to_every_interface_the_url_names_loopback(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeTamioServer(tickets=3, host="0.0.0.0") as fake:
        assert fake.base_url.startswith("http://127.0.0.1:")
        status, _ = await get(session, fake)
    assert status == 200


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"tickets": -1}, ValueError, "tickets must be at least 0"),
        ({"tickets": 2.5}, TypeError, "tickets must be"),
        ({"tickets": True}, TypeError, "tickets must be"),
        ({"seed": "1"}, TypeError, "seed must be an int"),
        ({"latency": -0.005}, ValueError, "latency must be at least 0"),
        ({"latency": float("nan")}, ValueError, "latency must be at least 0"),
        ({"stall_seconds": -1}, ValueError, "stall_seconds must be at least 0"),
        ({"fault_rate": 2}, ValueError, "fault_rate must be between 0 and 1"),
        ({"fault_rate": -0.1}, ValueError, "fault_rate must be between 0 and 1"),
        ({"max_per_page": 0}, ValueError, "max_per_page must be at least 1"),
        ({"port": 70_000}, ValueError, "port must be at most 65535"),
        ({"port": -1}, ValueError, "port must be at least 0"),
        ({"retry_after": (2, 1)}, ValueError, "retry_after must be"),
        ({"request_log": -1}, ValueError, "request_log must be at least 0"),
        ({"default_order": "up"}, ValueError, "default_order must be"),
        ({"fault_kinds": ["explode"]}, ValueError, "unknown fault kinds"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        FakeTamioServer(**options)


# -- auth --------------------------------------------------------------------------------------


async def test_missing_bearer_token_is_401_with_the_spec_body(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    status, body = await get(session, server, headers={})
    assert status == 401
    assert body == {"status": 401, "message": "Unauthorized \u2013 invalid or missing Bearer token"}


async def test_wrong_api_key_is_401(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    status, _ = await get(session, server, headers={"Authorization": "Bearer nope"})
    assert status == 401


async def test_auth_is_checked_before_validation(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    status, _ = await get(session, server, headers={}, page="zero")
    assert status == 401


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": None}, "page"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "two"}, "page"),
        ({"per_page": None}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "1.5"}, "per_page"),
        ({"per_page": "1001"}, "per_page"),
        ({"order": "up"}, "order"),
        ({"sort_by": "name"}, "sort_by"),
        ({"closed": "yes"}, "closed"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2024-13-45"}, "to"),
        ({"from": "2024-02-01", "to": "2024-01-01"}, "from must not be after to"),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v,
)
async def test_invalid_parameter_is_400_naming_it(
    server: FakeTamioServer,
    session: aiohttp.ClientSession,
    params: dict[str, str | None],
    named: str,
) -> None:
    query = {"page": "1", "per_page": "10", **params}
    sent = {k: v for k, v in query.items() if v is not None}
    async with session.get(server.url, params=sent, headers=AUTH) as response:
        status, body = response.status, await response.json()
    assert status == 400
    assert body["status"] == 400
    assert body["message"].startswith(named)


async def test_unknown_parameters_are_ignored(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    status, body = await get(session, server, colour="blue")
    assert (status, body["total_results"]) == (200, 300)


# -- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("closed", "is_open"), [("true", False), ("false", True)])
async def test_closed_filter_selects_by_is_open(
    server: FakeTamioServer, session: aiohttp.ClientSession, closed: str, is_open: bool
) -> None:
    _, body = await get(session, server, closed=closed)
    truth = [t for t in server.tickets if t["is_open"] is is_open]
    assert body["total_results"] == len(truth) > 0
    assert {t["is_open"] for t in body["tickets"]} == {is_open}


async def test_teammate_id_filter_matches_exactly(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    teammate = server.tickets[0]["teammate_id"] or TEAMMATE_IDS[0]
    _, body = await get(session, server, teammate_id=teammate)
    truth = {t["id"] for t in server.tickets if t["teammate_id"] == teammate}
    assert set(ids(body["tickets"])) == truth
    assert truth


async def test_client_id_filter_matches_the_client_object(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    client = server.tickets[0]["client"]["id"]
    _, body = await get(session, server, client_id=client)
    truth = {t["id"] for t in server.tickets if t["client"]["id"] == client}
    assert set(ids(body["tickets"])) == truth
    assert truth


async def test_unknown_client_id_matches_nothing(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    _, body = await get(session, server, client_id="00000000-0000-4000-8000-000000000000")
    assert body == {"status": 200, "total_results": 0, "tickets": []}


async def test_unix_timestamp_bounds_are_inclusive(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    low, high = server.tickets[10]["created_at"], server.tickets[20]["created_at"]
    _, body = await get(session, server, **{"from": str(low), "to": str(high), "order": "asc"})
    assert ids(body["tickets"]) == ids(server.tickets[10:21])


async def test_iso_datetimes_with_z_are_inclusive(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    low, high = (utc(server.tickets[i]["created_at"]) for i in (5, 9))
    bounds = {"from": low.strftime("%Y-%m-%dT%H:%M:%SZ"), "to": high.strftime("%Y-%m-%dT%H:%M:%SZ")}
    _, body = await get(session, server, order="asc", **bounds)
    assert ids(body["tickets"]) == ids(server.tickets[5:10])


async def test_iso_datetime_with_offset_is_converted_to_utc(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    stamp = server.tickets[7]["created_at"]
    paris = utc(stamp).astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    _, body = await get(session, server, **{"from": paris, "to": paris})
    assert ids(body["tickets"]) == [server.tickets[7]["id"]]


async def test_iso_datetime_without_offset_is_taken_as_utc(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    naive = utc(server.tickets[3]["created_at"]).replace(tzinfo=None).isoformat()
    _, body = await get(session, server, **{"from": naive, "to": naive})
    assert ids(body["tickets"]) == [server.tickets[3]["id"]]


async def test_iso_dates_cover_whole_utc_days(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    day = utc(server.tickets[50]["created_at"]).date()
    _, body = await get(session, server, **{"from": day.isoformat(), "to": day.isoformat()})
    truth = {t["id"] for t in server.tickets if utc(t["created_at"]).date() == day}
    assert set(ids(body["tickets"])) == truth
    assert server.tickets[50]["id"] in truth


async def test_filter_is_a_case_insensitive_title_substring(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    _, body = await get(session, server, filter="ORDER #")
    truth = {t["id"] for t in server.tickets if "order #" in t["title"].lower()}
    assert 0 < len(truth) < len(server.tickets)
    assert set(ids(body["tickets"])) == truth


async def test_filters_combine(server: FakeTamioServer, session: aiohttp.ClientSession) -> None:
    _, body = await get(session, server, closed="false", filter="order")
    truth = [t for t in server.tickets if t["is_open"] and "order" in t["title"].lower()]
    assert set(ids(body["tickets"])) == set(ids(truth))


# -- sorting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sort_by", ["created_at", "title"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_sort_by_and_order_with_ties_broken_by_id(
    server: FakeTamioServer, session: aiohttp.ClientSession, sort_by: str, order: str
) -> None:
    _, body = await get(session, server, sort_by=sort_by, order=order)
    truth = sorted(server.tickets, key=lambda t: (t[sort_by], t["id"]), reverse=order == "desc")
    assert ids(body["tickets"]) == ids(truth)


async def test_default_order_is_newest_first(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    _, body = await get(session, server)
    assert ids(body["tickets"]) == ids(server.tickets[::-1])


async def test_default_order_is_a_constructor_option(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=20, default_order="asc") as fake:
        _, body = await get(session, fake)
    assert ids(body["tickets"]) == ids(fake.tickets)


# -- paging ------------------------------------------------------------------------------------


async def test_pages_concatenate_to_the_expected_list(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    total = len(server.expected(closed=True))
    pages = []
    for page in range(1, math.ceil(total / 37) + 1):
        _, body = await get(session, server, page=str(page), per_page="37", closed="true")
        assert body["total_results"] == total
        pages.extend(body["tickets"])
    assert pages == server.expected({"closed": "true"})


async def test_page_past_the_end_is_empty_with_the_total(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    _, body = await get(session, server, page="99", per_page="100")
    assert body == {"status": 200, "total_results": 300, "tickets": []}


async def test_per_page_limit_is_configurable(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=5, max_per_page=2) as fake:
        status, body = await get(session, fake, per_page="3")
    assert status == 400
    assert "at most 2" in body["message"]


async def test_expected_accepts_python_values(server: FakeTamioServer) -> None:
    since = utc(server.tickets[100]["created_at"])
    truth = [
        t for t in server.tickets[::-1] if t["created_at"] >= server.tickets[100]["created_at"]
    ]
    assert server.expected(from_=since, closed=False, teammate_id=None) == [
        t for t in truth if t["is_open"]
    ]


async def test_every_response_has_a_request_id(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    seen = []
    for headers in (AUTH, {}):
        async with session.get(server.url, params={"page": "1"}, headers=headers) as response:
            seen.append(response.headers["X-Request-Id"])
    assert seen == ["req-1", "req-2"]


# -- data on the wire --------------------------------------------------------------------------

TICKET_KEYS = {
    "id", "object", "title", "is_open", "category", "subcategory", "teammate_id", "client",
    "language", "created_at", "updated_at", "replies",
}  # fmt: skip
ASSET_KEYS = {
    "id", "object", "filename", "extension", "filesize", "type", "version", "status", "alt_text",
    "width", "height", "public_url", "folder", "thumbnails", "created_at", "updated_at",
}  # fmt: skip


def nulls(obj: dict[str, Any]) -> set[str]:
    return {k for k, v in obj.items() if v is None}


async def test_served_tickets_have_every_spec_field_and_nulls_only_where_allowed(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    _, body = await get(session, server)
    for ticket in body["tickets"]:
        assert set(ticket) == TICKET_KEYS
        assert ticket["object"] == "ticket"
        assert nulls(ticket) <= {"teammate_id"}
        assert set(ticket["client"]) == {"id", "name", "email"}
        assert nulls(ticket["client"]) == set()
        for reply in ticket["replies"]:
            assert set(reply) == {"id", "text", "is_client_reply", "created_at", "assets"}
            assert nulls(reply) == set()
            for asset in reply["assets"]:
                assert set(asset) == ASSET_KEYS
                assert asset["object"] == "asset"
                assert nulls(asset) <= {"folder", "width", "height"}
                assert all(set(t) == {"url", "width", "height"} for t in asset["thumbnails"])


async def test_same_seed_serves_the_same_tickets(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=40, seed=9) as fake:
        _, body = await get(session, fake, order="asc")
    assert body["tickets"] == generate_tickets(40, seed=9)


async def test_published_pools_are_real_filter_values(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=400) as fake:
        _, by_teammate = await get(session, fake, teammate_id=TEAMMATE_IDS[0])
        _, by_client = await get(session, fake, client_id=CLIENTS[0]["id"])
    assert by_teammate["total_results"] > 0
    assert by_client["total_results"] == len(fake.expected(client_id=CLIENTS[0]["id"]))


# -- generated on demand ---------------------------------------------------------------------


def test_a_million_tickets_cost_nothing_until_served() -> None:
    tracemalloc.start()
    try:
        fake = FakeTamioServer(tickets=1_000_000, seed=3)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1_000_000  # bytes: no ticket was made
    assert len(fake.tickets) == 1_000_000


async def test_a_million_tickets_serve_any_page_in_order(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=1_000_000, seed=3) as fake:
        _, first = await get(session, fake, per_page="100")
        _, last = await get(session, fake, page="10000", per_page="100")
        _, oldest_first = await get(session, fake, per_page="3", order="asc")
    assert first["total_results"] == 1_000_000
    assert ids(first["tickets"]) == ids(fake.tickets[:-101:-1])
    assert ids(last["tickets"]) == ids(fake.tickets[99::-1])
    assert oldest_first["tickets"] == fake.tickets[:3]
    stamps = [t["created_at"] for t in first["tickets"] + last["tickets"]]
    assert stamps == sorted(stamps, reverse=True)
    assert max(stamps) < DATA_END


async def test_date_bounds_on_generated_data_are_exact(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=50_000, seed=4) as fake:
        low, high = fake.tickets[20_000]["created_at"], fake.tickets[20_049]["created_at"]
        _, body = await get(session, fake, order="asc", **{"from": str(low), "to": str(high)})
        _, just_inside = await get(session, fake, **{"from": str(low + 1), "to": str(high - 1)})
    assert ids(body["tickets"]) == ids(fake.tickets[20_000:20_050])
    assert just_inside["total_results"] == 48


def brute_force(rows: list[dict[str, Any]], **filters: Any) -> list[str]:
    """What a listing must hold, from the tickets themselves (the old, materialising way)."""
    sort_by, order = filters.pop("sort_by", "created_at"), filters.pop("order", "desc")
    since, until = filters.pop("from_", None), filters.pop("to", None)
    keep = [
        t
        for t in rows
        if (filters.get("closed") is None or t["is_open"] is not filters["closed"])
        and (filters.get("teammate_id") is None or t["teammate_id"] == filters["teammate_id"])
        and (filters.get("client_id") is None or t["client"]["id"] == filters["client_id"])
        and (filters.get("filter") is None or filters["filter"].casefold() in t["title"].casefold())
        and (since is None or t["created_at"] >= since)
        and (until is None or t["created_at"] <= until)
    ]
    keep.sort(key=lambda t: (t[sort_by], t["id"]), reverse=order == "desc")
    return ids(keep)


QUERIES: list[dict[str, Any]] = [
    {},
    {"order": "asc"},
    {"closed": True},
    {"closed": False, "filter": "order", "order": "asc"},
    {"teammate_id": TEAMMATE_IDS[3]},
    {"client_id": CLIENTS[5]["id"], "sort_by": "title"},
    {"sort_by": "title", "order": "asc"},
    {"filter": "the", "sort_by": "title", "order": "desc"},
]


async def test_listings_survive_random_deletions_and_insertions() -> None:
    rng = random.Random(11)
    fake = FakeTamioServer(tickets=2_000, seed=12)
    stamps = sorted(t["created_at"] for t in fake.tickets)
    window = {"from_": stamps[300], "to": stamps[1_700]}
    for step in range(6):
        alive = fake.tickets
        doomed = [alive[rng.randrange(len(alive))]["id"] for _ in range(rng.randint(1, 80))]
        assert fake.delete_tickets(doomed) == len(set(doomed))
        if step % 2:
            fake.delete_newest(rng.randint(1, 30))
            fake.insert_tickets(rng.randint(1, 40))
        rows = list(fake.tickets)
        for query in [*QUERIES, window, {**window, "closed": True}]:
            assert fake.expected_ids(**query) == brute_force(rows, **query), (step, query)
    assert len(fake.tickets) == len({t["id"] for t in fake.tickets})


def test_listings_dropped_from_a_full_cache_are_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_server, "_LISTING_BUDGET", 500)  # indices: two or three listings
    fake = FakeTamioServer(tickets=1_000, seed=9)
    rows = list(fake.tickets)
    for _ in range(2):  # the second round finds most listings dropped, and makes them again
        for query in QUERIES:
            assert fake.expected_ids(**query) == brute_force(rows, **query), query


def test_tickets_is_a_cheap_snapshot_that_reads_like_a_list() -> None:
    fake = FakeTamioServer(tickets=1_000, seed=2)
    view = fake.tickets
    everything = generate_tickets(1_000, seed=2)
    assert (view[0], view[-1], view[10:13], view[::250]) == (
        everything[0], everything[-1], everything[10:13], everything[::250],
    )  # fmt: skip
    assert list(view) == everything
    with pytest.raises(IndexError):
        view[1_000]
    fake.delete_newest(10)
    assert len(view) == 1_000  # a snapshot
    assert len(fake.tickets) == 990
    assert "1000 tickets" in repr(view)


def test_expected_ids_are_the_ids_of_expected() -> None:
    fake = FakeTamioServer(tickets=500, seed=6)
    for query in QUERIES:
        assert fake.expected_ids(**query) == ids(fake.expected(**query))


def test_given_tickets_keep_working_unordered() -> None:
    given = generate_tickets(30, seed=1)[::-1]  # newest first: not in created_at order
    fake = FakeTamioServer(tickets=given)
    assert fake.expected_ids(order="asc") == ids(given[::-1])
    assert fake.delete_tickets([given[0]["id"]]) == 1
    assert fake.delete_newest(1) == [given[1]["id"]]
    (new,) = fake.insert_tickets(1)
    assert fake.expected_ids()[:2] == [new["id"], given[2]["id"]]
    assert fake.tickets[0] is given[2]  # given tickets are served as they are


async def test_preload_makes_every_ticket_ahead_beyond_the_cache_bound(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTamioServer(tickets=12_000, seed=3)  # more than the 10,000 kept by default
    fake.preload()

    def made_on_demand(self: _store.Dataset, index: int) -> bytes:
        raise AssertionError(f"ticket {index} was made on demand after preload()")

    monkeypatch.setattr(_store.Dataset, "encode", made_on_demand)
    served = []
    async with fake:
        for page in range(1, 13):
            _, body = await get(session, fake, page=str(page), per_page="1000")
            served.extend(ids(body["tickets"]))
    assert served == fake.expected_ids()


# -- request log -------------------------------------------------------------------------------


async def test_the_request_log_keeps_the_last_requests(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=5, request_log=3) as fake:
        assert fake.requests == []
        for _ in range(5):
            await get(session, fake)
    assert isinstance(fake.requests, RequestLog)
    assert fake.requests.maxlen == 3
    assert [r.headers.get("Authorization") for r in fake.requests] == ["Bearer test-key"] * 3
    assert [r.end >= r.start for r in fake.requests] == [True] * 3
    assert fake.requests != []


async def test_the_request_log_can_be_unbounded_or_off(session: aiohttp.ClientSession) -> None:
    async with (
        FakeTamioServer(tickets=5, request_log=None) as everything,
        FakeTamioServer(tickets=5, request_log=0) as nothing,
    ):
        for _ in range(3):
            await get(session, everything)
            await get(session, nothing)
    assert (len(everything.requests), len(nothing.requests)) == (3, 0)
    assert everything.requests.maxlen is None


def test_the_default_request_log_is_bounded() -> None:
    assert FakeTamioServer(tickets=1).requests.maxlen == 10_000


# -- faults ------------------------------------------------------------------------------------


async def test_injected_429_carries_retry_after_and_a_json_body(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.inject(429, retry_after=3)
    async with session.get(server.url, params={"page": "1", "per_page": "5"}) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        assert await response.json() == {"status": 429, "message": "Too Many Requests"}


async def test_random_429_draws_retry_after_from_the_range(session: aiohttp.ClientSession) -> None:
    async with (
        FakeTamioServer(tickets=5, fault_rate=1.0, fault_kinds=["429"], retry_after=(2, 2)) as fake,
        session.get(fake.url) as response,
    ):
        assert (response.status, response.headers["Retry-After"]) == (429, "2")


@pytest.mark.parametrize("kind", ["500", "503", 502, 418])
async def test_injected_status_answers_a_json_error(
    server: FakeTamioServer, session: aiohttp.ClientSession, kind: str | int
) -> None:
    server.inject(kind)
    status, body = await get(session, server)
    assert status == body["status"] == int(kind)
    assert body["message"]
    assert server.requests[-1].fault == str(kind)


@pytest.mark.parametrize("kind", ["reset", "truncate"])
async def test_broken_connection_raises_a_client_payload_error(
    server: FakeTamioServer, session: aiohttp.ClientSession, kind: str
) -> None:
    server.inject(kind)
    with pytest.raises(aiohttp.ClientPayloadError):
        await get(session, server)
    assert server.requests[-1].status == kind


async def test_stall_outlasts_a_short_client_timeout(session: aiohttp.ClientSession) -> None:
    async with FakeTamioServer(tickets=5, stall_seconds=30) as fake:
        fake.inject("stall")
        short = aiohttp.ClientTimeout(total=0.2)
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(
                fake.url, params={"page": "1", "per_page": "5"}, headers=AUTH, timeout=short
            ) as response:
                await response.read()
    # stop() woke the stalled handler, which then answered normally into the void.
    assert (fake.requests[-1].fault, fake.requests[-1].status) == ("stall", 200)


async def test_invalid_json_is_a_200_that_does_not_parse(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.inject("invalid_json")
    async with session.get(server.url, params={"page": "1", "per_page": "5"}, headers=AUTH) as r:
        assert r.status == 200
        text = await r.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_scripted_fault_hits_only_its_page(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.inject(503, page=2)
    statuses = [(await get(session, server, page=p))[0] for p in ("1", "2", "2")]
    assert statuses == [200, 503, 200]


async def test_scripted_fault_repeats_for_times(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.inject(500, times=2)
    statuses = [(await get(session, server))[0] for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert server.faults_injected == 2


async def test_scripted_fault_with_times_none_lasts_until_cleared(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.inject(503, times=None)
    statuses = [(await get(session, server))[0] for _ in range(3)]
    server.clear_faults()
    statuses.append((await get(session, server))[0])
    assert statuses == [503, 503, 503, 200]


async def test_scripted_faults_take_precedence_over_random_ones(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeTamioServer(tickets=5, fault_rate=1.0, fault_kinds=["500"]) as fake:
        fake.inject(418)
        statuses = [(await get(session, fake))[0] for _ in range(2)]
    assert statuses == [418, 500]


def test_unknown_fault_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FakeTamioServer(tickets=1).inject("explode")


async def run_random_faults(session: aiohttp.ClientSession, rate: float) -> list[int | str]:
    async with FakeTamioServer(
        tickets=5, seed=4, fault_rate=rate, fault_kinds=["500", "503"]
    ) as fake:
        for _ in range(120):
            await get(session, fake, per_page="1")
    return [r.status for r in fake.requests]


async def test_random_faults_are_deterministic_and_near_the_rate(
    session: aiohttp.ClientSession,
) -> None:
    first = await run_random_faults(session, 0.25)
    assert first == await run_random_faults(session, 0.25)
    assert 0.15 < sum(s != 200 for s in first) / len(first) < 0.35
    assert {500, 503} <= set(first)


# -- drift -------------------------------------------------------------------------------------


async def test_drift_insert_adds_newest_tickets_after_the_page(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    before = server.expected()
    server.drift_after(1, insert=3)
    _, first = await get(session, server, page="1", per_page="10")
    _, second = await get(session, server, page="2", per_page="10")
    assert ids(first["tickets"]) == ids(before[:10])
    # Three newer tickets pushed everything back: page 2 repeats the end of page 1.
    assert ids(second["tickets"]) == ids(before[7:17])
    assert second["total_results"] == 303
    assert min(t["created_at"] for t in server.expected()[:3]) > before[0]["created_at"]


async def test_drift_delete_removes_the_newest_tickets(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    before = server.expected()
    server.drift_after(1, delete=2)
    await get(session, server, page="1", per_page="10")
    _, second = await get(session, server, page="2", per_page="10")
    assert ids(second["tickets"]) == ids(before[12:22])
    assert second["total_results"] == 298


async def test_drift_happens_only_the_first_time_the_page_is_served(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.drift_after(1, insert=1)
    totals = [(await get(session, server, per_page="5"))[1]["total_results"] for _ in range(3)]
    assert totals == [300, 301, 301]


async def test_faulted_page_does_not_trigger_drift(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.drift_after(1, insert=1)
    server.inject(500)
    await get(session, server)
    assert len(server.tickets) == 300


def test_insert_and_delete_tickets_directly() -> None:
    fake = FakeTamioServer(tickets=10)
    added = fake.insert_tickets(2)
    assert fake.tickets[-2:] == added
    assert fake.delete_tickets([added[0]["id"], "no-such-id"]) == 1
    assert len(fake.tickets) == 11


# -- concurrency and latency -------------------------------------------------------------------


async def test_in_flight_counts_concurrent_requests_through_their_latency(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeTamioServer(tickets=5, latency=0.3) as fake:
        await asyncio.gather(*(get(session, fake) for _ in range(6)))
        assert (fake.max_in_flight, fake.in_flight) == (6, 0)
    assert all(r.end - r.start >= 0.3 for r in fake.requests)


async def test_latency_can_change_at_run_time(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    server.latency = 0.05
    await get(session, server)
    assert server.requests[-1].end - server.requests[-1].start >= 0.05


async def test_requests_are_recorded_with_query_headers_and_page(
    server: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    await get(session, server, page="3", per_page="7", filter="a b")
    (record,) = server.requests
    assert (record.method, record.path, record.page, record.status) == (
        "GET", "/v2/agency/tickets/list", 3, 200,
    )  # fmt: skip
    assert record.query == {"page": "3", "per_page": "7", "filter": "a b"}
    assert "filter=a" in record.query_string
    assert record.headers["Authorization"] == "Bearer test-key"


# -- pytest plugin -----------------------------------------------------------------------------


async def test_fake_tamio_fixture_is_a_started_default_server(
    fake_tamio: FakeTamioServer, session: aiohttp.ClientSession
) -> None:
    status, body = await get(session, fake_tamio, per_page="1")
    assert (status, body["total_results"]) == (200, 1000)


async def test_fake_tamio_factory_builds_configured_servers(
    fake_tamio_factory: Factory, session: aiohttp.ClientSession
) -> None:
    async with fake_tamio_factory(tickets=12, api_key="k") as fake:
        status, body = await get(session, fake, headers={"Authorization": "Bearer k"})
    assert (status, body["total_results"]) == (200, 12)
