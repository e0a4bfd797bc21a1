"""Contender 5, the floor of this stack: page bytes fetched concurrently with aiohttp and
decoded by a bare ``msgspec.json.Decoder`` of frozen ``gc=False`` Structs. No retries, no
status checks, no validation beyond the decoder's: nothing a correct client could skip less.
"""

from __future__ import annotations

import asyncio
import math

import aiohttp
import msgspec

from benchmarks.contenders import Options


class Thumbnail(msgspec.Struct, frozen=True, gc=False):
    url: str | None = None
    width: int | None = None
    height: int | None = None


class Asset(msgspec.Struct, frozen=True, gc=False):
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
    thumbnails: tuple[Thumbnail, ...] = ()
    created_at: int | None = None
    updated_at: int | None = None


class Reply(msgspec.Struct, frozen=True, gc=False):
    id: str
    text: str | None = None
    is_client_reply: bool | None = None
    created_at: int | None = None
    assets: tuple[Asset, ...] = ()


class Client(msgspec.Struct, frozen=True, gc=False):
    id: str
    name: str | None = None
    email: str | None = None


class Ticket(msgspec.Struct, frozen=True, gc=False):
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
    replies: tuple[Reply, ...] = ()


class TicketList(msgspec.Struct, frozen=True, gc=False):
    status: int
    total_results: int
    tickets: tuple[Ticket, ...]


decode = msgspec.json.Decoder(TicketList).decode


async def fetch_all(options: Options) -> list[Ticket]:
    """Every ticket: page 1, then the rest with at most ``concurrency`` connections."""
    assert options.concurrency is not None
    url = f"{options.base_url}/agency/tickets/list?per_page={options.per_page}&page="
    headers = {"Authorization": f"Bearer {options.api_key}"}
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def fetch(page: int) -> TicketList:
            async with session.get(url + str(page)) as resp:
                return decode(await resp.read())

        first = await fetch(1)
        last = math.ceil(first.total_results / options.per_page)
        rest = await asyncio.gather(*(fetch(page) for page in range(2, last + 1)))

    tickets = list(first.tickets)
    for page in rest:
        tickets.extend(page.tickets)
    return tickets
