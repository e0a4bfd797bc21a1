"""The benchmark runner: ``python -m benchmarks`` (or ``python benchmarks/run.py``).

One run starts the page server in its own process, then runs every contender of every
chosen scenario in a fresh process per repetition (round-robin, so a burst of machine noise
hits one repetition of each contender rather than every repetition of one), verifies that
each returned the same tickets in the same order, and reports medians. See README.md.

Scenario (q) puts the same server behind a token-bucket quota (``benchmarks._quota``) and
reads the server's own counts of 200s and 429s around every run (see "the quota scenario").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._checksum import ids_checksum
from benchmarks._data import API_KEY, PER_PAGE
from benchmarks._quota import ideal_seconds
from benchmarks._report import machine, render_markdown, scenario_table
from tamio_async import DEFAULT_MAX_CONCURRENCY

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
SCENARIOS = ("a", "b", "c", "d", "q")
#: Requests in flight for the concurrent peers, the floor, and tamio_async "tuned".
TUNED = 16
WARMUP_TICKETS = 2 * PER_PAGE
CONTENDER_TIMEOUT_S = 300.0

Role = Literal["tamio", "peer", "floor"]


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is, and how often it is repeated, in one mode."""

    a_tickets: int
    b_tickets: int
    b_latency: float
    c_tickets: int
    repeats: dict[str, int]
    decode_batch_s: float


MODES = {
    "full": Sizes(20_000, 10_000, 0.1, 100_000, {"a": 5, "b": 3, "c": 3, "d": 15, "q": 3}, 0.05),
    "quick": Sizes(20_000, 2_000, 0.1, 20_000, {"a": 3, "b": 2, "c": 2, "d": 5, "q": 1}, 0.03),
    "smoke": Sizes(500, 300, 0.02, 1_000, {"a": 1, "b": 1, "c": 1, "d": 1, "q": 1}, 0.005),
}


@dataclass(frozen=True)
class QuotaSizes:
    """(q) in one mode: pages of the listing, the quota (requests/s, burst), the latency."""

    pages: int
    rate: float
    burst: int
    latency: float


QUOTA_MODES = {
    "full": QuotaSizes(pages=1_000, rate=50.0, burst=10, latency=0.02),
    # Sized for CI (`.ci/run` runs --quick): about a minute for the whole scenario.
    "quick": QuotaSizes(pages=150, rate=50.0, burst=10, latency=0.02),
    # A faster quota keeps the smoke run short; the 429 paths run all the same.
    "smoke": QuotaSizes(pages=40, rate=200.0, burst=10, latency=0.02),
}


@dataclass(frozen=True)
class Entry:
    """One row of a table: a contender with its concurrency."""

    key: str
    label: str
    contender: str
    concurrency: int | None
    role: Role


def _tamio(kind: str, concurrency: int | None) -> Entry:
    shown = f"c={DEFAULT_MAX_CONCURRENCY}, default" if concurrency is None else f"c={concurrency}"
    return Entry(
        key=f"tamio_{kind}" + ("" if concurrency is None else f"_c{concurrency}"),
        label=f"[1] tamio_async {kind} ({shown})",
        contender=f"tamio_{kind}",
        concurrency=concurrency,
        role="tamio",
    )


THROUGHPUT_ENTRIES = [
    _tamio("list_all", None),
    _tamio("list_all", TUNED),
    _tamio("iterate", None),
    _tamio("iterate", TUNED),
    Entry("aiohttp_json", "[2] aiohttp + json, sequential", "aiohttp_json", None, "peer"),
    Entry("httpx_pydantic", "[3] httpx + pydantic v2, sequential", "httpx_pydantic", None, "peer"),
    Entry(
        "gather_msgspec",
        f"[4] gather + aiohttp + msgspec Structs (c={TUNED})",
        "gather_msgspec",
        TUNED,
        "peer",
    ),
    Entry("floor", f"[5] floor: aiohttp + bare msgspec (c={TUNED})", "floor", TUNED, "floor"),
]
MEMORY_ENTRIES = [_tamio("iterate", None), _tamio("list_all", None)]

#: ``--contender``'s choice of row keys (None: every contender).
Only = frozenset[str] | None


