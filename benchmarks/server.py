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

Every dataset counts the pages it answers (``GET /<name>/_requests``: requests, those past
the end, body bytes sent, per encoding; ``POST /<name>/_requests/reset`` zeroes them).
A dataset with ``"compress": true`` answers like a CDN: it honours ``Accept-Encoding``,
preferring zstd, then br, then gzip (``ENCODINGS``: levels fixed, every page encoded once at
start). ``"tls_unix": {"path": ..., "certfile": ...[, "keyfile": ...]}`` adds a TLS 1.3 listener
on that Unix socket (the realistic-network mode's latency proxy connects there; see
``benchmarks/network``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from benchmarks._checksum import ids_checksum
from benchmarks._data import API_KEY, PER_PAGE, encode_pages, generate_tickets
from benchmarks._quota import Quota, QuotaSpec

__all__ = ["ENCODINGS", "Dataset", "RequestCounts", "choose_encoding", "main"]

_JSON = "application/json"


def _encoders() -> dict[str, tuple[int, Callable[[bytes], bytes]]]:
    """Content-Encoding -> (level, compress), best first; an encoder not installed is left out.

    Levels are what an on-the-fly compressor in front of an API plausibly uses: zstd's own
    default (3), brotli 4 (the fast end: 11 takes ~150x the time for 18 % fewer bytes), and
    gzip 1 (nginx's default ``gzip_comp_level``). Each is ~0.4-1.2 ms per 190 KB page here.
    """
    encoders: dict[str, tuple[int, Callable[[bytes], bytes]]] = {}
    try:
        if sys.version_info >= (3, 14):
            from compression import zstd
        else:
            from backports import zstd
        encoders["zstd"] = (3, lambda body: zstd.compress(body, 3))
    except ImportError:
        pass
    try:
        import brotli

        encoders["br"] = (4, lambda body: brotli.compress(body, quality=4))
    except ImportError:
        pass
    encoders["gzip"] = (1, lambda body: gzip.compress(body, 1, mtime=0))
    return encoders


#: Content-Encoding -> (level, compress function), in the server's order of preference.
ENCODINGS = _encoders()


def choose_encoding(accept_encoding: str) -> str | None:
    """The server's preferred encoding among those the client accepts (q > 0); None: identity."""
    accepted = set()
    for item in accept_encoding.split(","):
        name, _, parameters = item.partition(";")
        quality = parameters.strip().removeprefix("q=")
        try:
            if parameters and float(quality) <= 0:
                continue
        except ValueError:
            continue
        accepted.add(name.strip().lower())
    return next((name for name in ENCODINGS if name in accepted), None)


@dataclass
class RequestCounts:
    """The pages one dataset answered since its last reset (its ``_requests`` endpoint)."""

    requests: int = 0
    #: Requests for a page after the last page of data (the empty "past the end" page).
    past_end: int = 0
    body_bytes: int = 0
    encodings: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.requests = self.past_end = self.body_bytes = 0
        self.encodings.clear()

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "past_end": self.past_end,
            "body_bytes": self.body_bytes,
            "encodings": dict(self.encodings),
        }


@dataclass(frozen=True)
class Dataset:
    """One listing: its page bodies (the last one empty, for "past the end"), its latency,
    and its quota (None: unlimited)."""

    pages: list[bytes]
    latency: float
    quota: Quota | None = None
    #: Content-Encoding -> the same pages encoded (empty: the dataset never compresses).
    encoded: dict[str, list[bytes]] = field(default_factory=dict)
    requests: RequestCounts = field(default_factory=RequestCounts)


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
        index = min(page, len(dataset.pages)) - 1
        counts = dataset.requests
        counts.requests += 1
        counts.past_end += page >= len(dataset.pages)
        encoding = None
        if dataset.encoded:
            encoding = choose_encoding(request.headers.get("Accept-Encoding", ""))
        counts.encodings[encoding or "identity"] += 1
        if encoding is None:
            body = dataset.pages[index]
            counts.body_bytes += len(body)
            return web.Response(body=body, content_type=_JSON)
        body = dataset.encoded[encoding][index]
        counts.body_bytes += len(body)
        headers = {"Content-Encoding": encoding, "Vary": "Accept-Encoding"}
        return web.Response(body=body, content_type=_JSON, headers=headers)

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

    def dataset_of(request: web.Request) -> Dataset:
        dataset = datasets.get(request.match_info["dataset"])
        if dataset is None:
            raise web.HTTPNotFound()
        return dataset

    async def request_counts(request: web.Request) -> web.Response:
        return web.json_response(dataset_of(request).requests.as_dict())

    async def request_counts_reset(request: web.Request) -> web.Response:
        counts = dataset_of(request).requests
        answer = counts.as_dict()
        counts.reset()
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/{dataset}/v2/agency/tickets/list", tickets_list)
    app.router.add_get("/{dataset}/_requests", request_counts)
    app.router.add_post("/{dataset}/_requests/reset", request_counts_reset)
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
    compressed: dict[int, dict[str, list[bytes]]] = {}  # ticket count -> encoding -> pages
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
        if item.get("compress") and count not in compressed:
            compressed[count] = {
                encoding: [compress(page) for page in pages]
                for encoding, (_, compress) in ENCODINGS.items()
            }
        by_encoding = compressed[count] if item.get("compress") else {}
        datasets[name] = Dataset(
            pages=pages,
            latency=float(str(item.get("latency", 0))),
            quota=quota,
            encoded=by_encoding,
        )
        announced[name] = {
            "tickets": count,
            "pages": len(pages) - 1,
            "checksum": checksum,
            "first_page_bytes": len(pages[0]),
            "quota": quota_spec,
            "body_bytes": {  # of the pages of data, per encoding this dataset serves
                encoding: sum(map(len, bodies[:-1]))
                for encoding, bodies in {"identity": pages, **by_encoding}.items()
            },
        }
    del tickets  # only the encoded pages are needed from here on

    runner = web.AppRunner(build_app(datasets), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    tls_unix: dict[str, str] | None = spec.get("tls_unix")  # type: ignore[assignment]
    if tls_unix is not None:
        await web.UnixSite(runner, tls_unix["path"], ssl_context=_tls13_context(tls_unix)).start()

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
    levels = {encoding: level for encoding, (level, _) in ENCODINGS.items()}
    announcement = {"port": port, "pid": os.getpid(), "datasets": announced, "encodings": levels}
    print(json.dumps(announcement), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _tls13_context(files: dict[str, str]) -> ssl.SSLContext:
    """A server context that speaks only TLS 1.3 (one round trip of handshake)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(files["certfile"], files.get("keyfile"))
    return context


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is one JSON spec."""
    asyncio.run(serve(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
