"""The command line end to end: ``python -m tamio_async`` in a subprocess, against a fake API.

The fake server runs in the test's event loop, so the CLI runs as an asyncio subprocess (a
blocking ``subprocess.run`` would starve the server). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import datetime
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tamio_async import TamioClient
from tamio_async.testing import TEAMMATE_IDS, FakeTamioServer

TIMEOUT = 30.0
KEY = "cli-test-key-c4n4ry-9f2e"
# Runs the CLI as if rich were not installed: `import rich` raises ImportError.
WITHOUT_RICH = (
    "import sys; sys.modules['rich'] = None; from tamio_async.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMIO_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@contextlib.asynccontextmanager
async def cli_process(
    *args: str, env: dict[str, str] | None = None, code: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The CLI as a running process; killed and reaped on the way out whatever happened."""
    command = ("-c", code) if code else ("-m", "tamio_async")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env or _env(),
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.communicate(), TIMEOUT)


async def run_cli(*args: str, env: dict[str, str] | None = None, code: str | None = None) -> Result:
    async with cli_process(*args, env=env, code=code) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def conn(server: FakeTamioServer) -> list[str]:
    return ["--base-url", server.base_url, "--api-key", server.api_key]


def jsonl_ids(text: str) -> list[str]:
    return [json.loads(line)["id"] for line in text.splitlines()]


def expected_ids(server: FakeTamioServer, **filters: object) -> list[str]:
    return [ticket["id"] for ticket in server.expected(**filters)]


@pytest.fixture
async def server() -> AsyncIterator[FakeTamioServer]:
    async with FakeTamioServer(tickets=240, seed=7, api_key=KEY) as fake:
        yield fake


async def test_all_jsonl_writes_every_ticket_once_in_order(server: FakeTamioServer) -> None:
    env = _env(TAMIO_BASE_URL=server.base_url, TAMIO_API_KEY=server.api_key)
    result = await run_cli("tickets", "--all", "--per-page", "25", "--format", "jsonl", env=env)
    assert result.code == 0, result.err
    assert jsonl_ids(result.out) == expected_ids(server)


def _window(server: FakeTamioServer) -> tuple[list[str], dict[str, object]]:
    """--from as ISO 8601 and --to as unix seconds, around the middle of the data."""
    times = sorted(ticket["created_at"] for ticket in server.tickets)
    start, end = times[60], times[150]
    iso = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).isoformat()
    return ["--from", iso, "--to", str(end)], {"from_": start, "to": end}


FILTERS: dict[str, Callable[[FakeTamioServer], tuple[list[str], dict[str, object]]]] = {
    "closed": lambda s: (["--closed"], {"closed": True}),
    "open": lambda s: (["--open"], {"closed": False}),
    "filter": lambda s: (["--filter", "refund"], {"filter": "refund"}),
    "teammate": lambda s: (["--teammate-id", TEAMMATE_IDS[0]], {"teammate_id": TEAMMATE_IDS[0]}),
    "client": lambda s: (
        ["--client-id", s.tickets[0]["client"]["id"]],
        {"client_id": s.tickets[0]["client"]["id"]},
    ),
    "from-to": _window,
    "order-sort": lambda s: (
        ["--order", "asc", "--sort-by", "title"],
        {"order": "asc", "sort_by": "title"},
    ),
}


@pytest.mark.parametrize("name", FILTERS)
async def test_each_filter_narrows_exactly_as_the_server_data_says(
    server: FakeTamioServer, name: str
) -> None:
    args, filters = FILTERS[name](server)
    expected = expected_ids(server, **filters)
    assert expected, "the filter must select something for the test to mean anything"
    result = await run_cli("tickets", "--all", "--per-page", "20", *args, *conn(server))
    assert result.code == 0, result.err
    assert jsonl_ids(result.out) == expected


async def test_csv_has_one_row_per_ticket_with_flat_columns(
    server: FakeTamioServer, tmp_path: Path
) -> None:
    path = tmp_path / "tickets.csv"
    result = await run_cli("tickets", "--all", "--format", "csv", "-o", str(path), *conn(server))
    assert result.code == 0, result.err
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames == [
        "id", "title", "is_open", "category", "subcategory", "teammate_id", "client_id",
        "client_name", "client_email", "language", "created_at", "updated_at", "replies",
    ]  # fmt: skip
    tickets = server.expected()
    assert [row["id"] for row in rows] == [t["id"] for t in tickets]
    first, ticket = rows[0], tickets[0]
    assert first["client_email"] == ticket["client"]["email"]
    assert first["replies"] == str(len(ticket["replies"]))
    assert first["is_open"] == str(ticket["is_open"]).lower()


