"""Profile one contender against the page server: where does its client CPU go?

    python -m benchmarks.profile tamio_list_all [--tickets 20000] [--latency 0] [--concurrency 16]
        [--top 30] [--sort tottime|cumtime] [--save out.prof]

The server runs in its own process (as in the benchmark); the contender runs here, once to
warm up and once under cProfile. cProfile slows Python code more than C code, so read the
shares, not the absolute times (``benchmarks`` gives those).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import importlib
import io
import pstats
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._data import API_KEY, PER_PAGE
from benchmarks.contenders import CONTENDERS, Options
from benchmarks.run import WARMUP_TICKETS, page_server


def main(argv: list[str] | None = None) -> int:
    """Profile one contender; print the top functions."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", choices=("tottime", "cumtime"), default="tottime")
    parser.add_argument("--save", type=Path, help="write the raw profile (for snakeviz etc.)")
    args = parser.parse_args(argv)

    module_name, function = CONTENDERS[args.contender]
    contender = getattr(importlib.import_module(module_name), function)
    concurrency = args.concurrency
    if concurrency is None and not args.contender.startswith("tamio"):
        concurrency = 16
    datasets = [
        {"name": "warm", "tickets": WARMUP_TICKETS, "latency": 0},
        {"name": "p", "tickets": args.tickets, "latency": args.latency},
    ]
    with page_server(datasets) as server:
        base = f"http://127.0.0.1:{server['port']}"
        options = Options(f"{base}/p/v2", API_KEY, PER_PAGE, concurrency)
        asyncio.run(contender(dataclasses.replace(options, base_url=f"{base}/warm/v2")))
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        asyncio.run(contender(options))
        profiler.disable()
        wall = time.perf_counter() - start
    if args.save:
        profiler.dump_stats(args.save)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.sort_stats(args.sort).print_stats(args.top)
    print(
        f"{args.contender}: {args.tickets:,} tickets, {wall:.3f} s wall under cProfile, "
        f"{total:.3f} s profiled"
    )
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
