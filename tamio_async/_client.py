"""`TamioClient` and its ``tickets`` resource: composes transport, retries and pagination."""

from __future__ import annotations

import builtins
import copy
import dataclasses
import hashlib
import logging
import os
import platform
import time
import urllib.parse
import warnings
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import aiohttp
import yarl

from ._auth import UNSAFE_HEADER_CHARS, ApiKey, Credentials
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_RETRY_POLICY,
    DEFAULT_SPECULATIVE_PAGES,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    check_int,
)
from ._exceptions import AuthenticationError, ClientClosedError, TamioError, status_error
from ._pagination import OnProgress, PageStream, TicketStream
from ._params import (
    Order,
    SortBy,
    TicketFilters,
    TimeBound,
    check_paging,
    encode_filters,
    is_loopback,
    list_query,
)
from ._ratecontrol import RateController, RateLimit, RateState, SharedBucket
from ._retry import call_with_retries
from ._stats import ListingStats
from ._transport import Transport, pool_safe_timeout
from ._version import __version__
from .models import Ticket, TicketList, decode_ticket_list

logger = logging.getLogger("tamio_async")

if TYPE_CHECKING:
    import uuid

    from typing_extensions import Unpack

__all__ = ["ListingOptions", "PageOptions", "PageResponse", "TamioClient", "Tickets"]

_LIST_PATH = "/agency/tickets/list"


