"""The fake's data generator: deterministic, realistic, and shaped like the spec."""

from __future__ import annotations

import itertools
import statistics

import msgspec

from tamio_async.testing import CLIENTS, TEAMMATE_IDS, generate_tickets


def test_same_seed_gives_identical_tickets() -> None:
    assert generate_tickets(50, seed=3) == generate_tickets(50, seed=3)


def test_different_seeds_give_different_tickets() -> None:
    assert generate_tickets(5, seed=1)[0]["id"] != generate_tickets(5, seed=2)[0]["id"]


def test_created_at_strictly_increases_after_start() -> None:
    stamps = [t["created_at"] for t in generate_tickets(300, start=1_700_000_000)]
    assert stamps[0] > 1_700_000_000
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_updated_at_is_never_before_created_at() -> None:
    tickets = generate_tickets(300)
    assert all(t["updated_at"] >= t["created_at"] for t in tickets)
    replies = [r for t in tickets for r in t["replies"]]
    assert all(a["updated_at"] >= a["created_at"] for r in replies for a in r["assets"])


def test_people_come_from_the_published_pools() -> None:
    tickets = generate_tickets(500)
    client_ids = {c["id"] for c in CLIENTS}
    assert len(TEAMMATE_IDS) == 20
    assert len(CLIENTS) == 200
    assert {t["teammate_id"] for t in tickets} <= {*TEAMMATE_IDS, None}
    assert None in {t["teammate_id"] for t in tickets}
    assert {t["client"]["id"] for t in tickets} <= client_ids


def test_about_forty_percent_are_open() -> None:
    tickets = generate_tickets(1000)
    assert 0.3 < sum(t["is_open"] for t in tickets) / len(tickets) < 0.5


def test_titles_vary_and_share_words_for_search() -> None:
    titles = [t["title"] for t in generate_tickets(500)]
    assert len(set(titles)) > 200
    assert 10 < sum("order" in t.lower() for t in titles) < 400


def test_documents_have_no_size_and_images_have_thumbnails() -> None:
    assets = [a for t in generate_tickets(300) for r in t["replies"] for a in r["assets"]]
    images = [a for a in assets if a["type"] == "image"]
    documents = [a for a in assets if a["type"] == "document"]
    assert images
    assert documents
    assert all(a["width"] and a["height"] and 1 <= len(a["thumbnails"]) <= 3 for a in images)
    assert all(a["width"] is a["height"] is None and a["thumbnails"] == [] for a in documents)


def test_about_half_of_the_assets_have_no_folder() -> None:
    assets = [a for t in generate_tickets(500) for r in t["replies"] for a in r["assets"]]
    assert 0.35 < sum(a["folder"] is None for a in assets) / len(assets) < 0.65


def test_encoded_ticket_averages_between_one_and_a_half_and_two_kilobytes() -> None:
    sizes = [len(msgspec.json.encode(t)) for t in generate_tickets(1000)]
    assert 1500 <= statistics.mean(sizes) <= 2000
