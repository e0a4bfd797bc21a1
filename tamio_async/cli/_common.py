"""What the commands share: the run's context, stderr lines, the client and its listings."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from typing import Any

from tamio_async import (
    DEFAULT_TIMEOUT,
    ListingStats,
    PageStream,
    TamioClient,
    TicketFilters,
)

from ._output import Writer
from ._parser import PROG, UsageError, in_cli_terms
from ._progress import summary

__all__ = ["Context", "finish_note", "listing", "make_client", "say"]


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


def say(line: str) -> None:
    """One line on stderr, after the program's name."""
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def make_client(args: argparse.Namespace) -> TamioClient:
    """The client the options describe; a refused option is a usage error naming it."""
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


def listing(
    client: TamioClient, args: argparse.Namespace, filters: TicketFilters, **paging: Any
) -> PageStream:
    """The listing the options describe."""
    try:  # pages() validates before its first request; ours did already, this is the net
        return client.tickets.pages(per_page=args.per_page, **paging, **filters)
    except (TypeError, ValueError) as exc:
        raise UsageError(in_cli_terms(str(exc)), args.help_for) from None


def finish_note(
    args: argparse.Namespace,
    writer: Writer,
    written: int,
    stats: ListingStats,
    started: float,
    *,
    requests: int = 0,
    extra: str = "",
) -> None:
    """The summary line (unless --quiet), and what the table cut."""
    if args.quiet:
        return
    say(summary(written, stats, time.perf_counter() - started, requests=requests) + extra)
    if writer.cut:
        say(
            f"{writer.cut:,} table cells were cut to their column's width (the columns are "
            "fixed so that rows stream; --format csv or jsonl keep whole values)"
        )
