"""``serve-fake`` (the fake API on a port) and ``demo`` (a verified bulk listing of it)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import shlex
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tamio_async import Progress, TamioClient
from tamio_async._params import is_loopback  # the client's own rule for plain http

from ._common import Context
from ._parser import UsageError, in_cli_terms
from ._progress import progress_bar

if TYPE_CHECKING:
    from tamio_async.testing import FakeTamioServer

__all__ = ["demo", "serve_fake"]

#: Pages the demo fetches one at a time to measure the sequential baseline.
_BASELINE_PAGES = 10


async def serve_fake(args: argparse.Namespace, ctx: Context) -> int:
    """``serve-fake``: the fake API on a port, until interrupted."""
    async with _fake_server(args, host=args.host, port=args.port, api_key=args.api_key) as server:
        url, wildcard = _client_url(server.url)
        loopback = is_loopback(urllib.parse.urlsplit(url).hostname or "")
        insecure = "" if loopback else " --allow-insecure-http"
        key = server.api_key  # a fake key: printing it is the point
        lines = [
            f"Fake Tamio API at {url} with {args.tickets:,} tickets, API key {key!r}.",
            "Point the client at it:",
            f"    export TAMIO_BASE_URL={shlex.quote(url)} TAMIO_API_KEY={shlex.quote(key)}",
            f"    {ctx.launcher} tickets --all --format table{insecure}",
        ]
        if wildcard:
            lines.append(
                "It listens on every interface: from another machine use this machine's "
                "address instead of the loopback one, with --allow-insecure-http (plain http)."
            )
        print("\n".join([*lines, "Ctrl-C stops it."]), flush=True)
        await asyncio.Event().wait()
    return 0  # pragma: no cover - only a signal ends it


def _client_url(served: str) -> tuple[str, bool]:
    """The base URL to give a client, and whether the server listens on every interface."""
    parts = urllib.parse.urlsplit(served)
    host = parts.hostname or "127.0.0.1"
    base = parts.path.removesuffix("/agency/tickets/list")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    wildcard = address is not None and address.is_unspecified
    if wildcard:  # 0.0.0.0 or :: is where to listen, not an address to connect to
        host = "::1" if address is not None and address.version == 6 else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{parts.port}{base}", wildcard


def _fake_server(args: argparse.Namespace, **options: Any) -> FakeTamioServer:
    """The fake API as the options say (imported late: only these commands need aiohttp.web)."""
    from tamio_async.testing import FakeTamioServer

    try:
        return FakeTamioServer(
            tickets=args.tickets,
            seed=args.seed,
            latency=args.latency_ms / 1000,
            fault_rate=args.fault_rate,
            **options,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(in_cli_terms(str(exc)), args.help_for) from None


async def demo(args: argparse.Namespace, ctx: Context) -> int:
    """``demo``: every ticket of an embedded fake API, fetched concurrently and verified."""
    if not args.quiet:
        print(f"Generating {args.tickets:,} tickets for the embedded fake API...", file=sys.stderr)
    async with _fake_server(args) as server:
        client = TamioClient(
            api_key=server.api_key, base_url=server.base_url, max_concurrency=args.concurrency
        )
        async with client:
            bar = progress_bar(args.quiet)

            def on_progress(progress: Progress) -> None:
                if bar is not None:
                    bar.update(progress, progress.tickets_done)

            pages = client.tickets.pages(per_page=args.per_page, on_progress=on_progress)
            started = time.perf_counter()
            try:
                async with pages:
                    ids = [ticket.id async for page in pages for ticket in page.tickets]
            finally:
                if bar is not None:
                    bar.close()
            wall = time.perf_counter() - started
            sample = min(_BASELINE_PAGES, pages.stats.pages_fetched)
            per_page = await _one_by_one(client, args.per_page, sample)
        problems = _verify(ids, [ticket["id"] for ticket in server.expected()])
    count, page_count = len(ids), pages.stats.pages_fetched
    sequential = per_page * page_count
    verdict = "verified: all present, in order, no duplicates" if not problems else "FAILED"
    rows = [
        ("Tickets", f"{count:,} ({verdict})"),
        ("Pages", f"{page_count:,} ({args.per_page} per page), {args.concurrency} in flight"),
        ("Wall time", f"{wall:.2f} s"),
        ("Throughput", f"{count / wall:,.0f} tickets/s"),
        ("Retries", f"{pages.stats.retries:,}"),
        ("One by one", f"{sequential:.2f} s (extrapolated*)"),
        ("Speed-up", f"{sequential / wall:.1f}x"),
    ]
    note = (
        f"* {sample} pages fetched one at a time by the same client: "
        f"{per_page * 1000:.1f} ms each, x {page_count:,} pages"
    )
    _print_panel("tamio-async demo", rows, [*problems, note], ok=not problems)
    return 0 if not problems else 1


async def _one_by_one(client: TamioClient, per_page: int, sample: int) -> float:
    """Seconds per page when pages are fetched one request at a time: measured, not assumed."""
    started = time.perf_counter()
    async with client.tickets.pages(per_page=per_page, max_concurrency=1, end_page=sample) as pages:
        async for _ in pages:
            pass
    return (time.perf_counter() - started) / max(sample, 1)


def _verify(got: list[str], expected: list[str]) -> list[str]:
    """What is wrong with the fetched ids, compared with the server's listing."""
    checks = [
        (len(got) == len(expected), f"got {len(got):,} tickets, the server has {len(expected):,}"),
        (len(set(got)) == len(got), f"{len(got) - len(set(got)):,} duplicate tickets"),
        (got == expected, "tickets not in the server's order"),
    ]
    return [problem for ok, problem in checks if not ok]


def _print_panel(title: str, rows: Sequence[tuple[str, str]], notes: list[str], ok: bool) -> None:
    try:
        from rich.console import Console
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        width = max(len(label) for label, _ in rows)
        print("\n".join([title, *(f"  {lab:<{width}}  {val}" for lab, val in rows), *notes]))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in rows:
        grid.add_row(label, Text(value))
    console = Console()
    console.print(Panel(grid, title=title, border_style="green" if ok else "red", expand=False))
    for line in notes:
        console.print(Text(line, style="" if ok else "red"))
