"""Decoding a listing page: the spec's example, schema evolution, and validation errors."""

from __future__ import annotations

import copy
import datetime
import gc
from typing import Any

import msgspec
import pytest

from tamio_async import (
    APIResponseValidationError,
    Asset,
    Customer,
    Reply,
    Thumbnail,
    Ticket,
    TicketList,
)
from tamio_async.models import decode_ticket_list

# The 200 example from the API document (/work/shared/api/tamio-tickets-list.txt), verbatim.
SPEC_EXAMPLE = b"""
{
  "status": 200,
  "total_results": 42,
  "tickets": [
    {
      "id": "550e8400-e29b-41d4-a716-446655440000",
      "object": "ticket",
      "title": "Payment processing issue",
      "is_open": true,
      "category": "Billing Issues",
      "subcategory": "Payment Failed",
      "teammate_id": "770e8400-e29b-41d4-a716-446655440000",
      "client": {
        "id": "660e8400-e29b-41d4-a716-446655440000",
        "name": "John Doe",
        "email": "[email protected]"
      },
      "language": "en",
      "created_at": 1700000000,
      "updated_at": 1700086400,
      "replies": [
        {
          "id": "880e8400-e29b-41d4-a716-446655440000",
          "text": "We have resolved your issue.",
          "is_client_reply": false,
          "created_at": 1700000000,
          "assets": [
            {
              "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
              "object": "asset",
              "filename": "screenshot.png",
              "extension": "png",
              "filesize": 204800,
              "type": "image",
              "version": 1,
              "status": "ready",
              "alt_text": "Error screenshot",
              "width": 1920,
              "height": 1080,
              "public_url": "https://pub.ox31.com/assets/screenshot.png",
              "folder": null,
              "thumbnails": [],
              "created_at": 1700000000,
              "updated_at": 1700086400
            }
          ]
        }
      ]
    }
  ]
}
"""

STRUCTS = [TicketList, Ticket, Customer, Reply, Asset, Thumbnail]
THUMBNAIL = {"url": "https://cdn.example/t.png", "width": 64, "height": 36}


def example() -> dict[str, Any]:
    """The spec's example as a fresh, mutable dict."""
    return copy.deepcopy(msgspec.json.decode(SPEC_EXAMPLE))


def decode(payload: object, *, page: int | None = None) -> TicketList:
    return decode_ticket_list(msgspec.json.encode(payload), page=page)


# Where each nested struct sits in a decoded example ticket.
FIND_IN_TICKET = {
    Ticket: lambda ticket: ticket,
    Customer: lambda ticket: ticket.client,
    Reply: lambda ticket: ticket.replies[0],
    Asset: lambda ticket: ticket.replies[0].assets[0],
    Thumbnail: lambda ticket: ticket.replies[0].assets[0].thumbnails[0],
}


def nested(struct: type, obj: dict[str, Any]) -> Any:
    """Put ``obj`` where ``struct`` lives in the example page, decode, and return it."""
    page = example()
    ticket = page["tickets"][0]
    reply = ticket["replies"][0]
    if struct is Ticket:
        page["tickets"] = [obj]
    elif struct is Customer:
        ticket["client"] = obj
    elif struct is Reply:
        ticket["replies"] = [obj]
    elif struct is Asset:
        reply["assets"] = [obj]
    else:
        reply["assets"][0]["thumbnails"] = [obj]
    return FIND_IN_TICKET[struct](decode(page).tickets[0])


def validation_error(payload: object, *, page: int | None = None) -> APIResponseValidationError:
    with pytest.raises(APIResponseValidationError) as info:
        decode(payload, page=page)
    return info.value


def test_spec_example_decodes_into_every_field() -> None:
    page = decode_ticket_list(SPEC_EXAMPLE)
    asset = Asset(
        id="a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        object="asset",
        filename="screenshot.png",
        extension="png",
        filesize=204800,
        type="image",
        version=1,
        status="ready",
        alt_text="Error screenshot",
        width=1920,
        height=1080,
        public_url="https://pub.ox31.com/assets/screenshot.png",
        folder=None,
        thumbnails=(),
        created_at=1700000000,
        updated_at=1700086400,
    )
    assert page == TicketList(
        status=200,
        total_results=42,
        tickets=(
            Ticket(
                id="550e8400-e29b-41d4-a716-446655440000",
                object="ticket",
                title="Payment processing issue",
                is_open=True,
                category="Billing Issues",
                subcategory="Payment Failed",
                teammate_id="770e8400-e29b-41d4-a716-446655440000",
                client=Customer(
                    id="660e8400-e29b-41d4-a716-446655440000",
                    name="John Doe",
                    email="[email protected]",
                ),
                language="en",
                created_at=1700000000,
                updated_at=1700086400,
                replies=(
                    Reply(
                        id="880e8400-e29b-41d4-a716-446655440000",
                        text="We have resolved your issue.",
                        is_client_reply=False,
                        created_at=1700000000,
                        assets=(asset,),
                    ),
                ),
            ),
        ),
    )


