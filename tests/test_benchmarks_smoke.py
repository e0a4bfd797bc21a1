"""The benchmark runner runs end to end (tiny sizes) and writes its tables; no timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return done, out


def test_smoke_run_succeeds(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, _ = smoke_run
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_scenario_prints_a_table_and_the_targets(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, _ = smoke_run
    for key in "abcd":
        assert f"## ({key})" in done.stdout
    assert "## Targets" in done.stdout
    assert "| contender |" in done.stdout


def test_json_holds_every_contender_verified(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = smoke_run
    document = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    assert set(document["scenarios"]) == {"a", "b", "c", "d"}
    for key in "abc":
        rows = document["scenarios"][key]["rows"]
        assert rows
        assert all(row["error"] is None and row["wall_s"] > 0 for row in rows)
    assert {check["id"] for check in document["checks"]} >= {"a_vs_floor", "b_vs_bound", "d_decode"}
    assert document["machine"]["cores"]


def test_markdown_report_is_written(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = smoke_run
    text = (out / "latest.md").read_text(encoding="utf-8")
    assert text.startswith("# tamio-async benchmarks (smoke run)")
    assert "latency lower bound" in text
