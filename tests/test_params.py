"""Validation and encoding of the listing's query parameters."""

from __future__ import annotations

import datetime
import math
import re
import uuid
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tamio_async._params import check_paging, encode_filters, encode_time, list_query

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
ONE_SECOND = datetime.timedelta(seconds=1)
MAY_1 = 1714521600  # 2024-05-01T00:00:00Z
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z
UUID_TEXT = "550e8400-e29b-41d4-a716-446655440000"

FILTER_NAMES = ["order", "sort_by", "filter", "from_", "to", "closed", "teammate_id", "client_id"]


def encode(**filters: Any) -> dict[str, str]:
    return encode_filters(filters)


def floor_seconds(moment: datetime.datetime) -> int:
    """Exact unix seconds, rounded down, in integer arithmetic (no float rounding)."""
    return (moment - EPOCH) // ONE_SECOND


def ceil_seconds(moment: datetime.datetime) -> int:
    return -((EPOCH - moment) // ONE_SECOND)


def apply(name: str, value: object) -> dict[str, str]:
    """Validate and encode ``value`` as the single argument ``name``."""
    if name in ("page", "per_page"):
        paging: dict[str, Any] = {"page": 1, "per_page": 1, name: value}
        # `check_paging` is the one place paging is validated (`list_query` only encodes)
        check_paging(per_page=paging["per_page"], start_page=paging["page"], page_name="page")
        return list_query(paging["page"], paging["per_page"], {})
    return encode(**{name: value})


def named(name: str) -> str:
    """A pattern for ``name`` as a whole word, so "page" does not match inside "per_page"."""
    return rf"\b{name}\b"


def is_uuid(value: object) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


# --- page / per_page -------------------------------------------------------------------------


def test_list_query_puts_paging_first_then_filters() -> None:
    query = list_query(2, 50, {"order": "asc"})
    assert list(query.items()) == [("page", "2"), ("per_page", "50"), ("order", "asc")]


@pytest.mark.parametrize("name", ["page", "per_page"])
@pytest.mark.parametrize("value", [0, -1])
def test_paging_below_one_is_a_value_error_naming_it(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=named(name)):
        apply(name, value)


@pytest.mark.parametrize("name", ["page", "per_page"])
@pytest.mark.parametrize("value", [True, False, 1.0, "1", None])
def test_paging_that_is_not_an_int_is_a_type_error_naming_it(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=named(name)):
        apply(name, value)


# --- order / sort_by / filter ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["asc", "desc"])
def test_order_is_sent_as_given(value: str) -> None:
    assert encode(order=value) == {"order": value}


@pytest.mark.parametrize("value", ["created_at", "title"])
def test_sort_by_is_sent_as_given(value: str) -> None:
    assert encode(sort_by=value) == {"sort_by": value}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("order", "ASC"),
        ("order", "ascending"),
        ("order", 1),
        ("sort_by", "updated_at"),
        ("sort_by", ""),
        ("sort_by", b"title"),
    ],
)
def test_order_and_sort_by_outside_their_choices_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=named(name)):
        encode(**{name: value})


def test_filter_is_sent_verbatim() -> None:
    assert encode(filter="Payment & refund") == {"filter": "Payment & refund"}


def test_empty_filter_is_sent() -> None:
    assert encode(filter="") == {"filter": ""}


@pytest.mark.parametrize("value", [1, b"title", ["title"]])
def test_filter_that_is_not_a_str_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="filter"):
        encode(filter=value)


# --- closed ----------------------------------------------------------------------------------


def test_closed_true_is_sent_as_lowercase_true() -> None:
    assert encode(closed=True) == {"closed": "true"}


def test_closed_false_is_sent_as_lowercase_false() -> None:
    assert encode(closed=False) == {"closed": "false"}


@pytest.mark.parametrize("value", [1, 0, "true", "false"])
def test_closed_that_is_not_a_bool_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="closed"):
        encode(closed=value)


# --- teammate_id / client_id -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["teammate_id", "client_id"])
def test_uuid_string_is_sent(name: str) -> None:
    assert encode(**{name: UUID_TEXT}) == {name: UUID_TEXT}


@pytest.mark.parametrize("name", ["teammate_id", "client_id"])
def test_uuid_object_is_sent_as_its_string(name: str) -> None:
    assert encode(**{name: uuid.UUID(UUID_TEXT)}) == {name: UUID_TEXT}


def test_uuid_string_is_normalised_to_lowercase_hyphenated() -> None:
    assert encode(client_id=UUID_TEXT.upper().replace("-", "")) == {"client_id": UUID_TEXT}


@pytest.mark.parametrize("name", ["teammate_id", "client_id"])
@pytest.mark.parametrize("value", ["", "teammate-7", UUID_TEXT + "0"])
def test_non_uuid_string_is_a_value_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=named(name)):
        encode(**{name: value})


