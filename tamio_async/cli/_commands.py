"""``tickets``: one page, every page to stdout, or an export to a file; and the command table."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import IO

from tamio_async import Progress, TamioClient, Ticket, TicketFilters

from ._common import Context, finish_note, listing, make_client, say
from ._export import FileExport
from ._fake import demo, serve_fake
from ._output import Writer, writer_for
from ._parser import UsageError
from ._progress import progress_bar

__all__ = ["COMMANDS", "Command"]

logger = logging.getLogger("tamio_async.cli")


async def tickets(args: argparse.Namespace, ctx: Context) -> int:
    """``tickets``: one page, or every page to stdout, or an export to a file that resumes."""
    filters: TicketFilters = {
        "order": args.order, "sort_by": args.sort_by, "filter": args.filter,
        "from_": args.from_, "to": args.to, "closed": args.closed,
        "teammate_id": args.teammate_id, "client_id": args.client_id,
    }  # fmt: skip
    client = make_client(args)
    async with client:
        sent = {name: value for name, value in filters.items() if value is not None}
        logger.debug("listing %s with %s", client.base_url, sent)
        if not (args.all or args.resume or args.limit is not None):
            return await _one_page(client, args, filters)
        if args.output in (None, "-") or not _is_file_or_absent(args.output):
            if args.resume:  # /dev/stdout, a pipe: nothing to cut back or to lock
                raise UsageError(f"--resume needs a regular file, not {args.output}", args.help_for)
            return await _stream_all(client, args, filters, ctx)
        return await FileExport(client, args, filters, ctx).run()


def _is_file_or_absent(path: str) -> bool:
    return not os.path.exists(path) or os.path.isfile(path)


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
    pages = listing(client, args, filters, start_page=number, end_page=number)
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
        say(
            f"page {number:,} is past the end: the listing has {total:,} tickets, "
            f"{last:,} page{'s' if last > 1 else ''} of {size:,}"
        )
    finish_note(args, output.writer, stats.tickets_yielded, stats, started)
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
    pages = listing(client, args, filters, limit=args.limit, on_progress=on_progress)
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
            say(
                f"stopped by {ctx.signal_name} after {output.writer.written:,} tickets "
                "(an export to stdout cannot resume; one to -o FILE can)"
            )
            ctx.reported = True
        raise
    finally:
        if bar is not None:
            bar.close()
        output.close(complete=complete)
    finish_note(args, output.writer, output.writer.written, pages.stats, started)
    return 0


Command = Callable[[argparse.Namespace, Context], Awaitable[int]]
COMMANDS: dict[str, Command] = {"tickets": tickets, "serve-fake": serve_fake, "demo": demo}
