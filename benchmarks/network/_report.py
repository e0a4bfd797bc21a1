"""The network mode's targets (issue 11), tables and markdown document."""

from __future__ import annotations

import importlib.metadata
import ssl
from typing import Any

from benchmarks._data import PER_PAGE
from benchmarks._report import _ratio, _seconds, _table
from benchmarks.run import TUNED, _check

__all__ = [
    "GATHER",
    "PLAIN",
    "TAMIO",
    "network_checks",
    "network_table",
    "render_markdown",
    "versions",
]

#: Row keys: the library as the targets measure it, and the hand-written gather (4).
TAMIO = f"tamio_list_all_c{TUNED}"
GATHER = "gather_msgspec"
#: The suffix of a row (and of a dataset) whose server ignores Accept-Encoding.
PLAIN = "_plain"

_PACKAGES = ("Brotli", "backports.zstd", "trustme")


def versions(described: dict[str, Any]) -> dict[str, Any]:
    """``_report.machine()`` plus what this mode depends on: compressors, trustme, OpenSSL."""
    for name in _PACKAGES:
        try:
            described["versions"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            described["versions"][name] = "not installed"
    described["openssl"] = ssl.OPENSSL_VERSION
    return described


# --- targets -------------------------------------------------------------------------------


def network_checks(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's targets for tamio at c=16, at the largest RTT measured (50 ms but in smoke).

    A target whose listing was not measured (a smaller mode) is left out.
    """
    scenarios = document["scenarios"]
    by_rtt = {s["params"]["rtt_s"]: s for k, s in scenarios.items() if k.startswith("rtt")}
    checks: list[dict[str, Any]] = []

    def check(name: str, text: str, value: float | None, target: float) -> None:
        checks.append(_check(f"net_{name}", f"(net) {text}", value, target, higher_is_better=False))

    def tamio(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["key"] == TAMIO and all(r[k] == v for k, v in match.items())),
            None,
        )

    if by_rtt:
        rtt = max(by_rtt)
        rows = by_rtt[rtt]["rows"]
        at = f"RTT {rtt * 1000:.0f} ms, tamio c={TUNED}"
        biggest = max(by_rtt[rtt]["params"]["listings"])
        row = tamio(rows, tickets=biggest)
        value = row["vs_warm_bound"] if row else None
        check("big_vs_bound", f"{biggest:,} tickets, {at}: wall / warm bound", value, 1.05)
        for pages in (5, 16):
            row = tamio(rows, tickets=pages * PER_PAGE)
            if row is not None:
                check(f"{pages}p_rtts", f"{pages} pages, {at}: wall in RTT", row["wall_rtts"], 4.5)
                check(f"{pages}p_wasted", f"{pages} pages, {at}: requests wasted", row["wasted"], 2)
        short = tamio(rows, tickets=PER_PAGE * 3 // 2)
        exact = tamio(rows, tickets=PER_PAGE * 2)
        if short is not None and exact is not None:
            value = (
                exact["wall_s"] / short["wall_s"] if exact["wall_s"] and short["wall_s"] else None
            )
            check("exact_multiple", f"2 pages, {at}: 200 tickets / 150 tickets", value, 1.05)
    for rtt, scenario in sorted(by_rtt.items()):
        for row in scenario["rows"]:
            if row["key"] == TAMIO:
                check(
                    f"vs_gather_{rtt * 1000:.0f}ms_{row['tickets']}",
                    f"RTT {rtt * 1000:.0f} ms, {row['group']}: tamio c={TUNED} / gather (4)",
                    row["vs_gather"],
                    1.0,
                )
    for key, scenario in scenarios.items():
        row = tamio(scenario["rows"]) if key.startswith("bw") else None
        if row is not None:
            rate = scenario["params"]["rate_bits_per_s"]
            check(
                f"{key}_compressed",
                f"{row['group']}: tamio c={TUNED} compressed / uncompressed",
                row["vs_plain"],
                0.25 if rate <= 1e8 else 1.0,
            )
    return checks


# --- tables --------------------------------------------------------------------------------


def _in_rtts(seconds: float | None, rtt: float) -> str:
    return "—" if seconds is None else f"{_seconds(seconds)} ({seconds / rtt:.1f} RTT)"


def network_table(scenario: dict[str, Any]) -> str:
    """The markdown table of one scenario: a row per contender (and listing, or server)."""
    shaped = "rate_bits_per_s" in scenario["params"]
    plus = " + transfer" if shaped else ""
    header = ["server" if shaped else "listing", "contender", "wall (median)"]
    header += [f"cold bound{plus}", f"warm bound{plus}", "vs warm bound", "vs gather (4)"]
    header += ["vs uncompressed"] if shaped else []
    header += ["requests (wasted)", "body bytes" if shaped else "CPU"]
    body = []
    for r in scenario["rows"]:
        first = ("uncompressed" if r["key"].endswith(PLAIN) else "compressed") if shaped else ""
        line = [first or r["group"], r["label"]]
        if r["error"]:
            body.append([*line, "FAILED", *["—"] * (len(header) - 3)])
            continue
        line += [_in_rtts(r[k], r["rtt"]) for k in ("wall_s", "cold_bound_s", "warm_bound_s")]
        line += [_ratio(r["vs_warm_bound"]), _ratio(r["vs_gather"])]
        line += [_ratio(r["vs_plain"])] if shaped else []
        line.append(f"{r['requests']:g} ({r['wasted']:g})")
        line.append(f"{r['body_bytes'] / 1e6:.1f} MB" if shaped else _seconds(r["cpu_s"]))
        body.append(line)
    return _table(header, body)


def render_markdown(document: dict[str, Any]) -> str:
    """The whole document: machine, one table per scenario, shaping, targets."""
    m = document["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    levels = ", ".join(f"{k}-{v}" for k, v in document["encodings"].items())
    out = [
        f"# tamio-async benchmarks: realistic network ({document['mode']} run)",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores; {m['python']}; {m['platform']}",
        f"- versions: {packages}; {m['openssl']}",
        f"- load average at start / end: {m['loadavg_start']} / {m.get('loadavg_end')}",
        f"- repetitions (median reported): {document['repeats']}",
        f"- server encodings, preferred first (level): {levels}",
        "",
    ]
    for scenario in document["scenarios"].values():
        out += [f"## {scenario['title']}", "", scenario["description"], ""]
        out += [network_table(scenario), ""]
        out += [
            f"- **{r['label']} [{r['dataset']}] failed:** {r['error']}"
            for r in scenario["rows"]
            if r["error"]
        ]
    if document.get("shaping_skipped"):
        out += [f"Bandwidth shaping skipped: {document['shaping_skipped']}", ""]
    out += ["## Targets", ""]
    out += [f"- {check['line']}" for check in document["checks"]]
    return "\n".join(out) + "\n"
