"""Typed payload of ``GET /agency/tickets/list``, as msgspec Structs, and its decoder.

Evolvable by design: unknown fields are ignored, and every field but ``Ticket.id`` may be
omitted or null without failing (it then reads ``None``; an omitted list reads as empty), the
ids of nested objects (customer, replies, assets) included. ``Ticket.id`` is required because a
listing deduplicates on it. The other exception is ``TicketList.tickets``: a 2xx listing whose
ticket array is null is not a page, and reading it as empty would silently end a listing
early, so it is a validation error.
Timestamps stay unix seconds (``int``); the ``*_datetime`` properties give aware UTC datetimes.
Structs are frozen and ``gc=False``: API data has no reference cycles, and skipping the
garbage collector's tracking makes bulk decoding markedly cheaper.
"""

from __future__ import annotations

import datetime
import re

import msgspec

from ._exceptions import APIResponseValidationError

__all__ = [
    "Asset",
    "Client",
    "Customer",
    "Reply",
    "Thumbnail",
    "Ticket",
    "TicketList",
    "decode_ticket_list",
    "utc_datetime",
]


def utc_datetime(timestamp: int | None) -> datetime.datetime | None:
    """An aware UTC datetime for a unix timestamp (``None`` stays ``None``)."""
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)


class Thumbnail(msgspec.Struct, frozen=True, gc=False):
    """A thumbnail variant of an image asset."""

    url: str | None = None
    width: int | None = None
    height: int | None = None


class Asset(msgspec.Struct, frozen=True, gc=False):
    """A file attached to a reply."""

    id: str | None = None
    object: str | None = None
    filename: str | None = None
    extension: str | None = None
    filesize: int | None = None
    type: str | None = None
    version: int | None = None
    status: str | None = None
    alt_text: str | None = None
    width: int | None = None
    height: int | None = None
    public_url: str | None = None
    folder: str | None = None
    thumbnails: tuple[Thumbnail, ...] | None = ()
    created_at: int | None = None
    updated_at: int | None = None

    @property
    def created_datetime(self) -> datetime.datetime | None:
        """``created_at`` as an aware UTC datetime."""
        return utc_datetime(self.created_at)

    @property
    def updated_datetime(self) -> datetime.datetime | None:
        """``updated_at`` as an aware UTC datetime."""
        return utc_datetime(self.updated_at)


class Reply(msgspec.Struct, frozen=True, gc=False):
    """A message in a ticket's thread."""

    id: str | None = None
    text: str | None = None
    is_client_reply: bool | None = None
    created_at: int | None = None
    assets: tuple[Asset, ...] | None = ()

    @property
    def created_datetime(self) -> datetime.datetime | None:
        """``created_at`` as an aware UTC datetime."""
        return utc_datetime(self.created_at)


class Customer(msgspec.Struct, frozen=True, gc=False):
    """The customer who opened a ticket (the wire object's key is ``client``)."""

    id: str | None = None
    name: str | None = None
    email: str | None = None


# Deprecated: the old name, easily mistaken for the API client (`TamioClient`); use `Customer`.
# Kept as an alias so existing imports go on working; it will be removed in a later release.
Client = Customer


class Ticket(msgspec.Struct, frozen=True, gc=False):
    """A support ticket."""

    id: str
    object: str | None = None
    title: str | None = None
    is_open: bool | None = None
    category: str | None = None
    subcategory: str | None = None
    teammate_id: str | None = None
    client: Customer | None = None
    language: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    replies: tuple[Reply, ...] | None = ()

    @property
    def created_datetime(self) -> datetime.datetime | None:
        """``created_at`` as an aware UTC datetime."""
        return utc_datetime(self.created_at)

    @property
    def updated_datetime(self) -> datetime.datetime | None:
        """``updated_at`` as an aware UTC datetime."""
        return utc_datetime(self.updated_at)


class TicketList(msgspec.Struct, frozen=True, gc=False):
    """One page of the listing."""

    status: int | None = None
    #: Size of the whole filtered listing; ``None`` if the server left it out.
    total_results: int | None = None
    tickets: tuple[Ticket, ...] = ()


_decoder = msgspec.json.Decoder(TicketList)


def decode_ticket_list(
    body: bytes, *, status_code: int = 200, page: int | None = None
) -> TicketList:
    """Decode one page, turning every decoding failure into `APIResponseValidationError`."""
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        # msgspec ends its message with " - at `$.tickets[3].created_at`"
        text = str(exc)
        path = text.rpartition("at `")[2].rstrip("`") if "at `$" in text else "$"
        missing = re.match(r"Object missing required field `(\w+)`", text)
        if missing:  # msgspec points at the object; point at the field itself
            path = f"{path}.{missing[1]}"
        message = f"response does not fit the TicketList schema: {text}"
        raise APIResponseValidationError(
            message, status_code=status_code, path=path, page=page
        ) from None
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise APIResponseValidationError(
            f"response is not valid JSON: {exc}", status_code=status_code, page=page
        ) from None