def test_spec_example_decodes_to_the_declared_types() -> None:
    page = decode_ticket_list(SPEC_EXAMPLE)
    ticket = page.tickets[0]
    reply = ticket.replies[0]
    asset = reply.assets[0]
    assert type(page.tickets) is tuple
    assert type(ticket) is Ticket
    assert type(ticket.client) is Customer
    assert type(ticket.replies) is tuple
    assert type(reply) is Reply
    assert type(asset) is Asset
    assert type(ticket.is_open) is bool
    assert type(reply.is_client_reply) is bool
    assert type(ticket.created_at) is int
    assert type(asset.filesize) is int
    assert type(asset.width) is int


def test_thumbnail_decodes_every_field() -> None:
    assert nested(Thumbnail, THUMBNAIL) == Thumbnail(
        url="https://cdn.example/t.png", width=64, height=36
    )


def test_unknown_fields_are_ignored_at_every_level() -> None:
    page = example()
    extra = {"added_later": {"nested": [1, 2, 3]}}
    page.update(extra)
    ticket = page["tickets"][0]
    ticket.update(extra)
    ticket["client"].update(extra)
    ticket["replies"][0].update(extra)
    ticket["replies"][0]["assets"][0].update(extra)
    ticket["replies"][0]["assets"][0]["thumbnails"] = [{**THUMBNAIL, **extra}]
    decoded = decode(page)
    assert decoded.tickets[0].id == "550e8400-e29b-41d4-a716-446655440000"
    assert decoded.tickets[0].replies[0].assets[0].thumbnails[0].url == THUMBNAIL["url"]


def required(struct: type, name: str) -> bool:
    """Only a ticket's id is required: the listing deduplicates on it."""
    return struct is Ticket and name == "id"


@pytest.mark.parametrize("struct", [Ticket, Customer, Reply, Asset, Thumbnail])
def test_every_field_but_ticket_id_may_be_omitted(struct: type[msgspec.Struct]) -> None:
    only_required = {"id": "x"} if struct is Ticket else {}
    decoded = nested(struct, only_required)
    assert type(decoded) is struct
    for field in msgspec.structs.fields(struct):
        if not required(struct, field.name):
            assert getattr(decoded, field.name) in (None, ()), field.name


@pytest.mark.parametrize("struct", [Ticket, Customer, Reply, Asset, Thumbnail])
def test_every_field_but_ticket_id_may_be_null(struct: type[msgspec.Struct]) -> None:
    fields = msgspec.structs.fields(struct)
    all_null: dict[str, Any] = {f.name: None for f in fields if not required(struct, f.name)}
    if struct is Ticket:
        all_null["id"] = "x"
    decoded = nested(struct, all_null)
    for field in fields:
        if not required(struct, field.name):
            assert getattr(decoded, field.name) is None, field.name


def test_nested_objects_without_an_id_decode() -> None:
    page = example()
    ticket = page["tickets"][0]
    del ticket["client"]["id"]
    reply = ticket["replies"][0]
    ticket["replies"] = [reply, {**reply, "id": None}]
    del reply["id"]
    asset = reply["assets"][0]
    reply["assets"] = [asset, {**asset, "id": None}]
    del asset["id"]
    decoded = decode(page).tickets[0]
    assert decoded.id == "550e8400-e29b-41d4-a716-446655440000"
    assert decoded.client is not None and decoded.client.id is None
    assert decoded.client.name == ticket["client"]["name"]
    assert [r.id for r in decoded.replies] == [None, None]
    assert [a.id for a in decoded.replies[0].assets] == [None, None]
    assert decoded.replies[0].assets[0].filename == asset["filename"]


def test_omitted_lists_read_as_empty() -> None:
    assert nested(Ticket, {"id": "t"}).replies == ()
    assert nested(Reply, {"id": "r"}).assets == ()
    assert nested(Asset, {"id": "a"}).thumbnails == ()


def test_page_with_only_tickets_decodes_with_unknown_totals() -> None:
    page = decode({"tickets": []})
    assert page == TicketList(status=None, total_results=None, tickets=())


def test_empty_object_is_an_empty_page() -> None:
    assert decode({}).tickets == ()


