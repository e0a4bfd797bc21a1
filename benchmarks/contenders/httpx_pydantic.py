"""Contender 3: the shape of a generated SDK: httpx.AsyncClient, pydantic v2 models, and
auto-pagination that validates each page with ``model_validate_json``, one page at a time.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from benchmarks.contenders import Options


class Thumbnail(BaseModel):
    url: str | None = None
    width: int | None = None
    height: int | None = None


class Asset(BaseModel):
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
    thumbnails: list[Thumbnail] | None = None
    created_at: int | None = None
    updated_at: int | None = None


class Reply(BaseModel):
    id: str
    text: str | None = None
    is_client_reply: bool | None = None
    created_at: int | None = None
    assets: list[Asset] | None = None


class Client(BaseModel):
    id: str
    name: str | None = None
    email: str | None = None


class Ticket(BaseModel):
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
    replies: list[Reply] | None = None


class TicketList(BaseModel):
    status: int | None = None
    total_results: int | None = None
    tickets: list[Ticket]


async def fetch_all(options: Options) -> list[Ticket]:
    """Every ticket as a pydantic model, one page after the other."""
    headers = {"Authorization": f"Bearer {options.api_key}", "Accept": "application/json"}
    tickets: list[Ticket] = []
    async with httpx.AsyncClient(base_url=options.base_url, headers=headers) as client:
        page = 1
        while True:
            params = {"page": page, "per_page": options.per_page}
            resp = await client.get("/agency/tickets/list", params=params)
            resp.raise_for_status()
            batch = TicketList.model_validate_json(resp.content)
            tickets.extend(batch.tickets)
            if len(batch.tickets) < options.per_page:
                return tickets
            page += 1
