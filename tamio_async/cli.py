"""``tamio-async``: list tickets from the command line, or try the client on a fake API.

::

    tamio-async tickets --all --open --format csv -o open.csv
    tamio-async serve-fake --tickets 5000     # a local fake API to point the client at
    tamio-async demo                          # 20,000 tickets fetched concurrently, verified

Data goes to stdout (or ``-o FILE``); the progress bar (on a terminal only), messages and
errors go to stderr. Exit status: 0 done, 1 API or network error, 2 bad command line,
130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM). rich (the ``cli`` extra) draws
the progress bar and tables; without it everything still works, in plain text. The API key
never appears in any output, message or log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import msgspec

from . import DEFAULT_MAX_CONCURRENCY, PageStream, Progress, TamioClient, TamioError, Ticket
from ._params import TicketFilters
from ._version import __version__

if TYPE_CHECKING:
    from .testing import FakeTamioServer

__all__ = ["main"]

PROG = "tamio-async"
EXIT_API_ERROR, EXIT_USAGE = 1, 2
P = ParamSpec("P")
R = TypeVar("R")
logger: logging.Logger = logging.getLogger("tamio_async.cli")

#: Library parameter -> the option that sets it, so messages name what the user typed.
_OPTIONS = {
    "from_": "--from", "to": "--to", "order": "--order", "sort_by": "--sort-by",
    "filter": "--filter", "closed": "--closed", "teammate_id": "--teammate-id",
    "client_id": "--client-id", "page": "--page", "per_page": "--per-page", "limit": "--limit",
    "max_concurrency": "--concurrency", "base_url": "--base-url", "api_key": "--api-key",
}  # fmt: skip
_PARAM = re.compile(rf"\b({'|'.join(_OPTIONS)})\b(?=[\s=]|$)")
_CSV_COLUMNS = (
    "id", "title", "is_open", "category", "subcategory", "teammate_id", "client_id",
    "client_name", "client_email", "language", "created_at", "updated_at", "replies",
)  # fmt: skip
_TABLE_COLUMNS = ("ID", "Title", "State", "Category", "Client", "Created (UTC)")
#: Pages the demo fetches one at a time to measure the sequential baseline.
_BASELINE_PAGES = 10
_encoder = msgspec.json.Encoder()


class UsageError(Exception):
    """A bad command line: exit 2 with a one-line message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage; we promise one line (and --help has the rest).
        raise UsageError(f"{message} (see {self.prog} --help)")


