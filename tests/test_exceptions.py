"""The error tree, the status -> class table, and what an error tells its reader."""

from __future__ import annotations

import concurrent.futures
import email.utils
import inspect
import multiprocessing
import pickle
from collections.abc import Callable

import pytest
from conftest import STATUS_CLASSES

from tamio_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    InternalServerError,
    RateLimitError,
    TamioError,
    _exceptions,
)
from tamio_async._exceptions import (
    APIResponseValidationError,
    IncompleteListingError,
    parse_retry_after,
    status_error,
)
from tamio_async._stats import ListingStats

NOW = 1_700_000_000.0


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(("status", "cls"), [*STATUS_CLASSES, (599, InternalServerError)])
def test_status_maps_to_its_class(status: int, cls: type[APIStatusError]) -> None:
    error = status_error(status, b"", {})
    assert type(error) is cls
    assert error.status_code == status


@pytest.mark.parametrize("status", [402, 418, 422])
def test_unlisted_client_status_is_a_plain_api_status_error(status: int) -> None:
    error = status_error(status, b"", {})
    assert type(error) is APIStatusError
    assert error.status_code == status


def test_every_status_error_is_a_tamio_error() -> None:
    assert isinstance(status_error(404, b"", {}), TamioError)


def test_error_keeps_the_whole_body_and_headers() -> None:
    body = b'{"message": "page must be >= 1", "field": "page"}'
    error = status_error(400, body, {"Content-Type": "application/json"})
    assert error.body == body
    assert error.headers == {"Content-Type": "application/json"}


def test_message_comes_from_json_message_field() -> None:
    error = status_error(400, b'{"message": "per_page too large"}', {})
    assert error.message == "HTTP 400: per_page too large"


def test_message_comes_from_json_error_field() -> None:
    error = status_error(401, b'{"error": "invalid token"}', {})
    assert error.message == "HTTP 401: invalid token"


def test_message_prefers_message_over_error() -> None:
    error = status_error(400, b'{"message": "the message", "error": "the error"}', {})
    assert error.message == "HTTP 400: the message"


def test_message_of_a_non_json_body_is_its_preview() -> None:
    error = status_error(502, b"  <html>Bad Gateway</html>\n", {})
    assert error.message == "HTTP 502: <html>Bad Gateway</html>"


def test_message_of_json_without_known_fields_is_the_body_preview() -> None:
    error = status_error(500, b'{"detail": 3}', {})
    assert error.message == 'HTTP 500: {"detail": 3}'


def test_message_of_an_empty_body_says_so() -> None:
    assert status_error(503, b"", {}).message == "HTTP 503: (empty body)"


def test_long_body_preview_is_cut_but_body_is_kept() -> None:
    body = b"x" * 5000
    error = status_error(500, body, {})
    assert error.message == "HTTP 500: " + "x" * 200 + "..."
    assert error.body == body


def test_body_exactly_at_the_preview_length_is_shown_whole() -> None:
    assert status_error(500, b"x" * 200, {}).message == "HTTP 500: " + "x" * 200


def test_long_server_message_is_cut() -> None:
    error = status_error(400, b'{"message": "' + b"y" * 300 + b'"}', {})
    assert error.message == "HTTP 400: " + "y" * 200 + "..."


def test_body_that_is_not_utf8_does_not_break_the_message() -> None:
    error = status_error(500, b"\xff\xfe oops", {})
    assert error.message.startswith("HTTP 500: ")
    assert "oops" in error.message


@pytest.mark.parametrize("name", ["X-Request-Id", "x-request-id", "Request-Id"])
def test_request_id_is_read_from_headers_case_insensitively(name: str) -> None:
    assert status_error(500, b"", {name: "req-42"}).request_id == "req-42"


def test_request_id_is_none_without_header() -> None:
    assert status_error(500, b"", {}).request_id is None


def test_retry_after_seconds() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7.0


def test_retry_after_fractional_seconds() -> None:
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5


def test_retry_after_http_date_is_measured_from_now() -> None:
    headers = {"Retry-After": http_date(NOW + 30)}
    assert parse_retry_after(headers, now=NOW) == 30.0


def test_retry_after_http_date_in_the_past_means_no_wait() -> None:
    headers = {"Retry-After": http_date(NOW - 30)}
    assert parse_retry_after(headers, now=NOW) == 0.0


def test_retry_after_ms_is_converted_to_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25


def test_garbage_retry_after_ms_falls_back_to_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "soon", "Retry-After": "9"}) == 9.0


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf", "Mon, 99 Foo 20xx"])
def test_garbage_retry_after_is_none(value: str) -> None:
    assert parse_retry_after({"Retry-After": value}) is None


@pytest.mark.parametrize("headers", [{"Retry-After": "-5"}, {"retry-after-ms": "-5"}])
def test_negative_retry_after_is_none(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers) is None


