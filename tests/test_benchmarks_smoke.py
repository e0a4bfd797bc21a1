"""The benchmark runner runs end to end (tiny sizes) and writes its tables; no timing asserted.

Also the quota scenario's server-side model (``benchmarks._quota``), on a fake clock.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_quota_model() -> ModuleType:
    # benchmarks/ is not installed, nor on sys.path under plain `pytest`: load it by path
    # (it imports only the standard library).
    spec = importlib.util.spec_from_file_location("_bench_quota", ROOT / "benchmarks" / "_quota.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


_quota = _load_quota_model()
Quota, QuotaSpec, ideal_seconds = _quota.Quota, _quota.QuotaSpec, _quota.ideal_seconds


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
    for key in "abcdq":
        assert f"## ({key})" in done.stdout
    assert "## Targets" in done.stdout
    assert "| contender |" in done.stdout


def test_json_holds_every_contender_verified(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = smoke_run
    document = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    assert set(document["scenarios"]) == {"a", "b", "c", "d", "q"}
    for key in "abcq":
        rows = document["scenarios"][key]["rows"]
        assert rows
        assert all(row["error"] is None and row["wall_s"] > 0 for row in rows)
    assert {check["id"] for check in document["checks"]} >= {
        "a_vs_floor",
        "b_vs_bound",
        "d_decode",
        "q_tamio_redis_seconds_wall",
        "q_tamio_default_halved_429",
    }
    assert document["machine"]["cores"]


def test_markdown_report_is_written(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = smoke_run
    text = (out / "latest.md").read_text(encoding="utf-8")
    assert text.startswith("# tamio-async benchmarks (smoke run)")
    assert "latency lower bound" in text


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_quota_lets_the_burst_through_then_answers_429_with_whole_seconds_rounded_up() -> None:
    quota = Quota(QuotaSpec(rate=50, burst=10), FakeClock())
    assert [quota.check("key") for _ in range(10)] == [None] * 10
    assert quota.check("key") == {"Retry-After": "1"}  # 20 ms to the next token: ceil -> 1 s


def test_quota_ms_variant_sends_only_retry_after_ms() -> None:
    clock = FakeClock()
    quota = Quota(QuotaSpec(rate=50, burst=1, retry_after="ms"), clock)
    assert quota.check("key") is None
    clock.now = 0.005
    assert quota.check("key") == {"retry-after-ms": "15"}


def test_a_429_takes_no_token() -> None:
    clock = FakeClock()
    quota = Quota(QuotaSpec(rate=10, burst=1), clock)
    assert quota.check("key") is None
    assert quota.check("key") is not None
    assert quota.check("key") is not None
    clock.now = 0.1  # exactly one token refilled, the refusals took none of it
    assert quota.check("key") is None
    assert quota.counts() == {"accepted": 2, "throttled": 2, "rate": 10}


def test_each_api_key_has_its_own_bucket_and_reset_refills_them() -> None:
    quota = Quota(QuotaSpec(rate=1, burst=1), FakeClock())
    assert quota.check("a") is None
    assert quota.check("b") is None
    assert quota.check("a") is not None
    quota.reset()
    assert quota.check("a") is None
    assert quota.counts()["throttled"] == 0


def test_halve_after_halves_the_rate_once_that_many_requests_were_accepted() -> None:
    clock = FakeClock()
    quota = Quota(QuotaSpec(rate=50, burst=1, halve_after=2), clock)
    assert quota.check("key") is None
    clock.now = 0.02
    assert quota.check("key") is None
    assert quota.counts()["rate"] == 25
    clock.now = 0.04  # half a token at 25/s
    assert quota.check("key") is not None


def test_ideal_is_pages_over_rate_and_the_halved_quota_adds_its_slower_half() -> None:
    assert ideal_seconds(1000, 50) == 20
    assert ideal_seconds(1000, 50, halve_after=500) == 30