def _validated(call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call into the library, whose validation is the only one; map its complaint to exit 2."""
    try:
        return call(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(_PARAM.sub(lambda m: _OPTIONS[m[1]], str(exc))) from None


# -- output --------------------------------------------------------------------------------


class _Writer:
    """Writes pages of tickets to a binary stream in one format, flushing page by page."""

    head = tail = b""

    def __init__(self, out: IO[bytes], *, tty: bool) -> None:
        self.out, self.tty = out, tty
        self._put(self.head)

    def write(self, tickets: Sequence[Ticket]) -> None:
        self._put(self.encode(tickets))

    def encode(self, tickets: Sequence[Ticket]) -> bytes:
        raise NotImplementedError

    def close(self, complete: bool) -> None:
        """Finish the document; runs after an interruption too."""
        self._put(self.tail)

    def _put(self, data: bytes) -> None:
        # One write per page: an interrupted run leaves whole lines (and whole CSV rows).
        self.out.write(data)
        self.out.flush()


class _Jsonl(_Writer):
    def encode(self, tickets: Sequence[Ticket]) -> bytes:
        return _encoder.encode_lines(tickets)


class _Json(_Writer):
    # The array is closed even when interrupted, so the file stays valid JSON.
    head, tail = b"[", b"\n]\n"
    _first = True

    def encode(self, tickets: Sequence[Ticket]) -> bytes:
        if not tickets:
            return b""
        lead = b"\n" if self._first else b",\n"
        self._first = False
        return lead + b",\n".join(map(_encoder.encode, tickets))


def _csv(rows: Iterable[Sequence[object]]) -> bytes:
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode()


class _Csv(_Writer):
    head = _csv([_CSV_COLUMNS])

    def encode(self, tickets: Sequence[Ticket]) -> bytes:
        return _csv(_csv_row(t) for t in tickets)


class _Table(_Writer):
    """Column widths depend on every row, so the table is drawn once, at the end."""

    def __init__(self, out: IO[bytes], *, tty: bool) -> None:
        super().__init__(out, tty=tty)
        self._rows: list[tuple[str, ...]] = []

    def write(self, tickets: Sequence[Ticket]) -> None:
        self._rows.extend(_table_row(t) for t in tickets)

    def close(self, complete: bool) -> None:
        if complete:
            self._put(_render_table(self._rows, tty=self.tty).encode())


_FORMATS: dict[str, type[_Writer]] = {"jsonl": _Jsonl, "json": _Json, "csv": _Csv, "table": _Table}


def _csv_row(t: Ticket) -> tuple[object, ...]:
    c = t.client
    is_open = "" if t.is_open is None else str(t.is_open).lower()
    return (
        t.id, t.title, is_open, t.category, t.subcategory, t.teammate_id,
        c and c.id, c and c.name, c and c.email, t.language, t.created_at, t.updated_at,
        len(t.replies or ()),
    )  # fmt: skip


def _table_row(t: Ticket) -> tuple[str, ...]:
    state = "" if t.is_open is None else "open" if t.is_open else "closed"
    created = t.created_datetime
    client = (t.client.name if t.client else None) or ""
    when = created.strftime("%Y-%m-%d %H:%M") if created else ""
    return (t.id, t.title or "", state, t.category or "", client, when)


def _render_table(rows: Sequence[tuple[str, ...]], *, tty: bool) -> str:
    """A rich table when rich is installed, else aligned plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_TABLE_COLUMNS)]
        lines = [_TABLE_COLUMNS, tuple("-" * w for w in widths), *rows]
        return "".join(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n"
            for line in lines
        )
    table = Table(title=f"{len(rows):,} tickets")
    for name in _TABLE_COLUMNS:
        table.add_column(name, no_wrap=name != "Title")
    for row in rows:
        table.add_row(*map(Text, row))  # Text: a title like "[b]" is data, not markup
    buffer = io.StringIO()
    # Off a terminal nothing can be re-flowed later: draw wide enough for whole ids.
    width = shutil.get_terminal_size().columns if tty else 200
    Console(file=buffer, width=width, force_terminal=tty).print(table)
    return buffer.getvalue()


@contextlib.contextmanager
def _open_output(path: str | None) -> Iterator[tuple[IO[bytes], bool]]:
    """The binary stream to write to, and whether it is a terminal."""
    if path is None or path == "-":
        yield sys.stdout.buffer, sys.stdout.isatty()
    else:
        with open(path, "wb") as file:
            yield file, False


class _ProgressBar:
    """Tickets done of total, pages, rate and ETA on stderr; appears at the first page."""

    def __init__(self, limit: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("tickets"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[pages]}"), TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(), console=Console(stderr=True),
        )  # fmt: skip
        self._task = self._bar.add_task("tickets", total=None, pages="", rate="")
        self._limit = limit
        self._started = time.perf_counter()

    def __call__(self, p: Progress) -> None:
        total = p.total_results
        if total is not None and self._limit is not None:
            total = min(total, self._limit)
        elapsed = time.perf_counter() - self._started
        pages = f"{p.pages_done}/{'?' if p.pages_total is None else p.pages_total} pages"
        rate = f"{p.tickets_done / elapsed:,.0f}/s" if elapsed > 0 else ""
        self._bar.start()  # idempotent; starting late keeps a failed setup from drawing
        self._bar.update(self._task, completed=p.tickets_done, total=total, pages=pages, rate=rate)

    def close(self) -> None:
        self._bar.stop()


def _progress_bar(quiet: bool, limit: int | None = None) -> _ProgressBar | None:
    """A bar only for a person watching: stderr is a terminal, no --quiet, rich installed."""
    if quiet or not sys.stderr.isatty():
        return None
    try:
        return _ProgressBar(limit)
    except ImportError:
        return None


# -- commands -------------------------------------------------------------------------------


