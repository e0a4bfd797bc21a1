"""What a person watching sees on stderr: the progress bar while it runs, one line at the end."""

from __future__ import annotations

import sys
import time

from tamio_async import ListingStats, Progress

__all__ = ["Bar", "progress_bar", "summary"]


class Bar:
    """Tickets written of total, pages, rate and ETA; drawn by rich, from the first page on."""

    def __init__(self, limit: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("tickets"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[pages]}"), TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(), console=Console(stderr=True),
        )  # fmt: skip
        self._task = self._bar.add_task("tickets", total=None, pages="", rate="")
        self._limit = limit
        self._started = time.perf_counter()
        self._base: int | None = None

    def update(self, progress: Progress, written: int) -> None:
        """Show ``written`` tickets (a resumed export counts what the file held before)."""
        total = progress.total_results
        if total is not None and self._limit is not None:
            total = min(total, self._limit)
        if self._base is None:
            self._base = written - progress.tickets_done  # the rate counts this run only
        elapsed = time.perf_counter() - self._started
        done = "?" if progress.pages_total is None else progress.pages_total
        rate = f"{(written - self._base) / elapsed:,.0f}/s" if elapsed > 0 else ""
        self._bar.start()  # idempotent; starting late keeps a failed setup from drawing
        self._bar.update(
            self._task,
            completed=written,
            total=total,
            pages=f"{progress.pages_done}/{done} pages",
            rate=rate,
        )

    def close(self) -> None:
        """Remove the bar (the summary line replaces it)."""
        self._bar.stop()


def progress_bar(quiet: bool, limit: int | None = None) -> Bar | None:
    """A bar only for a person watching: stderr is a terminal, no --quiet, rich installed."""
    if quiet or not sys.stderr.isatty():
        return None
    try:
        return Bar(limit)
    except ImportError:
        return None


def summary(written: int, stats: ListingStats, seconds: float, *, requests: int = 0) -> str:
    """``240 tickets, 10 pages, 0 retries, 0 throttled, 0.31 s``: what the run did."""
    pages = stats.pages_fetched + requests
    return (
        f"{written:,} tickets, {pages:,} page{'' if pages == 1 else 's'}, "
        f"{stats.retries:,} retries, {stats.throttled:,} throttled, {seconds:.2f} s"
    )
