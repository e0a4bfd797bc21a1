"""Scenario (d): the cost of decoding one 100-ticket page, decoder by decoder, in-process.

    python -m benchmarks.decode '{"tickets": 100, "rounds": 15, "batch_s": 0.05}'

Runs in its own process (like every contender) and prints one JSON line. Each decoder is
timed timeit-style: ``number`` calls per batch (sized so one batch lasts about ``batch_s``),
``rounds`` batches, decoders interleaved round by round so machine noise spreads evenly.
Unlike ``timeit``, the garbage collector stays ON: it is on in real programs, and what it
costs to track (or not) the decoded objects is part of what is compared.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from benchmarks._data import PER_PAGE, encode_pages, generate_tickets
from benchmarks.contenders import gather_msgspec, httpx_pydantic
from tamio_async import models

__all__ = ["DECODERS", "main"]

#: label -> (what it is, decode function, how to list the ids of its result)
DECODERS: dict[str, tuple[str, Callable[[bytes], Any], Callable[[Any], list[str]]]] = {
    "tamio_async": (
        "tamio_async.models.decode_ticket_list (the library's path)",
        models.decode_ticket_list,
        lambda page: [t.id for t in page.tickets],
    ),
    "msgspec_bare": (
        "bare msgspec.json.Decoder(TicketList), the library's structs",
        msgspec.json.Decoder(models.TicketList).decode,
        lambda page: [t.id for t in page.tickets],
    ),
    "msgspec_gc": (
        "msgspec.json.Decoder, default structs (gc=True, not frozen)",
        gather_msgspec.decoder.decode,
        lambda page: [t.id for t in page.tickets],
    ),
    "orjson": (
        "orjson.loads (dicts)",
        orjson.loads,
        lambda page: [t["id"] for t in page["tickets"]],
    ),
    "json": (
        "json.loads (dicts)",
        json.loads,
        lambda page: [t["id"] for t in page["tickets"]],
    ),
    "pydantic": (
        "pydantic v2 TicketList.model_validate_json",
        httpx_pydantic.TicketList.model_validate_json,
        lambda page: [t.id for t in page.tickets],
    ),
}


def _calls_per_batch(decode: Callable[[bytes], Any], body: bytes, batch_s: float) -> int:
    """Like ``timeit.Timer.autorange``: the smallest 1-2-5 count lasting ``batch_s``."""
    number = 1
    while True:
        for factor in (1, 2, 5):
            n = number * factor
            start = time.perf_counter()
            for _ in range(n):
                decode(body)
            if time.perf_counter() - start >= batch_s:
                return n
        number *= 10


def run(tickets: int, rounds: int, batch_s: float) -> dict[str, Any]:
    """Time every decoder on the same page; check they all return the same ids."""
    body = encode_pages(generate_tickets(tickets), PER_PAGE)[0]
    expected: list[str] | None = None
    for label, (_, decode, ids) in DECODERS.items():
        got = ids(decode(body))
        expected = expected or got
        if got != expected:
            raise AssertionError(f"decoder {label} returned other tickets than the others")

    numbers = {label: _calls_per_batch(d, body, batch_s) for label, (_, d, _) in DECODERS.items()}
    samples: dict[str, list[float]] = {label: [] for label in DECODERS}
    for _ in range(rounds):
        for label, (_, decode, _) in DECODERS.items():
            number = numbers[label]
            start = time.perf_counter()
            for _ in range(number):
                decode(body)
            samples[label].append((time.perf_counter() - start) / number * 1e6)

    return {
        "page_bytes": len(body),
        "tickets": tickets,
        "rows": [
            {
                "decoder": label,
                "label": DECODERS[label][0],
                "calls_per_batch": numbers[label],
                "samples_us": samples[label],
                "best_us": min(samples[label]),
                "median_us": statistics.median(samples[label]),
            }
            for label in DECODERS
        ],
    }


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is one JSON object of `run`'s keyword arguments."""
    print(json.dumps(run(**json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
