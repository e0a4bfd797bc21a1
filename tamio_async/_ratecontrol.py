"""How fast to send: the proactive limit, the adaptive rate, and the pacer that enforces them.

Pure and clock-injected: nothing here touches the network (the shared store is a protocol,
implemented by `_redis`). botocore's adaptive retry mode keeps the token bucket, the
throttling curve and the glue in three small modules; so does this one, in three classes:

* `RateLimit`: the user's proactive limit (``"600/minute"``), a value object.
* `AdaptiveRate`: learns the rate the server accepts from its throttles (CUBIC, see there).
* `RateController`: one per client; paces every request at ``min(limit, learned rate)``,
  holds every request during a ``Retry-After`` and resumes them spaced, and falls back to
  a local schedule when the shared store is unreachable.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = [
    "AdaptiveRate",
    "RateController",
    "RateLimit",
    "RateState",
    "SharedBucket",
    "StoreUnavailable",
]

logger = logging.getLogger("tamio_async")


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


_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
# Bounded digits: a count too large for a float would only fail at the first request.
_LIMIT_RE = re.compile(r"(\d{1,9})\s*/\s*(\d{0,9}(?:\.\d{1,9})?)\s*([a-z]+)", re.IGNORECASE)
_MAX = 1e9


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` every ``seconds``, spread evenly (never a burst).

    ``RateLimit(600, 60)`` sends one request every 0.1 s. Parse the short form with
    `RateLimit.parse` (``"600/minute"``, ``"50/second"``, ``"50/s"``, ``"5/2s"``).
    """

    requests: int
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int):
            raise TypeError(f"rate_limit requests must be an int, got {self.requests!r}")
        if not 1 <= self.requests <= _MAX:
            raise ValueError(f"rate_limit requests must be 1 to {_MAX:.0e}, got {self.requests}")
        seconds = self.seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"rate_limit seconds must be a number, got {seconds!r}")
        if not 0 < seconds <= _MAX:
            raise ValueError(
                f"rate_limit seconds must be > 0 and at most {_MAX:.0e}, got {seconds}"
            )

    @property
    def per_second(self) -> float:
        """The limit as requests per second."""
        return self.requests / self.seconds

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}s"

    @classmethod
    def parse(cls, value: str | RateLimit) -> RateLimit:
        """``"600/minute"`` -> ``RateLimit(600, 60)``; errors name ``rate_limit``."""
        if isinstance(value, RateLimit):
            return value
        if not isinstance(value, str):
            raise TypeError(
                f"rate_limit must be a str like '600/minute' or a RateLimit, "
                f"got {type(value).__name__}"
            )
        match = _LIMIT_RE.fullmatch(value.strip())
        if match is None or match[3].lower() not in _PERIODS:
            raise ValueError(
                "rate_limit must be requests per period, like '600/minute', '50/second', "
                f"'50/s' or '5/2s' (periods: second, minute, hour, s, m, min, h), got {value!r}"
            )
        count = float(match[2]) if match[2] else 1.0
        if not count > 0:
            raise ValueError(f"rate_limit period must be > 0, got {value!r}")
        return cls(int(match[1]), count * _PERIODS[match[3].lower()])


@dataclasses.dataclass(frozen=True)
class RateState:
    """A snapshot of a client's rate control (``client.rate``)."""

    #: The send rate in force now, requests per second; None when nothing limits it.
    rate: float | None
    #: The proactive limit (``rate_limit``) in requests per second, or None.
    limit: float | None
    #: The rate the server was last found to accept (None until it throttles).
    learned: float | None
    #: Requests the server answered with a throttle (429, or a Retry-After), in total.
    throttled: int
    #: Where the limit is shared (``rate_limit_storage``, no password), or None.
    storage: str | None
    #: True while the limit is kept locally because the shared store is unreachable.
    fallback: bool = False


