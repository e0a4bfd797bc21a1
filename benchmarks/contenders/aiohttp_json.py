"""Contender 2: the loop a user writes by hand: aiohttp, stdlib json, page=1.. until short."""

from __future__ import annotations

from typing import Any

import aiohttp

from benchmarks.contenders import Options


async def fetch_all(options: Options) -> list[dict[str, Any]]:
    """Every ticket as a dict, one page after the other."""
    url = options.base_url + "/agency/tickets/list"
    headers = {"Authorization": f"Bearer {options.api_key}", "Accept": "application/json"}
    tickets: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        page = 1
        while True:
            params = {"page": page, "per_page": options.per_page}
            async with session.get(url, params=params) as resp:
                resp.raise_for_status()
                data = await resp.json()  # json.loads
            tickets.extend(data["tickets"])
            if len(data["tickets"]) < options.per_page:
                return tickets
            page += 1
