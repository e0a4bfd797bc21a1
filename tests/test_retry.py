"""What is retried, how long each retry waits, and how throttles meet the pacer: no sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tamio_async import (
    DEFAULT_RETRY_STATUSES,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
)
from tamio_async._exceptions import status_error
from tamio_async._ratecontrol import AdaptiveRate, RateController
from tamio_async._retry import call_with_retries, is_retryable

if TYPE_CHECKING:
    from conftest import FakeClock

RETRYABLE_STATUSES = [408, 409, 425, 429, 500, 502, 503, 504, 599]
FINAL_STATUSES = [400, 401, 403, 404, 418, 422]


def status(code: int, retry_after: str | None = None) -> APIStatusError:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return status_error(code, b"", headers)


class Script:
    """A fake ``send``: each call plays the next outcome, raising it if it is an exception."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.called_at: list[float] = []
        self.clock: Callable[[], float] | None = None

    async def __call__(self) -> object:
        outcome = self.outcomes[self.calls]
        self.calls += 1
        if self.clock is not None:
            self.called_at.append(self.clock())
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def run(
    send: Script,
    policy: RetryPolicy,
    *,
    pacer: RateController | None = None,
    on_retry: Callable[[], None] | None = None,
) -> object:
    """Without a pacer: no rate control, so every throttle counts as a failure (as before)."""
    return await call_with_retries(
        send,
        policy=policy,
        pacer=plain_pacer(policy) if pacer is None else pacer,
        what="GET page 1",
        on_retry=on_retry,
    )


def plain_pacer(policy: RetryPolicy) -> RateController:
    """A pacer that only holds Retry-After pauses (``adaptive_rate=False``, no limit)."""
    return RateController(adaptive=False, clock=policy.clock, sleep=policy.sleep)


def adaptive_pacer(policy: RetryPolicy) -> RateController:
    """The client's default pacer: adaptive rate control."""
    return RateController(clock=policy.clock, sleep=policy.sleep)


def retryable_errors() -> list[BaseException]:
    return [
        APIConnectionError("connection reset"),
        APITimeoutError("timed out"),
        *(status(code) for code in RETRYABLE_STATUSES),
    ]


def final_errors() -> list[BaseException]:
    return [
        *(status(code) for code in FINAL_STATUSES),
        APIResponseValidationError("not JSON", status_code=200),
        ValueError("a bug in the caller"),
    ]


# --- what is retried -------------------------------------------------------------------------


@pytest.mark.parametrize("error", retryable_errors(), ids=repr)
async def test_retryable_failure_is_retried_then_succeeds(
    clock: FakeClock, error: BaseException
) -> None:
    send = Script(error, "page")
    assert await run(send, clock.policy()) == "page"
    assert send.calls == 2


@pytest.mark.parametrize("error", final_errors(), ids=repr)
async def test_final_failure_is_raised_after_one_attempt(
    clock: FakeClock, error: BaseException
) -> None:
    send = Script(error, "page")
    with pytest.raises(type(error)) as info:
        await run(send, clock.policy())
    assert info.value is error
    assert send.calls == 1
    assert clock.sleeps == []


def test_default_retry_statuses_are_408_409_425_429_and_every_5xx() -> None:
    assert frozenset({408, 409, 425, 429, *range(500, 600)}) == DEFAULT_RETRY_STATUSES


@pytest.mark.parametrize("code", [*RETRYABLE_STATUSES, *range(500, 600)])
def test_is_retryable_for_default_statuses(code: int) -> None:
    assert is_retryable(status(code), RetryPolicy())


@pytest.mark.parametrize("code", FINAL_STATUSES)
def test_is_not_retryable_for_client_errors(code: int) -> None:
    assert not is_retryable(status(code), RetryPolicy())


def test_is_not_retryable_for_cancellation() -> None:
    assert not is_retryable(asyncio.CancelledError(), RetryPolicy())


def test_is_not_retryable_when_retry_after_exceeds_the_cap() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert is_retryable(status(429, "10"), policy)
    assert not is_retryable(status(429, "11"), policy)


async def test_custom_retry_statuses_opt_a_400_in(clock: FakeClock) -> None:
    send = Script(status(400), "page")
    assert await run(send, clock.policy().with_statuses({400})) == "page"
    assert send.calls == 2