@pytest.mark.parametrize("name", ["teammate_id", "client_id"])
@pytest.mark.parametrize("value", [42, uuid.UUID(UUID_TEXT).bytes])
def test_non_string_uuid_is_a_type_error_naming_it(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=named(name)):
        encode(**{name: value})


# --- None and unknown names ------------------------------------------------------------------


def test_none_filters_are_not_sent() -> None:
    assert encode(**dict.fromkeys(FILTER_NAMES)) == {}


def test_no_filters_encode_to_nothing() -> None:
    assert encode() == {}


def test_unknown_filter_name_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="closed_only"):
        encode(closed_only=True)


def test_every_filter_together_in_a_stable_order() -> None:
    query = encode(
        client_id=UUID_TEXT,
        teammate_id=uuid.UUID(UUID_TEXT),
        closed=True,
        to="2024-05-02",
        from_="2024-05-01",
        filter="refund",
        sort_by="title",
        order="desc",
    )
    assert list(query.items()) == [
        ("order", "desc"),
        ("sort_by", "title"),
        ("filter", "refund"),
        ("from", str(MAY_1)),
        ("to", str(MAY_1 + 86400)),
        ("closed", "true"),
        ("teammate_id", UUID_TEXT),
        ("client_id", UUID_TEXT),
    ]


# --- from_ / to ------------------------------------------------------------------------------


def test_from_goes_out_as_the_query_name_from() -> None:
    assert encode(from_=MAY_1) == {"from": str(MAY_1)}


def test_aware_datetime_is_unix_seconds() -> None:
    moment = datetime.datetime(2024, 5, 1, 2, 0, tzinfo=datetime.timezone(ONE_SECOND * 7200))
    assert encode(from_=moment) == {"from": str(MAY_1)}


def test_date_is_midnight_utc() -> None:
    assert encode(from_=datetime.date(2024, 5, 1), to=datetime.date(2024, 5, 1)) == {
        "from": str(MAY_1),
        "to": str(MAY_1),
    }


def test_int_is_sent_unchanged() -> None:
    assert encode(to=MAY_1) == {"to": str(MAY_1)}


def test_fractional_from_is_floored() -> None:
    assert encode(from_=MAY_1 + 0.9) == {"from": str(MAY_1)}


def test_fractional_to_is_ceiled() -> None:
    assert encode(to=MAY_1 + 0.1) == {"to": str(MAY_1 + 1)}


def test_fractional_datetime_widens_the_window() -> None:
    moment = datetime.datetime(2024, 5, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    assert encode(from_=moment, to=moment) == {"from": str(MAY_1), "to": str(MAY_1 + 1)}


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T00:00:00Z",
        "2024-05-01T00:00:00z",
        "2024-05-01T00:00:00+00:00",
        "2024-05-01T02:00:00+02:00",
        "2024-04-30T20:00:00-04:00",
        "2024-05-01",
        " 2024-05-01T00:00:00Z ",
    ],
)
def test_iso_string_is_unix_seconds(text: str) -> None:
    assert encode(from_=text) == {"from": str(MAY_1)}


def test_fractional_iso_string_is_floored_for_from_and_ceiled_for_to() -> None:
    text = "2024-05-01T00:00:00.250Z"
    assert encode(from_=text, to=text) == {"from": str(MAY_1), "to": str(MAY_1 + 1)}


@pytest.mark.parametrize("name", ["from_", "to"])
def test_naive_datetime_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} is a naive datetime"):
        encode(**{name: datetime.datetime(2024, 5, 1)})


@pytest.mark.parametrize("name", ["from_", "to"])
def test_naive_iso_string_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} is a naive datetime"):
        encode(**{name: "2024-05-01T00:00:00"})


@pytest.mark.parametrize("name", ["from_", "to"])
@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "1714521600", "", "2024-05-01T25Z"])
def test_unparseable_string_is_a_value_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=named(name)):
        encode(**{name: value})


@pytest.mark.parametrize("name", ["from_", "to"])
@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, -math.inf])
def test_negative_or_non_finite_timestamp_is_a_value_error(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=named(name)):
        encode(**{name: value})


@pytest.mark.parametrize("name", ["from_", "to"])
@pytest.mark.parametrize("value", [True, False, b"2024-05-01", [MAY_1], datetime.time(12)])
def test_time_bound_of_another_type_is_a_type_error(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=named(name)):
        encode(**{name: value})


def test_from_after_to_is_refused() -> None:
    with pytest.raises(ValueError, match="from_ must not be after to"):
        encode(from_=MAY_1 + 1, to=MAY_1)


def test_from_equal_to_to_is_accepted() -> None:
    assert encode(from_=MAY_1, to=MAY_1) == {"from": str(MAY_1), "to": str(MAY_1)}


def test_from_after_to_is_judged_in_utc_not_local_clock_time() -> None:
    # 10:00+02:00 is 08:00Z, before 09:00Z, although 10 > 9 on the wall clock.
    assert encode(from_="2024-05-01T10:00:00+02:00", to="2024-05-01T09:00:00Z")