def test_null_status_and_total_results_decode() -> None:
    page = decode({"status": None, "total_results": None, "tickets": []})
    assert page.status is None
    assert page.total_results is None


def test_null_tickets_is_a_validation_error() -> None:
    # Documented choice: reading null as "no tickets" would silently end a listing early.
    assert validation_error({"tickets": None}).path == "$.tickets"


def test_missing_ticket_id_reports_the_path_of_the_field() -> None:
    error = validation_error({"tickets": [{"id": "a"}, {"title": "no id"}]})
    assert error.path == "$.tickets[1].id"
    assert "missing required field `id`" in error.message


def test_missing_ticket_id_is_an_error_even_when_its_nested_objects_have_none() -> None:
    id_less = {"client": {"name": "Ann"}, "replies": [{"id": None, "assets": [{}]}]}
    error = validation_error({"tickets": [{"id": "a", **id_less}, id_less]}, page=2)
    assert error.path == "$.tickets[1].id"
    assert error.page == 2


def test_null_id_is_a_validation_error_at_its_path() -> None:
    assert validation_error({"tickets": [{"id": None}]}).path == "$.tickets[0].id"


def test_wrong_type_reports_its_json_path_and_the_page() -> None:
    tickets: list[dict[str, Any]] = [{"id": str(n)} for n in range(4)]
    tickets[3]["created_at"] = "yesterday"
    error = validation_error({"tickets": tickets}, page=7)
    assert error.path == "$.tickets[3].created_at"
    assert error.page == 7
    assert "$.tickets[3].created_at" in str(error)
    assert "(page 7)" in str(error)


def test_wrong_type_deep_inside_reports_the_nested_path() -> None:
    page = example()
    page["tickets"][0]["replies"][0]["assets"][0]["filesize"] = "200 KB"
    assert validation_error(page).path == "$.tickets[0].replies[0].assets[0].filesize"


def test_validation_error_carries_the_status_code() -> None:
    with pytest.raises(APIResponseValidationError) as info:
        decode_ticket_list(b'{"tickets": null}', status_code=203)
    assert info.value.status_code == 203


@pytest.mark.parametrize("body", [b"<html>hi</html>", b"", b'{"tickets": [', b"\xff\xfe"])
def test_body_that_is_not_json_is_a_validation_error(body: bytes) -> None:
    with pytest.raises(APIResponseValidationError, match="not valid JSON") as info:
        decode_ticket_list(body, page=3)
    assert info.value.path is None
    assert info.value.page == 3


def test_top_level_array_is_a_validation_error() -> None:
    assert validation_error([]).path == "$"


def test_deeply_nested_json_is_a_validation_error_not_a_crash() -> None:
    body = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(APIResponseValidationError):
        decode_ticket_list(body)


def test_datetime_properties_are_aware_utc() -> None:
    ticket = decode_ticket_list(SPEC_EXAMPLE).tickets[0]
    reply = ticket.replies[0]
    asset = reply.assets[0]
    utc = datetime.timezone.utc
    assert ticket.created_datetime == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=utc)
    assert ticket.updated_datetime == datetime.datetime(2023, 11, 15, 22, 13, 20, tzinfo=utc)
    assert reply.created_datetime == ticket.created_datetime
    assert asset.created_datetime == ticket.created_datetime
    assert asset.updated_datetime == ticket.updated_datetime
    for moment in (ticket.created_datetime, reply.created_datetime, asset.updated_datetime):
        assert moment is not None
        assert moment.utcoffset() == datetime.timedelta(0)


def test_datetime_properties_of_missing_timestamps_are_none() -> None:
    ticket = Ticket(id="t")
    assert ticket.created_datetime is None
    assert ticket.updated_datetime is None
    assert Reply(id="r").created_datetime is None
    assert Asset(id="a").updated_datetime is None


@pytest.mark.parametrize("struct", STRUCTS)
def test_structs_are_frozen(struct: type[msgspec.Struct]) -> None:
    instance = struct() if struct in (TicketList, Thumbnail) else struct(id="x")
    name = msgspec.structs.fields(struct)[0].name
    with pytest.raises(AttributeError):
        setattr(instance, name, "changed")


def test_decoded_structs_are_not_tracked_by_the_garbage_collector() -> None:
    page = decode_ticket_list(SPEC_EXAMPLE)
    ticket = page.tickets[0]
    reply = ticket.replies[0]
    for obj in (page, ticket, ticket.client, reply, reply.assets[0]):
        assert gc.is_tracked(obj) is False, type(obj).__name__
