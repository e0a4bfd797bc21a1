"""The fake's data generator: deterministic, realistic, and shaped like the spec."""

from __future__ import annotations

import itertools
import statistics
import time
import uuid

import msgspec
import pytest

from tamio_async.testing import CLIENTS, DATA_END, TEAMMATE_IDS, generate_tickets
from tamio_async.testing._data import GeneratedTickets, gap_for


def test_same_seed_gives_identical_tickets() -> None:
    assert generate_tickets(50, seed=3) == generate_tickets(50, seed=3)


def test_different_seeds_give_different_tickets() -> None:
    assert generate_tickets(5, seed=1)[0]["id"] != generate_tickets(5, seed=2)[0]["id"]


def test_created_at_strictly_increases_after_start() -> None:
    stamps = [t["created_at"] for t in generate_tickets(300, start=1_700_000_000)]
    assert stamps[0] > 1_700_000_000
    assert all(a < b for a, b in itertools.pairwise(stamps))


def all_timestamps(ticket: dict[str, object]) -> list[int]:
    replies = ticket["replies"]
    assert isinstance(replies, list)
    stamps = [ticket["created_at"], ticket["updated_at"]]
    for reply in replies:
        stamps.append(reply["created_at"])
        stamps.extend(s for a in reply["assets"] for s in (a["created_at"], a["updated_at"]))
    assert all(isinstance(s, int) for s in stamps)
    return stamps  # type: ignore[return-value]


@pytest.mark.parametrize("count", [1, 300, 20_000])
def test_every_timestamp_lies_in_the_past_before_data_end(count: int) -> None:
    tickets = generate_tickets(count, seed=count)
    stamps = [s for t in tickets for s in all_timestamps(t)]
    assert max(stamps) < DATA_END < time.time()
    created = [t["created_at"] for t in tickets]
    assert all(a < b for a, b in itertools.pairwise(created))


def test_the_timeline_is_fixed_and_at_most_about_five_years_long() -> None:
    big = GeneratedTickets(1_000_000)
    span = big.created_at(999_999) - big.created_at(0)
    assert 4.9 * 365 * 86_400 < span < 5.1 * 365 * 86_400
    assert big.created_at(999_999) < DATA_END
    assert gap_for(10) == 4 * 3_600  # small data sets: hours apart, not seconds
    assert GeneratedTickets(10).created_at(3) == GeneratedTickets(10).created_at(3)


def test_a_ticket_is_a_pure_function_of_seed_and_index() -> None:
    forward = GeneratedTickets(5_000, seed=8)
    backward = GeneratedTickets(5_000, seed=8)
    wanted = [4_999, 2_500, 0]
    made_in_order = {i: forward.ticket(i) for i in sorted(wanted)}
    assert [backward.ticket(i) for i in wanted] == [made_in_order[i] for i in wanted]
    assert generate_tickets(5_000, seed=8)[2_500] == forward.ticket(2_500)


def test_ticket_ids_are_unique_version_4_uuids_and_index_of_inverts_them() -> None:
    source = GeneratedTickets(2_000, seed=5)
    ids = [source.ticket_id(i) for i in range(2_000)]
    assert len(set(ids)) == 2_000
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 for i in ids)
    assert [source.index_of(i) for i in ids] == list(range(2_000))


@pytest.mark.parametrize(
    "other",
    [
        GeneratedTickets(2_000, seed=6).ticket_id(7),  # another seed's
        GeneratedTickets(3_000, seed=5).ticket_id(2_500),  # past this data set's end
        GeneratedTickets(2_000, seed=5).ticket_id(7).upper(),
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
        "+0504d0-64d8-4b88-b93f-8164539264b4",
    ],
)
def test_index_of_refuses_ids_that_are_not_this_data_sets(other: str) -> None:
    assert GeneratedTickets(2_000, seed=5).index_of(other) is None


def test_matching_agrees_with_the_generated_tickets() -> None:
    source = GeneratedTickets(3_000, seed=2)
    tickets = [source.ticket(i) for i in range(3_000)]
    cases = [
        ({"is_open": True}, lambda t: t["is_open"]),
        ({"is_open": False}, lambda t: not t["is_open"]),
        ({"teammate": 4}, lambda t: t["teammate_id"] == TEAMMATE_IDS[4]),
        ({"client": 17}, lambda t: t["client"]["id"] == CLIENTS[17]["id"]),
        ({"text": "order #"}, lambda t: "order #" in t["title"].casefold()),
        ({"text": "12"}, lambda t: "12" in t["title"].casefold()),
        ({"text": "the dashboard"}, lambda t: "the dashboard" in t["title"].casefold()),
        (
            {"is_open": True, "teammate": 2, "text": "o"},
            lambda t: t["is_open"] and t["teammate_id"] == TEAMMATE_IDS[2] and "o" in t["title"],
        ),
    ]
    for options, keep in cases:
        truth = [i for i, t in enumerate(tickets) if keep(t)]
        assert source.matching(0, 3_000, **options) == truth, options
        assert truth, options
    assert source.matching(1_000, 1_010) == list(range(1_000, 1_010))


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