def _chosen(entries: list[Entry], only: Only) -> list[Entry]:
    return [e for e in entries if only is None or e.key in only]


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def page_server(datasets: list[dict[str, Any]], **options: Any) -> Iterator[dict[str, Any]]:
    """Start ``benchmarks.server`` in its own process; yield its announcement; stop it.

    ``options`` are more keys of the server's spec (the network mode's ``tls_unix``).
    """
    spec = json.dumps({"datasets": datasets, **options})
    with announcing([sys.executable, "-m", "benchmarks.server", spec], "the page server") as line:
        yield line


@contextmanager
def announcing(command: list[str], name: str) -> Iterator[dict[str, Any]]:
    """Start a process that prints one JSON line once ready; yield it; stop the process."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=300):
                raise RuntimeError(f"{name} did not start within 300 s")
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited with status {process.wait()}")
        yield json.loads(line)
    finally:
        # Closing its stdin is the process's signal to stop; SIGTERM if it does not.
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)


def _contender_command(contender: str, options: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.contenders", contender, json.dumps(options)]


def run_contender(
    entry: Entry | QuotaEntry,
    base_url: str,
    warmup_url: str,
    *,
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One fresh process, one warm-up, one timed listing; its JSON report (or an error).

    ``extra`` adds contender options (the quota scenario's ``rate_limit`` and the like);
    ``prefix`` goes before the command (e.g. ``ip netns exec NAME``), ``env`` into its
    environment (the network mode's ``SSL_CERT_FILE``).
    """
    options = {
        "base_url": base_url,
        "api_key": API_KEY,
        "per_page": PER_PAGE,
        "concurrency": entry.concurrency,
        "warmup_url": warmup_url,
        **extra,
    }
    command = [*prefix, *_contender_command(entry.contender, options)]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_env(env),
            timeout=CONTENDER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CONTENDER_TIMEOUT_S:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": f"exit status {done.returncode}: {tail[0]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(
    scenario: str,
    entries: list[Entry],
    expected: dict[str, Any],
    base_url: str,
    warmup_url: str,
    repeats: int,
) -> list[dict[str, Any]]:
    """Run every entry ``repeats`` times, round-robin; verify each result; aggregate."""
    samples: dict[str, list[dict[str, Any]]] = {e.key: [] for e in entries}
    errors: dict[str, str] = {}
    for round_ in range(repeats):
        shift = round_ % len(entries)  # rotate, so no contender always runs first
        for entry in entries[shift:] + entries[:shift]:
            if entry.key in errors:
                continue
            result = run_contender(entry, base_url, warmup_url)
            error = result.get("error")
            if error is None and (
                result["tickets"] != expected["tickets"]
                or result["checksum"] != expected["checksum"]
            ):
                error = (
                    f"returned {result['tickets']} tickets, id checksum {result['checksum']}; "
                    f"expected {expected['tickets']}, {expected['checksum']}"
                )
            if error is not None:
                errors[entry.key] = error
                _log(f"[{scenario}] {round_ + 1}/{repeats} {entry.label}: FAILED: {error}")
                continue
            samples[entry.key].append(result)
            _log(
                f"[{scenario}] {round_ + 1}/{repeats} {entry.label}: {result['wall_s']:.3f} s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB"
            )
    return [_aggregate(e, samples[e.key], errors.get(e.key)) for e in entries]


def _aggregate(entry: Entry, samples: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    def median(field: str) -> float | None:
        values = [s[field] for s in samples]
        return statistics.median(values) if values else None

    growth = [s["peak_rss_mb"] - s["rss_after_imports_mb"] for s in samples]
    return {
        **asdict(entry),
        "error": error,
        "wall_s": median("wall_s"),
        "best_wall_s": min((s["wall_s"] for s in samples), default=None),
        "cpu_s": median("cpu_s"),
        "tickets": samples[0]["tickets"] if samples else 0,
        "peak_rss_mb": median("peak_rss_mb"),
        "rss_after_imports_mb": median("rss_after_imports_mb"),
        "rss_growth_mb": statistics.median(growth) if growth else None,
        "samples": samples,
    }


def _add_ratios(rows: list[dict[str, Any]], bound_s: float | None = None) -> None:
    peers = [r["wall_s"] for r in rows if r["role"] == "peer" and r["wall_s"]]
    floor = next((r["wall_s"] for r in rows if r["role"] == "floor" and r["wall_s"]), None)
    best_peer = min(peers) if peers else None
    for row in rows:
        wall = row["wall_s"]
        row["vs_best_peer"] = wall / best_peer if wall and best_peer else None
        row["vs_floor"] = wall / floor if wall and floor else None
        row["vs_bound"] = wall / bound_s if wall and bound_s else None


def throughput_scenario(
    key: str, server: dict[str, Any], base: str, sizes: Sizes, repeats: int, only: Only = None
) -> dict[str, Any]:
    """(a) or (b): every contender against the same listing."""
    dataset = server["datasets"][key]
    tickets, pages = dataset["tickets"], dataset["pages"]
    entries = _chosen(THROUGHPUT_ENTRIES, only)
    rows = measure(key, entries, dataset, f"{base}/{key}/v2", f"{base}/warm/v2", repeats)
    if key == "a":
        _add_ratios(rows)
        return {
            "title": f"{tickets:,} tickets, {PER_PAGE} per page, no added latency (CPU bound)",
            "description": (
                f"{pages} pages of ~{dataset['first_page_bytes'] // 1000} KB. Concurrent peers "
                f"and the floor keep {TUNED} requests in flight. CPU is the contender process's "
                "user+system time during the listing (the server runs in another process)."
            ),
            "params": {"tickets": tickets, "pages": pages, "latency_s": 0.0},
            "rows": rows,
        }
    latency = sizes.b_latency
    bound = latency * (1 + math.ceil((pages - 1) / TUNED))
    _add_ratios(rows, bound)
    return {
        "title": (
            f"{tickets:,} tickets, {PER_PAGE} per page, {latency * 1000:.0f} ms latency "
            f"per request, concurrency {TUNED}"
        ),
        "description": (
            f"Latency lower bound = latency x (1 + ⌈(pages - 1) / {TUNED}⌉) = "
            f"{latency:g} x (1 + ⌈{pages - 1} / {TUNED}⌉) = {bound:.2f} s: page 1 alone "
            f"(it tells how many pages there are), then the rest {TUNED} at a time."
        ),
        "params": {"tickets": tickets, "pages": pages, "latency_s": latency, "bound_s": bound},
        "bound_s": bound,
        "rows": rows,
    }


def memory_scenario(
    server: dict[str, Any], base: str, repeats: int, only: Only = None
) -> dict[str, Any]:
    """(c): peak memory of streaming versus collecting a large listing."""
    dataset = server["datasets"]["c"]
    entries = _chosen(MEMORY_ENTRIES, only)
    rows = measure("c", entries, dataset, f"{base}/c/v2", f"{base}/warm/v2", repeats)
    return {
        "title": f"{dataset['tickets']:,} tickets: streamed (iterate) vs collected (list_all)",
        "description": (
            "`iterate` keeps only a count and a running id checksum; `list_all` keeps every "
            "ticket. Memory is the contender process's peak RSS (ru_maxrss) minus its RSS "
            "after imports (a 2-page warm-up runs in between)."
        ),
        "params": {"tickets": dataset["tickets"], "pages": dataset["pages"]},
        "rows": rows,
    }


def decode_scenario(sizes: Sizes, repeats: int) -> dict[str, Any]:
    """(d): in-process decode cost of one page, in its own process."""
    options = {"tickets": PER_PAGE, "rounds": repeats, "batch_s": sizes.decode_batch_s}
    _log(f"[d] timing decoders ({repeats} rounds)")
    title = f"decode one {PER_PAGE}-ticket page"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.decode", json.dumps(options)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_env(),
            timeout=CONTENDER_TIMEOUT_S,
            check=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        # Keep the other scenarios' results: report the failure in the document instead.
        stderr = exc.stderr if isinstance(exc.stderr, str) else ""
        error = (stderr.strip().splitlines() or [str(exc)])[-1]
        _log(f"[d] FAILED: {error}")
        failed = {"description": f"FAILED: {error}", "params": {}, "rows": [], "error": error}
        return {"title": title, **failed}
    result = json.loads(done.stdout)
    bare = next(r["median_us"] for r in result["rows"] if r["decoder"] == "msgspec_bare")
    for row in result["rows"]:
        row["ratio"] = row["median_us"] / bare
    return {
        "title": f"{title} ({result['page_bytes'] / 1000:.0f} KB)",
        "description": (
            "In-process, timeit-style (batches of calls, interleaved rounds, best and median "
            "per call), with the garbage collector on as in real programs. Every decoder is "
            "checked to return the same ticket ids."
        ),
        "params": {"page_bytes": result["page_bytes"], "tickets": PER_PAGE},
        "rows": result["rows"],
    }


# --- the quota scenario (q) -----------------------------------------------------------------

#: Processes that share one limit through Redis in the quota scenario.
QUOTA_PROCESSES = 4
QuotaVariant = Literal["seconds", "ms", "halved"]
QUOTA_VARIANTS: tuple[QuotaVariant, ...] = ("seconds", "ms", "halved")


@dataclass(frozen=True)
class QuotaEntry:
    """One contender of the quota scenario: how it is configured and how many processes."""

    key: str
    label: str
    contender: str
    #: True: ``rate_limit`` set to the quota (with several processes, shared in Redis).
    rate_limited: bool = False
    processes: int = 1
    concurrency: int = TUNED
    role: Role = "tamio"


QUOTA_ENTRIES = [
    QuotaEntry("tamio_default", f"[1] tamio_async, no configuration (c={TUNED})", "tamio_quota"),
    QuotaEntry(
        "tamio_rate_limit",
        f"[1] tamio_async, rate_limit = the quota (c={TUNED})",
        "tamio_quota",
        rate_limited=True,
    ),
    QuotaEntry(
        "tamio_redis",
        f"[1] tamio_async x {QUOTA_PROCESSES} processes, rate_limit shared in Redis "
        f"(c={TUNED} each)",
        "tamio_quota",
        rate_limited=True,
        processes=QUOTA_PROCESSES,
    ),
    QuotaEntry(
        "gather_retry_after",
        f"[6] gather + aiohttp + msgspec, sleeps Retry-After (c={TUNED})",
        "gather_retry_after",
        role="peer",
    ),
]
#: Which contenders run against which variant of the quota.
QUOTA_RUNS: dict[QuotaVariant, tuple[str, ...]] = {
    "seconds": tuple(e.key for e in QUOTA_ENTRIES),
    "ms": tuple(e.key for e in QUOTA_ENTRIES),
    "halved": ("tamio_default", "gather_retry_after"),
}


def quota_datasets(sizes: QuotaSizes) -> list[dict[str, Any]]:
    """The page server's datasets of (q): one per variant, each with its own bucket."""
    datasets = []
    for variant in QUOTA_VARIANTS:
        quota = {
            "rate": sizes.rate,
            "burst": sizes.burst,
            "retry_after": "ms" if variant == "ms" else "seconds",
            "halve_after": sizes.pages // 2 if variant == "halved" else None,
        }
        datasets.append(
            {
                "name": f"q_{variant}",
                "tickets": sizes.pages * PER_PAGE,
                "latency": sizes.latency,
                "quota": quota,
            }
        )
    return datasets


def _quota_call(base: str, dataset: str, action: str = "") -> dict[str, Any]:
    """GET the counts of ``dataset``'s quota, or POST ``/reset`` (which also answers them)."""
    request = urllib.request.Request(
        f"{base}/{dataset}/_quota{action}", method="POST" if action else "GET"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _shards(pages: int, count: int) -> list[tuple[int, int]]:
    """``count`` contiguous page ranges covering 1..pages, as even as they come."""
    bounds = [pages * i // count for i in range(count + 1)]
    return [(bounds[i] + 1, bounds[i + 1]) for i in range(count)]


def run_shared(
    entry: QuotaEntry, base_url: str, warmup_url: str, pages: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """``entry.processes`` processes, each one shard, started together after their warm-ups.

    The result is the aggregate: wall from the first start to the last end (one monotonic
    clock for the machine), CPU summed, peak RSS the largest, and the ids of the shards
    concatenated in page order (so the usual count and checksum verify their union).
    """
    with ExitStack() as stack:
        processes: list[subprocess.Popen[str]] = []
        stderrs: list[IO[str]] = []

        def stop_all() -> None:  # only ours, by their Popen objects
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()

        stack.callback(stop_all)
        for start_page, end_page in _shards(pages, entry.processes):
            options = {
                "base_url": base_url,
                "api_key": API_KEY,
                "per_page": PER_PAGE,
                "concurrency": entry.concurrency,
                "warmup_url": warmup_url,
                "start_page": start_page,
                "end_page": end_page,
                "barrier": True,
                "report_ids": True,
                **extra,
            }
            # A file, not a pipe: nobody reads stderr while the shards run, and a full pipe
            # would stall a process that logs.
            stderr = stack.enter_context(tempfile.TemporaryFile("w+"))
            stderrs.append(stderr)
            processes.append(
                subprocess.Popen(
                    _contender_command(entry.contender, options),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    cwd=ROOT,
                    env=_env(),
                    text=True,
                )
            )

        def failure(index: int, what: str) -> dict[str, Any]:
            stop_all()
            stderrs[index].seek(0)
            tail = stderrs[index].read().strip().splitlines()[-1:] or ["(no output)"]
            return {"error": f"process {index + 1}/{len(processes)}: {what}: {tail[0]}"}

        deadline = time.monotonic() + CONTENDER_TIMEOUT_S
        for index, process in enumerate(processes):
            assert process.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                ready = selector.select(timeout=max(0.0, deadline - time.monotonic()))
            line = process.stdout.readline() if ready else ""
            if '"ready"' not in line:
                return failure(index, "not ready after its warm-up")
        for process in processes:  # the barrier: every shard starts now
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()  # communicate() closes it
        reports = []
        for index, process in enumerate(processes):
            try:
                out, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return failure(index, f"timed out after {CONTENDER_TIMEOUT_S:.0f} s")
            if process.returncode != 0:
                return failure(index, f"exit status {process.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))

    ids = [ticket_id for report in reports for ticket_id in report.pop("ids")]
    return {
        "contender": entry.contender,
        "wall_s": max(r["ended_at"] for r in reports) - min(r["started_at"] for r in reports),
        "cpu_s": sum(r["cpu_s"] for r in reports),
        "tickets": len(ids),
        "checksum": ids_checksum(ids),
        "rss_after_imports_mb": max(r["rss_after_imports_mb"] for r in reports),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
        "shards": reports,
        "client": {
            "throttled": sum(r["client"]["throttled"] for r in reports),
            "retries": sum(r["client"]["retries"] for r in reports),
            "fallback": any(r["client"]["fallback"] for r in reports),
        },
    }


def quota_scenario(
    server: dict[str, Any], base: str, sizes: QuotaSizes, repeats: int, only: Only = None
) -> dict[str, Any]:
    """(q): the quota server; every contender x variant, round-robin, reset between runs."""
    rate, pages = sizes.rate, sizes.pages
    entries = {e.key: e for e in QUOTA_ENTRIES}
    runs = [
        (variant, entries[key])
        for variant, keys in QUOTA_RUNS.items()
        for key in keys
        if only is None or key in only
    ]
    limit = f"{rate:g}/second"
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {(v, e.key): [] for v, e in runs}
    errors: dict[tuple[str, str], str] = {}
    with ExitStack() as stack:
        redis_url: str | None = None
        redis_error: str | None = None
        if any(e.processes > 1 for _, e in runs):
            try:
                from tamio_async.testing import RedisServer

                redis_url = stack.enter_context(RedisServer()).url
            except Exception as exc:  # no binary, no redis package: fail those rows only
                redis_error = f"no Redis for the shared limit: {exc}"
        for round_ in range(repeats):
            shift = round_ % len(runs)
            for variant, entry in runs[shift:] + runs[:shift]:
                where = (variant, entry.key)
                if where in errors:
                    continue
                name = f"q_{variant}"
                extra: dict[str, Any] = {}
                if entry.rate_limited:
                    extra["rate_limit"] = limit
                if entry.processes > 1 and redis_url is not None:
                    extra["rate_limit_storage"] = redis_url
                    # A key per run: no schedule or pause is left over from the last one.
                    extra["rate_limit_key"] = f"bench-q-{variant}-{round_}"
                try:
                    _quota_call(base, name, "/reset")
                    if entry.processes == 1:
                        result = run_contender(
                            entry, f"{base}/{name}/v2", f"{base}/warm/v2", **extra
                        )
                    elif redis_url is None:
                        result = {"error": redis_error}
                    else:
                        result = run_shared(
                            entry, f"{base}/{name}/v2", f"{base}/warm/v2", pages, extra
                        )
                    counts = _quota_call(base, name)
                except Exception as exc:  # a broken run is a failed row, not a lost report
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                label = f"{entry.label} [{variant}]"
                error = result.get("error") or _wrong_tickets(result, server["datasets"][name])
                if error is not None:
                    errors[where] = error
                    _log(f"[q] {round_ + 1}/{repeats} {label}: FAILED: {error}")
                    continue
                requests = counts["accepted"] + counts["throttled"]
                result.update(
                    requests=requests,
                    answered_429=counts["throttled"],
                    share_429=counts["throttled"] / requests if requests else None,
                )
                samples[where].append(result)
                _log(
                    f"[q] {round_ + 1}/{repeats} {label}: {result['wall_s']:.2f} s, "
                    f"{requests} requests, {counts['throttled']} answered 429"
                )
    rows = []
    for variant, entry in runs:
        halve_after = pages // 2 if variant == "halved" else None
        ideal = ideal_seconds(pages, rate, halve_after)
        where = (variant, entry.key)
        rows.append(_quota_row(entry, variant, ideal, samples[where], errors.get(where)))
    return {
        "title": (
            f"{pages:,} pages behind a quota of {rate:g} requests/s (burst {sizes.burst}), "
            f"{sizes.latency * 1000:.0f} ms latency, concurrency {TUNED}"
        ),
        "description": (
            f"One token bucket per API key: {rate:g} tokens/s, at most {sizes.burst}; an "
            "empty bucket answers 429 (which takes no token) with `Retry-After` in whole "
            "seconds rounded up [seconds], or only `retry-after-ms` [ms]; [halved]: whole "
            f"seconds, and the rate halves after {pages // 2} accepted requests. Ideal = pages "
            f"/ rate ({ideal_seconds(pages, rate):.1f} s; halved: {pages // 2} / {rate:g} + "
            f"{pages - pages // 2} / {rate / 2:g} = "
            f"{ideal_seconds(pages, rate, pages // 2):.1f} s). Requests and 429s are the "
            "server's counts. The shared-limit row is "
            f"{QUOTA_PROCESSES} processes, each a quarter of the pages, started together: "
            "wall from the first start to the last end."
        ),
        "params": {
            "pages": pages,
            "tickets": pages * PER_PAGE,
            "rate": rate,
            "burst": sizes.burst,
            "latency_s": sizes.latency,
            "processes": QUOTA_PROCESSES,
        },
        "rows": rows,
    }


def _wrong_tickets(result: dict[str, Any], expected: dict[str, Any]) -> str | None:
    if result["tickets"] == expected["tickets"] and result["checksum"] == expected["checksum"]:
        return None
    return (
        f"returned {result['tickets']} tickets, id checksum {result['checksum']}; "
        f"expected {expected['tickets']}, {expected['checksum']}"
    )


def _quota_row(
    entry: QuotaEntry,
    variant: str,
    ideal: float,
    samples: list[dict[str, Any]],
    error: str | None,
) -> dict[str, Any]:
    def median(field: str) -> Any:
        values = [s[field] for s in samples if s.get(field) is not None]
        return statistics.median(values) if values else None

    wall = median("wall_s")
    return {
        **asdict(entry),
        "key": f"{entry.key}_{variant}",
        "entry": entry.key,
        "variant": variant,
        "error": error,
        "ideal_s": ideal,
        "wall_s": wall,
        "vs_ideal": wall / ideal if wall else None,
        "cpu_s": median("cpu_s"),
        "peak_rss_mb": median("peak_rss_mb"),
        "tickets": samples[0]["tickets"] if samples else 0,
        "requests": median("requests"),
        "answered_429": median("answered_429"),
        "share_429": median("share_429"),
        "client_throttled": statistics.median(s["client"]["throttled"] for s in samples)
        if samples
        else None,
        "samples": samples,
    }


# --- targets -------------------------------------------------------------------------------


def _row(document: dict[str, Any], scenario: str, key: str) -> dict[str, Any] | None:
    rows = document["scenarios"].get(scenario, {}).get("rows", [])
    return next((r for r in rows if r.get("key", r.get("decoder")) == key), None)


def _check(
    name: str,
    text: str,
    value: float | None,
    target: float,
    *,
    higher_is_better: bool,
    by_cpu: float | None = None,
) -> dict[str, Any]:
    """One target: PASS or MISS on ``value``; ``by_cpu`` is shown for reading noisy runs."""
    sign = "≥" if higher_is_better else "≤"
    if value is None:
        return {
            "id": name,
            "passed": False,
            "value": None,
            "target": target,
            "line": f"MISS  {text}: no result (target {sign} {target:g})",
        }
    passed = value >= target if higher_is_better else value <= target
    note = "" if by_cpu is None else f"; by CPU time {by_cpu:.3f}"
    return {
        "id": name,
        "passed": passed,
        "value": value,
        "target": target,
        "by_cpu": by_cpu,
        "line": (
            f"{'PASS' if passed else 'MISS'}  {text}: {value:.3f} (target {sign} {target:g}{note})"
        ),
    }


def _ratio_of(
    numerator: dict[str, Any] | None, denominator: dict[str, Any] | None, field: str
) -> float | None:
    if not numerator or not denominator or not numerator[field] or not denominator[field]:
        return None
    return numerator[field] / denominator[field]  # type: ignore[no-any-return]


def target_checks(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each PASS or MISS."""
    checks = []
    scenarios = document["scenarios"]
    if "a" in scenarios:
        tamio = _row(document, "a", "tamio_list_all")
        for key, name, target in (
            ("gather_msgspec", "hand-written gather (4)", 1.3),
            ("httpx_pydantic", "sequential httpx + pydantic (3)", 6.0),
        ):
            peer = _row(document, "a", key)
            checks.append(
                _check(
                    f"a_vs_{key}",
                    f"(a) list_all speed-up over {name}",
                    _ratio_of(peer, tamio, "wall_s"),
                    target,
                    higher_is_better=True,
                    by_cpu=_ratio_of(peer, tamio, "cpu_s"),
                )
            )
        floor = _row(document, "a", "floor")
        checks.append(
            _check(
                "a_vs_floor",
                "(a) list_all time / floor (5)",
                _ratio_of(tamio, floor, "wall_s"),
                1.3,
                higher_is_better=False,
                by_cpu=_ratio_of(tamio, floor, "cpu_s"),
            )
        )
    if "b" in scenarios:
        tamio = _row(document, "b", f"tamio_list_all_c{TUNED}")
        checks.append(
            _check(
                "b_vs_bound",
                f"(b) list_all (c={TUNED}) time / latency lower bound",
                tamio["vs_bound"] if tamio else None,
                1.15,
                higher_is_better=False,
            )
        )
    if "c" in scenarios:
        streamed = _row(document, "c", "tamio_iterate")
        collected = _row(document, "c", "tamio_list_all")
        grown = streamed["rss_growth_mb"] if streamed else None
        checks.append(
            _check(
                "c_stream_mb",
                "(c) iterate peak RSS above RSS after imports, MB",
                grown,
                40,
                higher_is_better=False,
            )
        )
        whole = collected["rss_growth_mb"] if collected else None
        checks.append(
            _check(
                "c_stream_share",
                "(c) iterate's RSS growth / list_all's",
                grown / whole if grown is not None and whole else None,
                0.25,
                higher_is_better=False,
            )
        )
    if "d" in scenarios:
        library = _row(document, "d", "tamio_async")
        checks.append(
            _check(
                "d_decode",
                "(d) decode_ticket_list / bare msgspec Decoder(TicketList), median",
                library["ratio"] if library else None,
                1.15,
                higher_is_better=False,
            )
        )
    if "q" in scenarios:
        checks += _quota_checks(document)
    return checks


#: (q) targets: contender, variants, wall / ideal at most, % of requests answered 429 at most.
QUOTA_TARGETS: list[tuple[str, str, tuple[str, ...], float | None, float]] = [
    ("tamio_default", "no configuration", ("seconds", "ms"), 1.25, 5.0),
    ("tamio_rate_limit", "rate_limit = the quota", ("seconds", "ms"), 1.05, 1.0),
    (
        "tamio_redis",
        f"{QUOTA_PROCESSES} processes sharing rate_limit in Redis, aggregate",
        ("seconds", "ms"),
        1.10,
        2.0,
    ),
    ("tamio_default", "quota halved halfway, no configuration: completes", ("halved",), None, 10.0),
]


def _quota_checks(document: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for entry, text, variants, max_ratio, max_share in QUOTA_TARGETS:
        for variant in variants:
            row = _row(document, "q", f"{entry}_{variant}")
            ok = row is not None and not row["error"]
            where = f"(q) {text} [{variant}]"
            if max_ratio is not None:
                checks.append(
                    _check(
                        f"q_{entry}_{variant}_wall",
                        f"{where}: wall / ideal",
                        row["vs_ideal"] if ok and row else None,
                        max_ratio,
                        higher_is_better=False,
                    )
                )
            share = row["share_429"] if ok and row else None
            checks.append(
                _check(
                    f"q_{entry}_{variant}_429",
                    f"{where}: % of requests answered 429",
                    None if share is None else 100 * share,
                    max_share,
                    higher_is_better=False,
                )
            )
    return checks


# --- entry point ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark tamio_async against hand-written clients (see README.md).",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    size.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one repetition: checks it all runs"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument(
        "--scenario",
        "--scenarios",
        dest="scenario",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (e.g. q: the quota only)",
    )
    parser.add_argument(
        "--contender",
        help="comma-separated row keys to run (default: all), e.g. gather_retry_after",
    )
    parser.add_argument(
        "--repeat", type=int, help="repetitions of every scenario (default: per scenario)"
    )
    parser.add_argument(
        "--network",
        action="store_true",
        help="the realistic-network mode instead (TLS 1.3, latency proxy, bandwidth): "
        "writes network.md/.json; --scenario does not apply",
    )
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown or not args.scenarios:
        parser.error(f"--scenario takes a comma-separated subset of {','.join(SCENARIOS)}")
    keys = [e.key for e in THROUGHPUT_ENTRIES + MEMORY_ENTRIES] + [e.key for e in QUOTA_ENTRIES]
    args.only = None
    if args.contender is not None:
        args.only = frozenset(k.strip() for k in args.contender.split(",") if k.strip())
        if not args.only or args.only - set(keys):
            parser.error(
                f"--contender takes a comma-separated subset of {','.join(dict.fromkeys(keys))}"
            )
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios, print the tables and targets, write latest.json/.md."""
    args = parse_args(argv)
    if args.network:
        from benchmarks.network.mode import run_network  # it imports this module

        return run_network(args)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = MODES[mode]
    repeats = {s: args.repeat or sizes.repeats[s] for s in args.scenarios}
    started = time.perf_counter()
    document: dict[str, Any] = {
        "mode": mode,
        "machine": machine(),
        "repeats": repeats,
        "sizes": asdict(sizes),
        "quota_sizes": asdict(QUOTA_MODES[mode]),
        "scenarios": {},
    }
    scenarios = document["scenarios"]

    datasets: list[dict[str, Any]] = [{"name": "warm", "tickets": WARMUP_TICKETS, "latency": 0}]
    for name, tickets, latency in (
        ("a", sizes.a_tickets, 0),
        ("b", sizes.b_tickets, sizes.b_latency),
        ("c", sizes.c_tickets, 0),
    ):
        if name in args.scenarios:
            datasets.append({"name": name, "tickets": tickets, "latency": latency})
    if "q" in args.scenarios:
        datasets += quota_datasets(QUOTA_MODES[mode])

    def show(key: str) -> None:
        print(f"\n## ({key}) {scenarios[key]['title']}\n", flush=True)
        print(scenario_table(key, scenarios[key]), flush=True)

    if len(datasets) > 1:
        _log(f"starting the page server ({max(d['tickets'] for d in datasets):,} tickets)")
        with page_server(datasets) as server:
            document["server"] = server["datasets"]
            base = f"http://127.0.0.1:{server['port']}"
            for key in ("a", "b"):
                if key in args.scenarios:
                    scenarios[key] = throughput_scenario(
                        key, server, base, sizes, repeats[key], args.only
                    )
                    show(key)
            if "c" in args.scenarios:
                scenarios["c"] = memory_scenario(server, base, repeats["c"], args.only)
                show("c")
            if "q" in args.scenarios:
                scenarios["q"] = quota_scenario(
                    server, base, QUOTA_MODES[mode], repeats["q"], args.only
                )
                show("q")
    if "d" in args.scenarios:
        scenarios["d"] = decode_scenario(sizes, repeats["d"])
        show("d")

    document["checks"] = target_checks(document)
    document["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    document["elapsed_s"] = time.perf_counter() - started
    print("\n## Targets\n")
    for check in document["checks"]:
        print(check["line"])

    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "latest.json", json.dumps(document, indent=2) + "\n")
    _write(args.out / "latest.md", render_markdown(document))
    _log(f"\nwrote {args.out / 'latest.md'} and latest.json in {document['elapsed_s']:.0f} s")
    failed = any(
        s.get("error") or any(r.get("error") for r in s["rows"]) for s in scenarios.values()
    )
    return 1 if failed else 0


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


if __name__ == "__main__":
    raise SystemExit(main())
