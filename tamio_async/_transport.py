"""The only module that uses the aiohttp client: one GET in, ``Response`` (or our error) out.

It owns a ``ClientSession`` (created lazily, inside the running loop, with a connector sized
to the client's concurrency) or borrows the caller's, which it never closes. Once closed (or
once a borrowed session is closed by its lender) every request, including one in flight,
raises ``ClientClosedError``. The body-size cap counts decompressed bytes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import NamedTuple

import aiohttp
import yarl
from aiohttp import hdrs
from multidict import CIMultiDictProxy

from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    ClientClosedError,
    TamioError,
)

__all__ = ["Response", "Transport", "pool_safe_timeout"]

_CHUNK = 256 * 1024


class Response(NamedTuple):
    """What the server answered: status, headers and the complete body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Transport:
    """Sends GET requests; turns aiohttp's failures into our connection/timeout errors."""

    def __init__(
        self,
        *,
        timeout: aiohttp.ClientTimeout,
        max_connections: int,
        max_response_bytes: int,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._timeout = pool_safe_timeout(timeout)
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._session = session
        self._owns_session = session is None
        self._closed = False

    @property
    def owns_open_session(self) -> bool:
        """True while a session we created is open (so closing is our job)."""
        return self._owns_session and self._session is not None and not self._session.closed

    @property
    def pool_limit(self) -> int | None:
        """Connections the session may open to one host at a time; ``None`` if unlimited."""
        if self._owns_session:
            return self._max_connections
        assert self._session is not None
        connector = self._session.connector
        if connector is None:  # a closed session has let go of its connector
            return None
        limits = [n for n in (connector.limit, connector.limit_per_host) if n > 0]
        return min(limits, default=None)

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` ran, or once a borrowed session was closed by its lender."""
        return self._closed or (self._session is not None and self._session.closed)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def get(
        self,
        url: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Response:
        """One GET; the body is read whole, up to ``max_response_bytes``.

        ``timeout`` (already made `pool_safe_timeout`) overrides the transport's for this call.
        """
        if self.closed:
            raise self._closed_error()
        session = self._get_session()
        cause: BaseException | None = None
        try:
            async with session.get(
                url, params=params, headers=headers, timeout=timeout or self._timeout
            ) as resp:
                body = await self._read(resp)
                return Response(resp.status, resp.headers, body)
        except asyncio.CancelledError:
            # Closing a session cancels the requests queued for a pooled connection; only a
            # cancellation of this task itself (Task.cancelling, 3.11+) is a real one.
            if not (self.closed and _not_cancelling()):
                raise
            failure: TamioError = self._closed_error()
        except (asyncio.TimeoutError, TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
            # A close while the request ran surfaces as whatever aiohttp was doing (a dropped
            # connection, a cancelled wait, "Session is closed"): say what really happened.
            if self.closed:
                failure = self._closed_error()
            elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                # aiohttp's ServerTimeoutError is also a TimeoutError, so it lands here too.
                failure, cause = APITimeoutError(f"request timed out ({_describe(exc)})"), exc
            elif isinstance(exc, aiohttp.ClientResponseError):
                # Its request_info (in repr) holds our headers, the key among them: never
                # chain it, not even as __context__, so the failure is raised outside this block.
                failure = APIConnectionError(f"request failed: {_describe(exc)}")
            elif isinstance(exc, aiohttp.ClientError):
                failure, cause = APIConnectionError(f"request failed: {_describe(exc)}"), exc
            else:
                raise  # a RuntimeError that is not about the closed session: not ours to rename
        raise failure from cause

    async def preconnect(self, url: str, count: int) -> None:
        """Have up to ``count`` connections to ``url``'s host ready in the pool, now.

        aiohttp has no public pre-connect, so this asks the connector for connections the
        way a request does (`BaseConnector.connect`), holds them until all are there (so
        idle ones are counted, not reused over and over) and puts them back. It never waits
        for a free slot (another task's requests come first, and two pre-connects waiting
        for each other's slots would hang), and a failure is left for the real requests to
        report: this is only a head start.
        """
        if self.closed:
            return
        connector = self._get_session().connector
        if connector is None:
            return
        request = aiohttp.ClientRequest(
            hdrs.METH_GET, yarl.URL(url), loop=asyncio.get_running_loop()
        )
        try:  # the free slots: a private helper, so a newer aiohttp may lack it
            free = connector._available_connections(request.connection_key)
        except AttributeError:
            return
        held: list[aiohttp.connector.Connection] = []

        async def one() -> None:
            held.append(await connector.connect(request, [], self._timeout))

        try:  # every outcome is awaited: none may acquire a connection after the release
            await asyncio.gather(*(one() for _ in range(min(count, free))), return_exceptions=True)
        finally:
            for connection in held:
                connection.release()

    def _closed_error(self) -> ClientClosedError:
        if self._closed or self._owns_session:
            return ClientClosedError("this TamioClient is closed; create a new one")
        return ClientClosedError(
            "the aiohttp ClientSession lent to this TamioClient is closed; create a new one"
        )

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self._max_response_bytes
        length = resp.content_length
        # Content-Length counts the bytes on the wire; with a Content-Encoding aiohttp inflates
        # them, and a small gzip body can inflate far past the cap. Only an unencoded body may
        # trust it; any other is counted chunk by chunk as it inflates.
        if not _is_encoded(resp.headers) and length is not None:
            if length > cap:
                raise _too_large(resp.status, cap)
            # aiohttp stops at Content-Length (and errors on a short body): one read is safe.
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise _too_large(resp.status, cap)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def aclose(self) -> None:
        """Refuse further requests; close the session if we created it, never a borrowed one."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()


def pool_safe_timeout(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """Move a ``connect`` limit to ``sock_connect`` unless that is set already.

    aiohttp's ``connect`` also counts the wait for a free pooled connection, so a small pool
    and slow answers time out requests that never tried to connect. ``sock_connect`` bounds
    the connection itself; DNS resolution stays bounded by ``total``.
    """
    if timeout.connect is None or timeout.sock_connect is not None:
        return timeout
    return aiohttp.ClientTimeout(
        total=timeout.total,
        connect=None,
        sock_read=timeout.sock_read,
        sock_connect=timeout.connect,
        ceil_threshold=timeout.ceil_threshold,
    )


def _is_encoded(headers: Mapping[str, str]) -> bool:
    return headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower() not in ("", "identity")


def _not_cancelling() -> bool:
    """True when nobody asked to cancel the current task (always False before 3.11)."""
    if sys.version_info < (3, 11):
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


def _too_large(status: int, cap: int) -> APIResponseValidationError:
    return APIResponseValidationError(
        f"response body exceeds max_response_bytes ({cap} bytes); refused", status_code=status
    )


def _describe(exc: BaseException) -> str:
    """Class name and message, without the request's headers (they carry the key).

    A refused or unreachable host reads as what happened ("cannot connect to
    127.0.0.1:9 (connection refused)"), not as aiohttp's repr of its connection key.
    """
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientConnectorCertificateError
    ):
        error = exc.os_error  # asyncio's strerror for a refusal repeats the address: use errno
        reason = os.strerror(error.errno) if error.errno else str(error) or type(error).__name__
        return f"cannot connect to {exc.host}:{exc.port} ({reason.lower()})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
