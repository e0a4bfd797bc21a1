"""Output writers: tickets -> bytes in one format, page by page, with the fields asked for.

A writer is pure: it turns pages into bytes and never touches a file, so the export can count
exactly how many bytes of the output are complete (the resume protocol needs that). Its
``header`` comes once at the start of a file, ``encode`` once per page, ``footer`` once at
the end (and after an interruption, so a ``json`` array stays valid).

``--fields`` chooses among the fields of `Ticket`. In ``jsonl``/``json`` a field keeps its
structure (``client`` an object, ``replies`` an array). ``csv`` and ``table`` are flat:
``client`` becomes ``client_id``, ``client_name``, ``client_email`` (csv) or the customer's
name (table), and ``replies`` the number of replies. ``table`` has fixed column widths, so it
streams; a longer value is cut and ends with an ellipsis (the command says how many were).
"""

from __future__ import annotations

import csv
import datetime
import io
import unicodedata
from collections.abc import Callable, Sequence

import msgspec

from tamio_async import Ticket

__all__ = ["FIELDS", "FORMATS", "Writer", "parse_fields", "writer_for"]

FORMATS = ("jsonl", "json", "csv", "table")
FIELDS: tuple[str, ...] = tuple(field.name for field in msgspec.structs.fields(Ticket))
_CSV_DEFAULT = tuple(name for name in FIELDS if name != "object")
_TABLE_DEFAULT = ("id", "title", "is_open", "category", "client", "created_at")
#: Display cells per table column; a value that needs more is cut.
_WIDTHS = {
    "id": 36, "object": 8, "title": 40, "is_open": 7, "category": 20, "subcategory": 20,
    "teammate_id": 36, "client": 24, "language": 8, "created_at": 16, "updated_at": 16,
    "replies": 7,
}  # fmt: skip
_encoder = msgspec.json.Encoder()


def parse_fields(text: str) -> tuple[str, ...]:
    """``"id,title"`` -> ``("id", "title")``; ValueError says which names are allowed."""
    names = tuple(name.strip() for name in text.split(","))
    allowed = ", ".join(FIELDS)
    if not all(names):
        raise ValueError(f"needs comma-separated field names from: {allowed}; got {text!r}")
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; choose from: {allowed}")
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise ValueError(f"names {repeated!r} twice")
    return names


class Writer:
    """Pages of tickets as bytes of one format."""

    header = footer = b""

    def __init__(self, fields: Sequence[str] | None, *, written: int = 0) -> None:
        self.fields = tuple(fields) if fields else None
        #: Tickets already in the file (a resumed export), so separators come out right.
        self.written = written
        #: Table cells cut to their column's width.
        self.cut = 0

    def encode(self, tickets: Sequence[Ticket]) -> bytes:
        data = self._encode(tickets)
        self.written += len(tickets)
        return data

    def _encode(self, tickets: Sequence[Ticket]) -> bytes:
        raise NotImplementedError

    def _selected(self, ticket: Ticket) -> object:
        if self.fields is None:
            return ticket
        return {name: getattr(ticket, name) for name in self.fields}


class _Jsonl(Writer):
    def _encode(self, tickets: Sequence[Ticket]) -> bytes:
        return _encoder.encode_lines([self._selected(t) for t in tickets])


class _Json(Writer):
    """One array, a ticket per line; ``footer`` closes it."""

    header, footer = b"[", b"\n]\n"

    def _encode(self, tickets: Sequence[Ticket]) -> bytes:
        parts = []
        for index, ticket in enumerate(tickets):
            parts.append(b"\n" if self.written == 0 and index == 0 else b",\n")
            parts.append(_encoder.encode(self._selected(ticket)))
        return b"".join(parts)


def _flat(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Csv(Writer):
    def __init__(self, fields: Sequence[str] | None, *, written: int = 0) -> None:
        super().__init__(fields or _CSV_DEFAULT, written=written)
        assert self.fields is not None
        columns = [
            column
            for name in self.fields
            for column in (
                ("client_id", "client_name", "client_email") if name == "client" else (name,)
            )
        ]
        self.header = _csv_bytes([columns])

    def _encode(self, tickets: Sequence[Ticket]) -> bytes:
        assert self.fields is not None
        return _csv_bytes(_csv_row(t, self.fields) for t in tickets)


def _csv_row(ticket: Ticket, fields: Sequence[str]) -> list[str]:
    row: list[str] = []
    for name in fields:
        value = getattr(ticket, name)
        if name == "client":
            row.extend(_flat(value and getattr(value, part)) for part in ("id", "name", "email"))
        elif name == "replies":
            row.append(str(len(value or ())))
        else:
            row.append(_flat(value))
    return row


def _csv_bytes(rows: object) -> bytes:
    text = io.StringIO()
    csv.writer(text).writerows(rows)  # type: ignore[arg-type]
    return text.getvalue().encode()


class _Table(Writer):
    """Aligned plain text with fixed column widths: a row is final when it is written."""

    def __init__(self, fields: Sequence[str] | None, *, written: int = 0) -> None:
        super().__init__(fields or _TABLE_DEFAULT, written=written)
        assert self.fields is not None
        self._widths = [_WIDTHS[name] for name in self.fields]
        rule = ["-" * width for width in self._widths]
        self.header = (self._line(list(self.fields)) + self._line(rule)).encode()
        self.cut = 0  # every name fits its column; only data counts

    def _encode(self, tickets: Sequence[Ticket]) -> bytes:
        assert self.fields is not None
        cells = [(name, _TABLE_CELLS.get(name, _flat)) for name in self.fields]
        return "".join(
            self._line([cell(getattr(t, name)) for name, cell in cells]) for t in tickets
        ).encode()

    def _line(self, values: Sequence[str]) -> str:
        cells = []
        for value, width in zip(values, self._widths, strict=True):
            cell, cut = _fit(value, width)
            self.cut += cut
            cells.append(cell)
        return "  ".join(cells).rstrip() + "\n"


def _when(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    try:
        when = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):  # a timestamp no calendar holds
        return str(value)
    return when.strftime("%Y-%m-%d %H:%M")


def _count(value: object) -> str:
    return str(len(value)) if isinstance(value, tuple) else "0"


_TABLE_CELLS: dict[str, Callable[[object], str]] = {
    "is_open": lambda v: "" if v is None else "open" if v else "closed",
    "client": lambda v: _flat(getattr(v, "name", None)),
    "replies": _count,
    "created_at": _when,
    "updated_at": _when,
}


def _fit(text: str, width: int) -> tuple[str, bool]:
    """``text`` padded to ``width`` display cells, or cut to fit, ending with an ellipsis.

    Control characters (a newline in a title, a terminal escape) become spaces: data must not
    break a row or drive the terminal. Wide characters count two cells, combining marks none.
    """
    chars = [" " if unicodedata.category(char)[0] == "C" else char for char in text]
    used = sum(map(_cells, chars))
    if used <= width:
        return "".join(chars) + " " * (width - used), False
    shown, used = [], 0
    for char in chars:
        cells = _cells(char)
        if used + cells > width - 1:
            break
        shown.append(char)
        used += cells
    return "".join(shown) + "\u2026" + " " * (width - 1 - used), True


def _cells(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def writer_for(fmt: str, fields: Sequence[str] | None, *, written: int = 0) -> Writer:
    """The writer of format ``fmt`` (one of `FORMATS`)."""
    kinds: dict[str, type[Writer]] = {"jsonl": _Jsonl, "json": _Json, "csv": _Csv, "table": _Table}
    return kinds[fmt](fields, written=written)
