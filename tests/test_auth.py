"""The API key: what a key provider may return, and how an unusable answer is reported."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from tamio_async import AuthenticationError, TamioError
from tamio_async._auth import ApiKey, Credentials

MakeProvider = Callable[[object], ApiKey]
#: What a provider returned -> how the error describes it (never by showing the value).
UNUSABLE: dict[str, tuple[object, str]] = {
    "empty": ("", "an empty string"),
    "none": (None, "None"),
    "int": (42, "int"),
    "whitespace": ("  ", "only whitespace"),
    "control-characters": ("ab\ncd", "control characters"),
}


def sync_provider(value: object) -> ApiKey:
    def returns_unusable_key() -> object:
        return value

    return returns_unusable_key  # type: ignore[return-value]


def async_provider(value: object) -> ApiKey:
    async def returns_unusable_key() -> object:
        return value

    return returns_unusable_key  # type: ignore[return-value]


async def unusable_key_error(provider: ApiKey) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        await Credentials(provider).token()
    return info.value


@pytest.mark.parametrize("make", [sync_provider, async_provider], ids=["sync", "async"])
@pytest.mark.parametrize("case", UNUSABLE)
async def test_unusable_provider_answer_is_an_authentication_error(
    make: MakeProvider, case: str
) -> None:
    value, description = UNUSABLE[case]
    error = await unusable_key_error(make(value))
    assert isinstance(error, TamioError)
    assert error.status_code == 401
    assert "returns_unusable_key" in error.message
    assert description in error.message
    assert "no request was sent" in error.message


@pytest.mark.parametrize("make", [sync_provider, async_provider], ids=["sync", "async"])
@pytest.mark.parametrize(
    "secret",
    ["sk-live-SECRET\n", "\x00sk-live-SECRET", 424242424242, b"sk-live-SECRET"],
    ids=["trailing-newline", "nul", "int", "bytes"],
)
async def test_the_error_never_shows_what_the_provider_returned(
    make: MakeProvider, secret: object
) -> None:
    error = await unusable_key_error(make(secret))
    shown = [str(error), repr(error), error.message]
    assert all("SECRET" not in text and "424242" not in text for text in shown)


async def test_the_refresh_after_a_401_checks_the_new_key_too() -> None:
    answers = iter(["sk-first", ""])
    credentials = Credentials(lambda: next(answers))
    stale = await credentials.token()
    with pytest.raises(AuthenticationError, match="an empty string"):
        await credentials.refresh(stale)


async def test_a_provider_without_a_qualname_is_named_by_its_type() -> None:
    error = await unusable_key_error(functools.partial(str, ""))
    assert "partial" in error.message


async def test_a_callable_object_is_named_by_its_class() -> None:
    class KeyVault:
        def __call__(self) -> str:
            return ""

    assert "KeyVault" in (await unusable_key_error(KeyVault())).message


async def test_a_usable_provider_answer_is_the_token() -> None:
    assert await Credentials(lambda: "sk-good").token() == "sk-good"


@pytest.mark.parametrize(
    ("key", "error"),
    [("", ValueError), ("  ", ValueError), ("ab\ncd", ValueError), (42, TypeError)],
)
def test_a_plain_key_is_still_checked_when_the_client_is_built(key: object, error: type) -> None:
    with pytest.raises(error):
        Credentials(key)  # type: ignore[arg-type]