class AdaptiveRate:
    """The rate the server accepts, learned from its throttles (CUBIC, as in botocore).

    On a throttle the rate drops to ``BETA`` times the rate the server was found to
    accept, then grows back along a cubic curve: fast while far below that rate, flat
    around it, and slowly above, probing for more. Where it differs from botocore's
    adaptive mode (each measured in the quota benchmark, README "Rate control"):

    * It learns the server's rate, not ours. A refusal means the server's bucket is
      empty, so the successes since it was last full used up its burst plus all it
      refilled; `_server_rate` solves that for the rate. botocore takes a fraction of our
      send rate instead: a client sending 800/s into a 50/s quota needs eight throttles
      to get there, each costing a whole-second ``Retry-After``; this needs two.
    * One decrease per throttle episode: the answers to requests that were already on
      their way when the rate dropped say nothing new, so they do not cut it again.
    * A throttle within the first second (a start-up burst) measures the server's burst
      allowance, not its rate: the rate then searches upwards from the burst, doubling
      every ``DOUBLING`` seconds, until the next throttle measures the rate.
    * Probing above a rate slows each time about the same rate is throttled again, so a
      steady quota costs fewer and fewer throttles.
    """

    BETA = 0.9
    SCALE = 0.02
    DOUBLING = 0.5
    #: Seconds of history behind the learned rate, and the shortest span it trusts.
    WINDOW = 2.0
    MIN_SPAN = 0.3
    MIN_RATE = 0.1

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()  # of accepted requests
        self._started = clock()
        self._resumed = -math.inf  # when the last pause ended
        self._pause_length = 0.0
        self._burst = 0  # what the server accepts at once, learned from a start-up burst
        self._w_max = 0.0
        self._k = 0.0
        self._scale = self.SCALE
        self._searching = False
        #: When the rate was last lowered; throttles of requests sent before it are old news.
        self.lowered_at = -math.inf
        #: The rate to send at, or None before the first throttle (no limit known).
        self.rate: float | None = None

    def on_success(self, sent_at: float) -> None:
        """Count a request the server accepted, and let the rate grow."""
        sent = self._sent
        sent.append(sent_at)
        horizon = sent_at - self.WINDOW
        while sent[0] < horizon:
            sent.popleft()
        if self.rate is None:
            return
        if self._searching and sent_at < self.lowered_at and self._burst < len(sent):
            # The rest of the start-up wave, answered after its first refusal: burst too.
            self._burst += 1
            self._w_max = max(self._w_max, float(self._burst))
        elapsed = self._clock() - self.lowered_at
        if self._searching:
            grown = self._w_max * 2 ** min(elapsed / self.DOUBLING, 64.0)
        else:
            grown = self._scale * (elapsed - self._k) ** 3 + self._w_max
        self.rate = max(self.MIN_RATE, grown)

    def on_throttle(self, sent_at: float) -> bool:
        """A throttle of a request sent at ``sent_at``; True when it lowered the rate."""
        now = self._clock()
        if sent_at < self.lowered_at + self.MIN_SPAN:
            # Sent before the last decrease, or too soon after it for the new rate to have
            # told the server anything: the same episode.
            return False
        if self.rate is None and now - self._started < 1.0:
            self._searching = True
            # The first wave's successes: the burst, plus about one token refilled meanwhile.
            self._burst = len(self._sent)
            self._w_max = max(1.0, float(self._burst))
            self.rate = self._w_max
        else:
            self._searching = False
            measured = self._server_rate(sent_at) or self._blind(sent_at)
            if self.rate is not None:
                # Refused while sending at this rate: the server's rate is lower (a higher
                # estimate comes from spans that predate a change of quota).
                measured = min(measured, self.rate)
            measured = max(self.MIN_RATE, measured)
            if self._w_max and abs(measured - self._w_max) <= 0.2 * self._w_max:
                self._scale = max(self._scale / 2, self.SCALE / 16)
            self._w_max = measured
            self.rate = max(self.MIN_RATE, self.BETA * measured)
            self._k = (measured * (1 - self.BETA) / self._scale) ** (1 / 3)
        self.lowered_at = now
        return True

    def resume_at(self, moment: float, seconds: float) -> None:
        """A pause of ``seconds`` ends at ``moment``; the server's bucket refills meanwhile.

        Only a pause long enough to measure starts a new regime: the short ones of a server
        that says exactly when its next token is due (``retry-after-ms``) come with every
        refusal, and would leave no span to measure the rate over.
        """
        if seconds >= self.MIN_SPAN and moment > self._resumed:
            self._resumed = moment
            self._pause_length = seconds

    def _since(self) -> float:
        """When the regime in force began: the last pause's end or the last decrease."""
        return max(self._resumed, self.lowered_at)

    def _server_rate(self, refused: float) -> float:
        """The rate that explains a refusal of a request sent at ``refused``.

        A token bucket that refuses a request is empty: for the first success after it was
        last full, ``burst + rate * elapsed = successes since + 1``. We cannot see when it
        was full, so every success of the regime in force (since the last pause or
        decrease, at least ``MIN_SPAN`` back) is a candidate, and the largest rate, the one
        that explains the refusal, wins. 0.0 when no span is long enough to say.
        """
        sent = self._sent
        count = len(sent)
        since = self._since()
        # The bucket was empty when this regime began with a refusal; a pause after it let
        # the bucket refill for that long.
        refill = self._pause_length if since == self._resumed else 0.0
        best = 0.0
        before = 0  # successes of this regime before the candidate
        for index, moment in enumerate(sent):
            span = refused - moment
            if span < self.MIN_SPAN:
                break
            if moment < since:
                continue
            since_then = count - index + 1
            guess = since_then / span
            # What the bucket can have held at the candidate, at about that rate: the
            # burst subtracted only as far as it can have refilled.
            held = min(self._burst, max(0.0, guess * (moment - since + refill) - before))
            best = max(best, (since_then - held) / span)
            before += 1
        return best

    def _blind(self, refused: float) -> float:
        """No span to solve: a step down from the rate in force, or from what was accepted."""
        if self.rate is not None:
            return min(self.BETA * self.rate, max(self._recent_rate(refused), self.rate / 2))
        return self._recent_rate(refused)

    def _recent_rate(self, refused: float) -> float:
        """What the server accepted lately, when no span is long enough to solve for it."""
        start = max(self._since(), refused - self.WINDOW)
        count = sum(1 for moment in self._sent if moment >= start)
        return count / max(refused - start, self.MIN_SPAN)


