"""The progress bar and the summary line of the command line (in process)."""

from __future__ import annotations

import pytest

from tamio_async import ListingStats, Progress
from tamio_async.cli import _progress


def test_the_summary_counts_tickets_pages_retries_throttles_and_time() -> None:
    stats = ListingStats(pages_fetched=13, retries=2, throttled=1)
    line = _progress.summary(1234, stats, 1.234, requests=1)
    assert line == "1,234 tickets, 14 pages, 2 retries, 1 throttled, 1.23 s"
    assert _progress.summary(5, ListingStats(pages_fetched=1), 0.0) == (
        "5 tickets, 1 page, 0 retries, 0 throttled, 0.00 s"
    )


def test_no_bar_unless_a_person_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert _progress.progress_bar(quiet=False) is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert _progress.progress_bar(quiet=True) is None
    bar = _progress.progress_bar(quiet=False)
    assert isinstance(bar, _progress.Bar)
    bar.close()


def test_the_bar_shows_what_the_file_holds_of_the_total_or_the_limit() -> None:
    bar = _progress.Bar(limit=150)
    try:
        # A resumed export: the file held 100 before, this run brought 20 of them.
        bar.update(Progress(pages_done=2, pages_total=30, tickets_done=20, total_results=300), 120)
        (task,) = bar._bar.tasks
        assert (task.completed, task.total) == (120, 150)
        assert task.fields["pages"] == "2/30 pages"
    finally:
        bar.close()
