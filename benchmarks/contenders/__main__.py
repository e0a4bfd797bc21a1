"""Run one contender once in this fresh process; print what it measured as one JSON line.

    python -m benchmarks.contenders <name> '<json: Options fields + "warmup_url">'

Order: import the contender (then read "RSS after imports"), warm up on a small listing
(connections, decoders and code paths; the warm-up's own memory is part of the delta),
then time one full listing. The result's ids are checksummed after the clock stops;
streaming contenders checksum while they stream, since they keep no tickets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._checksum import format_crc, ids_checksum
from benchmarks.contenders import CONTENDERS, Options, Tally

Contender = Callable[[Options], Awaitable[Any]]


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ticket_id(ticket: Any) -> str:
    return ticket["id"] if isinstance(ticket, dict) else ticket.id  # type: ignore[no-any-return]


async def _timed(contender: Contender, options: Options) -> tuple[float, float, Any]:
    cpu, start = _cpu_s(), time.perf_counter()
    result = await contender(options)
    return time.perf_counter() - start, _cpu_s() - cpu, result


def main(argv: list[str]) -> int:
    name, raw = argv
    fields = json.loads(raw)
    warmup_url = fields.pop("warmup_url")
    options = Options(**fields)
    module_name, function = CONTENDERS[name]
    contender: Contender = getattr(importlib.import_module(module_name), function)
    rss_after_imports = _maxrss_mb()

    asyncio.run(contender(dataclasses.replace(options, base_url=warmup_url)))
    rss_before_run = _maxrss_mb()
    wall, cpu, result = asyncio.run(_timed(contender, options))
    peak_rss = _maxrss_mb()

    if isinstance(result, Tally):
        count, checksum = result.count, format_crc(result.crc)
    else:
        count, checksum = len(result), ids_checksum(map(_ticket_id, result))
    report = {
        "contender": name,
        "wall_s": wall,
        "cpu_s": cpu,
        "tickets": count,
        "checksum": checksum,
        "rss_after_imports_mb": rss_after_imports,
        "rss_before_run_mb": rss_before_run,
        "peak_rss_mb": peak_rss,
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
