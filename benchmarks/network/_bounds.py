"""Lower bounds of a listing's wall time on a network, in round trips (pure arithmetic).

The model is the proxy's: a new connection costs 2 RTT before its first request can be
answered (1 for TCP, 1 for the TLS 1.3 handshake), each request 1 RTT; page 1 comes first and
alone (it says how many pages there are), then the other ``pages - 1`` go ``c`` at a time.
"""

from __future__ import annotations

import math

__all__ = ["SETUP_RTTS", "cold_rtts", "transfer_s", "warm_rtts"]

#: Round trips before a new connection's first request can leave: TCP, then TLS 1.3.
SETUP_RTTS = 2


def warm_rtts(pages: int, concurrency: int) -> int:
    """The bound with the window's connections ready when page 1 answers.

    ``3 + ceil((pages - 1) / c)``: page 1 on a new connection (2 + 1), then waves of ``c``.
    """
    return SETUP_RTTS + 1 + math.ceil((pages - 1) / concurrency)


def cold_rtts(pages: int, concurrency: int) -> int:
    """The bound when the window's connections are opened only once page 1 has answered.

    ``3 + 2 + ceil((pages - 1) / c)``, except where page 1's connection alone is sooner: it
    serves one request per RTT from 3 RTT on, while each new one serves its first at 3 + 3.
    So this is the first round trip by which ``pages - 1`` requests can be done.
    """
    first = SETUP_RTTS + 1
    if pages <= 1:
        return first
    for end in range(first + 1, first + pages):
        reused = end - first  # requests page 1's connection has answered by ``end``
        fresh = (concurrency - 1) * max(0, end - first - SETUP_RTTS)
        if reused + fresh >= pages - 1:
            return end
    return first + pages - 1  # not reached: the reused connection alone does this


def transfer_s(body_bytes: int, rate_bits_per_s: float | None) -> float:
    """Time to carry ``body_bytes`` at the shaped rate (0 where the link is not shaped)."""
    return 0.0 if rate_bits_per_s is None else 8 * body_bytes / rate_bits_per_s
