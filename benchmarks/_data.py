"""The benchmark's data: realistic tickets, generated once and encoded once into page bodies."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["API_KEY", "PER_PAGE", "encode_pages", "generate_tickets"]

TicketDict = dict[str, Any]

#: The key every contender sends and the page server checks.
API_KEY = "bench-key"
PER_PAGE = 100

_shared_generator: Callable[..., list[TicketDict]] | None
try:
    # The fake server's generator: the same realistic data the test-suite uses.
    from tamio_async.testing._data import generate_tickets as _shared_generator
except ImportError:  # tamio_async.testing is optional here: fall back to a local generator
    _shared_generator = None


def generate_tickets(count: int, *, seed: int = 0) -> list[TicketDict]:
    """``count`` tickets shaped like the API's (replies, assets, thumbnails): ~1.7-1.9 KB each."""
    if _shared_generator is not None:
        return _shared_generator(count, seed=seed)
    return _local_tickets(count, seed=seed)


def encode_pages(tickets: list[TicketDict], per_page: int) -> list[bytes]:
    """Every page body of the listing, in order, plus one empty page for "past the end"."""
    encoder = msgspec.json.Encoder()
    total = len(tickets)
    pages = [
        encoder.encode(
            {"status": 200, "total_results": total, "tickets": tickets[start : start + per_page]}
        )
        for start in range(0, total, per_page)
    ]
    pages.append(encoder.encode({"status": 200, "total_results": total, "tickets": []}))
    return pages


def _local_tickets(count: int, *, seed: int) -> list[TicketDict]:
    """A plain stand-in for ``tamio_async.testing._data`` with the same shape and size."""
    rng = random.Random(seed)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def asset(at: int) -> TicketDict:
        asset_id = uid()
        width, height = rng.choice([(1920, 1080), (1280, 720), (800, 600)])
        name = f"screenshot_{rng.randint(1, 9999)}.png"
        thumbnails = [
            {
                "url": f"https://pub.ox31.com/assets/{asset_id}/thumb_{w}.png",
                "width": w,
                "height": w * height // width,
            }
            for w in (150, 300)
        ]
        return {
            "id": asset_id,
            "object": "asset",
            "filename": name,
            "extension": "png",
            "filesize": rng.randint(8_000, 5_000_000),
            "type": "image",
            "version": 1,
            "status": "ready",
            "alt_text": "Screenshot attached by the sender",
            "width": width,
            "height": height,
            "public_url": f"https://pub.ox31.com/assets/{asset_id}/{name}",
            "folder": uid() if rng.random() < 0.5 else None,
            "thumbnails": thumbnails,
            "created_at": at,
            "updated_at": at,
        }

    tickets = []
    created_at = 1_690_000_000
    for _ in range(count):
        created_at += rng.randint(60, 4 * 3_600)
        at = created_at
        replies = []
        for k in range(rng.randint(0, 4)):
            at += rng.randint(60, 2 * 86_400)
            replies.append(
                {
                    "id": uid(),
                    "text": "Thank you for reaching out, we are looking into it right now.",
                    "is_client_reply": k % 2 == 1,
                    "created_at": at,
                    "assets": [asset(at) for _ in range(rng.choice([0, 0, 1, 1, 2]))],
                }
            )
        tickets.append(
            {
                "id": uid(),
                "object": "ticket",
                "title": f"Payment failed for order #{rng.randint(10_000, 99_999)}",
                "is_open": rng.random() < 0.4,
                "category": "Billing Issues",
                "subcategory": "Payment Failed",
                "teammate_id": uid(),
                "client": {"id": uid(), "name": "Ana Costa", "email": "ana.costa7@example.com"},
                "language": "en",
                "created_at": created_at,
                "updated_at": at + rng.randint(0, 3_600),
                "replies": replies,
            }
        )
    return tickets
