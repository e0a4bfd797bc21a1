"""The fake server's data set, and its listings computed page by page, never all at once.

A data set is a chain of segments (the generated or given tickets, then each batch added by
``insert_tickets``, always newer than every ticket alive), minus a set of deleted ones. A
ticket's *global index* (segment offset + index in it) never changes, so encoded tickets can be
cached by it across changes. Data sets are immutable: a change makes a new one, so views and
listings already handed out keep describing the data they were made from.

A listing is what the server pages through for one query. When the data is in created_at
order (generated data always is) and the query filters by dates at most, sorted by
created_at, the listing is arithmetic: ranges of indices minus the deleted ones, O(1) memory
(`Spans`). Any other filter, or ``sort_by=title``, scans the attribute hashes once and keeps
the matching indices, 4 bytes each (`Order`); the server caches a bounded number of those.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol, overload

import msgspec

from ._data import _CLIENT_IDS, DATA_END, TEAMMATE_IDS, GeneratedTickets, Ticket

__all__ = ["Dataset", "Listing", "Query", "TicketView"]


class Query(NamedTuple):
    """Parsed filters and sort; hashable so it keys the listing cache."""

    closed: bool | None
    teammate_id: str | None
    client_id: str | None
    since: int | None
    until: int | None
    text: str | None  # casefolded
    sort_by: str
    order: str

    @property
    def by_attributes(self) -> bool:
        """Whether anything but the dates filters (a scan is needed)."""
        return not (
            self.closed is None
            and self.teammate_id is None
            and self.client_id is None
            and self.text is None
        )


class _Source(Protocol):
    """A segment of tickets addressed by index."""

    ordered: bool  # created_at strictly increases with the index

    def __len__(self) -> int: ...
    def ticket(self, i: int) -> Ticket: ...
    def encode(self, i: int) -> bytes: ...
    def created_at(self, i: int) -> int: ...
    def ticket_id(self, i: int) -> str: ...
    def titles(self, indices: Sequence[int]) -> Iterable[str]: ...
    def index_of(self, ticket_id: str) -> int | None: ...
    def date_range(self, since: int | None, until: int | None) -> tuple[int, int]: ...
    def select(self, q: Query) -> list[int]: ...


class _Generated:
    """Generated tickets as a segment: nothing is held, everything is computed."""

    ordered = True

    def __init__(self, source: GeneratedTickets) -> None:
        self.source = source

    def __len__(self) -> int:
        return self.source.count

    def ticket(self, i: int) -> Ticket:
        return self.source.ticket(i)

    def encode(self, i: int) -> bytes:
        return msgspec.json.encode(self.source.ticket(i))

    def created_at(self, i: int) -> int:
        return self.source.created_at(i)

    def ticket_id(self, i: int) -> str:
        return self.source.ticket_id(i)

    def titles(self, indices: Sequence[int]) -> Iterable[str]:
        return self.source.titles(indices)

    def index_of(self, ticket_id: str) -> int | None:
        return self.source.index_of(ticket_id)

    def date_range(self, since: int | None, until: int | None) -> tuple[int, int]:
        lo = 0 if since is None else self.source.first_at_or_after(since)
        hi = self.source.count if until is None else self.source.first_at_or_after(until + 1)
        return lo, max(lo, hi)

    def select(self, q: Query) -> list[int]:
        teammate = client = None
        if q.teammate_id is not None:
            if q.teammate_id not in TEAMMATE_IDS:
                return []
            teammate = TEAMMATE_IDS.index(q.teammate_id)
        if q.client_id is not None:
            if q.client_id not in _CLIENT_IDS:
                return []
            client = _CLIENT_IDS.index(q.client_id)
        lo, hi = self.date_range(q.since, q.until)
        return self.source.matching(
            lo,
            hi,
            is_open=None if q.closed is None else not q.closed,
            teammate=teammate,
            client=client,
            text=q.text,
        )


class _Given:
    """Tickets given as dicts: kept, and encoded once, as they are."""

    def __init__(self, tickets: Sequence[Ticket]) -> None:
        self._tickets = list(tickets)
        self._encoded = [msgspec.json.encode(t) for t in self._tickets]
        stamps = [t["created_at"] for t in self._tickets]
        self.ordered = all(a < b for a, b in itertools.pairwise(stamps))
        self._ids: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._tickets)

    def ticket(self, i: int) -> Ticket:
        return self._tickets[i]

    def encode(self, i: int) -> bytes:
        return self._encoded[i]

    def created_at(self, i: int) -> int:
        stamp: int = self._tickets[i]["created_at"]
        return stamp

    def ticket_id(self, i: int) -> str:
        ticket_id: str = self._tickets[i]["id"]
        return ticket_id

    def titles(self, indices: Sequence[int]) -> Iterable[str]:
        return [self._tickets[i]["title"] for i in indices]

    def index_of(self, ticket_id: str) -> int | None:
        if self._ids is None:
            self._ids = {t["id"]: i for i, t in enumerate(self._tickets)}
        return self._ids.get(ticket_id)

    def date_range(self, since: int | None, until: int | None) -> tuple[int, int]:
        stamps = [t["created_at"] for t in self._tickets]  # only used when ordered
        lo = 0 if since is None else bisect.bisect_left(stamps, since)
        hi = len(stamps) if until is None else bisect.bisect_right(stamps, until)
        return lo, max(lo, hi)

    def select(self, q: Query) -> list[int]:
        return [
            i
            for i, t in enumerate(self._tickets)
            if (q.closed is None or t["is_open"] is not q.closed)
            and (q.teammate_id is None or t["teammate_id"] == q.teammate_id)
            and (q.client_id is None or t["client"]["id"] == q.client_id)
            and (q.since is None or t["created_at"] >= q.since)
            and (q.until is None or t["created_at"] <= q.until)
            and (q.text is None or q.text in t["title"].casefold())
        ]


class Listing(Protocol):
    """The global indices a query pages through, in listing order."""

    @property
    def cost(self) -> int:
        """The indices it holds (what a cache of listings counts)."""
        ...

    def __len__(self) -> int: ...
    def slice(self, start: int, stop: int) -> list[int]: ...


class Spans:
    """The alive indices of ascending ranges, ascending or descending: arithmetic, no list."""

    def __init__(
        self,
        ranges: Sequence[tuple[int, int]],
        dead: Sequence[int],
        dead_set: frozenset[int],
        *,
        desc: bool,
    ) -> None:
        self._dead, self._dead_set, self._desc = dead, dead_set, desc
        self._ranges = [
            (lo, hi, hi - lo - (bisect.bisect_left(dead, hi) - bisect.bisect_left(dead, lo)))
            for lo, hi in ranges
        ]
        self._total = sum(alive for _, _, alive in self._ranges)

    def __len__(self) -> int:
        return self._total

    @property
    def cost(self) -> int:
        return 0  # nothing but its ranges

    def slice(self, start: int, stop: int) -> list[int]:
        start, stop = max(0, start), min(self._total, stop)
        if start >= stop:
            return []
        if not self._desc:
            return self._ascending(start, stop - start)
        return self._ascending(self._total - stop, stop - start)[::-1]

    def _ascending(self, position: int, count: int) -> list[int]:
        out: list[int] = []
        dead = self._dead_set
        for lo, hi, alive in self._ranges:
            if position >= alive:
                position -= alive
                continue
            index = self._nth_alive(lo, position)
            position = 0
            while index < hi and len(out) < count:
                if index not in dead:
                    out.append(index)
                index += 1
            if len(out) == count:
                break
        return out

    def _nth_alive(self, lo: int, position: int) -> int:
        """The smallest index g >= lo with `position` alive indices in [lo, g)."""
        # g = lo + position + (deleted in [lo, g]): iterate from below to the least fixed
        # point, which is alive (if it were deleted, g - 1 would be a smaller fixed point).
        below = bisect.bisect_left(self._dead, lo)
        index = lo + position
        while True:
            moved = lo + position + bisect.bisect_right(self._dead, index) - below
            if moved == index:
                return index
            index = moved


class Order:
    """Indices picked and sorted by a scan, 4 bytes each."""

    def __init__(self, indices: Sequence[int], *, desc: bool) -> None:
        self._indices = array("I", indices)
        self._desc = desc

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def cost(self) -> int:
        return len(self._indices)

    def slice(self, start: int, stop: int) -> list[int]:
        total = len(self._indices)
        start, stop = max(0, start), min(total, stop)
        if start >= stop:
            return []
        if not self._desc:
            return self._indices[start:stop].tolist()
        return self._indices[total - stop : total - start].tolist()[::-1]


class Dataset:
    """An immutable snapshot of the fake's tickets: segments minus deletions."""

    def __init__(
        self,
        segments: tuple[_Source, ...],
        dead: tuple[int, ...] = (),
        *,
        ordered: bool | None = None,
    ) -> None:
        self._segments = segments
        self._offsets = tuple(itertools.accumulate((len(s) for s in segments[:-1]), initial=0))
        self._capacity = self._offsets[-1] + len(segments[-1])
        self._parts = tuple(zip(self._offsets, segments, strict=True))
        self._dead = dead
        self._dead_set = frozenset(dead)
        # Each added segment starts after the newest ticket alive, so order is kept.
        self.ordered = all(s.ordered for s in segments) if ordered is None else ordered

    @classmethod
    def generated(cls, count: int, *, seed: int) -> Dataset:
        return cls((_Generated(GeneratedTickets(count, seed=seed)),))

    @classmethod
    def given(cls, tickets: Sequence[Ticket]) -> Dataset:
        return cls((_Given(tickets),))

    def __len__(self) -> int:
        return self._capacity - len(self._dead)

    # -- one ticket, by global index -------------------------------------------------------

    def _locate(self, index: int) -> tuple[_Source, int]:
        k = bisect.bisect_right(self._offsets, index) - 1
        return self._segments[k], index - self._offsets[k]

    def ticket(self, index: int) -> Ticket:
        source, i = self._locate(index)
        return source.ticket(i)

    def encode(self, index: int) -> bytes:
        source, i = self._locate(index)
        return source.encode(i)

    def created_at(self, index: int) -> int:
        source, i = self._locate(index)
        return source.created_at(i)

    def ticket_id(self, index: int) -> str:
        source, i = self._locate(index)
        return source.ticket_id(i)

    # -- listings --------------------------------------------------------------------------

    def everything(self, *, desc: bool = False) -> Spans:
        """Every alive ticket in storage order (oldest segment first)."""
        ranges = [(off, off + len(s)) for off, s in self._parts]
        return Spans(ranges, self._dead, self._dead_set, desc=desc)

    def listing(self, q: Query) -> Spans | Order:
        """The tickets matching `q` in its order; ties are broken by id, so pages are stable."""
        desc = q.order == "desc"
        if self.ordered and q.sort_by == "created_at" and not q.by_attributes:
            ranges = []
            for offset, source in self._parts:
                lo, hi = source.date_range(q.since, q.until)
                if lo < hi:
                    ranges.append((offset + lo, offset + hi))
            return Spans(ranges, self._dead, self._dead_set, desc=desc)
        dead = self._dead_set
        if q.sort_by == "created_at" and self.ordered:  # global order is created_at order
            picked = [
                offset + i
                for offset, source in self._parts
                for i in source.select(q)
                if offset + i not in dead
            ]
            return Order(picked, desc=desc)
        keyed: list[tuple[str | int, str, int]] = []
        for offset, source in self._parts:
            chosen = [i for i in source.select(q) if offset + i not in dead]
            # Keys made per segment, in one pass each: a million of them is a few seconds.
            values: Iterable[str | int] = (
                source.titles(chosen) if q.sort_by == "title" else map(source.created_at, chosen)
            )
            keyed.extend(
                (value, source.ticket_id(i), offset + i)
                for value, i in zip(values, chosen, strict=True)
            )
        keyed.sort()
        return Order([g for _, _, g in keyed], desc=desc)

    # -- changes (each returns a new Dataset) ------------------------------------------------

    def newest_created_at(self) -> int:
        """The created_at of the newest ticket alive (`DATA_END` if there is none)."""
        if not len(self):
            return DATA_END
        if self.ordered:
            (newest,) = self.everything(desc=True).slice(0, 1)
            return self.created_at(newest)
        return max(self.created_at(g) for g in self.everything().slice(0, len(self)))

    def newest(self, count: int) -> list[int]:
        """The global indices of the `count` newest tickets alive, newest first."""
        if self.ordered:
            return self.everything(desc=True).slice(0, count)
        alive = self.everything().slice(0, len(self))
        alive.sort(key=lambda g: (self.created_at(g), self.ticket_id(g)), reverse=True)
        return alive[:count]

    def find(self, ticket_ids: set[str]) -> list[int]:
        """The global indices of the alive tickets with these ids."""
        found = []
        for ticket_id in ticket_ids:
            for offset, source in self._parts:
                i = source.index_of(ticket_id)
                if i is not None and offset + i not in self._dead_set:
                    found.append(offset + i)
                    break
        return found

    def without(self, indices: Sequence[int]) -> Dataset:
        dead = tuple(sorted(self._dead_set.union(indices)))
        return Dataset(self._segments, dead, ordered=self.ordered)

    def plus(self, source: GeneratedTickets) -> Dataset:
        return Dataset((*self._segments, _Generated(source)), self._dead, ordered=self.ordered)


class TicketView(Sequence[Ticket]):
    """The tickets of one Dataset in storage order, generated as they are read."""

    def __init__(self, data: Dataset) -> None:
        self._data = data
        self._all = data.everything()

    def __len__(self) -> int:
        return len(self._all)

    @overload
    def __getitem__(self, index: int) -> Ticket: ...
    @overload
    def __getitem__(self, index: slice) -> list[Ticket]: ...
    def __getitem__(self, index: int | slice) -> Ticket | list[Ticket]:
        if isinstance(index, slice):
            positions = range(len(self))[index]
            if positions.step == 1:
                picked = self._all.slice(positions.start, positions.stop)
            else:
                picked = [self._all.slice(p, p + 1)[0] for p in positions]
            return [self._data.ticket(g) for g in picked]
        position = operator.index(index)
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError("ticket index out of range")
        return self._data.ticket(self._all.slice(position, position + 1)[0])

    def __iter__(self) -> Iterator[Ticket]:
        for start in range(0, len(self), 1000):
            for g in self._all.slice(start, start + 1000):
                yield self._data.ticket(g)

    def __repr__(self) -> str:
        return f"<{len(self)} tickets of the fake Tamio API>"