class RateController:
    """One per client: when each request may leave, and what the server's answers teach.

    ``acquire()`` before every send returns the send time; report the answer with
    ``on_success(sent_at)`` or ``await on_throttle(sent_at, retry_after)``. With no limit,
    no shared store and no throttle yet, ``acquire`` costs two clock reads.
    """

    #: Seconds before an unreachable shared store is tried again.
    STORE_RETRY = 30.0
    #: Seconds without a new throttle after which throttling counts as settled.
    SETTLE = 10.0

    def __init__(
        self,
        *,
        limit: RateLimit | None = None,
        adaptive: bool = True,
        shared: SharedBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limit = limit
        self._adaptive = AdaptiveRate(clock) if adaptive else None
        self._shared = shared
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._last = -math.inf  # when the last local slot started
        self._paused_until = -math.inf
        self._throttled = 0
        self._unsettled = False  # between the INFO line "throttled" and the one "settled"
        self._fallback_since: float | None = None

    @property
    def controls(self) -> bool:
        """True when requests are paced at all (a limit, or adaptive control)."""
        return self._limit is not None or self._adaptive is not None

    @property
    def state(self) -> RateState:
        """What limits the send rate now."""
        rate = self._rate()
        return RateState(
            rate=None if rate == math.inf else rate,
            limit=self._limit.per_second if self._limit else None,
            learned=self._adaptive.rate if self._adaptive else None,
            throttled=self._throttled,
            storage=self._shared.description if self._shared else None,
            fallback=self._fallback_since is not None,
        )

    def _rate(self) -> float:
        limit = self._limit.per_second if self._limit else math.inf
        learned = self._adaptive.rate if self._adaptive else None
        return limit if learned is None else min(limit, learned)

    def _interval(self) -> float:
        rate = self._rate()
        return 0.0 if rate == math.inf else 1.0 / rate

    async def acquire(self) -> float:
        """Wait for this request's send slot; return the moment it leaves."""
        if self._shared is not None and await self._acquire_shared():
            # A pause seen while the store was down is not in the store: it still holds.
            if (wait := self._paused_until - self._clock()) > 0:
                await self._sleep(wait)
            return self._clock()
        if self._interval() == 0.0 and self._paused_until <= self._clock():
            return self._clock()  # nothing to pace: the common case costs nothing
        async with self._lock:  # one waiter at a time keeps the slots in arrival order
            # A pause or a lower rate may arrive during the nap: look again after each one.
            while (wait := self._due() - self._clock()) > 0:
                await self._sleep(wait)
            now = self._clock()
            # The next slot follows the one that was due, not the moment we woke: a late
            # wake-up must not push every later slot back (at 50/s that cost 10 % of the
            # rate). Only a slot missed by less than one interval is caught up, so an idle
            # pacer never saves up a burst.
            due = self._due()
            self._last = due if now - due < self._interval() else now
            return now

    def _due(self) -> float:
        """When the next local slot starts: one interval after the last, and after any pause."""
        return max(self._last + self._interval(), self._paused_until)

    async def _acquire_shared(self) -> bool:
        """Take a slot from the shared store; False when it is down (use the local one)."""
        assert self._shared is not None
        since = self._fallback_since
        if since is not None and self._clock() - since < self.STORE_RETRY:
            return False
        try:
            wait = await self._shared.reserve(self._interval())
        except StoreUnavailable as exc:
            if self._fallback_since is None:
                logger.warning("%s; keeping the rate limit in this process until it is back", exc)
            self._fallback_since = self._clock()
            return False
        if self._fallback_since is not None:
            self._fallback_since = None
            logger.info(
                "rate_limit_storage %s is back; sharing the limit again", self._shared.description
            )
        if wait > 0:
            await self._sleep(wait)
        return True

    def on_success(self, sent_at: float) -> None:
        """The server accepted a request sent at ``sent_at``."""
        adaptive = self._adaptive
        if adaptive is None:
            return
        adaptive.on_success(sent_at)
        if self._unsettled and self._clock() - adaptive.lowered_at > self.SETTLE:
            self._unsettled = False
            logger.info("throttling settled: sending at %.3g requests/s", self._rate())

    async def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """The server throttled a request sent at ``sent_at`` (429, or any Retry-After)."""
        now = self._clock()
        self._throttled += 1
        lowered = self._adaptive is not None and self._adaptive.on_throttle(sent_at)
        if retry_after is not None and retry_after > 0:
            await self._pause(now + retry_after, retry_after)
        if lowered and not self._unsettled:
            self._unsettled = True
            logger.info("throttled by the server: sending at %.3g requests/s", self._rate())
        else:
            logger.debug("throttled: sending at %.3g requests/s", self._rate())

    async def aclose(self) -> None:
        """Release the shared store's connections (a local controller holds none)."""
        if self._shared is not None:
            await self._shared.aclose()

    async def _pause(self, until: float, seconds: float) -> None:
        if until > self._paused_until:
            self._paused_until = until
            if self._adaptive is not None:
                self._adaptive.resume_at(until, seconds)
        if self._shared is not None and self._fallback_since is None:
            try:
                await self._shared.pause(seconds)
            except StoreUnavailable as exc:
                logger.warning("%s; keeping the rate limit in this process until it is back", exc)
                self._fallback_since = self._clock()
