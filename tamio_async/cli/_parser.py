"""The command line's grammar: every option, what it accepts, and errors in the user's words.

Each value is checked where it is parsed, so a bad one is reported with the option the user
typed (``argument --from: ...``) and what it accepts, never with a Python parameter name; the
few checks the library makes itself (the base URL, the rate-limit store) are translated by
`in_cli_terms`. Every usage error points to the help of the command it belongs to.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import uuid
from collections.abc import Callable
from typing import NoReturn

from tamio_async import DEFAULT_MAX_CONCURRENCY, RateLimit, __version__

from ._output import FORMATS, parse_fields

__all__ = ["PROG", "UsageError", "check", "in_cli_terms", "parser"]

PROG = "tamio-async"
#: 9999-12-31T23:59:59Z, the last instant ISO 8601 can name.
_MAX_TIMESTAMP = 253_402_300_799
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_STORES = ("redis://", "rediss://", "unix://")


class UsageError(Exception):
    """A bad command line: exit 2 with one line that names the option and the help to read."""

    def __init__(self, message: str, command: str = PROG) -> None:
        super().__init__(f"{message} (see {command} --help)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage; we promise one line, and the help has the rest.
        raise UsageError(message, self.prog)


# -- values ---------------------------------------------------------------------------------


def _whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    accepts = f"a whole number >= {minimum}" if maximum is None else f"{minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"needs {accepts}, got {text!r}")
        return value

    return parse


def _number(accepts: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text) if _NUMBER.fullmatch(text.strip()) else math.nan
        if not ok(value):  # nan fails every comparison
            raise argparse.ArgumentTypeError(f"needs {accepts}, got {text!r}")
        return value

    return parse


def _when(upper: bool) -> Callable[[str], int]:
    """ISO 8601 with a timezone, a date (midnight UTC) or unix seconds -> unix seconds."""

    def parse(text: str) -> int:
        candidate = text.strip()
        if _NUMBER.fullmatch(candidate):
            value = float(candidate)
            seconds = math.ceil(value) if upper else math.floor(value)
        else:
            seconds = _iso_seconds(text, upper=upper)
        if not 0 <= seconds <= _MAX_TIMESTAMP:
            raise argparse.ArgumentTypeError(
                f"needs a time between 1970-01-01 and 9999-12-31, got {text!r}"
            )
        return seconds

    return parse


def _iso_seconds(text: str, *, upper: bool) -> int:
    candidate = text.strip()
    # Python 3.10's fromisoformat knows no "Z".
    iso = candidate[:-1] + "+00:00" if candidate.endswith(("Z", "z")) else candidate
    try:
        if len(iso) == 10:
            day = datetime.date.fromisoformat(iso)
            when = datetime.datetime.combine(day, datetime.time(), datetime.timezone.utc)
        else:
            when = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO 8601 with a timezone (2024-01-01T10:00Z, "
            "2024-01-01T10:00+02:00), a date (2024-01-01, midnight UTC) or unix seconds"
        ) from None
    if when.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text} needs a timezone, e.g. {candidate}Z or {candidate}+02:00"
        )
    seconds = when.timestamp()
    return math.ceil(seconds) if upper else math.floor(seconds)


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"needs a UUID, e.g. 770e8400-e29b-41d4-a716-446655440000, got {text!r}"
        ) from None


def _rate(text: str) -> str:
    try:
        RateLimit.parse(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            "needs requests per period, like 600/minute, 50/second, 50/s or 5/2s "
            f"(periods: second, minute, hour, s, m, min, h), got {text!r}"
        ) from None
    return text.strip()


def _store(text: str) -> str:
    if not text.startswith(_STORES):
        raise argparse.ArgumentTypeError(
            f"needs a Redis URL ({', '.join(s + '...' for s in _STORES)}), got {text!r}"
        )
    return text


def _fields(text: str) -> tuple[str, ...]:
    try:
        return parse_fields(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _text(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"needs {what}, got an empty string")
        return text

    return parse


# -- the parser -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    top = _Parser(
        prog=PROG,
        description="Tamio's ticket API from the command line.",
        epilog="Exit status: 0 done, 1 API, network or file error, 2 bad command line, "
        "130 interrupted (Ctrl-C), 143 terminated.",
        allow_abbrev=False,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _Parser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--debug", action="store_true", help="log the library's debug lines on stderr"
    )
    quiet = _Parser(add_help=False, allow_abbrev=False)
    quiet.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar, notes or summary line"
    )
    _tickets(commands.add_parser("tickets", parents=[common, quiet], help="list tickets"))
    _serve_fake(commands.add_parser("serve-fake", parents=[common], help="run a fake Tamio API"))
    _demo(commands.add_parser("demo", parents=[common, quiet], help="bulk-list a fake API"))
    return top


def _tickets(t: argparse.ArgumentParser) -> None:
    env = os.environ.get
    t.description = (
        "One page, or every page (--all) fetched concurrently, streamed to stdout or -o FILE. "
        "An --all export to a file keeps its progress in FILE.progress.json; run the same "
        "command with --resume to continue it."
    )
    t.set_defaults(command="tickets", help_for=t.prog)
    conn = t.add_argument_group("connection")
    conn.add_argument(
        "--base-url", default=env("TAMIO_BASE_URL"), metavar="URL", help="default: $TAMIO_BASE_URL"
    )
    conn.add_argument(
        "--api-key", metavar="KEY", help="default: $TAMIO_API_KEY (never shown, never logged)"
    )
    conn.add_argument(
        "--allow-insecure-http", action="store_true",
        help="allow a plain http:// base URL that is not loopback (the key travels in clear)",
    )  # fmt: skip
    conn.add_argument(
        "--timeout", type=_number("seconds > 0", lambda v: 0 < v < math.inf), metavar="SECONDS",
        help="per attempt (default: 60 total, 10 to connect, 30 between reads)",
    )  # fmt: skip
    conn.add_argument(
        "--max-retries", type=_whole(0), metavar="N", help="retries after the first attempt (3)"
    )
    rate = t.add_argument_group("rate control")
    rate.add_argument(
        "--rate-limit", type=_rate, metavar="RATE", help="never faster than this, e.g. 600/minute"
    )
    rate.add_argument(
        "--adaptive-rate", action=argparse.BooleanOptionalAction, default=True,
        help="learn the rate the server accepts from its throttles (default: on)",
    )  # fmt: skip
    rate.add_argument(
        "--rate-limit-storage", type=_store, metavar="URL",
        help="share the limit and Retry-After pauses through Redis, e.g. redis://host:6379/0",
    )  # fmt: skip
    rate.add_argument(
        "--rate-limit-key", type=_text("a name"), metavar="KEY",
        help="what is shared in the store (default: a hash of the API key)",
    )  # fmt: skip
    what = t.add_argument_group("what to fetch")
    one = what.add_mutually_exclusive_group()
    one.add_argument("--all", action="store_true", help="every page, fetched concurrently")
    one.add_argument("--page", type=_whole(1), metavar="N", help="the one page to fetch (1)")
    what.add_argument(
        "--resume", action="store_true",
        help="continue the --all export to -o FILE that was interrupted (implies --all)",
    )  # fmt: skip
    paging = t.add_argument_group("paging")
    paging.add_argument("--per-page", type=_whole(1), default=100, metavar="N", help="(100)")
    paging.add_argument(
        "--limit", type=_whole(0), metavar="N", help="stop after N tickets (implies --all)"
    )
    paging.add_argument(
        "--concurrency", type=_whole(1), default=DEFAULT_MAX_CONCURRENCY, metavar="N",
        help=f"requests in flight ({DEFAULT_MAX_CONCURRENCY})",
    )  # fmt: skip
    f = t.add_argument_group("filters")
    state = f.add_mutually_exclusive_group()
    state.add_argument("--closed", action="store_const", const=True, help="closed only")
    state.add_argument("--open", dest="closed", action="store_const", const=False, help="open only")
    f.add_argument("--order", choices=("asc", "desc"))
    f.add_argument("--sort-by", choices=("created_at", "title"))
    f.add_argument("--filter", metavar="TEXT", help="search in titles")
    when = "ISO 8601 with a timezone, a date (midnight UTC) or unix seconds"
    f.add_argument("--from", dest="from_", type=_when(upper=False), metavar="WHEN", help=when)
    f.add_argument("--to", type=_when(upper=True), metavar="WHEN", help=when)
    f.add_argument("--teammate-id", type=_uuid, metavar="UUID", help="assigned to this teammate")
    f.add_argument("--client-id", type=_uuid, metavar="UUID", help="opened by this customer")
    out = t.add_argument_group("output")
    out.add_argument("--format", choices=FORMATS, default="jsonl", help="(jsonl)")
    out.add_argument("-o", "--output", metavar="FILE", help="default: stdout")
    out.add_argument(
        "--fields", type=_fields, metavar="A,B",
        help="the ticket fields to write, in this order (default: all; table: id, title, "
        "is_open, category, client, created_at)",
    )  # fmt: skip


def _serve_fake(s: argparse.ArgumentParser) -> None:
    s.description = "A local fake of the Tamio API (plain http), until Ctrl-C."
    s.set_defaults(command="serve-fake", help_for=s.prog)
    s.add_argument("--host", type=_text("a host"), default="127.0.0.1", help="(127.0.0.1)")
    s.add_argument("--port", type=_whole(0, 65535), default=8080, help="(8080); 0 picks a free one")
    s.add_argument(
        "--api-key", type=_text("a key"), default="test-key", help="the key it accepts (test-key)"
    )
    _fake_options(s, tickets=1000)


def _demo(d: argparse.ArgumentParser) -> None:
    d.description = "Every ticket of an embedded fake API, fetched concurrently and verified."
    d.set_defaults(command="demo", help_for=d.prog)
    _fake_options(d, tickets=20_000)
    d.add_argument("--concurrency", type=_whole(1), default=16, help="requests in flight (16)")
    d.add_argument("--per-page", type=_whole(1), default=100, help="(100)")


def _fake_options(parser: argparse.ArgumentParser, *, tickets: int) -> None:
    parser.add_argument("--tickets", type=_whole(0), default=tickets, help=f"({tickets:,})")
    parser.add_argument("--seed", type=_whole(0), default=0, help="data seed (0)")
    parser.add_argument(
        "--latency-ms", type=_number("milliseconds >= 0", lambda v: 0 <= v < math.inf),
        default=20.0, help="per request (20)",
    )  # fmt: skip
    parser.add_argument(
        "--fault-rate", type=_number("a share from 0 to 1", lambda v: 0 <= v <= 1),
        default=0.0, help="share of faulty answers, 0 to 1 (0)",
    )  # fmt: skip


def check(args: argparse.Namespace) -> None:
    """What argparse cannot check alone: options that need or exclude each other."""
    if args.command != "tickets":
        return
    fail = args.help_for
    if args.resume:
        if args.page is not None:
            raise UsageError("--resume continues an --all export; it cannot take --page", fail)
        if args.output in (None, "-"):
            raise UsageError("--resume needs -o FILE: an export to stdout cannot resume", fail)
    if args.rate_limit_key is not None and args.rate_limit_storage is None:
        raise UsageError(
            "--rate-limit-key needs --rate-limit-storage (it names a shared limit)", fail
        )
    if not (args.api_key or os.environ.get("TAMIO_API_KEY")):
        raise UsageError("no API key: pass --api-key or set TAMIO_API_KEY", fail)
    if args.from_ is not None and args.to is not None and args.from_ > args.to:
        raise UsageError("--from must not be after --to", fail)


#: The library's words for what the user typed, where its own check is the one that counts.
_PHRASES = (
    ("pass allow_insecure_http=True", "add --allow-insecure-http"),
    ("pass api_key=... or set", "pass --api-key or set"),
)
_OPTIONS = {
    "base_url": "--base-url", "api_key": "--api-key", "allow_insecure_http":
    "--allow-insecure-http", "max_retries": "--max-retries", "max_concurrency": "--concurrency",
    "max_connections": "--concurrency", "per_page": "--per-page", "start_page": "--page",
    "rate_limit_storage": "--rate-limit-storage", "rate_limit_key": "--rate-limit-key",
    "rate_limit": "--rate-limit", "adaptive_rate": "--adaptive-rate", "from_": "--from",
    "sort_by": "--sort-by", "teammate_id": "--teammate-id", "client_id": "--client-id",
    "fault_rate": "--fault-rate",
}  # fmt: skip
_PARAM = re.compile(rf"\b({'|'.join(sorted(_OPTIONS, key=len, reverse=True))})\b")


def in_cli_terms(message: str) -> str:
    """A library message with its parameter names replaced by the options that set them."""
    for python, cli in _PHRASES:
        message = message.replace(python, cli)
    return _PARAM.sub(lambda m: _OPTIONS[m[1]], message)
