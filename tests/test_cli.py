"""The command line end to end: ``python -m tamio_async`` in a subprocess, against local APIs.

`FakeTamioServer` (constructor options and ``.url`` only) provides realistic data, and the
library itself is the oracle of what a listing holds; `cli_support.ExportServer` is used
where a test must count requests or hold a page. Resuming exports: ``test_cli_resume.py``.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import importlib.metadata
import io
import json
import re
import shlex
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cli_support import (
    KEY,
    TIMEOUT,
    ExportServer,
    base_url,
    cli_env,
    cli_process,
    jsonl_ids,
    run_cli,
    ticket_id,
)

from tamio_async import TamioClient
from tamio_async.testing import FakeTamioServer

# Runs the CLI as if rich were not installed: `import rich` raises ImportError.
WITHOUT_RICH = (
    "import sys; sys.modules['rich'] = None; from tamio_async.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)
PYTHON_NAMES = re.compile(
    r"\b(from_|sort_by|teammate_id|client_id|per_page|start_page|max_concurrency|base_url|"
    r"api_key|allow_insecure_http|max_retries|rate_limit\w*|fault_rate|latency)\b"
)


def conn(server: FakeTamioServer) -> list[str]:
    return ["--base-url", base_url(server.url), "--api-key", KEY]


async def listing(server: FakeTamioServer, **filters: Any) -> list[dict[str, Any]]:
    """What the library lists for these filters, as the JSON the CLI writes."""
    async with TamioClient(base_url=base_url(server.url), api_key=KEY) as client:
        tickets = await client.tickets.list_all(per_page=100, **filters)
    return [json.loads(msgspec.json.encode(ticket)) for ticket in tickets]


@pytest.fixture
async def server() -> AsyncIterator[FakeTamioServer]:
    async with FakeTamioServer(tickets=240, seed=7, api_key=KEY) as fake:
        yield fake


# -- what it writes -------------------------------------------------------------------------


async def test_all_jsonl_writes_every_ticket_once_in_order(server: FakeTamioServer) -> None:
    env = cli_env(TAMIO_BASE_URL=base_url(server.url), TAMIO_API_KEY=KEY)
    result = await run_cli("tickets", "--all", "--per-page", "25", "--format", "jsonl", env=env)
    assert result.code == 0, result.err
    assert [json.loads(line) for line in result.out.splitlines()] == await listing(server)


FILTERS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "closed": (["--closed"], {"closed": True}),
    "open": (["--open"], {"closed": False}),
    "filter": (["--filter", "refund"], {"filter": "refund"}),
    "order-sort": (["--order", "asc", "--sort-by", "title"], {"order": "asc", "sort_by": "title"}),
}


@pytest.mark.parametrize("name", FILTERS)
async def test_each_filter_narrows_as_the_library_does(server: FakeTamioServer, name: str) -> None:
    args, filters = FILTERS[name]
    expected = [t["id"] for t in await listing(server, **filters)]
    assert expected, "the filter must select something for the test to mean anything"
    result = await run_cli("tickets", "--all", "--per-page", "20", *args, *conn(server))
    assert result.code == 0, result.err
    assert jsonl_ids(result.out) == expected
    if name in ("closed", "open"):
        assert {json.loads(line)["is_open"] for line in result.out.splitlines()} == {name == "open"}


async def test_id_filters_and_a_time_window_select_what_they_name(
    server: FakeTamioServer,
) -> None:
    everything = await listing(server)
    teammate = next(t["teammate_id"] for t in everything if t["teammate_id"])
    customer = everything[0]["client"]["id"]
    times = sorted(t["created_at"] for t in everything)
    start, end = times[60], times[150]
    iso = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).isoformat()
    cases = [
        (["--teammate-id", teammate], lambda t: t["teammate_id"] == teammate),
        (["--client-id", customer], lambda t: t["client"]["id"] == customer),
        (["--from", iso, "--to", str(end)], lambda t: start <= t["created_at"] <= end),
    ]
    for args, selected in cases:
        result = await run_cli("tickets", "--all", *args, *conn(server))
        assert result.code == 0, result.err
        assert jsonl_ids(result.out) == [t["id"] for t in everything if selected(t)], args


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
    tickets = await listing(server)
    assert [row["id"] for row in rows] == [t["id"] for t in tickets]
    first, ticket = rows[0], tickets[0]
    assert first["client_email"] == ticket["client"]["email"]
    assert first["replies"] == str(len(ticket["replies"]))
    assert first["is_open"] == str(ticket["is_open"]).lower()
    assert first["created_at"] == str(ticket["created_at"])


async def test_json_is_one_array(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--all", "--format", "json", *conn(server))
    assert result.code == 0, result.err
    assert json.loads(result.out) == await listing(server)


async def test_fields_choose_and_order_what_each_format_writes(server: FakeTamioServer) -> None:
    tickets = (await listing(server))[:5]
    fields = ("--fields", "title,id,client")
    jsonl = await run_cli("tickets", "--limit", "5", *fields, *conn(server))
    assert jsonl.code == 0, jsonl.err
    got = [json.loads(line) for line in jsonl.out.splitlines()]
    assert [list(t) for t in got] == [["title", "id", "client"]] * 5
    assert got == [{"title": t["title"], "id": t["id"], "client": t["client"]} for t in tickets]
    flat = await run_cli("tickets", "--limit", "5", "--format", "csv", *fields, *conn(server))
    rows = list(csv.reader(io.StringIO(flat.out)))
    assert rows[0] == ["title", "id", "client_id", "client_name", "client_email"]
    assert [row[1] for row in rows[1:]] == [t["id"] for t in tickets]
    table = await run_cli("tickets", "--limit", "5", "--format", "table", *fields, *conn(server))
    assert table.out.splitlines()[0].split() == ["title", "id", "client"]


async def test_an_unknown_field_is_refused_with_the_names_allowed(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--fields", "id,colour", *conn(server))
    assert result.code == 2
    assert "--fields" in result.err and "'colour'" in result.err
    for name in ("id", "title", "is_open", "client", "replies", "created_at"):
        assert name in result.err
    assert "tamio-async tickets --help" in result.err


async def test_table_streams_rows_with_fixed_columns_and_says_what_it_cut() -> None:
    async with ExportServer(60) as server:
        server.titles[60] = "A" * 100  # the first ticket: too long for its column
        server.titles[59] = "line one\nline two \x1b[31mred"  # control characters
        server.hold(3)
        args = ("tickets", "--all", "--per-page", "10", "--concurrency", "2", "--format", "table")
        async with cli_process(*args, *server.conn()) as proc:
            assert proc.stdout is not None
            # While page 3 is held, pages 1 and 2 are already on stdout: the table streams.
            await server.wait_arrived(3)
            lines = [
                (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
                for _ in range(22)
            ]
            server.release()
            rest, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 0, err
    rows = lines + rest.decode().splitlines(keepends=True)
    assert rows[0].split()[:3] == ["id", "title", "is_open"]
    assert len(rows) == 2 + 60
    title_column = rows[0].index("title")
    assert all(row[title_column - 2 : title_column] == "  " for row in rows)
    assert [row.split()[0] for row in rows[2:]] == server.ids
    first = rows[2][title_column : title_column + 40]
    assert first == "A" * 39 + "\u2026"
    assert "\x1b" not in "".join(rows) and "line one line two" in rows[3]
    assert "1 table cells were cut" in err.decode()


async def test_without_rich_the_table_is_plain_text(server: FakeTamioServer) -> None:
    args = ("tickets", "--limit", "5", "--format", "table", *conn(server))
    result = await run_cli(*args, code=WITHOUT_RICH)
    assert result.code == 0, result.err
    assert [line.split()[0] for line in result.out.splitlines()[2:]] == [
        t["id"] for t in (await listing(server))[:5]
    ]
    assert "┃" not in result.out


# -- paging ---------------------------------------------------------------------------------


async def test_page_and_per_page_give_that_page_in_one_request() -> None:
    async with ExportServer(240) as server:
        result = await run_cli("tickets", "--page", "2", "--per-page", "10", *server.conn())
        assert result.code == 0, result.err
        assert jsonl_ids(result.out) == server.ids[10:20]
        assert server.requests == [2]


async def test_a_page_past_the_end_says_so() -> None:
    async with ExportServer(240) as server:
        result = await run_cli("tickets", "--page", "999", "--per-page", "25", *server.conn())
    assert result.code == 0, result.err
    assert result.out == ""
    assert "page 999 is past the end: the listing has 240 tickets, 10 pages of 25" in result.err
    assert "sequential" not in result.err


async def test_limit_gives_that_many(server: FakeTamioServer) -> None:
    result = await run_cli("tickets", "--limit", "25", "--per-page", "10", *conn(server))
    assert result.code == 0, result.err
    assert jsonl_ids(result.out) == [t["id"] for t in (await listing(server))[:25]]


async def test_a_summary_line_ends_the_run_unless_quiet() -> None:
    async with ExportServer(95) as server:
        loud = await run_cli("tickets", "--all", "--per-page", "10", *server.conn())
        quiet = await run_cli("tickets", "--all", "--per-page", "10", "-q", *server.conn())
    assert loud.code == quiet.code == 0
    line = loud.err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"tamio-async: 95 tickets, 10 pages, 0 retries, 0 throttled, [0-9.]+ s", line
    ), line
    assert quiet.err == ""
    assert jsonl_ids(quiet.out) == server.ids


async def test_max_retries_is_what_a_failing_page_gets() -> None:
    async with ExportServer(30) as server:
        server.fail(1, 503, times=1)
        none = await run_cli("tickets", "--max-retries", "0", *server.conn())
        server.fail(1, 503, times=1)
        one = await run_cli("tickets", "--max-retries", "1", *server.conn())
    assert none.code == 1
    assert "503" in none.err
    assert one.code == 0, one.err
    assert ", 1 retries," in one.err
    assert len(jsonl_ids(one.out)) == 30


async def test_timeout_bounds_each_attempt() -> None:
    async with ExportServer(30) as server:
        server.hold(1)  # never answered
        result = await run_cli("tickets", "--timeout", "0.2", "--max-retries", "0", *server.conn())
    assert result.code == 1
    assert "timed out" in result.err.lower() or "timeout" in result.err.lower()


async def test_rate_limit_spaces_the_requests() -> None:
    async with ExportServer(100) as server:
        args = ("tickets", "--all", "--per-page", "10", "--rate-limit", "20/s")
        result = await run_cli(*args, "--no-adaptive-rate", *server.conn())
        assert result.code == 0, result.err
        arrivals = server.arrival
    assert len(jsonl_ids(result.out)) == 100
    # 11 requests (10 pages and the check after a full last one) at 20/s: at least 0.5 s
    # from first to last. (A lower bound: a slow machine only makes it longer.)
    assert len(arrivals) >= 10
    assert arrivals[-1] - arrivals[0] >= 0.05 * (len(arrivals) - 1) * 0.9


async def test_rate_limit_storage_shares_the_limit_through_redis(redis_server: Any) -> None:
    async with ExportServer(30) as server:
        result = await run_cli(
            "tickets", "--all", "--rate-limit", "100/s", "--rate-limit-storage",
            redis_server.url, "--rate-limit-key", "cli-test", *server.conn(),
        )  # fmt: skip
    assert result.code == 0, result.err
    assert jsonl_ids(result.out) == server.ids


# -- errors ---------------------------------------------------------------------------------


async def test_wrong_key_exits_1_with_one_line_and_no_key(server: FakeTamioServer) -> None:
    wrong = "wrong-key-c4n4ry-1b7d"
    result = await run_cli("tickets", "--base-url", base_url(server.url), "--api-key", wrong)
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "401" in result.err and "which came from the --api-key argument" in result.err
    assert "Traceback" not in result.err
    assert wrong not in result.err + result.out


async def test_a_wrong_key_from_the_environment_says_so(server: FakeTamioServer) -> None:
    wrong = "wrong-key-c4n4ry-2c8e"
    env = cli_env(TAMIO_BASE_URL=base_url(server.url), TAMIO_API_KEY=wrong)
    result = await run_cli("tickets", env=env)
    assert result.code == 1
    assert "which came from the TAMIO_API_KEY environment variable" in result.err
    assert wrong not in result.err + result.out


BAD: list[tuple[list[str], str, str]] = [
    (["--from", "yesterday"], "--from", "ISO 8601"),
    (["--from", "2024-01-01T10:00"], "--from", "needs a timezone, e.g. 2024-01-01T10:00Z"),
    (["--from", "2024-05-02", "--to", "2024-05-01"], "--from", "after --to"),
    (["--to", "-5"], "--to", "1970-01-01"),
    (["--order", "sideways"], "--order", "desc"),
    (["--sort-by", "colour"], "--sort-by", "created_at"),
    (["--teammate-id", "not-a-uuid"], "--teammate-id", "UUID"),
    (["--client-id", "42"], "--client-id", "UUID"),
    (["--per-page", "0"], "--per-page", ">= 1"),
    (["--page", "0"], "--page", ">= 1"),
    (["--limit", "-1"], "--limit", ">= 0"),
    (["--concurrency", "0"], "--concurrency", ">= 1"),
    (["--timeout", "0"], "--timeout", "seconds > 0"),
    (["--max-retries", "many"], "--max-retries", ">= 0"),
    (["--rate-limit", "fast"], "--rate-limit", "600/minute"),
    (["--rate-limit-storage", "http://x"], "--rate-limit-storage", "redis://"),
    (["--rate-limit-key", "k"], "--rate-limit-key", "--rate-limit-storage"),
    (["--format", "xml"], "--format", "jsonl"),
    (["--resume"], "--resume", "-o FILE"),
    (["--resume", "--page", "2", "-o", "x.jsonl"], "--resume", "--page"),
    (["--bogus"], "--bogus", "unrecognized"),
]


@pytest.mark.parametrize(("args", "option", "accepts"), BAD, ids=[" ".join(b[0]) for b in BAD])
async def test_bad_argument_exits_2_naming_the_option_before_any_request(
    args: list[str], option: str, accepts: str
) -> None:
    async with ExportServer(10) as server:
        result = await run_cli("tickets", *args, *server.conn())
        assert server.requests == []
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert option in result.err and accepts in result.err
    assert "(see tamio-async tickets --help)" in result.err
    assert not PYTHON_NAMES.search(result.err), result.err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://example.com/v2", "--allow-insecure-http"),
        ("ftp://example.com/v2", "--base-url"),
        ("https://user:secret@example.com/v2", "--api-key"),
    ],
)
async def test_a_base_url_the_client_refuses_names_the_options(url: str, says: str) -> None:
    result = await run_cli("tickets", "--base-url", url, "--api-key", KEY)
    assert result.code == 2
    assert says in result.err
    assert not PYTHON_NAMES.search(result.err), result.err


async def test_missing_key_exits_2_naming_the_option() -> None:
    result = await run_cli("tickets", "--base-url", "http://127.0.0.1:9/v2")
    assert result.code == 2
    assert "--api-key" in result.err and "TAMIO_API_KEY" in result.err


async def test_no_command_points_to_the_top_level_help() -> None:
    result = await run_cli()
    assert result.code == 2
    assert "(see tamio-async --help)" in result.err


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.254.254.254", 9))
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def test_allow_insecure_http_lets_plain_http_to_another_host_through() -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    async with ExportServer(20, host="0.0.0.0") as server:
        url = f"http://{address}:{server.port}/v2"
        refused = await run_cli("tickets", "--base-url", url, "--api-key", KEY)
        allowed = await run_cli(
            "tickets", "--base-url", url, "--api-key", KEY, "--allow-insecure-http"
        )
    assert refused.code == 2 and "--allow-insecure-http" in refused.err
    assert allowed.code == 0, allowed.err
    assert jsonl_ids(allowed.out) == server.ids


# -- pipes, signals, logs -------------------------------------------------------------------


async def test_a_closed_pipe_ends_quietly_with_status_0() -> None:
    async with ExportServer(3000) as server:
        # `| head -1` as a user types it; pipefail: the status is the CLI's own.
        cli = shlex.join(["python", "-m", "tamio_async", "tickets", "--all", *server.conn()])
        script = f"set -o pipefail; {cli} | head -1"
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", script, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=cli_env(PATH=_path()),
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, err
    assert jsonl_ids(out.decode()) == [ticket_id(3000)]
    assert err.decode() == ""


def _path() -> str:
    import os
    import sys

    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


async def test_sigint_on_a_stream_to_stdout_says_what_was_written() -> None:
    async with ExportServer(200) as server:
        server.hold(4)
        args = ("tickets", "--all", "--per-page", "10", "--concurrency", "2", "-q")
        async with cli_process(*args, *server.conn()) as proc:
            await server.wait_arrived(4)
            proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 130
    ids = jsonl_ids(out.decode())
    # Page 4 is held, so pages 1-3 at most were written; how many depends on whether the
    # CLI had written page 3 when page 4's request arrived (its slot frees first).
    assert ids == server.ids[: len(ids)] and len(ids) in (10, 20, 30)
    assert f"stopped by SIGINT after {len(ids)} tickets" in err.decode()
    assert "-o FILE" in err.decode()


async def test_debug_logs_one_line_per_request_and_never_the_key() -> None:
    async with ExportServer(100) as server:
        result = await run_cli("tickets", "--all", "--per-page", "20", "--debug", *server.conn())
        requests = len(server.requests)
    assert result.code == 0, result.err
    debug = [line for line in result.err.splitlines() if " DEBUG tamio_async" in line]
    assert any("listing http://127.0.0.1" in line for line in debug)
    per_request = [line for line in debug if re.search(r"GET \S+page=\d+\S* -> 200 in", line)]
    assert len(per_request) == requests >= 5
    assert not any("asyncio" in line for line in result.err.splitlines())  # only the library
    assert KEY not in result.out + result.err


# -- serve-fake and demo --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--fault-rate", "2"], "--fault-rate"),
        (["--fault-rate", "nan"], "--fault-rate"),
        (["--latency-ms", "-5"], "--latency-ms"),
        (["--tickets", "-1"], "--tickets"),
        (["--port", "70000"], "--port"),
        (["--api-key", ""], "--api-key"),
    ],
)
async def test_serve_fake_validates_its_options(args: list[str], option: str) -> None:
    result = await run_cli("serve-fake", "--port", "0", *args)
    assert result.code == 2
    assert option in result.err
    assert "(see tamio-async serve-fake --help)" in result.err
    assert "Fake Tamio API at" not in result.out


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
async def test_serve_fake_prints_a_command_that_works_as_printed(host: str) -> None:
    args = ("serve-fake", "--host", host, "--port", "0", "--tickets", "30", "--latency-ms", "0")
    async with cli_process(*args) as proc:
        assert proc.stdout is not None
        printed = ""
        while "Ctrl-C" not in printed:
            line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
            assert line, "serve-fake ended without printing its URL"
            printed += line.decode()
        found = re.search(r"export TAMIO_BASE_URL=(\S+) TAMIO_API_KEY=(\S+)\n\s+(.+)\n", printed)
        assert found is not None, printed
        assert "://127.0.0.1:" in found[1]
        env = cli_env(TAMIO_BASE_URL=found[1], TAMIO_API_KEY=found[2])
        command = shlex.split(found[3])
        client = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        out, err = await asyncio.wait_for(client.communicate(), TIMEOUT)
        assert client.returncode == 0, err
        assert len(out.decode().splitlines()) == 2 + 30  # header, rule, a row per ticket
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert proc.returncode == 130


async def test_serve_fake_on_another_host_prints_the_flag_plain_http_needs() -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    args = ("serve-fake", "--host", address, "--port", "0", "--tickets", "5")
    async with cli_process(*args) as proc:
        assert proc.stdout is not None
        printed = ""
        while "Ctrl-C" not in printed:
            printed += (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        found = re.search(r"export TAMIO_BASE_URL=(\S+) TAMIO_API_KEY=(\S+)\n\s+(.+)\n", printed)
        assert found is not None and address in found[1]
        assert found[3].endswith("--allow-insecure-http")
        env = cli_env(TAMIO_BASE_URL=found[1], TAMIO_API_KEY=found[2])
        client = await asyncio.create_subprocess_exec(
            *shlex.split(found[3]), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(client.communicate(), TIMEOUT)
        assert client.returncode == 0, err
        assert len(out.decode().splitlines()) == 2 + 5
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), TIMEOUT)


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


def test_the_console_script_is_the_packages_main() -> None:
    import tamio_async.cli

    scripts = importlib.metadata.entry_points(group="console_scripts")
    (script,) = (e for e in scripts if e.name == "tamio-async")
    assert script.value == "tamio_async.cli:main"
    assert script.load() is tamio_async.cli.main
