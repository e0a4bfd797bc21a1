"""The page server: pre-encoded listing pages behind a minimal aiohttp.web handler.

    python -m benchmarks.server '{"datasets": [{"name": "a", "tickets": 20000, "latency": 0}]}'

It runs in its own process so its CPU never mixes with a contender's. Every dataset is a
prefix of one generated ticket list, served at ``/<name>/v2/agency/tickets/list`` with
``per_page=100`` only. Once listening it prints one JSON line (port, and each dataset's
ticket count, page count and id checksum); it exits when its stdin closes (or on SIGTERM).

A dataset may have a quota (``"quota": {"rate": 50, "burst": 10, "retry_after": "seconds",
"halve_after": null}``, see ``_quota``): a token bucket per API key, checked after the latency
(so a ``Retry-After`` counts from the moment the client receives it). Its counts are at
``GET /<name>/_quota`` and ``POST /<name>/_quota/reset`` refills the bucket and zeroes them.
Datasets of the same size share their page bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass

from aiohttp import web

from benchmarks._checksum import ids_checksum
from benchmarks._data import API_KEY, PER_PAGE, encode_pages, generate_tickets
from benchmarks._quota import Quota, QuotaSpec

__all__ = ["Dataset", "main"]

_JSON = "application/json"


@dataclass(frozen=True)
class Dataset:
    """One listing: its page bodies (the last one empty, for "past the end"), its latency,
    and its quota (None: unlimited)."""

    pages: list[bytes]
    latency: float
    quota: Quota | None = None


def build_app(datasets: dict[str, Dataset]) -> web.Application:
    """The app: one handler that looks the body up and returns it, after the latency."""
    authorization = f"Bearer {API_KEY}"
    unauthorized = b'{"status":401,"message":"Unauthorized"}'
    bad_request = b'{"status":400,"message":"page and per_page=100 are required"}'
    too_many = b'{"status":429,"message":"Too Many Requests"}'

    async def tickets_list(request: web.Request) -> web.Response:
        dataset = datasets.get(request.match_info["dataset"])
        if dataset is None:
            raise web.HTTPNotFound()
        if request.headers.get("Authorization") != authorization:
            return web.Response(status=401, body=unauthorized, content_type=_JSON)
        try:
            page = int(request.query["page"])
            per_page = int(request.query["per_page"])
        except (KeyError, ValueError):
            page = per_page = 0
        if page < 1 or per_page != PER_PAGE:
            return web.Response(status=400, body=bad_request, content_type=_JSON)
        if dataset.latency:
            await asyncio.sleep(dataset.latency)
        if dataset.quota is not None:
            throttle = dataset.quota.check(authorization)
            if throttle is not None:
                return web.Response(status=429, body=too_many, content_type=_JSON, headers=throttle)
        body = dataset.pages[min(page, len(dataset.pages)) - 1]
        return web.Response(body=body, content_type=_JSON)

    def quota_of(request: web.Request) -> Quota:
        dataset = datasets.get(request.match_info["dataset"])
        if dataset is None or dataset.quota is None:
            raise web.HTTPNotFound()
        return dataset.quota

    async def quota_counts(request: web.Request) -> web.Response:
        return web.json_response(quota_of(request).counts())

    async def quota_reset(request: web.Request) -> web.Response:
        quota = quota_of(request)
        quota.reset()
        return web.json_response(quota.counts())

    app = web.Application()
    app.router.add_get("/{dataset}/v2/agency/tickets/list", tickets_list)
    app.router.add_get("/{dataset}/_quota", quota_counts)
    app.router.add_post("/{dataset}/_quota/reset", quota_reset)
    return app


async def serve(spec: dict[str, object]) -> None:
    """Generate, encode, listen on 127.0.0.1:0, announce, and serve until stdin closes."""
    wanted: list[dict[str, object]] = spec["datasets"]  # type: ignore[assignment]
    tickets = generate_tickets(max(int(str(d["tickets"])) for d in wanted))
    datasets: dict[str, Dataset] = {}
    announced: dict[str, object] = {}
    encoded: dict[int, tuple[list[bytes], str]] = {}  # ticket count -> pages, id checksum
    for item in wanted:
        name, count = str(item["name"]), int(str(item["tickets"]))
        if count not in encoded:
            prefix = tickets[:count]
            encoded[count] = encode_pages(prefix, PER_PAGE), ids_checksum(t["id"] for t in prefix)
            del prefix
        pages, checksum = encoded[count]
        quota_spec = item.get("quota")
        quota = None
        if quota_spec is not None:
            quota = Quota(QuotaSpec(**quota_spec), time.monotonic)  # type: ignore[arg-type]
        datasets[name] = Dataset(
            pages=pages, latency=float(str(item.get("latency", 0))), quota=quota
        )
        announced[name] = {
            "tickets": count,
            "pages": len(pages) - 1,
            "checksum": checksum,
            "first_page_bytes": len(pages[0]),
            "quota": quota_spec,
        }
    del tickets  # only the encoded pages are needed from here on

    runner = web.AppRunner(build_app(datasets), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def on_stdin() -> None:
        if not os.read(stdin, 4096):
            loop.remove_reader(stdin)
            stop.set()

    stdin = sys.stdin.fileno()
    # With a pipe (the runner's way), the server dies with its parent; a terminal or
    # /dev/null cannot be polled, and then only SIGTERM/SIGINT stop it.
    with contextlib.suppress(PermissionError):
        loop.add_reader(stdin, on_stdin)
    print(json.dumps({"port": port, "pid": os.getpid(), "datasets": announced}), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is one JSON spec."""
    asyncio.run(serve(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
