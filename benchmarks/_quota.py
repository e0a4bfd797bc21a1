"""The quota scenario's server-side model: one token bucket per API key, as real APIs keep.

Pure and clock-injected (the page server passes ``time.monotonic``). The model, from issue #10:

* A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; it starts
  full. Every request that reaches the quota check takes one token and is answered 200.
* An empty bucket answers 429 and the request **takes no token** (as real APIs do: a refusal
  costs the client a round trip, not quota). The answer says when the next token is due:
  ``Retry-After`` in whole seconds, rounded up (so usually "1"), or in the ``"ms"`` variant
  only ``retry-after-ms`` with the exact wait in integer milliseconds, rounded up.
* ``halve_after=N`` halves the rate once N requests have been accepted (the quota scenario's
  "halved" run: 50 -> 25 requests/s after half the pages). Counting accepted requests rather
  than time makes the ideal wall time exact: ``N / rate + (pages - N) / (rate / 2)``.

Counts (accepted, throttled) are kept per bucket and summed per dataset; ``reset`` gives the
next repetition a full bucket, the original rate and zero counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Quota", "QuotaSpec", "TokenBucket", "ideal_seconds"]

RetryAfterStyle = Literal["seconds", "ms"]


@dataclass(frozen=True)
class QuotaSpec:
    """A dataset's quota, as the runner asks for it (JSON-friendly fields)."""

    rate: float
    burst: int
    retry_after: RetryAfterStyle = "seconds"
    halve_after: int | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a quota needs rate > 0 and burst >= 1, got {self}")
        if self.retry_after not in ("seconds", "ms"):
            raise ValueError(f"retry_after must be 'seconds' or 'ms', got {self.retry_after!r}")


def ideal_seconds(pages: int, rate: float, halve_after: int | None = None) -> float:
    """Pages / the quota's rate: the wall time of a client that never wastes a token.

    With ``halve_after``, the first ``halve_after`` pages go at ``rate`` and the rest at half
    of it. The burst is ignored (it saves ``burst / rate`` at the start; 0.2 s of 20 s).
    """
    if halve_after is None or halve_after >= pages:
        return pages / rate
    return halve_after / rate + (pages - halve_after) / (rate / 2)


class TokenBucket:
    """One API key's bucket: `take` answers 0.0 (accepted) or the seconds to the next token."""

    def __init__(self, spec: QuotaSpec, clock: Callable[[], float]) -> None:
        self._spec = spec
        self._clock = clock
        self.rate = spec.rate
        self.tokens = float(spec.burst)
        self._updated = clock()
        self.accepted = 0
        self.throttled = 0

    def take(self) -> float:
        """Take a token if one is there (0.0); else count a 429 and return the wait (> 0)."""
        now = self._clock()
        self.tokens = min(self._spec.burst, self.tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.accepted += 1
            if self.accepted == self._spec.halve_after:
                self.rate /= 2
            return 0.0
        self.throttled += 1
        return (1.0 - self.tokens) / self.rate


class Quota:
    """A dataset's quota: a bucket per API key, the 429 headers, and the counts."""

    def __init__(self, spec: QuotaSpec, clock: Callable[[], float]) -> None:
        self.spec = spec
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, api_key: str) -> dict[str, str] | None:
        """None if ``api_key`` may be answered now; else the headers of its 429."""
        bucket = self._buckets.get(api_key)
        if bucket is None:
            bucket = self._buckets[api_key] = TokenBucket(self.spec, self._clock)
        wait = bucket.take()
        if wait == 0.0:
            return None
        if self.spec.retry_after == "ms":
            return {"retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
        return {"Retry-After": str(max(1, math.ceil(wait)))}

    def counts(self) -> dict[str, float | int]:
        """Requests answered 200 and 429 since the last reset, and the rate in force now."""
        buckets = self._buckets.values()
        return {
            "accepted": sum(b.accepted for b in buckets),
            "throttled": sum(b.throttled for b in buckets),
            "rate": min((b.rate for b in buckets), default=self.spec.rate),
        }

    def reset(self) -> None:
        """Forget every bucket: the next request finds a full one at the original rate."""
        self._buckets.clear()
