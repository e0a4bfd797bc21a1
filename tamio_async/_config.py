"""Small frozen value objects that configure the client, with their defaults at the bottom."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable

import aiohttp

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_SPECULATIVE_PAGES",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_RETRY_STATUSES",
    "DEFAULT_TIMEOUT",
    "RetryPolicy",
    "check_int",
]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry a failed request.

    Connection errors, timeouts and truncated bodies are always retryable; statuses are
    retried when they are in ``retry_statuses``. The n-th retry waits
    ``min(max_wait, initial_wait * 2**(n-1) + uniform(0, jitter))`` unless the server sent
    ``Retry-After``, which is obeyed up to ``max_retry_after`` (a longer demand raises).

    Under rate control (the default) throttles (429, or any status with ``Retry-After``)
    do not count against ``max_retries``: a request waits them out for up to
    ``max_throttle_time`` seconds from its first throttle, then raises `RateLimitError`.
    """

    max_retries: int = 3
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 60.0
    max_throttle_time: float = 120.0
    retry_statuses: frozenset[int] = dataclasses.field(
        default_factory=lambda: DEFAULT_RETRY_STATUSES
    )
    # Injection points so tests (and custom schedulers) never wait real seconds.
    sleep: Callable[[float], Awaitable[None]] = dataclasses.field(
        default=asyncio.sleep, repr=False, compare=False
    )
    clock: Callable[[], float] = dataclasses.field(
        default=time.monotonic, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        check_int("max_retries", self.max_retries, minimum=0)
        for name in ("initial_wait", "max_wait", "jitter", "max_retry_after", "max_throttle_time"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")
        statuses = frozenset(self.retry_statuses)
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
            raise ValueError("RetryPolicy.retry_statuses must be HTTP status codes (100-599)")
        object.__setattr__(self, "retry_statuses", statuses)

    def with_statuses(self, statuses: Iterable[int]) -> RetryPolicy:
        """A copy that retries exactly these statuses."""
        return dataclasses.replace(self, retry_statuses=frozenset(statuses))


def check_int(name: str, value: object, *, minimum: int) -> None:
    """Raise a TypeError/ValueError naming ``name`` unless value is an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")


DEFAULT_BASE_URL = "https://api.tamio.com/v2"
DEFAULT_MAX_CONCURRENCY = 8
#: The connection pool: web apps make many concurrent calls; a bulk window uses only part.
DEFAULT_MAX_CONNECTIONS = 100
#: Asked with the first page: a 2-3 page listing (an exact multiple of per_page included,
#: whose check page is then the third) needs no second round trip; at most 2 wasted requests.
DEFAULT_SPECULATIVE_PAGES = 2
#: A page of 100 tickets is ~170 KB; anything near this cap is not a page we asked for.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Per attempt: the whole request may take 60 s, connecting 10 s, a silent socket 30 s.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)
#: Request timeout, conflict, too early, rate limited, and every server error.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 409, 425, 429, *range(500, 600)})
DEFAULT_RETRY_POLICY = RetryPolicy()
