"""A faithful fake of the Tamio tickets API (aiohttp.web) for tests, demos and benchmarks.

    async with FakeTamioServer(tickets=500, latency=0.01) as server:
        ...  # point a client at server.base_url with server.api_key

The pytest plugin (registered as ``tamio_async``) provides the ``fake_tamio`` and
``fake_tamio_factory`` fixtures. ``RedisServer`` runs a throwaway redis-server for tests of
``rate_limit_storage``.
"""

from ._data import CLIENTS, TEAMMATE_IDS, generate_tickets
from ._server import ENDPOINT, FAULT_KINDS, FakeTamioServer, RecordedRequest
from .redis_server import RedisServer

__all__ = [
    "CLIENTS",
    "ENDPOINT",
    "FAULT_KINDS",
    "FakeTamioServer",
    "RecordedRequest",
    "RedisServer",
    "TEAMMATE_IDS",
    "generate_tickets",
]
