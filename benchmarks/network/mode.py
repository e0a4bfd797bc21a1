"""``python -m benchmarks --network``: listings over TLS 1.3 through a latency proxy.

One page server (its own process) serves every listing over TLS 1.3 on a Unix socket, with a
throwaway CA (trustme) that the contenders trust through ``SSL_CERT_FILE``; one latency proxy
(its own process, ``proxy``) listens once per RTT and pipes to that socket. Every contender
runs in a fresh process as in the other scenarios, warms up through the proxy's zero-RTT
listener (its own session, closed before the clock starts: the timed listing starts with a
cold pool), then lists through the RTT's listener. The server counts the requests.

With root, ``ip`` and ``tc``, the bandwidth scenarios run the proxy and the contenders inside
a network namespace whose loopback ``tbf`` shapes (``_shaping``); otherwise they are skipped,
saying why. Results go to ``network.md`` and ``network.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trustme

from benchmarks._data import PER_PAGE
from benchmarks._report import machine
from benchmarks.network._bounds import cold_rtts, transfer_s, warm_rtts
from benchmarks.network._report import (
    GATHER,
    PLAIN,
    TAMIO,
    network_checks,
    network_table,
    render_markdown,
    versions,
)
from benchmarks.network._shaping import Namespace, ShapingUnavailable, namespace
from benchmarks.run import (
    THROUGHPUT_ENTRIES,
    WARMUP_TICKETS,
    Entry,
    _log,
    _write,
    _wrong_tickets,
    announcing,
    page_server,
    run_contender,
)
from tamio_async import DEFAULT_MAX_CONCURRENCY

__all__ = ["MODES", "NetworkSizes", "network_checks", "run_network"]

#: The contenders of this mode (row keys of the throughput scenarios).
KEYS = ("tamio_list_all", "tamio_list_all_c16", "gather_msgspec", "floor")
#: The warm-up's dataset (a 2-page listing, through the proxy's zero-RTT listener).
WARM = "warm"


@dataclass(frozen=True)
class NetworkSizes:
    """The network mode in one of full / quick / smoke."""

    #: Ticket counts of the listings (per_page 100): 2 pages, 2 as an exact multiple, ...
    listings: tuple[int, ...]
    rtts: tuple[float, ...]
    repeats: int
    #: The bandwidth scenarios: one listing, at each rate (bits/s) and RTT.
    shaped_tickets: int
    rates: tuple[float, ...]
    shaped_rtts: tuple[float, ...]


MODES = {
    "full": NetworkSizes(
        (150, 200, 500, 1_600, 10_000, 20_000), (0.01, 0.05), 5, 20_000, (1e8, 1e9), (0.01, 0.05)
    ),
    "quick": NetworkSizes(
        (150, 200, 500, 1_600, 20_000), (0.01, 0.05), 2, 20_000, (1e8, 1e9), (0.01, 0.05)
    ),
    "smoke": NetworkSizes((150, 200, 500), (0.01,), 1, 500, (1e9,), (0.01,)),
}


@dataclass(frozen=True)
class Run:
    """One row: a contender, a dataset, a proxy listener (and the shaped rate, if any)."""

    key: str
    entry: Entry
    dataset: str
    #: The rows compared with each other: a listing's, or a shaped link's.
    group: str
    rtt: float
    rate: float | None = None

    @property
    def concurrency(self) -> int:
        return self.entry.concurrency or DEFAULT_MAX_CONCURRENCY


@dataclass(frozen=True)
class Network:
    """Where a run's contender lists: its proxy's ports (by RTT), the namespace it runs in."""

    ports: dict[float, int]
    namespace: Namespace | None = None

    def url(self, dataset: str, rtt: float) -> str:
        return f"https://127.0.0.1:{self.ports[rtt]}/{dataset}/v2"


@dataclass(frozen=True)
class Bench:
    """What every run of one invocation shares: the server, the contenders' environment."""

    server: dict[str, Any]
    #: The contenders' extra environment: ``SSL_CERT_FILE``, the throwaway CA.
    env: dict[str, str]
    repeats: int

    @property
    def control(self) -> str:
        """The server's plain-HTTP listener, for its request counts."""
        return f"http://127.0.0.1:{self.server['port']}"