async def _tickets(args: argparse.Namespace) -> int:
    """``tickets``: one page, or every page, streamed to stdout or ``-o FILE``."""
    filters: TicketFilters = {
        "order": args.order, "sort_by": args.sort_by, "filter": args.filter,
        "from_": args.from_, "to": args.to, "closed": args.closed,
        "teammate_id": args.teammate_id, "client_id": args.client_id,
    }  # fmt: skip
    every_page = args.all or (args.page is None and args.limit is not None)
    start = 1 if args.page is None else args.page
    client = _validated(
        TamioClient,
        api_key=args.api_key or None,
        base_url=args.base_url or None,
        max_concurrency=args.concurrency,
    )
    async with client:
        # No bar for one page, nor when the data itself goes to the terminal: they'd mingle.
        to_terminal = args.output in (None, "-") and sys.stdout.isatty()
        bar = None if not every_page or to_terminal else _progress_bar(args.quiet, args.limit)
        # pages() validates every argument before its first request.
        pages = _validated(
            client.tickets.pages,
            per_page=args.per_page,
            start_page=start,
            end_page=None if every_page else start,
            limit=args.limit,
            on_progress=bar,
            **filters,
        )
        sent = {name: value for name, value in filters.items() if value is not None}
        logger.debug("listing %s with %s", client.base_url, sent)
        async with pages:
            await _write(pages, args.format, args.output, bar)
        logger.debug("done: %s", pages.stats)
    return 0


async def _write(pages: PageStream, fmt: str, path: str | None, bar: _ProgressBar | None) -> None:
    """Write each page as it arrives; the output is opened at the first page, not before."""
    with contextlib.ExitStack() as stack:
        writer: _Writer | None = None
        complete = False
        try:
            async for page in pages:
                if writer is None:
                    out, tty = stack.enter_context(_open_output(path))
                    writer = _FORMATS[fmt](out, tty=tty)
                writer.write(page.tickets)
            complete = True
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close(complete)


async def _demo(args: argparse.Namespace) -> int:
    """``demo``: every ticket of an embedded fake API, fetched concurrently and verified."""
    if not args.quiet:
        print(f"Generating {args.tickets:,} tickets for the embedded fake API...", file=sys.stderr)
    async with _fake_server(args) as server:
        client = _validated(
            TamioClient,
            api_key=server.api_key,
            base_url=server.base_url,
            max_concurrency=args.concurrency,
        )
        async with client:
            bar = _progress_bar(args.quiet)
            pages = _validated(client.tickets.pages, per_page=args.per_page, on_progress=bar)
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
    return 0 if not problems else EXIT_API_ERROR


async def _one_by_one(client: TamioClient, per_page: int, sample: int) -> float:
    """Seconds per page when pages are fetched one request at a time: measured, not assumed."""
    started = time.perf_counter()
    async with client.tickets.pages(per_page=per_page, max_concurrency=1, end_page=sample) as pages:
        async for _ in pages:
            pass
    return (time.perf_counter() - started) / sample


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


async def _serve_fake(args: argparse.Namespace) -> int:
    """``serve-fake``: the fake API on a port, until interrupted."""
    async with _fake_server(args, host=args.host, port=args.port, api_key=args.api_key) as server:
        url, key = server.base_url, server.api_key  # a fake key: printing it is the point
        print(
            f"Fake Tamio API at {url} with {args.tickets:,} tickets, API key {key!r}.\n"
            f"Point the client at it:\n"
            f"    export TAMIO_BASE_URL={url} TAMIO_API_KEY={key}\n"
            f"    {PROG} tickets --all --format table\n"
            f"Ctrl-C stops it.",
            flush=True,
        )
        await asyncio.Event().wait()
    return 0


def _fake_server(args: argparse.Namespace, **options: Any) -> FakeTamioServer:
    """The fake API as the options say (imported late: only these commands need aiohttp.web)."""
    from .testing import FakeTamioServer

    return _validated(
        FakeTamioServer,
        tickets=args.tickets,
        seed=args.seed,
        latency=args.latency_ms / 1000,
        fault_rate=args.fault_rate,
        **options,
    )


# -- plumbing -------------------------------------------------------------------------------


