"""The only module that uses the aiohttp client: one GET in, ``Response`` (or our error) out.

It owns a ``ClientSession`` (created lazily, inside the running loop, with a connector sized
to the client's concurrency) or borrows the caller's, which it never closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NamedTuple

import aiohttp
from multidict import CIMultiDictProxy

from ._exceptions import APIConnectionError, APIResponseValidationError, APITimeoutError

__all__ = ["Response", "Transport"]

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
        self._timeout = timeout
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._session = session
        self._owns_session = session is None

    @property
    def owns_open_session(self) -> bool:
        """True while a session we created is open (so closing is our job)."""
        return self._owns_session and self._session is not None and not self._session.closed

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
        self, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response:
        """One GET; the body is read whole, up to ``max_response_bytes``."""
        session = self._get_session()
        try:
            async with session.get(
                url, params=params, headers=headers, timeout=self._timeout
            ) as resp:
                body = await self._read(resp)
                return Response(resp.status, resp.headers, body)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            # aiohttp's ServerTimeoutError is also a TimeoutError, so it lands here too.
            raise APITimeoutError(f"request timed out ({_describe(exc)})") from exc
        except aiohttp.ClientResponseError as exc:
            # Its request_info (in repr) holds our headers, the key among them: never chain
            # it, not even as __context__, so the failure is raised outside this block.
            failure = APIConnectionError(f"request failed: {_describe(exc)}")
        except aiohttp.ClientError as exc:
            raise APIConnectionError(f"request failed: {_describe(exc)}") from exc
        raise failure

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self._max_response_bytes
        if resp.content_length is not None:
            if resp.content_length > cap:
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
        """Close the session if we created it; a borrowed one is the lender's to close."""
        if self._owns_session and self._session is not None:
            await self._session.close()


def _too_large(status: int, cap: int) -> APIResponseValidationError:
    return APIResponseValidationError(
        f"response body exceeds max_response_bytes ({cap} bytes); refused", status_code=status
    )


def _describe(exc: BaseException) -> str:
    """Class name and message, without the request's headers (they carry the key)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