async def test_json_is_one_array(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--all", "--format", "json", *conn(server))
    assert result.code == 0, result.err
    assert [ticket["id"] for ticket in json.loads(result.out)] == expected_ids(server)


async def test_table_lists_the_tickets(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--limit", "5", "--format", "table", *conn(server))
    assert result.code == 0, result.err
    assert all(ticket_id in result.out for ticket_id in expected_ids(server)[:5])


async def test_without_rich_the_table_is_plain_text(server: FakeTamioServer) -> None:
    args = ("tickets", "--limit", "5", "--format", "table", *conn(server))
    result = await run_cli(*args, code=WITHOUT_RICH)
    assert result.code == 0, result.err
    assert all(ticket_id in result.out for ticket_id in expected_ids(server)[:5])
    assert "┃" not in result.out


async def test_page_and_per_page_give_that_page(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--page", "2", "--per-page", "10", *conn(server))
    assert result.code == 0, result.err
    assert jsonl_ids(result.out) == expected_ids(server)[10:20]
    assert len(server.requests) == 1


async def test_limit_gives_that_many(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--limit", "25", "--per-page", "10", *conn(server))
    assert result.code == 0, result.err
    assert jsonl_ids(result.out) == expected_ids(server)[:25]


async def test_wrong_key_exits_1_with_one_line_and_no_key(server: FakeTamioServer) -> None:
    wrong = "wrong-key-c4n4ry-1b7d"
    result = await run_cli("tickets", "--base-url", server.base_url, "--api-key", wrong)
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "401" in result.err
    assert "Traceback" not in result.err
    assert wrong not in result.err + result.out


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--from", "yesterday"], "--from"),
        (["--from", "2024-05-02", "--to", "2024-05-01"], "--from"),
        (["--order", "sideways"], "--order"),
        (["--teammate-id", "not-a-uuid"], "--teammate-id"),
        (["--per-page", "0"], "--per-page"),
    ],
)
async def test_bad_argument_exits_2_naming_the_option_before_any_request(
    server: FakeTamioServer, args: list[str], option: str
) -> None:
    result = await run_cli("tickets", "--all", *args, *conn(server))
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert option in result.err
    assert not re.search(r"\b(from_|sort_by|teammate_id|per_page)\b", result.err)
    assert server.requests == []


async def test_missing_key_exits_2_naming_the_option() -> None:
    result = await run_cli("tickets", "--base-url", "http://127.0.0.1:9/v2")
    assert result.code == 2
    assert "--api-key" in result.err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_a_signal_stops_the_run_leaving_only_whole_lines(
    tmp_path: Path, signum: int, code: int
) -> None:
    path = tmp_path / "tickets.jsonl"
    async with FakeTamioServer(tickets=3000, seed=1, api_key=KEY, latency=0.05) as server:
        args = ("tickets", "--all", "--per-page", "10", "--concurrency", "2", "-o", str(path))
        async with cli_process(*args, *conn(server)) as proc:
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while not (path.exists() and path.stat().st_size > 0):
                assert proc.returncode is None, "the CLI ended before it was interrupted"
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)
            proc.send_signal(signum)
            _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == code, err
        data = path.read_bytes()
        assert data.endswith(b"\n")
        got = jsonl_ids(data.decode())
        expected = expected_ids(server)
        assert 0 < len(got) < len(expected)
        assert got == expected[: len(got)]


async def test_demo_verifies_and_prints_the_summary() -> None:
    result = await run_cli("demo", "--tickets", "2000", "--latency-ms", "5")
    assert result.code == 0, result.err
    for needle in ("2,000", "verified", "Wall time", "tickets/s", "Retries", "Speed-up"):
        assert needle in result.out
    assert "extrapolated" in result.out


async def test_without_rich_the_demo_prints_plain_text() -> None:
    args = ("demo", "--tickets", "300", "--latency-ms", "1")
    result = await run_cli(*args, code=WITHOUT_RICH)
    assert result.code == 0, result.err
    assert "Speed-up" in result.out
    assert "╭" not in result.out


async def test_serve_fake_prints_a_usable_url_and_stops_on_sigint() -> None:
    args = ("serve-fake", "--port", "0", "--tickets", "30", "--latency-ms", "0")
    async with cli_process(*args) as proc:
        assert proc.stdout is not None
        found = None
        while found is None:
            line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
            assert line, "serve-fake ended without printing its URL"
            found = re.search(r"export TAMIO_BASE_URL=(\S+) TAMIO_API_KEY=(\S+)", line.decode())
        async with TamioClient(base_url=found[1], api_key=found[2]) as client:
            tickets = await client.tickets.list_all()
        assert len(tickets) == 30
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert proc.returncode == 130


async def test_debug_output_never_contains_the_key(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--all", "--per-page", "50", "--debug", *conn(server))
    assert result.code == 0, result.err
    assert "DEBUG" in result.err
    assert KEY not in result.out + result.err
