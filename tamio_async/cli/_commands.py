"""The commands: ``tickets`` (a page, a stream, a resumable export), ``serve-fake``, ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import math
import os
import shlex
import signal
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from tamio_async import (
    DEFAULT_TIMEOUT,
    ListingStats,
    PageStream,
    Progress,
    TamioClient,
    TamioError,
    Ticket,
    TicketFilters,
    TicketList,
)

from ._output import Writer, writer_for
from ._parser import PROG, UsageError, in_cli_terms
from ._progress import Bar, progress_bar, summary
from ._resume import COMMIT_INTERVAL, Checkpoint, ExportFiles, Stretch, resume_start

if TYPE_CHECKING:
    from tamio_async.testing import FakeTamioServer

__all__ = ["COMMANDS", "Context"]

logger = logging.getLogger("tamio_async.cli")
#: Pages the demo fetches one at a time to measure the sequential baseline.
_BASELINE_PAGES = 10


@dataclasses.dataclass
class Context:
    """What a command knows of its run beyond its options."""

    #: The arguments as typed, and how the program was started (for the resume command).
    argv: list[str]
    launcher: str = PROG
    #: The signal that stopped the run, once one did.
    signal: int | None = None
    #: The command already said how it stopped (main adds nothing).
    reported: bool = False
    #: Lines for stderr after an error's own line (what was written, how to resume).
    after_error: list[str] = dataclasses.field(default_factory=list)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else "a signal"


def _say(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


# -- tickets --------------------------------------------------------------------------------


async def tickets(args: argparse.Namespace, ctx: Context) -> int:
    """``tickets``: one page, or every page to stdout, or an export to a file that resumes."""
    filters: TicketFilters = {
        "order": args.order, "sort_by": args.sort_by, "filter": args.filter,
        "from_": args.from_, "to": args.to, "closed": args.closed,
        "teammate_id": args.teammate_id, "client_id": args.client_id,
    }  # fmt: skip
    client = _client(args)
    async with client:
        sent = {name: value for name, value in filters.items() if value is not None}
        logger.debug("listing %s with %s", client.base_url, sent)
        if not (args.all or args.resume or args.limit is not None):
            return await _one_page(client, args, filters)
        if args.output in (None, "-") or not _is_file_or_absent(args.output):
            if args.resume:  # /dev/stdout, a pipe: nothing to cut back or to lock
                raise UsageError(f"--resume needs a regular file, not {args.output}", args.help_for)
            return await _stream_all(client, args, filters, ctx)
        return await _FileExport(client, args, filters, ctx).run()


def _is_file_or_absent(path: str) -> bool:
    return not os.path.exists(path) or os.path.isfile(path)


def _client(args: argparse.Namespace) -> TamioClient:
    try:
        return TamioClient(
            api_key=args.api_key,  # None: the library reads TAMIO_API_KEY, and says so on a 401
            base_url=args.base_url or None,
            allow_insecure_http=args.allow_insecure_http,
            timeout=DEFAULT_TIMEOUT if args.timeout is None else args.timeout,
            max_retries=args.max_retries,
            max_concurrency=args.concurrency,
            rate_limit=args.rate_limit,
            adaptive_rate=args.adaptive_rate,
            rate_limit_storage=args.rate_limit_storage,
            rate_limit_key=args.rate_limit_key,
        )
    except (TypeError, ValueError, ImportError) as exc:
        raise UsageError(in_cli_terms(str(exc)), args.help_for) from None


def _pages(
    client: TamioClient, args: argparse.Namespace, filters: TicketFilters, **paging: Any
) -> PageStream:
    try:  # pages() validates before its first request; ours did already, this is the net
        return client.tickets.pages(per_page=args.per_page, **paging, **filters)
    except (TypeError, ValueError) as exc:
        raise UsageError(in_cli_terms(str(exc)), args.help_for) from None


class _Output:
    """The output of a run that cannot resume (stdout, or one page to a file)."""

    def __init__(self, path: str | None, writer: Writer) -> None:
        self.path, self.writer = path, writer
        self._stack = contextlib.ExitStack()
        self._out: IO[bytes] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.path in (None, "-") and sys.stdout.isatty()

    def write(self, tickets: Sequence[Ticket]) -> None:
        self._put(self.writer.encode(tickets))

    def close(self, *, complete: bool) -> None:
        """End the document, even after an interruption; an error before any data: nothing."""
        if self._out is not None or complete:
            self._put(self.writer.footer)
        self._stack.close()

    def _put(self, data: bytes) -> None:
        if self._out is None:  # opened at the first page: an early error leaves files alone
            if self.path in (None, "-"):
                self._out = sys.stdout.buffer
            else:
                self._out = self._stack.enter_context(open(self.path, "wb"))  # noqa: SIM115
            self._out.write(self.writer.header)
        # One write and flush per page: an interrupted run leaves whole lines.
        self._out.write(data)
        self._out.flush()


async def _one_page(client: TamioClient, args: argparse.Namespace, filters: TicketFilters) -> int:
    number = args.page or 1
    output = _Output(args.output, writer_for(args.format, args.fields))
    started = time.perf_counter()
    pages = _pages(client, args, filters, start_page=number, end_page=number)
    complete = False
    try:
        async with pages:
            async for page in pages:
                output.write(page.tickets)
        complete = True
    finally:
        output.close(complete=complete)
    stats = pages.stats
    total, size = stats.first_total_results, stats.page_size or args.per_page
    if stats.tickets_yielded == 0 and total is not None and (number - 1) * size >= total > 0:
        last = math.ceil(total / size)
        _say(
            f"page {number:,} is past the end: the listing has {total:,} tickets, "
            f"{last:,} page{'s' if last > 1 else ''} of {size:,}"
        )
    _finish_note(args, output.writer, stats.tickets_yielded, stats, started)
    return 0


async def _stream_all(
    client: TamioClient, args: argparse.Namespace, filters: TicketFilters, ctx: Context
) -> int:
    output = _Output(args.output, writer_for(args.format, args.fields))
    bar = None if output.is_terminal else progress_bar(args.quiet, args.limit)

    def on_progress(progress: Progress) -> None:
        if bar is not None:
            bar.update(progress, progress.tickets_done)

    started = time.perf_counter()
    pages = _pages(client, args, filters, limit=args.limit, on_progress=on_progress)
    complete = False
    try:
        async with pages:
            async for page in pages:
                output.write(page.tickets)
        complete = True
    except asyncio.CancelledError:
        if bar is not None:
            bar.close()
            bar = None
        if ctx.signal is not None:
            _say(
                f"stopped by {ctx.signal_name} after {output.writer.written:,} tickets "
                "(an export to stdout cannot resume; one to -o FILE can)"
            )
            ctx.reported = True
        raise
    finally:
        if bar is not None:
            bar.close()
        output.close(complete=complete)
    _finish_note(args, output.writer, output.writer.written, pages.stats, started)
    return 0


def _finish_note(
    args: argparse.Namespace,
    writer: Writer,
    written: int,
    stats: ListingStats,
    started: float,
    *,
    requests: int = 0,
    extra: str = "",
) -> None:
    if args.quiet:
        return
    _say(summary(written, stats, time.perf_counter() - started, requests=requests) + extra)
    if writer.cut:
        _say(
            f"{writer.cut:,} table cells were cut to their column's width (the columns are "
            "fixed so that rows stream; --format csv or jsonl keep whole values)"
        )


class _FileExport:
    """``tickets --all -o FILE``: written page by page, resumable (see `._resume`)."""

    def __init__(
        self, client: TamioClient, args: argparse.Namespace, filters: TicketFilters, ctx: Context
    ) -> None:
        self.client, self.args, self.filters, self.ctx = client, args, filters, ctx
        self.files = ExportFiles(args.output)
        self.command = _command(args, client.base_url, filters)
        self.resume, self.key_left_out = _resume_command(ctx)
        self.checkpoint = Checkpoint(command=self.command, resume=self.resume)
        self.fresh = True
        self.seen: dict[str, bool] = {}  # ids written -> written by a consistent stretch
        self.writer = writer_for(args.format, args.fields)
        self.stretch = Stretch(1)
        self.progress: Progress | None = None
        self.bar: Bar | None = None
        self.asked = 0  # requests of the resume check
        self.before = 0  # tickets the file held when this run started
        self.stats = ListingStats()  # the listing's, once it started
        self.last_commit = -math.inf

    async def run(self) -> int:
        self._prepare()
        started = time.perf_counter()
        self.bar = progress_bar(self.args.quiet, self.args.limit)
        try:
            if self._room() != 0:
                await self._listing()
        except BaseException as exc:
            self._close_bar()
            self._stopped(exc, self.stats, started)
            raise
        stats = self.stats
        self._close_bar()
        if not self.files.is_open:
            self._open()  # an empty listing still makes a well-formed, empty file
        self.files.finish(self.writer.footer)
        resumed = "" if self.fresh else f" ({len(self.seen):,} in {self.args.output})"
        _finish_note(
            self.args, self.writer, len(self.seen) - self.before, stats,
            started, requests=self.asked, extra=resumed,
        )  # fmt: skip
        return 0

    def _prepare(self) -> None:
        """Start over, or pick up the checkpoint of the same export (``--resume``)."""
        args, files = self.args, self.files
        previous = files.load()
        if not args.resume:
            if previous is not None:
                self._note(
                    f"{args.output} held an unfinished export ({previous.tickets:,} tickets): "
                    "starting over (--resume continues one)"
                )
            return
        if previous is None:
            if os.path.exists(args.output) and os.path.getsize(args.output) > 0:
                raise UsageError(
                    f"nothing to resume: {args.output} exists but {files.progress} does not "
                    "(the export finished, or another program wrote the file); drop --resume "
                    "to export again",
                    args.help_for,
                )
            self._note(f"nothing to resume at {args.output}: starting the export")
            return
        if previous.command != self.command:
            raise UsageError(
                f"{files.progress} belongs to another export: "
                f"{'; '.join(_differences(previous.command, self.command))}. Resume with the "
                "options it was started with, or drop --resume to start over",
                args.help_for,
            )
        self.seen = files.written(previous)
        self.before = len(self.seen)
        previous.resume = self.resume
        self.checkpoint, self.fresh = previous, False
        self.writer = writer_for(args.format, args.fields, written=previous.tickets)

    async def _listing(self) -> None:
        checkpoint, args = self.checkpoint, self.args
        start, probe_total = 1, None
        if self.seen and checkpoint.next_page > 1:
            start, probe_total, self.asked = await resume_start(
                self.client,
                checkpoint.next_page,
                self.seen,
                per_page=args.per_page,
                filters=self.filters,
            )
            logger.debug("resuming at page %d (checkpoint: page %d)", start, checkpoint.next_page)
        self.stretch = Stretch(start, probe_total=probe_total)
        # The library's limit counts what it yields; after a resume some of that is dropped
        # here as already written, so the limit is then kept here alone.
        pages = _pages(
            self.client, args, self.filters, start_page=start,
            limit=None if self.seen else args.limit, on_progress=self._on_progress,
        )  # fmt: skip
        self.stats = pages.stats
        async with pages:
            async for page in pages:
                self._page(page, pages.stats)
                if self._room() == 0:
                    break

    def _on_progress(self, progress: Progress) -> None:
        self.stretch.on_progress(progress)
        self.progress = progress

    def _room(self) -> int | None:
        limit = self.args.limit
        return None if limit is None else max(limit - len(self.seen), 0)

    def _page(self, page: TicketList, stats: ListingStats) -> None:
        """Write what the page brings that is not written yet; commit now and then."""
        if not self.files.is_open:
            self._open()
        seen = self.seen
        fresh = [ticket for ticket in page.tickets if ticket.id not in seen]
        room = self._room()
        whole = room is None or len(fresh) <= room
        if not whole:
            fresh = fresh[:room]
        consistent = self.stretch.extend(stats, len(page.tickets), whole=whole)
        flag = "p" if consistent else "x"
        journal = [flag + ticket.id for ticket in fresh]
        for ticket in fresh:
            seen[ticket.id] = consistent
        if consistent:  # written before, by a run that was not consistent there: now known
            for ticket in page.tickets:
                if not seen[ticket.id]:
                    seen[ticket.id] = True
                    journal.append("p" + ticket.id)
        self.files.append(self.writer.encode(fresh), journal)
        if self.bar is not None and self.progress is not None:
            self.bar.update(self.progress, len(seen))
        if time.monotonic() - self.last_commit >= COMMIT_INTERVAL:
            self._commit(stats)

    def _open(self) -> None:
        self.files.open(self.checkpoint, fresh=self.fresh)
        if self.files.output_bytes == 0:
            self.files.append(self.writer.header, ())

    def _commit(self, stats: ListingStats) -> None:
        checkpoint = self.checkpoint
        checkpoint.tickets = len(self.seen)
        checkpoint.next_page = self.stretch.next_page
        checkpoint.page_size = stats.page_size
        checkpoint.total_results = stats.last_total_results
        self.files.commit(checkpoint)
        self.last_commit = time.monotonic()

    def _stopped(self, exc: BaseException, stats: ListingStats, started: float) -> None:
        """Commit what is whole, close the output well formed, say how to go on."""
        # A CancelledError (a signal) or a TamioError comes out of an await, never from the
        # middle of writing a page: what was appended is whole and can be committed. Anything
        # else (a second Ctrl-C, a full disk) may have struck mid-page: the last commit stands.
        clean = isinstance(exc, (asyncio.CancelledError, TamioError))
        opened = self.files.is_open
        if opened:
            if clean:
                self._commit(stats)
            self.files.close(self.writer.footer)
        if not opened and self.fresh:
            return  # nothing written, no progress file: there is nothing to resume
        where = f"{self.args.output} holds {self.checkpoint.tickets:,} tickets"
        how = f"resume with: {self.resume}"
        if self.key_left_out:
            how += " (and your --api-key: it is never printed)"
        if isinstance(exc, asyncio.CancelledError):
            if self.ctx.signal is None:
                return
            if not self.args.quiet:
                took = time.perf_counter() - started
                _say(summary(len(self.seen) - self.before, stats, took, requests=self.asked))
            _say(f"stopped by {self.ctx.signal_name}: {where}; {how}")
            self.ctx.reported = True
        else:
            self.ctx.after_error.append(f"{where}; {how}")

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _note(self, message: str) -> None:
        if not self.args.quiet:
            _say(message)


def _command(args: argparse.Namespace, base_url: str, filters: TicketFilters) -> dict[str, Any]:
    """What makes two runs the same export (what a resume must match); never the key."""
    return {
        "base_url": base_url,
        "per_page": args.per_page,
        "limit": args.limit,
        "format": args.format,
        "fields": list(args.fields) if args.fields else None,
        "filters": {name: value for name, value in filters.items() if value is not None},
    }


_OPTION_OF = {
    "base_url": "--base-url", "per_page": "--per-page", "limit": "--limit", "format": "--format",
    "fields": "--fields", "order": "--order", "sort_by": "--sort-by", "filter": "--filter",
    "from_": "--from", "to": "--to", "closed": "--closed/--open",
    "teammate_id": "--teammate-id", "client_id": "--client-id",
}  # fmt: skip


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    def flat(command: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in command.items() if k != "filters"}
        return {**rest, **command.get("filters", {})}

    def shown(name: str, value: object) -> str:
        if value is None:
            return "not given"
        if name == "closed":
            return "--closed" if value else "--open"
        if isinstance(value, list):
            return ",".join(map(str, value))
        return repr(value) if isinstance(value, str) else str(value)

    before, now = flat(old), flat(new)
    return [
        f"{_OPTION_OF.get(name, name)} was {shown(name, before.get(name))}, "
        f"now {shown(name, now.get(name))}"
        for name in sorted(set(before) | set(now))
        if before.get(name) != now.get(name)
    ] or ["the progress file was written by another version"]


def _resume_command(ctx: Context) -> tuple[str, bool]:
    """The command that resumes this run (``--api-key`` left out: never printed)."""
    words: list[str] = []
    left_out = skip = False
    for word in ctx.argv:
        if skip:
            skip = False
        elif word == "--api-key":
            skip = left_out = True
        elif word.startswith("--api-key="):
            left_out = True
        elif word != "--resume":
            words.append(word)
    return f"{ctx.launcher} {shlex.join([*words, '--resume'])}", left_out


# -- serve-fake and demo --------------------------------------------------------------------


async def serve_fake(args: argparse.Namespace, ctx: Context) -> int:
    """``serve-fake``: the fake API on a port, until interrupted."""
    async with _fake_server(args, host=args.host, port=args.port, api_key=args.api_key) as server:
        url, wildcard = _client_url(server.url)
        loopback = _is_loopback(urllib.parse.urlsplit(url).hostname or "")
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


def _is_loopback(host: str) -> bool:
    """TamioClient's rule: plain http is accepted for localhost and loopback addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


Command = Callable[[argparse.Namespace, Context], Awaitable[int]]
COMMANDS: dict[str, Command] = {"tickets": tickets, "serve-fake": serve_fake, "demo": demo}
