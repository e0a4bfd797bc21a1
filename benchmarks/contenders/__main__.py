"""Run one contender once in this fresh process; print what it measured as one JSON line.

    python -m benchmarks.contenders <name> '<json: Options fields + "warmup_url">'

Order: import the contender (then read "RSS after imports"), warm up on a small listing
(connections, decoders and code paths; the warm-up's own memory is part of the delta),
then time one full listing. The result's ids are checksummed after the clock stops;
streaming contenders checksum while they stream, since they keep no tickets.

Two more options, for the quota scenario's processes that share one limit: ``"barrier":
true`` prints ``{"ready": true}`` after the warm-up and waits for a line on stdin before the
timed listing (so N processes start together); ``"report_ids": true`` adds the ids, in order,
to the report (the runner checks the union of the shards). ``started_at``/``ended_at`` are
``time.monotonic()``, one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks._checksum import format_crc, ids_checksum
from benchmarks.contenders import CONTENDERS, Listing, Options, Tally

Contender = Callable[[Options], Coroutine[Any, Any, Any]]


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ticket_id(ticket: Any) -> str:
    return ticket["id"] if isinstance(ticket, dict) else ticket.id  # type: ignore[no-any-return]


async def _timed(contender: Contender, options: Options) -> tuple[float, float, float, Any]:
    started_at = time.monotonic()
    cpu, start = _cpu_s(), time.perf_counter()
    result = await contender(options)
    return time.perf_counter() - start, _cpu_s() - cpu, started_at, result


def _warmup_options(options: Options, warmup_url: str) -> Options:
    """The warm-up listing: the whole (small) warm-up dataset, on a limit of its own."""
    key = options.rate_limit_key
    return dataclasses.replace(
        options,
        base_url=warmup_url,
        start_page=1,
        end_page=None,
        rate_limit_key=None if key is None else f"{key}-warmup",
    )


def main(argv: list[str]) -> int:
    name, raw = argv
    fields = json.loads(raw)
    warmup_url = fields.pop("warmup_url")
    barrier = fields.pop("barrier", False)
    report_ids = fields.pop("report_ids", False)
    options = Options(**fields)
    module_name, function = CONTENDERS[name]
    contender: Contender = getattr(importlib.import_module(module_name), function)
    rss_after_imports = _maxrss_mb()

    asyncio.run(contender(_warmup_options(options, warmup_url)))
    rss_before_run = _maxrss_mb()
    if barrier:
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.readline()
    wall, cpu, started_at, result = asyncio.run(_timed(contender, options))
    ended_at = time.monotonic()
    peak_rss = _maxrss_mb()

    client_stats = result.stats if isinstance(result, Listing) else None
    if isinstance(result, Listing):
        result = result.tickets
    ids: list[str] | None = None
    if isinstance(result, Tally):
        count, checksum = result.count, format_crc(result.crc)
    else:
        ids = [_ticket_id(ticket) for ticket in result]
        count, checksum = len(ids), ids_checksum(ids)
    report: dict[str, Any] = {
        "contender": name,
        "wall_s": wall,
        "cpu_s": cpu,
        "tickets": count,
        "checksum": checksum,
        "rss_after_imports_mb": rss_after_imports,
        "rss_before_run_mb": rss_before_run,
        "peak_rss_mb": peak_rss,
        "started_at": started_at,
        "ended_at": ended_at,
    }
    if client_stats is not None:
        report["client"] = client_stats
    if report_ids:
        report["ids"] = ids
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
