"""The retry policy in action: what is retried, how long to wait, and the client's rate gate.

Nothing here touches the network: `call_with_retries` drives any ``send()`` coroutine
function that raises our own errors, so every decision is testable without sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

from ._config import RetryPolicy
from ._exceptions import APIConnectionError, APIStatusError

__all__ = ["RateGate", "call_with_retries", "is_retryable", "logger"]

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


class RateGate:
    """One per client: a Retry-After on any request holds back every new request."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        """Let no new request start for ``seconds`` (a later deadline wins)."""
        self._until = max(self._until, self._policy.clock() + seconds)

    async def wait(self) -> None:
        """Return once the gate is open; a deadline moved meanwhile is waited out too."""
        while (delay := self._until - self._policy.clock()) > 0:
            await self._policy.sleep(delay)


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
    gate: RateGate,
    what: str,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Await ``send()`` until it succeeds, fails for good, or the retry budget is spent."""

    async def attempt() -> T:
        await gate.wait()
        try:
            return await send()
        except APIStatusError as exc:
            if exc.retry_after is not None and exc.retry_after <= policy.max_retry_after:
                gate.hold(exc.retry_after)
            raise

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
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
            raise
        first_failure: Exception | None = exc

    async def replay_then_attempt() -> T:
        nonlocal first_failure
        if first_failure is not None:
            failure, first_failure = first_failure, None
            raise failure
        return await attempt()

    # A fresh AsyncRetrying per call: its state must never be shared by concurrent requests.
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.max_retries + 1),
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception(lambda exc: is_retryable(exc, policy)),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(replay_then_attempt)
