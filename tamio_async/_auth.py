"""The API key: a fixed string or a provider to call again when the server says 401."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable

from ._exceptions import AuthenticationError

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
        value: object = self._source()
        if inspect.isawaitable(value):
            value = await value
        problem = _unusable(value)
        if problem is None:
            assert isinstance(value, str)
            return value
        # An AuthenticationError, not a TypeError: it is the same failure as a key the server
        # refuses, so a caller's `except TamioError` handles it. It names the provider and
        # describes its answer, never shows it: a malformed key may still be mostly secret.
        raise AuthenticationError(
            f"the api_key provider {_name(self._source)} returned {problem}, not a usable key;"
            " no request was sent",
            status_code=401,
        )


def _unusable(value: object) -> str | None:
    """What is wrong with a provider's answer, in general terms; None if it is a usable key."""
    if value is None:
        return "None"
    if not isinstance(value, str):
        return f"a {type(value).__name__} instead of a str"
    if not value:
        return "an empty string"
    if not value.strip():
        return "a string of only whitespace"
    if UNSAFE_HEADER_CHARS.search(value):
        return "a string with control characters"
    return None


def _name(provider: object) -> str:
    """The provider's qualified name, or its type's name for objects without one."""
    name = getattr(provider, "__qualname__", None)
    return name if isinstance(name, str) else type(provider).__name__
