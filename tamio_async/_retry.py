"""The retry policy in action: what is retried, how long to wait, and when a throttle is one.

Nothing here touches the network: `call_with_retries` drives any ``send()`` coroutine
function that raises our own errors, paced by a `RateController`, so every decision is
testable without sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

from ._config import RetryPolicy
from ._exceptions import APIConnectionError, APIStatusError
from ._ratecontrol import RateController

__all__ = ["call_with_retries", "is_retryable", "is_throttle", "logger"]

logger = logging.getLogger("tamio_async")
T = TypeVar("T")


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """True for failures worth another attempt (never for cancellation or bad input)."""
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, APIStatusError) and exc.status_code in policy.retry_statuses:
        # A server asking for a longer pause than we accept gets the error, not a sleep.
        return exc.retry_after is None or exc.retry_after <= policy.max_retry_after
    return False


def is_throttle(exc: BaseException) -> bool:
    """True when the server asks us to slow down: a 429, or any status with Retry-After."""
    return isinstance(exc, APIStatusError) and (
        exc.status_code == 429 or exc.retry_after is not None
    )


class _Stop(tenacity.stop.stop_base):
    """Stop after ``max_retries`` failures; throttles under rate control are not failures.

    A throttle only says "slower", and the pacer has slowed down: waiting it out is the
    job, not a failure. What bounds it is time: once a request has been throttled for
    ``max_throttle_time`` seconds since its first throttle, it gives up.
    """

    def __init__(self, policy: RetryPolicy, *, throttles_are_failures: bool) -> None:
        self._policy = policy
        self._throttles_are_failures = throttles_are_failures
        self._failures = 0
        self._first_throttle: float | None = None

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is not None and not self._throttles_are_failures and is_throttle(exc):
            now = self._policy.clock()
            if self._first_throttle is None:
                self._first_throttle = now
            return now - self._first_throttle >= self._policy.max_throttle_time
        self._failures += 1
        return self._failures > self._policy.max_retries


class _Wait(tenacity.wait.wait_base):
    """Retry-After when the server sent it, exponential backoff with jitter otherwise."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, float):
            return retry_after
        return float(self._backoff(retry_state))


async def call_with_retries(
    send: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    pacer: RateController,
    what: str,
    on_retry: Callable[[], None] | None = None,
    on_throttle: Callable[[], None] | None = None,
) -> T:
    """Await ``send()`` until it succeeds, fails for good, or the retry budget is spent.

    Every attempt waits for its slot from ``pacer`` and reports the answer back to it.
    """
    throttles_are_failures = not pacer.controls

    async def attempt() -> T:
        sent_at = await pacer.acquire()
        try:
            result = await send()
        except APIStatusError as exc:
            if is_throttle(exc):
                if on_throttle is not None:
                    on_throttle()
                retry_after = exc.retry_after
                if retry_after is not None and retry_after > policy.max_retry_after:
                    retry_after = None  # refused below (it raises): nothing to hold for
                await pacer.on_throttle(sent_at, retry_after)
            raise
        pacer.on_success(sent_at)
        return result

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if exc is not None and not throttles_are_failures and is_throttle(exc):
            # Throttles under rate control are expected and counted: one line each would
            # bury the log (the pacer logs INFO when throttling starts and settles).
            logger.debug("%s throttled (%s); again in %.2fs", what, exc, wait)
        else:
            logger.warning(
                "%s failed (%s); retry %d of %d in %.2fs",
                what,
                exc,
                state.attempt_number,
                policy.max_retries,
                wait,
            )
        if on_retry is not None:
            on_retry()

    # Most requests succeed at once: spare them tenacity's bookkeeping (~12% of a bulk
    # listing's CPU). A retryable first failure is replayed as tenacity's first attempt, so
    # attempt numbers, waits, logging and the budget are exactly as if tenacity ran it.
    try:
        return await attempt()
    except Exception as exc:
        if policy.max_retries == 0 or not is_retryable(exc, policy):
            raise  # max_retries=0 asks for no retries at all, throttles included
        first_failure: Exception | None = exc

    async def replay_then_attempt() -> T:
        nonlocal first_failure
        if first_failure is not None:
            failure, first_failure = first_failure, None
            raise failure
        return await attempt()

    # A fresh AsyncRetrying per call: its state must never be shared by concurrent requests.
    retrying = tenacity.AsyncRetrying(
        stop=_Stop(policy, throttles_are_failures=throttles_are_failures),
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception(lambda exc: is_retryable(exc, policy)),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(replay_then_attempt)