class TamioClient:
    """Asyncio client for Tamio's ticket API.

    Use it as ``async with TamioClient() as client:`` (or call ``await client.aclose()``),
    and share one client for the lifetime of your app: it holds the connection pool, the
    rate control and the token. Every option is keyword-only:

    * ``api_key``: a string, or a callable (sync or async) returning the token; it is
      called again once when the server answers 401. Default: ``$TAMIO_API_KEY``.
    * ``base_url``: default ``$TAMIO_BASE_URL`` or ``https://api.tamio.com/v2``. Plain
      ``http://`` is refused for anything but loopback unless ``allow_insecure_http=True``.
    * ``timeout``: seconds for a whole attempt, or an ``aiohttp.ClientTimeout``.
    * ``max_retries`` / ``retry``: how failures are retried (see `RetryPolicy`).
    * ``max_concurrency``: requests in flight for one bulk listing (its window).
    * ``max_connections``: the connection pool, shared by every call on this client (default
      100, at least ``max_concurrency``): a web app's concurrent handlers use it all, a
      listing's window at most ``max_concurrency`` of it.
    * ``speculative_pages``: pages a listing asks together with its first page, before
      ``total_results`` is known (default 2): a listing of up to that many pages more is a
      round trip faster; each page past its end costs one request (at most this many).
    * ``preconnect``: while a listing's first page is in flight, open the connections its
      first window will use (default True); a listing smaller than the window has paid
      for handshakes it did not need.
    * ``session``: an ``aiohttp.ClientSession`` to borrow (never closed by us).
    * ``user_agent``: appended to ``tamio-async/<version>``.
    * ``max_response_bytes``: a larger body is refused instead of filling memory.
    * ``rate_limit``: never send faster than this (``"600/minute"``, ``"50/s"``, `RateLimit`).
    * ``adaptive_rate``: learn the rate the server accepts from its throttles and send at
      it (default True); ``client.rate`` reports it.
    * ``rate_limit_storage``: ``"redis://host:6379/0"`` shares the limit and every
      Retry-After pause with all clients using the same store and ``rate_limit_key``
      (default: a hash of the API key). Needs ``tamio-async[redis]``.
    """

    def __init__(
        self,
        *,
        api_key: ApiKey | None = None,
        base_url: str | None = None,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_connections: int | None = None,
        speculative_pages: int = DEFAULT_SPECULATIVE_PAGES,
        preconnect: bool = True,
        session: aiohttp.ClientSession | None = None,
        user_agent: str | None = None,
        allow_insecure_http: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        rate_limit: str | RateLimit | None = None,
        adaptive_rate: bool = True,
        rate_limit_storage: str | None = None,
        rate_limit_key: str | None = None,
    ) -> None:
        #: Where the key came from, for a 401's message (the key itself is never shown).
        self._key_source = "the api_key argument"
        if api_key is None:
            api_key = os.environ.get("TAMIO_API_KEY")
            if not api_key:
                raise ValueError(
                    "no API key: pass api_key=... or set the TAMIO_API_KEY environment variable"
                )
            self._key_source = "the TAMIO_API_KEY environment variable"
        elif callable(api_key):
            self._key_source = "the api_key provider (it was asked again once)"
        self._credentials = Credentials(api_key)
        _check_bool("allow_insecure_http", allow_insecure_http)
        if base_url is None:  # only None means "not given": base_url=0 must not pass silently
            base_url = os.environ.get("TAMIO_BASE_URL") or DEFAULT_BASE_URL
        self.base_url: str = _check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if max_retries is not None:
            check_int("max_retries", max_retries, minimum=0)
            retry = dataclasses.replace(retry, max_retries=max_retries)
        self.retry = retry
        check_int("max_concurrency", max_concurrency, minimum=1)
        self.max_concurrency = max_concurrency
        if max_connections is None:
            max_connections = max(DEFAULT_MAX_CONNECTIONS, max_concurrency)
        check_int("max_connections", max_connections, minimum=1)
        if max_connections < max_concurrency:
            raise ValueError(
                f"max_connections={max_connections} is smaller than max_concurrency="
                f"{max_concurrency}: the window's extra requests would only queue for a "
                "connection"
            )
        self.max_connections = max_connections
        check_paging(per_page=1, speculative_pages=speculative_pages)
        self.speculative_pages: int = speculative_pages
        self.preconnect: bool = _check_bool("preconnect", preconnect)
        check_int("max_response_bytes", max_response_bytes, minimum=1)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError("session must be an aiohttp.ClientSession")
        if user_agent is not None and not isinstance(user_agent, str):
            raise TypeError("user_agent must be a str")
        if user_agent is not None and UNSAFE_HEADER_CHARS.search(user_agent):
            raise ValueError("user_agent must not contain control characters")
        self._url = self.base_url + _LIST_PATH
        self._headers = {
            "Accept": "application/json",
            "User-Agent": _user_agent(user_agent),
        }
        self._pacer = RateController(
            limit=None if rate_limit is None else RateLimit.parse(rate_limit),
            adaptive=_check_bool("adaptive_rate", adaptive_rate),
            shared=_shared_bucket(rate_limit_storage, rate_limit_key, api_key),
            clock=retry.clock,
            sleep=retry.sleep,
        )
        self._transport = Transport(
            timeout=_check_timeout(timeout),
            max_connections=max_connections,
            max_response_bytes=max_response_bytes,
            session=session,
        )
        #: This client's own timeout, if `with_options` gave it one (else the transport's).
        self._timeout: aiohttp.ClientTimeout | None = None
        #: False for a `with_options` copy: the pool, gate and token belong to the original.
        self._owner = True
        self._closed = False
        self.tickets: Tickets = Tickets(self)

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        speculative_pages: int | None = None,
        preconnect: bool | None = None,
    ) -> TamioClient:
        """A client with other per-call options that shares this one's pool, gate and token.

        ``await client.with_options(timeout=2, max_retries=0).tickets.list()``: cheap (no
        new connections), and a Retry-After or a learned rate seen through either applies to
        both. Closing the copy closes nothing shared; closing this client closes the copy's
        pool too. ``None`` keeps this client's value.
        """
        self._check_open()
        derived = copy.copy(self)
        derived._owner = False
        derived.tickets = Tickets(derived)
        if timeout is not None:
            derived._timeout = pool_safe_timeout(_check_timeout(timeout))
        if retry is not None:
            if not isinstance(retry, RetryPolicy):
                raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
            derived.retry = retry
        if max_retries is not None:
            check_int("max_retries", max_retries, minimum=0)
            derived.retry = dataclasses.replace(derived.retry, max_retries=max_retries)
        if max_concurrency is not None:
            check_int("max_concurrency", max_concurrency, minimum=1)
            if max_concurrency > self.max_connections:
                raise ValueError(
                    f"max_concurrency={max_concurrency} exceeds the shared connection pool "
                    f"(max_connections={self.max_connections})"
                )
            derived.max_concurrency = max_concurrency
        if speculative_pages is not None:
            check_paging(per_page=1, speculative_pages=speculative_pages)
            derived.speculative_pages = speculative_pages
        if preconnect is not None:
            derived.preconnect = _check_bool("preconnect", preconnect)
        return derived

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<TamioClient base_url={self.base_url!r} "
            f"max_concurrency={self.max_concurrency} max_connections={self.max_connections} "
            f"{state}>"
        )

    async def __aenter__(self) -> TamioClient:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a borrowed session stays open). Safe to call twice.

        On a `with_options` copy it only closes the copy.
        """
        self._closed = True
        if not self._owner:
            return
        await self._transport.aclose()
        await self._pacer.aclose()

    @property
    def rate(self) -> RateState:
        """The rate control now: the send rate in force, the limit, the throttles seen."""
        return self._pacer.state

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` ran."""
        return self._closed

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        owner = getattr(self, "_owner", False)
        if owner and transport is not None and transport.owns_open_session:
            warnings.warn(
                f"unclosed {self!r}: use 'async with TamioClient()' or 'await client.aclose()'",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    def _guidance(self, status: int) -> str:
        """What to check, for the statuses a setup mistake causes (never the key itself)."""
        if status == 404:
            return (
                f" (GET {self._url}): is base_url right? It includes the API version, "
                f"e.g. {DEFAULT_BASE_URL}"
            )
        if status in (401, 403):
            return f": check the API key, which came from {self._key_source}"
        return ""

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this TamioClient is closed; create a new one")

    async def _get_page(
        self, query: dict[str, str], *, stats: ListingStats | None = None
    ) -> TicketList:
        """GET one page with retries; a 401 with a key provider refreshes the key once."""
        return (await self._get_page_response(query, stats=stats)).page

    async def _get_page_response(
        self, query: dict[str, str], *, stats: ListingStats | None = None
    ) -> PageResponse:
        """`_get_page` with the response it came from."""
        self._check_open()
        token = await self._credentials.token()
        try:
            return await self._get_page_with(token, query, stats)
        except AuthenticationError:
            if not self._credentials.refreshable:
                raise
            fresh = await self._credentials.refresh(token)
            return await self._get_page_with(fresh, query, stats)

    async def _get_page_with(
        self, token: str, query: dict[str, str], stats: ListingStats | None
    ) -> PageResponse:
        headers = {**self._headers, "Authorization": f"Bearer {token}"}
        page = int(query["page"])

        async def send() -> PageResponse:
            self._check_open()  # closed while this request waited in backoff
            started = time.perf_counter()
            try:
                response = await self._transport.get(self._url, query, headers, self._timeout)
            except TamioError as exc:
                exc.page = page
                raise
            if logger.isEnabledFor(logging.DEBUG):  # one line per request (never the key)
                logger.debug(
                    "GET %s?%s -> %d in %.0f ms",
                    self._url,
                    urllib.parse.urlencode(query),
                    response.status,
                    (time.perf_counter() - started) * 1000,
                )
            if not 200 <= response.status < 300:  # 3xx here: a redirect aiohttp did not follow
                error = status_error(response.status, response.body, response.headers, page=page)
                error.message += self._guidance(response.status)
                raise error
            decoded = decode_ticket_list(response.body, status_code=response.status, page=page)
            return PageResponse(decoded, response.status, response.headers)

        return await call_with_retries(
            send,
            policy=self.retry,
            pacer=self._pacer,
            what=f"GET page {page}",
            on_retry=None if stats is None else stats.note_retry,
            on_throttle=None if stats is None else stats.note_throttle,
        )


@dataclasses.dataclass(frozen=True)
class PageResponse:
    """A page with the HTTP response it came in (``tickets.list_with_response``)."""

    page: TicketList
    status: int
    headers: Mapping[str, str]

    @property
    def request_id(self) -> str | None:
        """The server's id for this request (``X-Request-Id``), to quote to its support."""
        return self.headers.get("x-request-id") or self.headers.get("request-id")


class PageOptions(TicketFilters, total=False):
    """The keyword arguments of `Tickets.list` (and `Tickets.list_with_response`)."""

    page: int
    per_page: int


class Tickets:
    """``client.tickets``: one page with `list`, every page with `iterate`/`pages`/`list_all`."""

    def __init__(self, client: TamioClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        page: int = 1,
        per_page: int = 100,
        order: Order | None = None,
        sort_by: SortBy | None = None,
        filter: str | None = None,
        from_: TimeBound | None = None,
        to: TimeBound | None = None,
        closed: bool | None = None,
        teammate_id: str | uuid.UUID | None = None,
        client_id: str | uuid.UUID | None = None,
    ) -> TicketList:
        """Fetch one page (one GET, plus retries). ``None`` leaves a filter out."""
        response = await self.list_with_response(
            page=page,
            per_page=per_page,
            order=order,
            sort_by=sort_by,
            filter=filter,
            from_=from_,
            to=to,
            closed=closed,
            teammate_id=teammate_id,
            client_id=client_id,
        )
        return response.page

    async def list_with_response(self, **options: Unpack[PageOptions]) -> PageResponse:
        """`list`, and the response it came in: status, headers, ``request_id``."""
        page, per_page = options.pop("page", 1), options.pop("per_page", 100)
        filters = encode_filters(options)
        check_paging(per_page=per_page, start_page=page, page_name="page")
        self._client._check_open()
        return await self._client._get_page_response(list_query(page, per_page, filters))

    def pages(
        self,
        *,
        per_page: int = 100,
        max_concurrency: int | None = None,
        start_page: int = 1,
        end_page: int | None = None,
        limit: int | None = None,
        on_progress: OnProgress | None = None,
        max_requests: int | None = None,
        speculative_pages: int | None = None,
        **filters: Unpack[TicketFilters],
    ) -> PageStream:
        """Every page of the listing, fetched concurrently, yielded in page order.

        The first page is fetched alone; its ``total_results`` plans the rest, which are
        fetched with at most ``max_concurrency`` requests in flight (default: the client's).
        Tickets are de-duplicated by id across pages; ``limit`` stops after that many; the
        listing sends at most ``max_requests`` page requests (default: README's formula).
        ``speculative_pages`` overrides the client's. Arguments are validated here, before
        any request.
        """
        client = self._client
        client._check_open()
        encoded = encode_filters(filters)
        concurrency = client.max_concurrency if max_concurrency is None else max_concurrency
        if speculative_pages is None:
            speculative_pages = client.speculative_pages
        check_paging(
            per_page=per_page,
            start_page=start_page,
            end_page=end_page,
            limit=limit,
            max_concurrency=concurrency,
            max_requests=max_requests,
            speculative_pages=speculative_pages,
        )
        pool = client._transport.pool_limit
        if pool is not None and concurrency > pool:
            # The extra requests would only queue for a connection, and the wait would eat
            # into their timeouts: say so instead of running slower than asked.
            raise ValueError(
                f"max_concurrency={concurrency} exceeds the client's connection pool ({pool}); "
                "create the TamioClient with a larger max_connections"
            )
        stats = ListingStats()

        async def fetch_page(page: int) -> TicketList:
            query = list_query(page, per_page, encoded)
            return await client._get_page(query, stats=stats)

        async def warm(count: int) -> None:
            await client._transport.preconnect(client._url, count)

        return PageStream(
            fetch_page,
            per_page=per_page,
            max_concurrency=concurrency,
            start_page=start_page,
            end_page=end_page,
            limit=limit,
            on_progress=on_progress,
            stats=stats,
            max_requests=max_requests,
            speculative_pages=speculative_pages,
            warm=warm if client.preconnect else None,
        )

    def iterate(self, **options: Unpack[ListingOptions]) -> TicketStream:
        """Every ticket of the listing, streamed in page order (arguments as `pages`)."""
        return TicketStream(self.pages(**options))

    async def list_all(self, **options: Unpack[ListingOptions]) -> builtins.list[Ticket]:
        """Every ticket of the listing, collected into a list (arguments as `pages`)."""
        tickets: builtins.list[Ticket] = []
        async with self.pages(**options) as pages:
            async for page in pages:
                tickets.extend(page.tickets)
        return tickets


class ListingOptions(TicketFilters, total=False):
    """The keyword arguments of `Tickets.pages`, which `iterate` and `list_all` pass on."""

    per_page: int
    max_concurrency: int | None
    start_page: int
    end_page: int | None
    limit: int | None
    on_progress: OnProgress | None
    max_requests: int | None
    speculative_pages: int | None


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):  # a truthy "false" must not switch a protection on or off
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _shared_bucket(storage: str | None, key: str | None, api_key: ApiKey) -> SharedBucket | None:
    """The Redis bucket of ``rate_limit_storage``, keyed by ``rate_limit_key`` or a key hash."""
    if storage is None:
        if key is not None:
            raise ValueError("rate_limit_key needs rate_limit_storage (it names a shared limit)")
        return None
    if not isinstance(storage, str):
        raise TypeError(f"rate_limit_storage must be a str URL, got {type(storage).__name__}")
    if key is None:
        if not isinstance(api_key, str):
            raise ValueError(
                "rate_limit_storage with an api_key provider needs rate_limit_key= "
                "(the key that the provider returns is not known before the first request)"
            )
        # Clients sharing one API key share its quota; the store sees only a hash of it.
        key = hashlib.sha256(api_key.encode()).hexdigest()[:32]
    elif not isinstance(key, str) or not key or UNSAFE_HEADER_CHARS.search(key):
        raise ValueError("rate_limit_key must be a non-empty str without control characters")
    try:
        from ._redis import RedisBucket
    except ImportError as exc:
        raise ImportError(str(exc)) from None
    return RedisBucket(storage, key)


def _check_base_url(raw: str, *, allow_insecure_http: bool) -> str:
    """Validate ``base_url``: http(s), a host, no credentials; plain http only for loopback."""
    if not isinstance(raw, str):
        raise TypeError(f"base_url must be a str, got {type(raw).__name__}")
    try:
        url = yarl.URL(raw.strip())
    except ValueError:
        raise ValueError(f"base_url is not a valid URL: {raw!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {raw!r}")
    if url.user or url.password:
        raise ValueError("base_url must not contain credentials; pass api_key instead")
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {raw!r}")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback(url.host):
        raise ValueError(
            f"base_url {raw!r} is plain http: the API key would travel in clear text. "
            "Use https, or pass allow_insecure_http=True if you really mean it"
        )
    return str(url).rstrip("/")


def _check_timeout(timeout: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(
            f"timeout must be seconds > 0 or an aiohttp.ClientTimeout, got {timeout!r}"
        )
    return aiohttp.ClientTimeout(total=timeout)


def _user_agent(suffix: str | None) -> str:
    base = (
        f"tamio-async/{__version__} aiohttp/{aiohttp.__version__} "
        f"python/{platform.python_version()}"
    )
    return f"{base} {suffix}" if suffix else base