async def test_custom_retry_statuses_opt_a_503_out(clock: FakeClock) -> None:
    send = Script(status(503), "page")
    with pytest.raises(InternalServerError):
        await run(send, clock.policy(retry_statuses={429}))
    assert send.calls == 1


# --- when it stops ---------------------------------------------------------------------------


async def test_gives_up_after_max_retries_plus_one_attempts_raising_the_last_error(
    clock: FakeClock,
) -> None:
    errors = [status_error(503, f"failure {n}".encode(), {}) for n in range(4)]
    send = Script(*errors, "never reached")
    with pytest.raises(InternalServerError) as info:
        await run(send, clock.policy(max_retries=3))
    assert info.value is errors[-1]
    assert send.calls == 4


async def test_zero_max_retries_means_a_single_attempt(clock: FakeClock) -> None:
    send = Script(APIConnectionError("reset"), "page")
    with pytest.raises(APIConnectionError):
        await run(send, clock.policy(max_retries=0))
    assert send.calls == 1
    assert clock.sleeps == []


async def test_success_on_the_first_attempt_does_not_sleep(clock: FakeClock) -> None:
    send = Script("page")
    assert await run(send, clock.policy()) == "page"
    assert clock.sleeps == []


# --- how long it waits -----------------------------------------------------------------------


async def test_backoff_doubles_from_initial_wait_up_to_max_wait(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=6, initial_wait=0.5, max_wait=8, jitter=0)
    await run(Script(*[status(503)] * 6, "page"), policy)
    assert clock.sleeps == [0.5, 1, 2, 4, 8, 8]


async def test_backoff_with_jitter_stays_within_its_window(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=7, initial_wait=0.25, max_wait=3, jitter=0.5)
    await run(Script(*[APIConnectionError("reset")] * 7, "page"), policy)
    assert len(clock.sleeps) == 7
    for n, slept in enumerate(clock.sleeps, start=1):
        base = 0.25 * 2 ** (n - 1)
        assert min(base, 3) <= slept <= min(base + 0.5, 3), (n, slept)


