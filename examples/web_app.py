"""An aiohttp.web service in front of Tamio, sharing ONE TamioClient for its whole lifetime.

    python examples/web_app.py                  # embedded fake API, serves on 127.0.0.1:8080
    curl 'http://127.0.0.1:8080/tickets?closed=false&filter=refund'     # one page
    curl 'http://127.0.0.1:8080/tickets?all=true&limit=500'             # every page, capped

The client is created in a ``cleanup_ctx``: its connection pool, rate-limit gate and key are
shared by every request, and it is closed when the app stops. The key comes from --api-key or
$TAMIO_API_KEY, the URL from --base-url or $TAMIO_BASE_URL; with neither, the app starts
tamio-async's fake API in-process so it just runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping

import msgspec
from aiohttp import web

from tamio_async import TamioClient, TamioError

TAMIO = web.AppKey("tamio", TamioClient)
#: A web request must not turn into an unbounded export.
MAX_LIMIT = 1000
_encoder = msgspec.json.Encoder()
logger = logging.getLogger("web_app")


def create_app(*, base_url: str | None = None, api_key: str | None = None) -> web.Application:
    """The app; with neither ``base_url`` nor ``api_key`` it serves an embedded fake API."""

    async def tamio_client(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            url, key = base_url, api_key
            if url is None and key is None:
                from tamio_async.testing import FakeTamioServer

                fake = await stack.enter_async_context(FakeTamioServer(latency=0.02))
                url, key = fake.base_url, fake.api_key
            app[TAMIO] = await stack.enter_async_context(TamioClient(base_url=url, api_key=key))
            yield

    app = web.Application()
    app.cleanup_ctx.append(tamio_client)
    app.router.add_get("/tickets", list_tickets)
    return app


async def list_tickets(request: web.Request) -> web.Response:
    """``GET /tickets?closed=&filter=&page=&per_page=`` or ``?all=true&limit=``: a JSON list."""
    client = request.app[TAMIO]
    query = request.query
    try:
        closed, text = _flag(query, "closed"), query.get("filter")
        if _flag(query, "all"):
            limit = _number(query, "limit", default=100, maximum=MAX_LIMIT)
            tickets = await client.tickets.list_all(limit=limit, closed=closed, filter=text)
        else:
            page = await client.tickets.list(
                page=_number(query, "page", default=1),
                per_page=_number(query, "per_page", default=50, maximum=100),
                closed=closed,
                filter=text,
            )
            tickets = list(page.tickets)
    except (ValueError, TypeError) as exc:  # the library validates before any request
        return web.json_response({"error": str(exc)}, status=400)
    except TamioError as exc:
        logger.warning("Tamio request failed: %s", exc)
        return web.json_response({"error": "the ticket service failed"}, status=502)
    return web.Response(body=_encoder.encode(tickets), content_type="application/json")


def _flag(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    return raw == "true"


def _number(
    query: Mapping[str, str], name: str, *, default: int, maximum: int | None = None
) -> int:
    raw = query.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--base-url", default=os.environ.get("TAMIO_BASE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("TAMIO_API_KEY"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    app = create_app(base_url=args.base_url, api_key=args.api_key)
    # A socket of our own, so that with --port 0 the banner shows the port really bound.
    web.run_app(app, sock=socket.create_server((args.host, args.port)))


if __name__ == "__main__":
    main()
