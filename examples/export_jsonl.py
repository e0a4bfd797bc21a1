"""Bulk export worker: stream every ticket to a JSONL file, then print a summary.

    python examples/export_jsonl.py                      # against an embedded fake API
    python examples/export_jsonl.py -o open.jsonl --open --base-url https://api.tamio.com/v2

The key comes from --api-key or $TAMIO_API_KEY, the URL from --base-url or $TAMIO_BASE_URL;
with neither, the example starts tamio-async's fake API in-process so it just runs.
The file is written as ``<output>.part`` and renamed at the end: a crashed or interrupted
export never sits under the final name looking complete.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from tamio_async import TamioClient, TamioError


@contextlib.asynccontextmanager
async def tamio_client(args: argparse.Namespace) -> AsyncIterator[TamioClient]:
    """A client for the configured API, or for an embedded fake one when none is configured."""
    if args.base_url is None and args.api_key is None:
        from tamio_async.testing import FakeTamioServer

        async with FakeTamioServer(tickets=args.fake_tickets, latency=0.02) as server:
            print(f"(no API configured: using an embedded fake API at {server.base_url})")
            async with TamioClient(
                base_url=server.base_url, api_key=server.api_key, max_concurrency=args.concurrency
            ) as client:
                yield client
    else:
        async with TamioClient(
            base_url=args.base_url, api_key=args.api_key, max_concurrency=args.concurrency
        ) as client:
            yield client


async def export(args: argparse.Namespace) -> None:
    output = Path(args.output)
    partial = output.with_name(output.name + ".part")
    encoder = msgspec.json.Encoder()
    started = time.perf_counter()
    async with tamio_client(args) as client:
        tickets = client.tickets.iterate(per_page=args.per_page, closed=args.closed)
        try:
            with partial.open("wb") as file:
                async with tickets:  # stops in-flight requests however the loop ends
                    async for ticket in tickets:
                        file.write(encoder.encode(ticket) + b"\n")
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(output)
    elapsed = time.perf_counter() - started
    stats = tickets.stats
    print(
        f"Exported {stats.tickets_yielded:,} tickets to {output} in {elapsed:.2f} s "
        f"({stats.tickets_yielded / elapsed:,.0f} tickets/s): "
        f"{stats.pages_fetched:,} pages, {stats.retries:,} retries"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default="tickets.jsonl")
    parser.add_argument("--base-url", default=os.environ.get("TAMIO_BASE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("TAMIO_API_KEY"))
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--open", dest="closed", action="store_const", const=False)
    state.add_argument("--closed", dest="closed", action="store_const", const=True)
    parser.add_argument("--fake-tickets", type=int, default=5000, help="size of the fake API")
    args = parser.parse_args()
    try:
        asyncio.run(export(args))
    except (TamioError, ValueError, TypeError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("export interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