async def test_jitter_adds_up_to_jitter_seconds_before_the_cap(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    policy = clock.policy(max_retries=6, initial_wait=0.25, max_wait=3, jitter=0.5)
    await run(Script(*[status(500)] * 6, "page"), policy)
    assert clock.sleeps == [0.75, 1.0, 1.5, 2.5, 3, 3]


async def test_retry_after_is_obeyed_exactly(clock: FakeClock) -> None:
    send = Script(status(429, "2.5"), "page")
    assert await run(send, clock.policy(jitter=0.5)) == "page"
    assert clock.sleeps == [2.5]


async def test_retry_after_longer_than_max_wait_is_still_obeyed(clock: FakeClock) -> None:
    send = Script(status(503, "30"), "page")
    await run(send, clock.policy(max_wait=8, max_retry_after=60))
    assert clock.sleeps == [30.0]


async def test_retry_after_above_the_cap_raises_at_once_without_sleeping(
    clock: FakeClock,
) -> None:
    error = status(429, "61")
    send = Script(error, "page")
    with pytest.raises(RateLimitError) as info:
        await run(send, clock.policy(max_retry_after=60))
    assert info.value is error
    assert info.value.retry_after == 61
    assert send.calls == 1
    assert clock.sleeps == []


# --- cancellation ----------------------------------------------------------------------------


async def test_cancelled_error_from_send_is_not_retried(clock: FakeClock) -> None:
    send = Script(asyncio.CancelledError(), "page")
    with pytest.raises(asyncio.CancelledError):
        await run(send, clock.policy())
    assert send.calls == 1
    assert clock.sleeps == []


async def test_cancelling_the_caller_during_a_request_is_not_retried(clock: FakeClock) -> None:
    calls = 0
    started = asyncio.Event()

    async def hang() -> object:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.Event().wait()
        return None

    task = asyncio.create_task(
        call_with_retries(
            hang, policy=clock.policy(), pacer=plain_pacer(clock.policy()), what="GET page 1"
        )
    )
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert calls == 1
    assert clock.sleeps == []


async def test_cancelling_the_caller_during_backoff_stops_retrying() -> None:
    sleeping = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    policy = RetryPolicy(sleep=sleep_forever)
    send = Script(status(503), "page")
    task = asyncio.create_task(run(send, policy))
    await asyncio.wait_for(sleeping.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert send.calls == 1


# --- what it reports -------------------------------------------------------------------------


async def test_each_retry_logs_one_warning_with_attempt_and_wait(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tamio_async")
    policy = clock.policy(max_retries=3, initial_wait=0.5, jitter=0)
    await run(Script(status(503), APIConnectionError("reset"), "page"), policy)
    records = [r for r in caplog.records if r.name == "tamio_async"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    first, second = (r.getMessage() for r in records)
    assert first.startswith("GET page 1 failed (HTTP 503")
    assert "retry 1 of 3 in 0.50s" in first
    assert "reset" in second
    assert "retry 2 of 3 in 1.00s" in second


async def test_the_final_failure_is_not_logged_as_a_retry(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tamio_async")
    with pytest.raises(InternalServerError):
        await run(Script(status(503), status(503)), clock.policy(max_retries=1))
    assert len([r for r in caplog.records if r.name == "tamio_async"]) == 1


async def test_retry_after_wait_is_what_the_log_reports(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tamio_async")
    await run(Script(status(429, "4"), "page"), clock.policy())
    assert "in 4.00s" in caplog.records[0].getMessage()


async def test_on_retry_is_called_once_per_retry(clock: FakeClock) -> None:
    retries: list[None] = []
    send = Script(status(500), status(502), APITimeoutError("slow"), "page")
    await run(send, clock.policy(max_retries=3), on_retry=lambda: retries.append(None))
    assert len(retries) == 3


async def test_on_retry_is_not_called_for_a_final_failure(clock: FakeClock) -> None:
    retries: list[None] = []
    with pytest.raises(APIStatusError):
        await run(Script(status(400)), clock.policy(), on_retry=lambda: retries.append(None))
    assert retries == []


# --- Retry-After pauses every request --------------------------------------------------------


async def test_an_unpaused_pacer_does_not_wait(clock: FakeClock) -> None:
    await plain_pacer(clock.policy()).acquire()
    assert clock.sleeps == []


async def test_a_pause_holds_the_next_request(clock: FakeClock) -> None:
    pacer = plain_pacer(clock.policy())
    await pacer.on_throttle(clock(), 5)
    assert await pacer.acquire() == 1005.0
    assert clock.sleeps == [5]


async def test_the_later_pause_wins(clock: FakeClock) -> None:
    pacer = plain_pacer(clock.policy())
    await pacer.on_throttle(clock(), 5)
    await pacer.on_throttle(clock(), 2)
    await pacer.acquire()
    assert clock.sleeps == [5]


async def test_a_pause_that_grows_during_the_wait_is_waited_out_too(clock: FakeClock) -> None:
    pacer: RateController

    async def sleep(seconds: float) -> None:
        first = not clock.sleeps
        await clock.sleep(seconds)
        if first:
            await pacer.on_throttle(clock(), 3)  # another request got a 429 meanwhile

    pacer = RateController(adaptive=False, clock=clock, sleep=sleep)
    await pacer.on_throttle(clock(), 5)
    await pacer.acquire()
    assert clock.sleeps == [5, 3]


async def test_429_with_retry_after_delays_calls_that_start_afterwards(
    clock: FakeClock,
) -> None:
    policy = clock.policy(max_retries=0)
    pacer = plain_pacer(policy)
    with pytest.raises(RateLimitError):
        await run(Script(status(429, "5")), policy, pacer=pacer)
    assert clock.sleeps == []
    later = [Script("page"), Script("page")]
    for send in later:
        send.clock = clock
    await asyncio.gather(*(run(send, policy, pacer=pacer) for send in later))
    assert clock.sleeps == [5]
    assert [send.called_at for send in later] == [[1005.0], [1005.0]]


async def test_retry_after_above_the_cap_does_not_pause(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=0, max_retry_after=10)
    pacer = plain_pacer(policy)
    with pytest.raises(RateLimitError):
        await run(Script(status(429, "600")), policy, pacer=pacer)
    await run(Script("page"), policy, pacer=pacer)
    assert clock.sleeps == []


# --- throttles under rate control ------------------------------------------------------------


async def test_throttles_under_rate_control_do_not_use_up_max_retries(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=1)
    send = Script(*[status(429, "1")] * 10, "page")
    assert await run(send, policy, pacer=adaptive_pacer(policy)) == "page"
    assert send.calls == 11


async def test_other_failures_still_count_between_throttles(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=1)
    send = Script(status(429, "1"), status(503), status(429, "1"), status(503), "page")
    with pytest.raises(InternalServerError):
        await run(send, policy, pacer=adaptive_pacer(policy))
    assert send.calls == 4


async def test_a_server_that_throttles_forever_ends_in_rate_limit_error(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=3, max_throttle_time=60)
    send = Script(*[status(429, "7")] * 1000)
    with pytest.raises(RateLimitError):
        await run(send, policy, pacer=adaptive_pacer(policy))
    # Bounded by max_throttle_time from the first throttle, plus the one pause in progress.
    assert 60 <= clock.now - 1000 <= 60 + 7
    assert send.calls > policy.max_retries + 1  # the throttles did not use up the retries


async def test_bare_429s_under_rate_control_back_off_and_end_in_time(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=1, max_throttle_time=30, max_wait=4)
    send = Script(*[status(429)] * 1000)
    with pytest.raises(RateLimitError):
        await run(send, policy, pacer=adaptive_pacer(policy))
    # + the backoff in progress and one slot at the slowest rate the pacer goes down to
    assert clock.now - 1000 <= 30 + 4 + 1 / AdaptiveRate.MIN_RATE


async def test_max_retries_zero_means_no_retry_even_of_a_throttle(clock: FakeClock) -> None:
    policy = clock.policy(max_retries=0)
    send = Script(status(429, "1"), "page")
    with pytest.raises(RateLimitError):
        await run(send, policy, pacer=adaptive_pacer(policy))
    assert send.calls == 1


async def test_max_throttle_time_zero_fails_at_the_first_throttle(clock: FakeClock) -> None:
    policy = clock.policy(max_throttle_time=0)
    send = Script(status(429, "1"), "page")
    with pytest.raises(RateLimitError):
        await run(send, policy, pacer=adaptive_pacer(policy))
    assert send.calls == 1


async def test_throttled_retries_log_at_debug_and_other_retries_warn(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    policy = clock.policy(max_retries=2)
    caplog.set_level(logging.DEBUG, logger="tamio_async")
    send = Script(*[status(429, "1")] * 5, status(503), "page")
    await run(send, policy, pacer=adaptive_pacer(policy))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "503" in warnings[0].getMessage()
    # One INFO when throttling starts (and, on this fake clock, one when it settles).
    assert infos[0].startswith("throttled by the server")
    assert [i for i in infos[1:] if not i.startswith("throttling settled")] == []
    assert sum("throttled (" in r.getMessage() for r in caplog.records) == 5


# --- RetryPolicy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_retries", -1, ValueError),
        ("max_retries", 1.5, TypeError),
        ("max_retries", True, TypeError),
        ("initial_wait", -0.1, ValueError),
        ("initial_wait", math.nan, ValueError),
        ("initial_wait", "1", ValueError),
        ("max_wait", -1, ValueError),
        ("max_wait", True, ValueError),
        ("jitter", None, ValueError),
        ("jitter", -math.inf, ValueError),
        ("max_retry_after", math.nan, ValueError),
        ("retry_statuses", {99}, ValueError),
        ("retry_statuses", {600}, ValueError),
        ("retry_statuses", {"503"}, ValueError),
    ],
)
def test_policy_validation_names_the_field(
    field: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=field):
        RetryPolicy(**{field: value})


def test_policy_accepts_an_unbounded_retry_after_cap() -> None:
    assert RetryPolicy(max_retry_after=math.inf).max_retry_after == math.inf


def test_policy_freezes_retry_statuses() -> None:
    assert RetryPolicy(retry_statuses=[500, 500, 503]).retry_statuses == frozenset({500, 503})


def test_with_statuses_returns_a_copy_with_exactly_those_statuses() -> None:
    policy = RetryPolicy(max_retries=5)
    copy = policy.with_statuses([400])
    assert copy.retry_statuses == frozenset({400})
    assert copy.max_retries == 5
    assert policy.retry_statuses == DEFAULT_RETRY_STATUSES


def test_policy_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().max_retries = 9