def _time_bound(text: str) -> int | float | str:
    """Unix seconds become numbers; anything else the library parses as ISO 8601."""
    for number in (int, float):
        with contextlib.suppress(ValueError):
            return number(text)
    return text


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = _Parser(prog=PROG, description="Tamio's ticket API from the command line.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="log at DEBUG level on stderr")
    quiet = _Parser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")

    t = commands.add_parser("tickets", parents=[common, quiet], help="list tickets")
    t.set_defaults(run=_tickets)
    conn = t.add_argument_group("connection")
    conn.add_argument("--base-url", default=env("TAMIO_BASE_URL"), help="default: $TAMIO_BASE_URL")
    conn.add_argument("--api-key", default=env("TAMIO_API_KEY"), help="default: $TAMIO_API_KEY")
    what = t.add_argument_group("what to fetch").add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true", help="every page, fetched concurrently")
    what.add_argument("--page", type=int, help="the one page to fetch (default 1)")
    paging = t.add_argument_group("paging")
    paging.add_argument("--per-page", type=int, default=100, metavar="N", help="default 100")
    paging.add_argument(
        "--limit", type=int, metavar="N", help="stop after N tickets (implies --all without --page)"
    )
    paging.add_argument(
        "--concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY, metavar="N",
        help=f"requests in flight (default {DEFAULT_MAX_CONCURRENCY})",
    )  # fmt: skip
    f = t.add_argument_group("filters")
    state = f.add_mutually_exclusive_group()
    state.add_argument("--closed", action="store_const", const=True, help="closed only")
    state.add_argument("--open", dest="closed", action="store_const", const=False, help="open only")
    f.add_argument("--order", help="asc or desc")
    f.add_argument("--sort-by", help="created_at or title")
    f.add_argument("--filter", metavar="TEXT", help="search in titles")
    when = "ISO 8601 (with a zone, or a date) or unix seconds"
    f.add_argument("--from", dest="from_", type=_time_bound, metavar="WHEN", help=when)
    f.add_argument("--to", type=_time_bound, metavar="WHEN", help=when)
    f.add_argument("--teammate-id", metavar="UUID", help="assigned to this teammate")
    f.add_argument("--client-id", metavar="UUID", help="opened by this client")
    out = t.add_argument_group("output")
    out.add_argument("--format", choices=list(_FORMATS), default="jsonl", help="default jsonl")
    out.add_argument("-o", "--output", metavar="FILE", help="default: stdout")

    s = commands.add_parser("serve-fake", parents=[common], help="run a fake Tamio API")
    s.set_defaults(run=_serve_fake)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080, help="default 8080; 0 picks a free one")
    s.add_argument("--api-key", default="test-key", help="the key it accepts (default test-key)")
    _fake_options(s, tickets=1000)

    d = commands.add_parser("demo", parents=[common, quiet], help="bulk-list a fake API")
    d.set_defaults(run=_demo)
    _fake_options(d, tickets=20_000)
    d.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    d.add_argument("--per-page", type=int, default=100, help="default 100")
    return parser


def _fake_options(parser: argparse.ArgumentParser, *, tickets: int) -> None:
    parser.add_argument("--tickets", type=int, default=tickets, help=f"default {tickets:,}")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per request (default 20)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of faulty answers")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to stderr with the key masked, on whatever sys.stderr is now (rich may wrap it)."""

    def __init__(self, secret: str | None) -> None:
        super().__init__()
        self._secret = secret

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)

    def format(self, record: logging.LogRecord) -> str:
        return _redact(super().format(record), self._secret)


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _run(command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    """Run a command; SIGINT/SIGTERM cancel it, so files close and requests stop cleanly."""

    async def guarded() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        received: list[int] = []
        signals = (signal.SIGINT, signal.SIGTERM)

        def on_signal(signum: int) -> None:
            received.append(signum)
            for sig in signals:  # a second signal stops the process the hard way
                loop.remove_signal_handler(sig)
            task.cancel()

        for sig in signals:
            # Cancelling from the loop, never mid-write: unlike KeyboardInterrupt, which may
            # strike anywhere. Windows has no add_signal_handler: Ctrl-C still works there.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await command(args)
        except asyncio.CancelledError:
            if not received:
                raise
            return 128 + received[0]

    return asyncio.run(guarded())


def _fail(message: object, status: int, secret: str | None) -> int:
    text = " ".join(str(message).split())  # one line, whatever the server's message held
    print(f"{PROG}: error: {_redact(text, secret)}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status (the console script exits with it)."""
    secret: str | None = None
    try:
        args = _parser().parse_args(argv)
        secret = getattr(args, "api_key", None) or None
        handler = _StderrHandler(secret)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(
            level="DEBUG" if args.debug else "WARNING", handlers=[handler], force=True
        )
        status = _run(args.run, args)
    except UsageError as exc:
        return _fail(exc, EXIT_USAGE, secret)
    except TamioError as exc:
        exc.hint = None  # it names library arguments (start_page=...), not our options
        return _fail(exc, EXIT_API_ERROR, secret)
    except BrokenPipeError:
        # The reader left (`| head`): stop quietly, and spare Python's complaint at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_API_ERROR
    except OSError as exc:
        return _fail(exc, EXIT_API_ERROR, secret)
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
    except Exception as exc:
        logger.debug("unexpected error", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc} (see --debug)", 1, secret)
    if status > 128:
        print(f"{PROG}: stopped by {signal.Signals(status - 128).name}", file=sys.stderr)
    return status
