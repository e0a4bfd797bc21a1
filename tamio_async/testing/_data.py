"""Deterministic, realistic ticket data shaped exactly like GET /v2/agency/tickets/list."""

from __future__ import annotations

import random
import unicodedata
import uuid
from typing import Any

__all__ = ["CLIENTS", "TEAMMATE_IDS", "generate_tickets"]

Ticket = dict[str, Any]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# fmt: off
# Word tables, kept dense: one entry per line would bury the code.
_FIRST = ["Ana", "Ben", "Chloé", "David", "Emma", "Felix", "Greta", "Hugo", "Inès", "Jonas",
          "Karin", "Lucas", "Maria", "Noah", "Olivia", "Pedro", "Rosa", "Sven", "Tara"]
_LAST = ["Almeida", "Bakker", "Costa", "Dubois", "Evans", "Fischer", "García", "Huber",
         "Janssen", "Klein", "Laurent", "Müller", "Novak", "Oliveira", "Peeters", "Rossi"]
_DOMAINS = ["example.com", "mail.example.org", "acme.test", "shop.example.net", "studio.example"]
# category -> (subcategories, title templates)
_CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "Billing Issues": (
        ["Payment Failed", "Refund Request", "Invoice Error", "Subscription Change"],
        ["Payment failed for {product} subscription", "Refund request for order #{n}",
         "Invoice #{n} shows the wrong amount", "Charged twice for {product}",
         "Cannot update card details on {device}"]),
    "Technical Support": (
        ["Login Problem", "Bug Report", "Performance", "Integration"],
        ["Cannot log in to {product} on {device}", "{product} crashes when opening {feature}",
         "{feature} is very slow since the last update", "Error 500 when saving {feature}",
         "Webhook from {product} never arrives"]),
    "Account Management": (
        ["Password Reset", "Profile Update", "Account Deletion", "Permissions"],
        ["Password reset email not received", "Please delete my {product} account",
         "Change the owner of workspace {n}", "Teammate cannot access {feature}",
         "Update company name on {product} invoices"]),
    "Shipping & Delivery": (
        ["Delayed Delivery", "Wrong Item", "Damaged Package", "Tracking"],
        ["Order #{n} has not arrived yet", "Received the wrong item in order #{n}",
         "Package arrived damaged", "Tracking link for order #{n} does not work"]),
    "Product Questions": (
        ["Feature Request", "How-To", "Compatibility", "Pricing"],
        ["How do I export {feature} to CSV?", "Does {product} work on {device}?",
         "Feature request: dark mode for {feature}", "Pricing for {product} with 50 seats",
         "Is there an API for {feature}?"]),
}
_PRODUCTS = ["Tamio Pro", "Tamio Lite", "the mobile app", "the dashboard", "Analytics", "Inbox"]
_DEVICES = ["iPhone", "Android", "Windows", "macOS", "Linux", "iPad", "Chromebook"]
_FEATURES = ["reports", "the calendar", "invoices", "the contact list", "tags", "automations"]
_LANGUAGES = ["en"] * 6 + ["fr", "fr", "de", "de", "es", "pt", "nl", "it"]
_CLIENT_LINES = [
    "Hello, I have been trying to sort this out for two days and nothing works.",
    "Could you please have a look at this as soon as possible? It blocks my whole team.",
    "I attached a screenshot of what I see on my screen.",
    "Thanks for the quick answer, but the problem is still there after a restart.",
    "This started right after the update last Tuesday, before that everything was fine.",
    "Any news on this? Our customers are starting to complain.",
]
_AGENT_LINES = [
    "Thank you for reaching out, I am sorry for the trouble this has caused.",
    "I have forwarded this to our engineering team and will update you as soon as I hear back.",
    "Could you tell me which browser and version you are using?",
    "We have resolved your issue; please let us know if anything else comes up.",
    "I have applied a credit to your account for the inconvenience.",
    "Please try clearing the cache and logging in again, that usually fixes it.",
]
_IMAGE_EXT = ["png", "jpg", "webp", "gif"]
_DOC_EXT = ["pdf", "docx", "csv", "xlsx", "txt"]
_SIZES = [(1920, 1080), (1280, 720), (2560, 1440), (1170, 2532), (800, 600), (3024, 4032)]
_THUMB_WIDTHS = [150, 300, 600]
# fmt: on


