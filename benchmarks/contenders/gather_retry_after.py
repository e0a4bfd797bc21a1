"""Contender 6 (quota scenario): the hand-written gather (4) plus what its author adds on the
first 429: sleep what the server asks (``retry-after-ms``, else ``Retry-After``), then try
that page again. The sleep happens inside the semaphore, so at most ``concurrency`` requests
are in flight or waiting; each page is tried at most ``MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import aiohttp
import msgspec

from benchmarks.contenders import Listing, Options

#: Tries per page before giving up (a 429 loop must end somewhere). Generous on purpose:
#: with ``retry-after-ms`` the waiting requests wake together and one of them gets the next
#: token, so a page can lose dozens of times in a row (50 was not enough for 200 pages).
MAX_ATTEMPTS = 1_000


class Thumbnail(msgspec.Struct):
    url: str | None = None
    width: int | None = None
    height: int | None = None


class Asset(msgspec.Struct):
    id: str
    object: str | None = None
    filename: str | None = None
    extension: str | None = None
    filesize: int | None = None
    type: str | None = None
    version: int | None = None
    status: str | None = None
    alt_text: str | None = None
    width: int | None = None
    height: int | None = None
    public_url: str | None = None
    folder: str | None = None
    thumbnails: list[Thumbnail] = []
    created_at: int | None = None
    updated_at: int | None = None


class Reply(msgspec.Struct):
    id: str
    text: str | None = None
    is_client_reply: bool | None = None
    created_at: int | None = None
    assets: list[Asset] = []


class Client(msgspec.Struct):
    id: str
    name: str | None = None
    email: str | None = None


class Ticket(msgspec.Struct):
    id: str
    object: str | None = None
    title: str | None = None
    is_open: bool | None = None
    category: str | None = None
    subcategory: str | None = None
    teammate_id: str | None = None
    client: Client | None = None
    language: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    replies: list[Reply] = []


class TicketList(msgspec.Struct):
    status: int
    total_results: int
    tickets: list[Ticket]


decoder = msgspec.json.Decoder(TicketList)


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``Retry-After``, else 1."""
    millis = headers.get("retry-after-ms")  # aiohttp's headers are case-insensitive
    if millis is not None:
        return int(millis) / 1000
    seconds = headers.get("Retry-After")
    return float(seconds) if seconds is not None else 1.0


async def fetch_all(options: Options) -> Listing:
    """Every ticket as a Struct: page 1, then the others at once, bounded, retried on 429."""
    assert options.concurrency is not None
    url = options.base_url + "/agency/tickets/list"
    headers = {"Authorization": f"Bearer {options.api_key}", "Accept": "application/json"}
    semaphore = asyncio.Semaphore(options.concurrency)
    throttled = most_attempts = 0

    async with aiohttp.ClientSession(headers=headers) as session:

        async def fetch(page: int) -> TicketList:
            nonlocal throttled, most_attempts
            params = {"page": page, "per_page": options.per_page}
            async with semaphore:
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    async with session.get(url, params=params) as resp:
                        if resp.status != 429:
                            resp.raise_for_status()
                            most_attempts = max(most_attempts, attempt)
                            return decoder.decode(await resp.read())
                        wait = retry_after(resp.headers)
                    throttled += 1
                    await asyncio.sleep(wait)
            raise RuntimeError(f"page {page}: still 429 after {MAX_ATTEMPTS} attempts")

        first = await fetch(1)
        last = math.ceil(first.total_results / options.per_page)
        rest = await asyncio.gather(*(fetch(page) for page in range(2, last + 1)))

    tickets = first.tickets
    for batch in rest:
        tickets.extend(batch.tickets)
    return Listing(
        tickets, {"throttled": throttled, "retries": throttled, "most_attempts": most_attempts}
    )
