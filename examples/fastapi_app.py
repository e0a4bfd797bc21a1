"""A FastAPI service in front of Tamio, sharing ONE TamioClient for the app's whole lifespan.

    pip install tamio-async fastapi uvicorn
    python examples/fastapi_app.py              # embedded fake API, serves on 127.0.0.1:8000
    curl 'http://127.0.0.1:8000/tickets?closed=false&filter=refund'     # one page
    curl 'http://127.0.0.1:8000/tickets/all?limit=500'                  # every page, capped

* The client is opened in the app's ``lifespan`` and kept on ``app.state``: its connection
  pool, rate control and key serve every request, and it is closed at shutdown. Its pool
  (``max_connections=64``) is for the app's concurrent handlers; one ``/tickets/all``
  listing uses at most ``max_concurrency=8`` of those connections at a time.
* Tickets are msgspec Structs, which FastAPI cannot serialize itself: a handler returns
  ``Response(msgspec.json.encode(value), media_type="application/json")``. One call, no
  custom encoder, no copy into dicts; the JSON is what the Tamio API sent.
* Tamio's errors become HTTP statuses in one exception handler: 404 for NotFoundError; 503
  with Retry-After for RateLimitError; 504 for a timeout; 502 for a refused connection and
  any other failure of the service behind. A bad argument is a 400, before any request.

The key comes from --api-key or $TAMIO_API_KEY, the URL from --base-url or $TAMIO_BASE_URL;
with neither, the app starts tamio-async's fake API in-process so that it just runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from fastapi import FastAPI, Query, Request, Response

from tamio_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    TamioClient,
    TamioError,
)

#: A web request must not turn into an unbounded export.
MAX_LIMIT = 1000
#: Fail fast inside a request: one retry, and never sleep long on a Retry-After; the caller
#: gets a 503 with the server's Retry-After instead (it can wait; our workers should not).
WEB_RETRY = RetryPolicy(max_retries=1, max_retry_after=2.0, max_throttle_time=5.0)
logger = logging.getLogger("fastapi_app")


def json_response(value: object, status_code: int = 200) -> Response:
    """Any msgspec Struct (or list, dict of them) as a JSON response: the one documented call."""
    return Response(msgspec.json.encode(value), status_code, media_type="application/json")


def create_app(
    *, base_url: str | None = None, api_key: str | None = None, **client_options: Any
) -> FastAPI:
    """The app; with neither `base_url` nor `api_key` it serves an embedded fake API.

    `client_options` go to TamioClient, over this example's defaults (a pool of 64
    connections, a bulk window of 8, `WEB_RETRY`, a 10 s timeout).
    """
    options = {
        "max_connections": 64,
        "max_concurrency": 8,
        "retry": WEB_RETRY,
        "timeout": 10.0,
        **client_options,
    }

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            url, key = base_url, api_key
            if url is None and key is None:
                from tamio_async.testing import FakeTamioServer

                fake = await stack.enter_async_context(FakeTamioServer(latency=0.02))
                url, key = fake.base_url, fake.api_key
            client = TamioClient(base_url=url, api_key=key, **options)
            app.state.tamio = await stack.enter_async_context(client)
            yield

    app = FastAPI(title="tickets", lifespan=lifespan)
    app.add_exception_handler(TamioError, tamio_error)
    app.add_api_route("/tickets", list_tickets, methods=["GET"])
    app.add_api_route("/tickets/all", list_all_tickets, methods=["GET"])
    return app


def tamio(request: Request) -> TamioClient:
    client: TamioClient = request.app.state.tamio
    return client


async def list_tickets(
    request: Request,
    closed: bool | None = None,
    text: Annotated[str | None, Query(alias="filter")] = None,
    since: Annotated[str | None, Query(alias="from")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    """``GET /tickets?closed=&filter=&from=&page=&per_page=``: one page, as Tamio sent it."""
    try:
        found = await tamio(request).tickets.list(
            page=page, per_page=per_page, closed=closed, filter=text, from_=since
        )
    except (ValueError, TypeError) as exc:  # the library validates before any request
        return json_response({"error": str(exc)}, 400)
    return json_response(found)  # {"status", "total_results", "tickets": [...]}


async def list_all_tickets(
    request: Request,
    closed: bool | None = None,
    text: Annotated[str | None, Query(alias="filter")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Response:
    """``GET /tickets/all?closed=&filter=&limit=``: every page up to `limit` tickets, a list."""
    tickets = await tamio(request).tickets.list_all(limit=limit, closed=closed, filter=text)
    return json_response(tickets)


def status_for(exc: TamioError) -> tuple[int, dict[str, str]]:
    """The HTTP status (and headers) that tell our caller what went wrong behind us."""
    if isinstance(exc, NotFoundError):
        return 404, {}
    if isinstance(exc, RateLimitError):
        # Tamio's quota, not the caller's: 503 (try again later), with Tamio's wait.
        return 503, {"Retry-After": str(max(1, math.ceil(exc.retry_after or 1)))}
    if isinstance(exc, APITimeoutError):  # before APIConnectionError: it is one
        return 504, {}
    if isinstance(exc, ClientClosedError):  # the app is shutting down
        return 503, {}
    if isinstance(exc, APIConnectionError):  # refused, reset, cut short
        return 502, {}
    # 401/403 (our configuration, not the caller's), Tamio's 5xx, an answer that does not
    # parse, a listing that moved too much: the service behind us failed.
    return 502, {}


async def tamio_error(request: Request, exc: Exception) -> Response:
    """Every TamioError as a JSON error with its status; never the key, never Tamio's URL."""
    assert isinstance(exc, TamioError)
    status, headers = status_for(exc)
    logger.warning("Tamio request failed: %s", exc)
    body: dict[str, str | None] = {"error": _MESSAGES.get(status, "the ticket service failed")}
    if isinstance(exc, APIStatusError):
        body["request_id"] = exc.request_id  # what Tamio's support asks for
    response = json_response(body, status)
    response.headers.update(headers)
    return response


_MESSAGES = {
    404: "not found at the ticket service",
    503: "the ticket service is busy; try again later",
    504: "the ticket service did not answer in time",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--base-url", default=os.environ.get("TAMIO_BASE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("TAMIO_API_KEY"))
    args = parser.parse_args()
    try:
        import uvicorn
    except ImportError:
        parser.exit(2, "this example serves with uvicorn: pip install uvicorn\n")
    logging.basicConfig(level=logging.INFO)
    app = create_app(base_url=args.base_url, api_key=args.api_key)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
