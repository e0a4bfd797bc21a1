"""The benchmark runner runs end to end (tiny sizes) and writes its tables; no timing asserted.

Also the quota scenario's server-side model (``benchmarks._quota``), on a fake clock, and the
network mode (``--network``): its smoke run, its bounds and its latency proxy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_by_path(path: str) -> ModuleType:
    # benchmarks/ is not installed, nor on sys.path under plain `pytest`: load it by path
    # (it imports only the standard library).
    name = "_bench_" + path.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


_quota = _load_by_path("_quota.py")
_bounds = _load_by_path("network/_bounds.py")
_proxy = _load_by_path("network/proxy.py")
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


# --- the network mode ----------------------------------------------------------------------

NETWORK_KEYS = {"tamio_list_all", "tamio_list_all_c16", "gather_msgspec", "floor"}


@pytest.fixture(scope="module")
def network_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench-network")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--network", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        (out / "network.md")
        .read_text(encoding="utf-8")
        .startswith("# tamio-async benchmarks: realistic network (smoke run)")
    )
    return done, json.loads((out / "network.json").read_text(encoding="utf-8"))


def test_network_smoke_lists_over_tls_through_the_proxy_with_every_contender(
    network_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    done, document = network_run
    rows = document["scenarios"]["rtt10"]["rows"]
    assert {row["entry"] for row in rows} == NETWORK_KEYS
    assert {row["tickets"] for row in rows} == {150, 200, 500}
    for row in rows:
        assert row["error"] is None and row["wall_s"] > 0
        assert row["requests"] >= row["pages"]  # counted by the server
        assert row["encodings"] == ["zstd"]  # the compressing server's first choice
        assert row["warm_bound_s"] == pytest.approx(row["warm_rtts"] * 0.01)
    assert "## Targets" in done.stdout
    assert any(check["id"] == "net_exact_multiple" for check in document["checks"])


def test_network_smoke_shapes_the_bandwidth_or_says_why_not(
    network_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    done, document = network_run
    if "shaping_skipped" in document:
        assert f"Bandwidth shaping skipped: {document['shaping_skipped']}" in done.stdout
        return
    rows = {row["key"]: row for row in document["scenarios"]["bw1000_rtt10"]["rows"]}
    assert set(rows) == {"tamio_list_all_c16", "tamio_list_all_c16_plain", "gather_msgspec"}
    assert all(row["error"] is None for row in rows.values())
    assert rows["tamio_list_all_c16_plain"]["encodings"] == ["identity"]
    assert rows["tamio_list_all_c16"]["transfer_s"] > 0


def test_warm_bound_is_setup_and_page_one_then_waves_of_c() -> None:
    assert _bounds.warm_rtts(1, 16) == 3
    assert _bounds.warm_rtts(2, 16) == 4
    assert _bounds.warm_rtts(200, 16) == 3 + 13


def test_cold_bound_adds_the_windows_setup_unless_page_ones_connection_is_sooner() -> None:
    assert _bounds.cold_rtts(200, 16) == 3 + 2 + 13
    assert _bounds.cold_rtts(16, 16) == 3 + 2 + 1
    assert _bounds.cold_rtts(2, 16) == 4  # page 2 on page 1's connection
    assert _bounds.cold_rtts(3, 16) == 5


def test_transfer_counts_bytes_at_the_shaped_rate_and_nothing_unshaped() -> None:
    assert _bounds.transfer_s(12_500_000, 1e8) == pytest.approx(1.0)
    assert _bounds.transfer_s(12_500_000, None) == 0


async def test_the_proxy_holds_a_new_connection_one_rtt_and_delays_chunks_in_order(
    tmp_path: Path,
) -> None:
    rtt = 0.04
    slack = 0.002  # timers may fire a clock tick early
    loop = asyncio.get_running_loop()
    arrived: list[float] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            arrived.append(loop.time())
            writer.write(data)
        writer.close()

    socket = str(tmp_path / "upstream.sock")
    upstream = await asyncio.start_unix_server(echo, socket)
    proxy = await _proxy.listen(rtt, socket)
    started = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.sockets[0].getsockname()[1])
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    assert arrived[0] - started >= 1.5 * rtt - slack  # held one RTT, then RTT/2 on the way
    assert loop.time() - started >= 2 * rtt - slack
    sent = loop.time()
    chunks = [bytes([i]) * 1000 for i in range(50)]
    for chunk in chunks:
        writer.write(chunk)
    assert await reader.readexactly(50_000) == b"".join(chunks)  # in order
    assert loop.time() - sent >= rtt - slack  # a round trip through the proxy
    writer.write_eof()
    assert await reader.read() == b""  # the end went through both ways
    writer.close()
    await writer.wait_closed()
    for server in (proxy, upstream):
        server.close()
        await server.wait_closed()
