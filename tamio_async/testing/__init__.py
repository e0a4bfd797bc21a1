"""A faithful fake of the Tamio tickets API (aiohttp.web) for tests, demos and benchmarks.

    async with FakeTamioServer(tickets=500, latency=0.01) as server:
        ...  # point a client at server.base_url with server.api_key

Tickets are generated on demand from the seed, so a million start at once and serve in
flat memory; every timestamp lies before `DATA_END`. The pytest plugin (registered as
``tamio_async``) provides the ``fake_tamio`` and ``fake_tamio_factory`` fixtures and the
``fake_tamio`` marker. ``RedisServer`` runs a throwaway redis-server for tests of
``rate_limit_storage``.
"""

from ._data import CLIENTS, DATA_END, TEAMMATE_IDS, generate_tickets
from ._server import (
    DEFAULT_REQUEST_LOG,
    ENDPOINT,
    FAULT_KINDS,
    FakeTamioServer,
    RecordedRequest,
    RequestLog,
)
from .redis_server import RedisServer

__all__ = [
    "CLIENTS",
    "DATA_END",
    "DEFAULT_REQUEST_LOG",
    "ENDPOINT",
    "FAULT_KINDS",
    "FakeTamioServer",
    "RecordedRequest",
    "RedisServer",
    "RequestLog",
    "TEAMMATE_IDS",
    "generate_tickets",
]