def _dataset(tickets: int, compress: bool = True) -> str:
    return f"n{tickets}" + ("" if compress else PLAIN)


def _listing(tickets: int) -> str:
    pages = math.ceil(tickets / PER_PAGE)
    exact = ", exact multiple" if tickets % PER_PAGE == 0 and pages <= 2 else ""
    return f"{pages} pages ({tickets:,} tickets{exact})"


@contextmanager
def _proxy(upstream: str, rtts: Sequence[float], where: Namespace | None) -> Iterator[Network]:
    spec = json.dumps({"upstream": upstream, "rtts": [0.0, *rtts]})
    prefix = where.prefix if where is not None else []
    command = [*prefix, sys.executable, "-m", "benchmarks.network.proxy", spec]
    with announcing(command, "the latency proxy") as announced:
        yield Network(dict(zip([0.0, *rtts], announced["ports"], strict=True)), where)


def _tls(directory: Path) -> tuple[Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1: (the CA's PEM, key + chain PEM)."""
    ca = trustme.CA()
    ca_pem, server_pem = directory / "ca.pem", directory / "server.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return ca_pem, server_pem


def _counts(control: str, dataset: str, reset: bool = False) -> dict[str, Any]:
    """The server's request counts of ``dataset`` (``reset``: and zero them)."""
    url = f"{control}/{dataset}/_requests" + ("/reset" if reset else "")
    request = urllib.request.Request(url, method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def measure(title: str, runs: list[Run], network: Network, bench: Bench) -> list[dict[str, Any]]:
    """Every run ``bench.repeats`` times, round-robin; verified; with the server's counts."""
    prefix = network.namespace.prefix if network.namespace is not None else []
    samples: dict[str, list[dict[str, Any]]] = {run.key: [] for run in runs}
    errors: dict[str, str] = {}
    for round_ in range(bench.repeats):
        shift = round_ % len(runs)
        for run in runs[shift:] + runs[:shift]:
            if run.key in errors:
                continue
            where = f"[{title}] {round_ + 1}/{bench.repeats} {run.entry.label} [{run.dataset}]"
            _counts(bench.control, run.dataset, reset=True)
            result = run_contender(
                run.entry,
                network.url(run.dataset, run.rtt),
                network.url(WARM, 0.0),
                prefix=prefix,
                env=bench.env,
            )
            expected = bench.server["datasets"][run.dataset]
            error = result.get("error") or _wrong_tickets(result, expected)
            if error is not None:
                errors[run.key] = error
                _log(f"{where}: FAILED: {error}")
                continue
            result["server"] = _counts(bench.control, run.dataset)
            samples[run.key].append(result)
            requests = result["server"]["requests"]
            _log(f"{where}: {result['wall_s'] * 1000:.0f} ms, {requests} requests")
    rows = [_row(run, bench, samples[run.key], errors.get(run.key)) for run in runs]
    _add_ratios(rows)
    return rows


def _row(
    run: Run, bench: Bench, samples: list[dict[str, Any]], error: str | None
) -> dict[str, Any]:
    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    dataset = bench.server["datasets"][run.dataset]
    pages = dataset["pages"]
    requests = median([s["server"]["requests"] for s in samples])
    body_bytes = median([s["server"]["body_bytes"] for s in samples])
    transfer = transfer_s(int(body_bytes or 0), run.rate)
    wall = median([s["wall_s"] for s in samples])
    cold, warm = cold_rtts(pages, run.concurrency), warm_rtts(pages, run.concurrency)
    warm_s = warm * run.rtt + transfer
    encodings = sorted({e for s in samples for e in s["server"]["encodings"]})
    return {
        **asdict(run),
        "entry": run.entry.key,
        "label": run.entry.label,
        "role": run.entry.role,
        "concurrency": run.concurrency,
        "error": error,
        "tickets": dataset["tickets"],
        "pages": pages,
        "wall_s": wall,
        "best_wall_s": min((s["wall_s"] for s in samples), default=None),
        "cpu_s": median([s["cpu_s"] for s in samples]),
        "peak_rss_mb": median([s["peak_rss_mb"] for s in samples]),
        "wall_rtts": wall / run.rtt if wall else None,
        "cold_rtts": cold,
        "warm_rtts": warm,
        "transfer_s": transfer,
        "cold_bound_s": cold * run.rtt + transfer,
        "warm_bound_s": warm_s,
        "vs_warm_bound": wall / warm_s if wall else None,
        "requests": requests,
        "wasted": None if requests is None else requests - pages,
        "body_bytes": body_bytes,
        "encodings": encodings,
        "samples": samples,
    }


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's wall over the hand-written gather's, and compressed over uncompressed."""
    by_key = {(r["group"], r["key"]): r for r in rows}
    for row in rows:
        gather = by_key.get((row["group"], GATHER), {}).get("wall_s")
        plain = by_key.get((row["group"], row["key"] + PLAIN), {}).get("wall_s")
        row["vs_gather"] = row["wall_s"] / gather if row["wall_s"] and gather else None
        row["vs_plain"] = row["wall_s"] / plain if row["wall_s"] and plain else None


def rtt_scenario(
    rtt: float, entries: list[Entry], network: Network, bench: Bench, listings: Sequence[int]
) -> dict[str, Any]:
    """Every listing at one RTT, every contender, against the compressing server."""
    ms = f"{rtt * 1000:.0f} ms"
    rows = []
    for tickets in listings:
        group = _listing(tickets)
        runs = [Run(e.key, e, _dataset(tickets), group, rtt) for e in entries]
        rows += measure(f"{ms}, {group}", runs, network, bench)
    return {
        "title": f"RTT {ms}, TLS 1.3, compressing server, per_page {PER_PAGE}",
        "description": (
            f"Bounds in round trips of {ms}: a new connection costs 2 (TCP, TLS 1.3) and each "
            "request 1; page 1 first, then waves of c. **warm** = 3 + ⌈(pages - 1) / c⌉ (the "
            "window's connections ready when page 1 answers); **cold** = the window's "
            "connections opened after page 1: 3 + 2 + ⌈(pages - 1) / c⌉, or less where page "
            "1's connection alone is sooner (2-3 pages). Requests are counted by the server; "
            "**wasted** = requests - pages of data (past the end, or asked twice)."
        ),
        "params": {"rtt_s": rtt, "listings": list(listings)},
        "rows": rows,
    }


def shaped_scenario(
    rate: float, rtt: float, entries: dict[str, Entry], network: Network, bench: Bench, tickets: int
) -> dict[str, Any]:
    """One big listing on a shaped link: tamio with and without compression, the gather."""
    assert network.namespace is not None
    network.namespace.shape(rate)
    rate_text = f"{rate / 1e6:g} Mbit/s" if rate < 1e9 else f"{rate / 1e9:g} Gbit/s"
    link = f"{rate_text}, RTT {rtt * 1000:.0f} ms"
    runs = []
    if TAMIO in entries:
        runs.append(Run(TAMIO, entries[TAMIO], _dataset(tickets), link, rtt, rate))
        plain = _dataset(tickets, compress=False)
        runs.append(Run(TAMIO + PLAIN, entries[TAMIO], plain, link, rtt, rate))
    if GATHER in entries:
        runs.append(Run(GATHER, entries[GATHER], _dataset(tickets), link, rtt, rate))
    return {
        "title": f"{_listing(tickets)} at {link}, TLS 1.3",
        "description": (
            f"The loopback of a network namespace shaped by `tc qdisc ... tbf rate {rate_text}`; "
            "the proxy reaches the server over a Unix socket, so each byte crosses the shaped "
            "link once. Bounds add the transfer: the response bodies sent, at the rate."
        ),
        "params": {"rate_bits_per_s": rate, "rtt_s": rtt, "tickets": tickets},
        "rows": measure(link, runs, network, bench),
    }


# --- entry point ---------------------------------------------------------------------------


def _datasets(sizes: NetworkSizes) -> list[dict[str, Any]]:
    """The server's datasets: the warm-up, every listing (compressing), the plain baseline."""
    warm = {"name": WARM, "tickets": WARMUP_TICKETS, "compress": True}
    compressing = dict.fromkeys([*sizes.listings, sizes.shaped_tickets])
    datasets = [{"name": _dataset(n), "tickets": n, "compress": True} for n in compressing]
    plain = sizes.shaped_tickets
    return [warm, *datasets, {"name": _dataset(plain, compress=False), "tickets": plain}]


def run_network(args: argparse.Namespace) -> int:
    """Run the network mode; print its tables and targets; write network.json/.md."""
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = MODES[mode]
    entries = [e for e in THROUGHPUT_ENTRIES if e.key in KEYS]
    entries = [e for e in entries if args.only is None or e.key in args.only]
    if not entries:
        _log(f"--network runs only the contenders {', '.join(KEYS)}")
        return 2
    started = time.perf_counter()
    document: dict[str, Any] = {
        "mode": mode,
        "machine": versions(machine()),
        "repeats": args.repeat or sizes.repeats,
        "sizes": asdict(sizes),
        "scenarios": {},
    }
    scenarios = document["scenarios"]

    def add(key: str, scenario: dict[str, Any]) -> None:
        scenarios[key] = scenario
        print(f"\n## (network) {scenario['title']}\n", flush=True)
        print(network_table(scenario), flush=True)

    datasets = _datasets(sizes)
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tamio-net-")))
        ca_pem, server_pem = _tls(directory)
        socket = str(directory / "server.sock")
        tls = {"path": socket, "certfile": str(server_pem)}
        _log(f"starting the page server, TLS 1.3 ({max(d['tickets'] for d in datasets):,} tickets)")
        server = stack.enter_context(page_server(datasets, tls_unix=tls))
        document["server"], document["encodings"] = server["datasets"], server["encodings"]
        bench = Bench(server, {"SSL_CERT_FILE": str(ca_pem)}, document["repeats"])
        with _proxy(socket, sizes.rtts, None) as network:
            for rtt in sizes.rtts:
                add(
                    f"rtt{rtt * 1000:.0f}",
                    rtt_scenario(rtt, entries, network, bench, sizes.listings),
                )
        shaped = {e.key: e for e in entries if e.key in (TAMIO, GATHER)}
        try:
            if shaped:
                with namespace() as netns, _proxy(socket, sizes.shaped_rtts, netns) as network:
                    for rate, rtt in itertools.product(sizes.rates, sizes.shaped_rtts):
                        scenario = shaped_scenario(
                            rate, rtt, shaped, network, bench, sizes.shaped_tickets
                        )
                        add(f"bw{rate / 1e6:.0f}_rtt{rtt * 1000:.0f}", scenario)
        except ShapingUnavailable as exc:
            document["shaping_skipped"] = str(exc)
            print(f"\nBandwidth shaping skipped: {exc}", flush=True)

    document["checks"] = network_checks(document)
    document["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    document["elapsed_s"] = time.perf_counter() - started
    print("\n## Targets\n")
    for check in document["checks"]:
        print(check["line"])
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "network.json", json.dumps(document, indent=2) + "\n")
    _write(args.out / "network.md", render_markdown(document))
    _log(f"\nwrote {args.out / 'network.md'} and network.json in {document['elapsed_s']:.0f} s")
    failed = any(r["error"] for s in scenarios.values() for r in s["rows"])
    return 1 if failed else 0
