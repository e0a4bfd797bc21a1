"""The order-sensitive checksum of ticket ids every contender's result is verified with.

Stdlib only: every contender process imports it, and it must not move their RSS baseline.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

__all__ = ["format_crc", "ids_checksum"]


def ids_checksum(ids: Iterable[str]) -> str:
    """CRC-32 of the ids concatenated in order (ids are fixed-length UUIDs: unambiguous).

    Streaming contenders compute the same value incrementally with
    ``crc = zlib.crc32(ticket_id.encode(), crc)``.
    """
    crc = 0
    for ticket_id in ids:
        crc = zlib.crc32(ticket_id.encode(), crc)
    return format_crc(crc)


def format_crc(crc: int) -> str:
    """The checksum as reported in results: 8 hex digits."""
    return f"{crc:08x}"
