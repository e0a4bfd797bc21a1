"""Helpers of the command-line tests: the CLI as a subprocess, and a server to export from.

The servers run in the test's event loop, so the CLI runs as an asyncio subprocess (a
blocking ``subprocess.run`` would starve them). Every wait is bounded by ``TIMEOUT``.

`ExportServer` serves ``GET /v2/agency/tickets/list`` over tickets held newest first (ids
``t000001`` ...), and makes interruptions deterministic instead of timed: ``hold(page)``
makes requests for that page wait, and ``arrived(page)`` is set when one comes in, so a test
kills the CLI exactly while it waits there. ``insert_front``/``delete``/``insert_after``
move the data between or during runs; ``fail`` answers a page with an error status.
(`tamio_async.testing.FakeTamioServer` has no such hook: see the report of this change.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable
from types import TracebackType

from aiohttp import web

__all__ = [
    "KEY",
    "TIMEOUT",
    "ExportServer",
    "Result",
    "base_url",
    "cli_env",
    "cli_process",
    "jsonl_ids",
    "run_cli",
    "ticket_id",
]

TIMEOUT = 60.0
KEY = "cli-test-key-c4n4ry-9f2e"
ENDPOINT = "/v2/agency/tickets/list"


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI run: ours without TAMIO_*, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMIO_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@contextlib.asynccontextmanager
async def cli_process(
    *args: str, env: dict[str, str] | None = None, code: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The CLI as a running process; killed and reaped on the way out whatever happened."""
    command = ("-c", code) if code else ("-m", "tamio_async")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env or cli_env(),
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.communicate(), TIMEOUT)


async def run_cli(*args: str, env: dict[str, str] | None = None, code: str | None = None) -> Result:
    """Run the CLI to its end."""
    async with cli_process(*args, env=env, code=code) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def base_url(endpoint_url: str) -> str:
    """The API root of a server, from the full endpoint URL (``FakeTamioServer.url``)."""
    return endpoint_url.removesuffix("/agency/tickets/list")


def jsonl_ids(text: str) -> list[str]:
    return [json.loads(line)["id"] for line in text.splitlines()]


def ticket_id(number: int) -> str:
    return f"t{number:06d}"


class ExportServer:
    """A listing endpoint with hooks to stop a client at a page; ``async with`` it."""

    def __init__(self, tickets: int, *, api_key: str = KEY, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self._host = host
        self._numbers = list(range(tickets, 0, -1))  # newest first
        self._created = tickets
        self.titles: dict[int, str] = {}
        self.requests: list[int] = []  # page numbers, in arrival order
        self.arrival: list[float] = []  # loop time of each request
        self._held: dict[int, asyncio.Event] = {}
        self._arrived: dict[int, asyncio.Event] = {}
        self._fail: dict[int, tuple[int, int | None]] = {}
        self._after: dict[int, int] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> ExportServer:
        app = web.Application()
        app.router.add_get(ENDPOINT, self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self._host, 0)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{ENDPOINT}"
        self.port = port
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return base_url(self.url)

    def conn(self) -> list[str]:
        return ["--base-url", self.base_url, "--api-key", self.api_key]

    def env(self) -> dict[str, str]:
        return cli_env(TAMIO_BASE_URL=self.base_url, TAMIO_API_KEY=self.api_key)

    # -- data ------------------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        """Every ticket's id, in listing order (newest first)."""
        return [ticket_id(n) for n in self._numbers]

    def insert_front(self, count: int) -> list[str]:
        new = list(range(self._created + count, self._created, -1))
        self._created += count
        self._numbers[:0] = new
        return [ticket_id(n) for n in new]

    def delete(self, ids: Iterable[str]) -> None:
        doomed = set(ids)
        self._numbers = [n for n in self._numbers if ticket_id(n) not in doomed]

    def insert_after(self, page: int, count: int) -> None:
        """Insert ``count`` tickets at the front once ``page`` was first answered."""
        self._after[page] = count

    # -- hooks -----------------------------------------------------------------------------

    def hold(self, page: int) -> None:
        """Make requests for ``page`` wait until `release`."""
        self._held[page] = asyncio.Event()

    def arrived(self, page: int) -> asyncio.Event:
        return self._arrived.setdefault(page, asyncio.Event())

    async def wait_arrived(self, page: int) -> None:
        await asyncio.wait_for(self.arrived(page).wait(), TIMEOUT)

    def release(self) -> None:
        for event in self._held.values():
            event.set()
        self._held.clear()
        self._arrived.clear()

    def fail(self, page: int, status: int, times: int | None = None) -> None:
        """Answer ``page`` with ``status``, ``times`` times (None: until cleared)."""
        self._fail[page] = (status, times)

    def clear_failures(self) -> None:
        self._fail.clear()

    # -- the endpoint ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Unauthorized")
        try:
            page, per_page = int(request.query["page"]), int(request.query["per_page"])
        except (KeyError, ValueError):
            return _error(400, "page and per_page are required")
        self.requests.append(page)
        self.arrival.append(asyncio.get_running_loop().time())
        self.arrived(page).set()
        held = self._held.get(page)
        if held is not None:
            await held.wait()
        failure = self._fail.get(page)
        if failure is not None:
            status, times = failure
            if times is not None:
                if times <= 1:
                    del self._fail[page]
                else:
                    self._fail[page] = (status, times - 1)
            return _error(status, "failing on purpose")
        start = (page - 1) * per_page
        numbers = self._numbers[start : start + per_page]
        body = {
            "status": 200,
            "total_results": len(self._numbers),
            "tickets": [self._ticket(n) for n in numbers],
        }
        count = self._after.pop(page, 0)
        if count:
            self.insert_front(count)
        return web.json_response(body)

    def _ticket(self, number: int) -> dict[str, object]:
        return {
            "id": ticket_id(number),
            "title": self.titles.get(number, f"Ticket {number}"),
            "is_open": number % 3 != 0,
            "category": "Billing",
            "client": {"id": f"c{number}", "name": f"Customer {number}", "email": f"{number}@x"},
            "created_at": 1_700_000_000 + number,
            "replies": [{"id": f"r{number}", "text": "hi"}] * (number % 3),
        }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": status, "message": message}, status=status)
