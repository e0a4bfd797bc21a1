"""The shared store for the send schedule and the pause: a `SharedBucket` on Redis.

Every client configured with the same ``rate_limit_storage`` and key takes its send slots from
one Redis hash, ``tamio-async:rate:{key}``, holding two instants in microseconds on the Redis
clock: ``tat`` (the next free slot) and ``pause`` (no slot starts before it). Each operation is
one Lua script, so it is atomic and one round trip, and reads the time with Redis ``TIME``:
the machines sharing a limit need not agree on the time, only the store's clock counts. The
script touches one key, so it also runs on a Redis Cluster.

Failures are fast and never leak the URL's password: any error becomes ``StoreUnavailable``
naming the redacted URL, and the caller falls back to its local limit.

This module is imported only when ``rate_limit_storage`` is configured; it needs the
``redis`` extra.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from yarl import URL

from ._ratecontrol import StoreUnavailable

try:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - the test extra installs redis
    raise ImportError(
        'rate_limit_storage needs redis-py: pip install "tamio-async[redis]"'
    ) from exc

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["RedisBucket"]

_T = TypeVar("_T")
_SCHEMES = ("redis", "rediss", "unix")
_KEY_PREFIX = "tamio-async:rate:"
_MICROS = 1_000_000
# An idle hash outlives its last slot or pause by this long, then vanishes on its own.
_IDLE_MS = 60_000
# The same every connection problem looks like from here: redis-py's own errors, the socket's
# (OSError) and our overall deadline's (asyncio.TimeoutError is not TimeoutError on 3.10).
_UNAVAILABLE = (RedisError, OSError, TimeoutError, asyncio.TimeoutError)

# Both scripts share this prologue. Lua numbers are doubles: microseconds since 1970 stay
# exact (< 2**53), and "%.0f" writes them back without Lua's 14-digit default formatting.
# replicate_commands() lets a script that read TIME write on Redis < 5 (later versions
# replicate effects anyway; 7 keeps the call as a no-op).
_PROLOGUE = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = math.max(tonumber(state[1]) or 0, now)
local pause = tonumber(state[2]) or 0
local function keep(until_us)
  local ms = math.floor((math.max(until_us, pause) - now) / 1000) + tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ms))
end
"""

# ARGV: interval (us), idle ms. Returns {slot, now} in us; integer replies are exact, whereas a
# fractional Lua number would be truncated on its way out.
_RESERVE = (
    _PROLOGUE
    + """
if pause > tat then tat = pause end
local after = tat + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', after))
keep(after)
return {tat, now}
"""
)

# ARGV: seconds (us), idle ms. A later end wins, so concurrent Retry-Afters never shorten it.
_PAUSE = (
    _PROLOGUE
    + """
local pause_end = now + tonumber(ARGV[1])
if pause_end > pause then
  pause = pause_end
  redis.call('HSET', KEYS[1], 'pause', string.format('%.0f', pause))
end
keep(tat)
return 0
"""
)


class RedisBucket:
    """A `SharedBucket` on Redis: one GCRA schedule and pause per key, on the Redis clock.

    ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL as redis-py reads it; ``key``
    an already-hashed identifier of what is shared (never an API key: it is stored in
    clear). ``timeout`` bounds each call, connecting included: past it the store counts as
    unavailable, because a late answer is worth less than the local fallback.

    Like an ``aiohttp.ClientSession``, a bucket belongs to the event loop it is first used in.
    """

    def __init__(self, url: str, key: str, *, timeout: float = 1.0) -> None:
        self.description = _describe(url)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a finite number of seconds > 0, not {timeout!r}")
        self._url = url
        self._key = _KEY_PREFIX + key
        self._timeout = timeout
        self._client: redis.asyncio.Redis | None = None
        self._reserve_script: AsyncScript | None = None
        self._pause_script: AsyncScript | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisBucket({self.description!r})"

    async def reserve(self, interval: float) -> float:
        """Take the next send slot; return how many seconds from now it starts (>= 0)."""
        slot, now = await self._reserve(interval)
        return (slot - now) / _MICROS

    async def pause(self, seconds: float) -> None:
        """Let no sharer's slot start within ``seconds`` from now (a later end wins)."""
        script = self._scripts()[1]
        await self._call(script(keys=[self._key], args=[_micros(seconds, "seconds"), _IDLE_MS]))

    async def aclose(self) -> None:
        """Release the connection pool; safe to call twice."""
        self._closed = True
        client, self._client = self._client, None
        self._reserve_script = self._pause_script = None
        if client is not None:
            await client.aclose()

    async def _reserve(self, interval: float) -> tuple[int, int]:
        """The slot taken and the store's time, both in microseconds on the Redis clock."""
        script = self._scripts()[0]
        slot, now = await self._call(
            script(keys=[self._key], args=[_micros(interval, "interval"), _IDLE_MS])
        )
        return int(slot), int(now)

    def _scripts(self) -> tuple[AsyncScript, AsyncScript]:
        """The registered scripts, on a client created now if this is the first call."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._reserve_script is None or self._pause_script is None:
            # Created lazily because its connections bind to the running loop. No retries in
            # redis-py: a failure should reach the caller, which falls back to a local limit,
            # within one timeout rather than after a backoff.
            self._client = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._reserve_script = self._client.register_script(_RESERVE)
            self._pause_script = self._client.register_script(_PAUSE)
        return self._reserve_script, self._pause_script

    async def _call(self, operation: Awaitable[_T]) -> _T:
        """Await one store operation within the timeout; any failure is `StoreUnavailable`."""
        try:
            result = await _within(self._timeout, operation)
        except _UNAVAILABLE as exc:
            error = StoreUnavailable(
                f"rate_limit_storage {self.description} unreachable: {type(exc).__name__}"
            )
        else:
            return result
        # Raised outside the handler so that neither __cause__ nor __context__ holds the
        # original error, whose message or attributes might carry the URL.
        raise error from None


def _describe(url: str) -> str:
    """``url`` for logs: its scheme checked, any password (userinfo or query) as ``***``."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in _SCHEMES:
        # Never echo the URL itself: a mistyped one still holds the password.
        raise ValueError(
            "rate_limit_storage must be a redis://, rediss:// or unix:// URL"
            + ("" if parsed is None else f", not {parsed.scheme or 'one without a scheme'}")
        )
    if parsed.password is not None:
        parsed = parsed.with_password("***")
    secrets = {name: "***" for name in parsed.query if "password" in name.lower()}
    if secrets:
        parsed = parsed.update_query(secrets)
    text = str(parsed)
    # yarl writes a URL without a host as "unix:/path"; show it as it was configured.
    if not parsed.authority and not text.startswith(f"{parsed.scheme}://"):
        text = f"{parsed.scheme}://{text[len(parsed.scheme) + 1 :]}"
    return text


def _micros(seconds: float, name: str) -> int:
    """``seconds`` as whole microseconds, the unit the scripts store."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {seconds!r}")
    return round(seconds * _MICROS)


if sys.version_info >= (3, 11):

    async def _within(seconds: float, operation: Awaitable[_T]) -> _T:
        """Await ``operation``, raising TimeoutError after ``seconds``."""
        async with asyncio.timeout(seconds):
            return await operation

else:  # pragma: no cover - the suite runs on 3.11+; wait_for adds a task per call

    async def _within(seconds: float, operation: Awaitable[_T]) -> _T:
        """Await ``operation``, raising TimeoutError after ``seconds``."""
        return await asyncio.wait_for(operation, seconds)