def _people() -> tuple[list[str], list[dict[str, str]]]:
    rng = random.Random(0x7A310)
    teammates = [_uuid(rng) for _ in range(20)]
    clients = []
    for _ in range(200):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        # Plain ASCII addresses: strict email validators reject "chloé.müller@...".
        local = unicodedata.normalize("NFKD", f"{first}.{last}".lower()).encode("ascii", "ignore")
        email = f"{local.decode()}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"
        clients.append({"id": _uuid(rng), "name": f"{first} {last}", "email": email})
    return teammates, clients


# Fixed for every seed, so tests can filter by a teammate or client known to exist.
TEAMMATE_IDS, CLIENTS = _people()


def _asset(rng: random.Random, created_at: int) -> dict[str, Any]:
    asset_id = _uuid(rng)
    image = rng.random() < 0.6
    ext = rng.choice(_IMAGE_EXT if image else _DOC_EXT)
    stem = rng.choice(["screenshot", "photo", "error", "receipt", "export", "invoice", "log"])
    filename = f"{stem}_{rng.randint(1, 9999)}.{ext}"
    url = f"https://pub.ox31.com/assets/{asset_id}/{filename}"
    width: int | None = None
    height: int | None = None
    thumbnails: list[dict[str, Any]] = []
    if image:
        width, height = rng.choice(_SIZES)
        for tw in _THUMB_WIDTHS[: rng.randint(1, 3)]:
            th = max(1, tw * height // width)
            thumbnails.append(
                {
                    "url": f"https://pub.ox31.com/assets/{asset_id}/thumb_{tw}x{th}.{ext}",
                    "width": tw,
                    "height": th,
                }
            )
    return {
        "id": asset_id,
        "object": "asset",
        "filename": filename,
        "extension": ext,
        "filesize": rng.randint(8_000, 5_000_000),
        "type": "image" if image else "document",
        "version": rng.choice([1, 1, 1, 2, 3]),
        "status": "ready" if rng.random() < 0.95 else "processing",
        "alt_text": f"{stem.capitalize()} attached by the sender" if image else filename,
        "width": width,
        "height": height,
        "public_url": url,
        "folder": _uuid(rng) if rng.random() < 0.5 else None,
        "thumbnails": thumbnails,
        "created_at": created_at,
        "updated_at": created_at + rng.choice([0, 0, rng.randint(1, 86_400)]),
    }


def _ticket(rng: random.Random, created_at: int) -> Ticket:
    category = rng.choice(list(_CATEGORIES))
    subcategories, templates = _CATEGORIES[category]
    title = rng.choice(templates).format(
        product=rng.choice(_PRODUCTS),
        device=rng.choice(_DEVICES),
        feature=rng.choice(_FEATURES),
        n=rng.randint(10_000, 99_999),
    )
    title = title[0].upper() + title[1:]  # templates may start with "{product}"
    replies = []
    at = created_at
    for k in range(rng.randint(0, 4)):
        at += rng.randint(60, 2 * 86_400)
        # The ticket is the client's first message, so replies mostly alternate agent, client.
        from_client = k % 2 == 1 if rng.random() < 0.8 else rng.random() < 0.5
        lines = _CLIENT_LINES if from_client else _AGENT_LINES
        text = " ".join(rng.sample(lines, rng.randint(1, 3)))
        replies.append(
            {
                "id": _uuid(rng),
                "text": text,
                "is_client_reply": from_client,
                "created_at": at,
                "assets": [_asset(rng, at) for _ in range(rng.choice([0, 0, 1, 1, 2]))],
            }
        )
    return {
        "id": _uuid(rng),
        "object": "ticket",
        "title": title,
        "is_open": rng.random() < 0.4,
        "category": category,
        "subcategory": rng.choice(subcategories),
        "teammate_id": rng.choice(TEAMMATE_IDS) if rng.random() < 0.85 else None,
        "client": dict(rng.choice(CLIENTS)),
        "language": rng.choice(_LANGUAGES),
        "created_at": created_at,
        "updated_at": at + rng.randint(0, 3_600),
        "replies": replies,
    }


def generate_tickets(count: int, *, seed: int = 0, start: int = 1_690_000_000) -> list[Ticket]:
    """Return `count` tickets, identical for a seed, with created_at strictly after `start`."""
    rng = random.Random(seed)
    tickets = []
    created_at = start
    for _ in range(count):
        created_at += rng.randint(60, 4 * 3_600)
        tickets.append(_ticket(rng, created_at))
    return tickets
