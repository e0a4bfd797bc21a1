"""What a listing reports about itself: live counters and progress (plain values, no logic).

It sits at the bottom of the house so that `IncompleteListingError` can carry the stats of
the listing that raised it without the error tree importing the page engine.
"""

from __future__ import annotations

import dataclasses

__all__ = ["ListingStats", "Progress"]


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a listing stands, passed to ``on_progress`` after each page."""

    pages_done: int
    pages_total: int | None
    tickets_done: int
    total_results: int | None


@dataclasses.dataclass
class ListingStats:
    """Live counters of one listing; readable during and after iteration."""

    #: Page requests answered (retries of one page count once).
    pages_fetched: int = 0
    tickets_yielded: int = 0
    #: Tickets not yielded because their id was already yielded (or repeated within a page).
    duplicates_dropped: int = 0
    #: Tickets not yielded because ``limit`` was reached.
    limit_dropped: int = 0
    retries: int = 0
    #: Answers that asked us to slow down (429, or a Retry-After); their retries count above.
    throttled: int = 0
    first_total_results: int | None = None
    last_total_results: int | None = None
    #: Pages of data the first page planned (the check page after a full last page excluded).
    pages_planned: int | None = None
    #: Pages fetched beyond the plan: repairs of gaps that drift or the server left, and pages
    #: read past a ``total_results`` that turned out too low.
    extra_pages: int = 0
    #: Rounds of repair after the planned pages were in.
    repair_rounds: int = 0
    drift_detected: bool = False
    sequential: bool = False
    #: The page size the server actually uses (it may cap or ignore ``per_page``).
    page_size: int | None = None
    #: The most page requests this listing may send (see README, "The listing contract").
    request_budget: int | None = None
    #: Pages asked together with the first page (``speculative_pages``), before its total
    #: was known, that the listing turned out not to need: requests past its end.
    speculative_unused: int = 0

    def note_retry(self) -> None:
        """Count one retry (the client calls this from its retry hook)."""
        self.retries += 1

    def note_throttle(self) -> None:
        """Count one throttle (the client calls this when the server asks to slow down)."""
        self.throttled += 1