def test_no_retry_after_header_is_none() -> None:
    assert parse_retry_after({}) is None


def test_status_error_carries_retry_after_using_injected_now() -> None:
    error = status_error(429, b"", {"Retry-After": http_date(NOW + 12)}, now=NOW)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 12.0


def test_str_is_the_message_alone() -> None:
    assert str(TamioError("boom")) == "boom"


def test_str_names_the_page() -> None:
    assert str(status_error(500, b"down", {}, page=4)) == "HTTP 500: down (page 4)"


def test_str_appends_the_hint() -> None:
    error = APIConnectionError("request failed", page=9)
    error.hint = "resume with start_page=9"
    assert str(error) == "request failed (page 9); resume with start_page=9"


def test_str_shows_a_hint_without_a_page() -> None:
    error = TamioError("boom")
    error.hint = "try again"
    assert str(error) == "boom; try again"


def test_page_set_after_construction_shows_in_str() -> None:
    error = APIConnectionError("request failed")
    error.page = 2
    assert str(error) == "request failed (page 2)"


def test_timeout_error_is_a_builtin_timeout_error_and_a_connection_error() -> None:
    error = APITimeoutError("request timed out")
    assert isinstance(error, TimeoutError)
    assert isinstance(error, APIConnectionError)
    assert isinstance(error, TamioError)


def test_client_closed_error_is_a_runtime_error() -> None:
    error = ClientClosedError("closed")
    assert isinstance(error, RuntimeError)
    assert isinstance(error, TamioError)


def test_connection_error_is_not_a_status_error() -> None:
    assert not isinstance(APIConnectionError("x"), APIStatusError)


# --- pickling --------------------------------------------------------------------------------

SERVER_HEADERS = {"Content-Type": "application/json", "X-Request-Id": "req-7", "Retry-After": "3"}


def answered(status: int) -> Callable[[], TamioError]:
    return lambda: status_error(
        status, b'{"message": "it failed"}', SERVER_HEADERS, page=6, now=NOW
    )


#: Every class in the tree, built the way the library builds it.
BUILD: dict[type[TamioError], Callable[[], TamioError]] = {
    TamioError: lambda: TamioError("boom", page=2),
    ClientClosedError: lambda: ClientClosedError("this TamioClient is closed; create a new one"),
    APIConnectionError: lambda: APIConnectionError("request failed: ClientOSError", page=3),
    APITimeoutError: lambda: APITimeoutError("request timed out (ServerTimeoutError)", page=4),
    APIStatusError: answered(418),
    **{cls: answered(status) for status, cls in STATUS_CLASSES},
    APIResponseValidationError: lambda: APIResponseValidationError(
        "response does not fit the TicketList schema: Expected `int`, got `str`",
        status_code=200,
        path="$.tickets[3].created_at",
        page=7,
    ),
    IncompleteListingError: lambda: IncompleteListingError(
        "listing incomplete: 40 tickets uncovered",
        stats=ListingStats(pages_fetched=9, tickets_yielded=860, drift_detected=True),
        missing=((400, 420), (600, 620)),
        resume_page=5,
    ),
}


def test_every_error_class_has_a_pickling_case() -> None:
    tree = {
        obj
        for obj in vars(_exceptions).values()
        if inspect.isclass(obj) and issubclass(obj, TamioError)
    }
    assert tree == set(BUILD)


@pytest.mark.parametrize("cls", BUILD, ids=lambda cls: cls.__name__)
def test_every_error_survives_pickling_with_all_its_attributes(cls: type[TamioError]) -> None:
    error = BUILD[cls]()
    assert type(error) is cls
    error.hint = "resume with start_page=5"
    error.resume_page = error.resume_page or 5
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        restored = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(restored) is cls
        assert vars(restored) == vars(error)
        assert restored.args == error.args
        assert str(restored) == str(error)


def test_a_pickled_status_error_keeps_what_the_server_said() -> None:
    restored = pickle.loads(pickle.dumps(answered(429)()))
    assert isinstance(restored, RateLimitError)
    assert (restored.status_code, restored.page, restored.retry_after) == (429, 6, 3.0)
    assert restored.request_id == "req-7"
    assert restored.body == b'{"message": "it failed"}'
    assert str(restored) == "HTTP 429: it failed (page 6)"


def fail_on_page(page: int) -> None:
    """Runs in a worker process: fails the way a listing does when the server is down."""
    raise status_error(503, b"upstream down", {"X-Request-Id": "req-9"}, page=page)


def test_an_error_raised_in_a_worker_process_reaches_the_parent_intact() -> None:
    # spawn: the same on every platform, and no fork of a process that runs threads.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(fail_on_page, 12)
        with pytest.raises(InternalServerError) as info:
            future.result(timeout=60)
    assert info.value.status_code == 503
    assert info.value.page == 12
    assert info.value.request_id == "req-9"
    assert str(info.value) == "HTTP 503: upstream down (page 12)"
