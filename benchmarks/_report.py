"""Machine description and the markdown tables of a results document."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from typing import Any

__all__ = ["machine", "render_markdown", "scenario_table"]

_PACKAGES = (
    "tamio-async",
    "aiohttp",
    "msgspec",
    "tenacity",
    "httpx",
    "pydantic",
    "orjson",
    "redis",
)


def machine() -> dict[str, Any]:
    """What the numbers were measured on (load averages say how quiet the machine was)."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "versions": versions,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} MB"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def scenario_table(key: str, scenario: dict[str, Any]) -> str:
    """The markdown table of one scenario's results."""
    rows = scenario["rows"]
    if key == "q":
        return _quota_table(scenario)
    if key == "d":
        return _table(
            ["decoder", "best µs/page", "median µs/page", "vs bare msgspec (median)"],
            [
                [r["label"], f"{r['best_us']:.0f}", f"{r['median_us']:.0f}", _ratio(r["ratio"])]
                for r in rows
            ],
        )
    if key == "c":
        return _table(
            [
                "contender",
                "wall (median)",
                "tickets/s",
                "RSS after imports",
                "peak RSS",
                "peak - after imports",
            ],
            [
                [
                    r["label"],
                    _seconds(r["wall_s"]),
                    _rate(r),
                    _mb(r["rss_after_imports_mb"]),
                    _mb(r["peak_rss_mb"]),
                    _mb(r["rss_growth_mb"]),
                ]
                for r in rows
            ],
        )
    header = [
        "contender",
        "wall (median)",
        "tickets/s",
        "CPU (median)",
        "peak RSS",
        "vs best peer (2-4)",
        "vs floor (5)",
    ]
    if key == "b":
        header.append("vs latency bound")
    body = []
    for r in rows:
        row = [
            r["label"],
            _seconds(r["wall_s"]),
            _rate(r),
            _seconds(r["cpu_s"]),
            _mb(r["peak_rss_mb"]),
            _ratio(r["vs_best_peer"]),
            _ratio(r["vs_floor"]),
        ]
        if key == "b":
            row.append(_ratio(r["vs_bound"]))
        body.append(row)
    if key == "b":
        bound = scenario["bound_s"]
        tickets = scenario["params"]["tickets"]
        body.append(
            [
                "latency lower bound",
                _seconds(bound),
                f"{tickets / bound:,.0f}",
                "—",
                "—",
                "—",
                "—",
                "1.00x",
            ]
        )
    return _table(header, body)


_VARIANTS = {
    "seconds": "Retry-After (s)",
    "ms": "retry-after-ms",
    "halved": "halved, Retry-After (s)",
}


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _quota_table(scenario: dict[str, Any]) -> str:
    """(q): one row per contender and variant of the quota."""
    body = [
        [
            r["label"],
            _VARIANTS.get(r["variant"], r["variant"]),
            "FAILED" if r.get("error") else _seconds(r["wall_s"]),
            _seconds(r["ideal_s"]),
            _ratio(r["vs_ideal"]),
            _count(r["requests"]),
            _count(r["answered_429"]),
            _share(r["share_429"]),
        ]
        for r in scenario["rows"]
    ]
    header = [
        "contender",
        "quota answers with",
        "wall (median)",
        "ideal",
        "wall / ideal",
        "requests sent",
        "answered 429",
        "429 share",
    ]
    return _table(header, body)


def _rate(row: dict[str, Any]) -> str:
    if row.get("error") or not row["wall_s"]:
        return "FAILED" if row.get("error") else "—"
    return f"{row['tickets'] / row['wall_s']:,.0f}"


def render_markdown(document: dict[str, Any]) -> str:
    """The whole results document as markdown: machine, one table per scenario, checks."""
    m = document["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    out = [
        f"# tamio-async benchmarks ({document['mode']} run)",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores; {m['python']}; {m['platform']}",
        f"- versions: {versions}",
        f"- load average at start / end: {m['loadavg_start']} / {m.get('loadavg_end')}",
        "- repetitions (median reported): "
        + ", ".join(f"({k}) {n}" for k, n in document["repeats"].items()),
        "",
    ]
    for key, scenario in document["scenarios"].items():
        out += [f"## ({key}) {scenario['title']}", "", scenario["description"], ""]
        out += [scenario_table(key, scenario), ""]
        for row in scenario["rows"]:
            if row.get("error"):
                variant = f" [{row['variant']}]" if row.get("variant") else ""
                out.append(f"- **{row['label']}{variant} failed:** {row['error']}")
        out.append("")
    out += ["## Targets", ""]
    out += [f"- {check['line']}" for check in document["checks"]]
    return "\n".join(out) + "\n"
