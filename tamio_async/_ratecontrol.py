"""How fast to send: the proactive limit, the adaptive rate, and the bucket that paces requests.

(Being written; the shared-store protocol below is fixed.)
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["SharedBucket", "StoreUnavailable"]


class StoreUnavailable(Exception):
    """The shared store (Redis) did not answer; the message never holds a password."""


class SharedBucket(Protocol):
    """A send schedule shared by every client that uses the same store and key.

    It is a GCRA: each reservation takes the next slot ``interval`` seconds after the last
    one taken by any sharer, on the store's clock (machines' clocks differ), and a pause set
    by any sharer holds every later reservation until it ends, after which they resume
    spaced (never all at once). Both methods are one round trip; both raise
    `StoreUnavailable` when the store cannot be reached.
    """

    #: Where the store is, for logs: never a password.
    description: str

    async def reserve(self, interval: float) -> float:
        """Take the next send slot; return how many seconds from now it starts (>= 0)."""
        ...

    async def pause(self, seconds: float) -> None:
        """Let no sharer's slot start within ``seconds`` from now (a later end wins)."""
        ...

    async def aclose(self) -> None:
        """Release the connection pool; safe to call twice."""
        ...
