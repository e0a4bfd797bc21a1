"""The examples do what they say: run as scripts, and (the web app) through its app factory."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from aiohttp import test_utils, web

from tamio_async.testing import FakeTamioServer

HttpClient = test_utils.TestClient[web.Request, web.Application]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 30.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMIO_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


async def run_example(name: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / name), *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_env(),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _files(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


# -- export_jsonl.py ----------------------------------------------------------------------------


async def test_export_writes_the_servers_tickets_and_a_summary(tmp_path: Path) -> None:
    output = tmp_path / "open.jsonl"
    async with FakeTamioServer(tickets=400, seed=3, api_key="export-key") as server:
        code, out, err = await run_example(
            "export_jsonl.py", "-o", str(output), "--open", "--per-page", "30",
            "--base-url", server.base_url, "--api-key", server.api_key,
        )  # fmt: skip
        expected = [ticket["id"] for ticket in server.expected(closed=False)]
    assert code == 0, err
    assert _ids(output) == expected
    assert f"Exported {len(expected):,} tickets" in out
    assert _files(tmp_path) == [output]  # the .part file was renamed


async def test_export_without_configuration_uses_the_embedded_fake(tmp_path: Path) -> None:
    output = tmp_path / "all.jsonl"
    code, out, err = await run_example(
        "export_jsonl.py", "-o", str(output), "--fake-tickets", "300"
    )
    assert code == 0, err
    # The embedded fake is FakeTamioServer's default data set (seed 0).
    assert _ids(output) == [t["id"] for t in FakeTamioServer(tickets=300).expected()]
    assert "embedded fake API" in out


# -- web_app.py -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_app", EXAMPLES / "web_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def fake() -> AsyncIterator[FakeTamioServer]:
    async with FakeTamioServer(tickets=300, seed=5, api_key="web-key") as server:
        yield server


@pytest.fixture
async def http(web_app: ModuleType, fake: FakeTamioServer) -> AsyncIterator[HttpClient]:
    app = web_app.create_app(base_url=fake.base_url, api_key=fake.api_key)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        yield client


async def test_web_app_serves_one_filtered_page(http: HttpClient, fake: FakeTamioServer) -> None:
    response = await http.get(
        "/tickets", params={"closed": "false", "filter": "order", "page": "2", "per_page": "5"}
    )
    assert response.status == 200
    expected = fake.expected(closed=False, filter="order")[5:10]
    assert [t["id"] for t in await response.json()] == [t["id"] for t in expected]


async def test_web_app_lists_every_page_up_to_the_limit(
    http: HttpClient, fake: FakeTamioServer
) -> None:
    response = await http.get("/tickets", params={"all": "true", "limit": "120", "closed": "true"})
    assert response.status == 200
    expected = fake.expected(closed=True)[:120]
    assert [t["id"] for t in await response.json()] == [t["id"] for t in expected]


async def test_web_app_answers_400_to_a_bad_parameter_without_calling_tamio(
    http: HttpClient,
    fake: FakeTamioServer,
) -> None:
    response = await http.get("/tickets", params={"per_page": "0"})
    assert response.status == 400
    assert "per_page" in (await response.json())["error"]
    assert fake.requests == []


async def test_web_app_answers_502_when_tamio_fails(
    web_app: ModuleType, fake: FakeTamioServer
) -> None:
    app = web_app.create_app(base_url=fake.base_url, api_key="not-the-key")
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        response = await client.get("/tickets")
        assert response.status == 502
        assert "not-the-key" not in await response.text()


async def test_web_app_script_runs_on_the_embedded_fake() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "web_app.py"), "--port", "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        found = None
        while found is None:
            line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
            assert line, "the web app ended before serving"
            found = re.search(r"Running on (http://\S+)", line.decode())
        async with (
            aiohttp.ClientSession() as session,
            session.get(found[1] + "/tickets", params={"closed": "false"}) as response,
        ):
            assert response.status == 200
            tickets = await response.json()
        assert tickets
        assert all(ticket["is_open"] for ticket in tickets)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0
