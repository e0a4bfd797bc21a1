"""Contender 4: the best a careful user writes in an afternoon: aiohttp, msgspec Structs
(default settings), page 1 first, then ``asyncio.gather`` over the rest behind a semaphore.
"""

from __future__ import annotations

import asyncio
import math

import aiohttp
import msgspec

from benchmarks.contenders import Options


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


async def fetch_all(options: Options) -> list[Ticket]:
    """Every ticket as a Struct: page 1, then all the other pages at once, bounded."""
    assert options.concurrency is not None
    url = options.base_url + "/agency/tickets/list"
    headers = {"Authorization": f"Bearer {options.api_key}", "Accept": "application/json"}
    semaphore = asyncio.Semaphore(options.concurrency)

    async with aiohttp.ClientSession(headers=headers) as session:

        async def fetch(page: int) -> TicketList:
            async with semaphore:
                params = {"page": page, "per_page": options.per_page}
                async with session.get(url, params=params) as resp:
                    resp.raise_for_status()
                    return decoder.decode(await resp.read())

        first = await fetch(1)
        last = math.ceil(first.total_results / options.per_page)
        rest = await asyncio.gather(*(fetch(page) for page in range(2, last + 1)))

    tickets = first.tickets
    for batch in rest:
        tickets.extend(batch.tickets)
    return tickets
