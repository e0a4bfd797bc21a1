"""``tickets --all -o FILE``: the export that resumes (the protocol is in `._resume`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shlex
import time
from typing import Any

from tamio_async import ListingStats, Progress, TamioClient, TamioError, TicketFilters, TicketList

from ._common import Context, finish_note, listing, say
from ._output import writer_for
from ._parser import UsageError
from ._progress import Bar, progress_bar, summary
from ._resume import COMMIT_INTERVAL, Checkpoint, ExportFiles, Stretch, resume_start

__all__ = ["FileExport"]

logger = logging.getLogger("tamio_async.cli")


class FileExport:
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
        finish_note(
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
        pages = listing(
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
                say(summary(len(self.seen) - self.before, stats, took, requests=self.asked))
            say(f"stopped by {self.ctx.signal_name}: {where}; {how}")
            self.ctx.reported = True
        else:
            self.ctx.after_error.append(f"{where}; {how}")

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _note(self, message: str) -> None:
        if not self.args.quiet:
            say(message)


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