# --- properties ------------------------------------------------------------------------------

offsets = st.builds(
    datetime.timezone,
    st.timedeltas(
        min_value=-datetime.timedelta(hours=23, minutes=59), max_value=ONE_SECOND * 86340
    ),
)
# Every instant the API accepts (1970 to 9999), less a day at each end for the offset.
aware_datetimes = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(9999, 12, 30)
).flatmap(lambda naive: offsets.map(lambda zone: naive.replace(tzinfo=zone)))


@given(aware_datetimes)
@example(datetime.datetime(2024, 5, 1, 0, 0, 0, 999_999, tzinfo=UTC))
@example(datetime.datetime(2024, 5, 1, 0, 0, 0, 1, tzinfo=UTC))
# Far from 1970 a float timestamp cannot hold microseconds: .999999 would round up.
@example(datetime.datetime(2600, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC))
def test_aware_datetime_round_trips_to_its_floor_and_ceil_second(
    moment: datetime.datetime,
) -> None:
    assert encode_time("from_", moment, upper=False) == floor_seconds(moment)
    assert encode_time("to", moment, upper=True) == ceil_seconds(moment)


@given(aware_datetimes)
def test_iso_string_of_an_aware_datetime_encodes_like_the_datetime(
    moment: datetime.datetime,
) -> None:
    assert encode_time("from_", moment.isoformat(), upper=False) == floor_seconds(moment)


def test_last_second_of_year_9999_is_accepted() -> None:
    assert encode(to="9999-12-31T23:59:59Z") == {"to": str(LAST_SECOND)}


@pytest.mark.parametrize("name", ["from_", "to"])
@pytest.mark.parametrize("value", [LAST_SECOND + 1, LAST_SECOND + 1.5, 10**400])
def test_timestamp_after_year_9999_is_a_value_error_naming_it(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=named(name)):
        encode(**{name: value})


def test_absurdly_long_int_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="from_"):
        encode(from_=10**5000)


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=offsets),
    st.uuids(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


def refusal(name: str, value: object) -> str | None:
    """None if ``value`` encodes as ``name``, else the message of the TypeError/ValueError.

    Any other exception propagates and fails the calling test.
    """
    try:
        apply(name, value)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", ["page", "per_page", *FILTER_NAMES])
@settings(max_examples=50)
@given(value=anything)
def test_any_value_encodes_or_fails_naming_the_argument(name: str, value: object) -> None:
    message = refusal(name, value)
    assert message is None or re.search(named(name), message)


@pytest.mark.parametrize("name", ["from_", "to"])
@settings(max_examples=50)
@given(
    value=st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9:.]{0,15})?([zZ]|[+-][0-9:]{1,8})?\Z"
    )
)
def test_iso_like_strings_encode_or_fail_naming_the_argument(name: str, value: str) -> None:
    message = refusal(name, value)
    assert message is None or re.search(named(name), message)


other_types = st.one_of(
    st.floats(), st.binary(), st.uuids(), st.dates(), st.lists(st.integers(), max_size=3)
)
# Values that must be refused, per argument (None is excluded: it means "not sent").
NON_CONFORMING: dict[str, st.SearchStrategy[object]] = {
    "page": st.one_of(st.none(), st.booleans(), st.integers(max_value=0), st.text(), other_types),
    "order": st.one_of(
        st.text().filter(lambda v: v not in ("asc", "desc")), st.integers(), other_types
    ),
    "sort_by": st.one_of(
        st.text().filter(lambda v: v not in ("created_at", "title")), st.integers(), other_types
    ),
    "filter": st.one_of(st.booleans(), st.integers(), other_types),
    "closed": st.one_of(st.integers(), st.text(), other_types),
    "teammate_id": st.one_of(
        st.text().filter(lambda v: not is_uuid(v)), st.integers(), st.binary()
    ),
    # from_ / to: anything but aware datetimes, dates, finite numbers >= 0 and ISO strings.
    "from_": st.one_of(
        st.booleans(),
        st.integers(max_value=-1),
        st.floats().filter(lambda v: not (math.isfinite(v) and v >= 0)),
        st.datetimes(),  # naive
        st.binary(),
        st.lists(st.integers(), max_size=3),
        st.text().filter(lambda v: not v.strip()[:4].isdigit()),
    ),
}
NON_CONFORMING["per_page"] = NON_CONFORMING["page"]
NON_CONFORMING["client_id"] = NON_CONFORMING["teammate_id"]
NON_CONFORMING["to"] = NON_CONFORMING["from_"]


@pytest.mark.parametrize("name", ["page", "per_page", *FILTER_NAMES])
@settings(max_examples=50)
@given(data=st.data())
def test_non_conforming_value_is_refused_naming_the_argument(
    name: str, data: st.DataObject
) -> None:
    value = data.draw(NON_CONFORMING[name])
    with pytest.raises((TypeError, ValueError), match=named(name)):
        apply(name, value)
