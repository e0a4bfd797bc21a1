"""The API key: a fixed string or a provider to call again when the server says 401."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable

__all__ = ["ApiKey", "Credentials", "UNSAFE_HEADER_CHARS"]

ApiKey = str | Callable[[], str | Awaitable[str]]
#: Characters aiohttp refuses in a header value (CR/LF would inject headers).
UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Credentials:
    """Holds the token (never shown in a repr) and refreshes it once for concurrent 401s."""

    def __init__(self, source: ApiKey) -> None:
        if isinstance(source, str):
            if not source.strip():
                raise ValueError("api_key must not be empty")
            if UNSAFE_HEADER_CHARS.search(source):
                raise ValueError("api_key must not contain control characters")
        elif not callable(source):
            raise TypeError(
                f"api_key must be a str or a callable returning one, got {type(source).__name__}"
            )
        self._source = source
        self._token: str | None = source if isinstance(source, str) else None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"

    @property
    def refreshable(self) -> bool:
        """True when the key comes from a provider that can be asked again."""
        return not isinstance(self._source, str)

    async def token(self) -> str:
        """The current token, fetched from the provider on first use."""
        if self._token is None:
            await self.refresh(None)
        assert self._token is not None
        return self._token

    async def refresh(self, stale: str | None) -> str:
        """Replace ``stale`` with a fresh token; callers that lost the race reuse the winner's."""
        async with self._lock:
            if self._token is None or self._token == stale:
                self._token = await self._fetch()
            return self._token

    async def _fetch(self) -> str:
        assert not isinstance(self._source, str)
        value = self._source()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value.strip():
            raise TypeError("the api_key provider must return a non-empty str")
        if UNSAFE_HEADER_CHARS.search(value):
            raise ValueError("the api_key provider returned a key with control characters")
        return value
