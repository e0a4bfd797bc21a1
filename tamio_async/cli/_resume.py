"""Resumable exports: ``FILE.progress.json`` and ``FILE.progress.ids`` beside ``-o FILE``.

The output and the progress file cannot change together atomically, so the progress file is
the one truth and everything else is made to agree with it:

* **Append, then commit.** Tickets are appended to the output, and their ids to the id journal
  (``FILE.progress.ids``, one JSON string per line: ``"p<id>"`` or ``"x<id>"``). A commit
  fsyncs both, then replaces the progress file atomically (temporary file, fsync,
  ``os.replace``, fsync of the directory). It records how many bytes of the output and of the
  journal are complete, the number of tickets, and the page to resume from.
* **Resume = truncate, reload, re-ask.** A resume cuts both files back to the committed
  sizes (lines written after the last commit, a half-written line of a ``kill -9``, a closing
  ``]``: all go), loads the journal's ids, and drops every ticket whose id it holds. So
  nothing is written twice, however the listing moved since.
* **Where to re-ask.** Page numbers are a safe resume point only for a *consistent stretch*:
  pages from the run's start page on, each full, answered with the same ``total_results`` as
  the first, nothing dropped as a duplicate, no repair, no sequential paging (`Stretch`
  watches the listing's public `ListingStats`). Tickets of such pages are journalled
  ``p``: every ticket before them was written. Other pages are still written (the listing's
  contract holds for the whole run), journalled ``x``, and the resume page stops advancing.
* **Checked before use.** Data may shift between runs. Before resuming at page R, page R-1
  is asked: if its last ticket is a ``p`` one, every ticket before it was written (insertions
  only push written tickets later, into pages that are de-duplicated). If not, tickets were
  deleted in front and pulled unwritten ones back: step back 1, 2, 4 ... pages, down to
  page 1 (`resume_start`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from tamio_async import ListingStats, Progress, TamioClient

try:  # POSIX: an advisory lock, released by the kernel even after kill -9
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["COMMIT_INTERVAL", "Checkpoint", "ExportFiles", "ResumeError", "Stretch", "resume_start"]

KIND = "tamio-async export progress"
VERSION = 1
_encoder = msgspec.json.Encoder()
_journal = msgspec.json.Decoder(str)
#: Seconds between commits: a kill -9 costs at most this much re-fetching; fsyncs stay rare.
COMMIT_INTERVAL = 0.1


class ResumeError(Exception):
    """The files beside the output cannot be resumed from; says why and what to do."""


class Checkpoint(msgspec.Struct, kw_only=True):
    """The progress file: what is complete, and where the listing goes on."""

    kind: str = KIND
    version: int = VERSION
    #: The options that define the export (filters, format, fields...): a resume must match.
    command: dict[str, Any]
    #: The command that resumes it, for a person reading the file.
    resume: str = ""
    output_bytes: int = 0
    ids_bytes: int = 0
    tickets: int = 0
    next_page: int = 1
    page_size: int | None = None
    total_results: int | None = None


class ExportFiles:
    """The output, its id journal and its progress file; appends, commits, finishes."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.progress = output + ".progress.json"
        self.journal = output + ".progress.ids"
        self.output_bytes = self.ids_bytes = 0
        self._out: int | None = None
        self._ids: int | None = None

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint, or None when there is none."""
        try:
            with open(self.progress, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return None
        try:
            checkpoint = msgspec.json.decode(data, type=Checkpoint)
        except msgspec.MsgspecError:
            checkpoint = None
        if checkpoint is None or (checkpoint.kind, checkpoint.version) != (KIND, VERSION):
            raise ResumeError(
                f"{self.progress} is not a progress file this tamio-async can read; "
                "drop --resume to start the export over"
            )
        return checkpoint

    def written(self, checkpoint: Checkpoint) -> dict[str, bool]:
        """The ids the checkpoint counts as written (True: a consistent stretch wrote it)."""
        size = _size(self.output)
        if size < checkpoint.output_bytes:
            raise ResumeError(
                f"{self.output} has {size:,} bytes but its progress file counts "
                f"{checkpoint.output_bytes:,}: it was changed since; drop --resume to start over"
            )
        try:
            with open(self.journal, "rb") as file:
                data = file.read(checkpoint.ids_bytes)
        except FileNotFoundError:
            data = b""
        seen: dict[str, bool] = {}
        try:
            entries = _journal.decode_lines(data) if len(data) == checkpoint.ids_bytes else None
        except msgspec.MsgspecError:
            entries = None
        for entry in entries or ():
            ticket_id = entry[1:]
            seen[ticket_id] = seen.get(ticket_id, False) or entry[:1] == "p"
        if entries is None or len(seen) != checkpoint.tickets:
            raise ResumeError(
                f"{self.journal} does not match {self.progress}; drop --resume to start over"
            )
        return seen

    def open(self, checkpoint: Checkpoint, *, fresh: bool) -> None:
        """Lock the output, commit ``checkpoint`` if new, and cut both files back to it."""
        out = os.open(self.output, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock(out, self.output)
        except BaseException:
            os.close(out)
            raise
        self._out = out
        if fresh:  # first say "nothing is written yet", then empty the files
            self._ids = os.open(self.journal, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
            self.commit(checkpoint)
        else:
            self._ids = os.open(self.journal, os.O_RDWR | os.O_CREAT, 0o666)
        for fd, size in ((out, checkpoint.output_bytes), (self._ids, checkpoint.ids_bytes)):
            os.ftruncate(fd, size)
            os.lseek(fd, 0, os.SEEK_END)
        self.output_bytes, self.ids_bytes = checkpoint.output_bytes, checkpoint.ids_bytes

    @property
    def is_open(self) -> bool:
        return self._out is not None

    def append(self, data: bytes, ids: Sequence[str]) -> None:
        """Append to the output and the journal (complete only once committed)."""
        assert self._out is not None
        assert self._ids is not None
        _write(self._out, data)
        self.output_bytes += len(data)
        if ids:
            lines = _encoder.encode_lines(ids)
            _write(self._ids, lines)
            self.ids_bytes += len(lines)

    def commit(self, checkpoint: Checkpoint) -> None:
        """Make what was appended durable, then say so in the progress file, atomically."""
        assert self._out is not None
        assert self._ids is not None
        os.fsync(self._out)
        os.fsync(self._ids)
        checkpoint.output_bytes, checkpoint.ids_bytes = self.output_bytes, self.ids_bytes
        _replace(self.progress, msgspec.json.format(_encoder.encode(checkpoint)) + b"\n")

    def close(self, footer: bytes = b"") -> None:
        """Close the files; ``footer`` (after the committed part) keeps the output well formed."""
        if self._out is not None:
            _write(self._out, footer)
            os.close(self._out)
        if self._ids is not None:
            os.close(self._ids)
        self._out = self._ids = None

    def finish(self, footer: bytes) -> None:
        """The export is complete: end the output, then remove the progress files."""
        assert self._out is not None
        _write(self._out, footer)
        os.fsync(self._out)
        self.close()
        os.remove(self.progress)  # first: a journal without progress is ignored
        for leftover in (self.journal, f"{self.progress}.tmp"):  # (a crash's, mid-commit)
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)


class Stretch:
    """Follows the consistent stretch of a listing from its start page (see the module)."""

    def __init__(self, start: int, *, probe_total: int | None = None) -> None:
        self.start = start
        self.pages = 0
        self._probe_total = probe_total
        self._pages_done = 0
        self._size: int | None = None
        self._broken = False

    @property
    def next_page(self) -> int:
        """The page a later run resumes from."""
        return self.start + self.pages

    def on_progress(self, progress: Progress) -> None:
        """The listing's ``on_progress``: it counts the pages it processed."""
        self._pages_done = progress.pages_done

    def extend(self, stats: ListingStats, length: int, *, whole: bool) -> bool:
        """Account for the page just yielded (``length`` tickets, ``whole``-ly written)."""
        if self._broken:
            return False
        total, size = stats.first_total_results, stats.page_size
        self._size = self._size or size
        number = self.next_page
        self._broken = not (
            whole
            and total is not None
            and size is not None
            and size == self._size
            and length == size
            and number * size <= total  # a page within what the first page said exists
            and stats.last_total_results == total
            and self._probe_total in (None, total)
            and self._pages_done == self.pages + 1  # no page in between brought nothing
            and not stats.drift_detected
            and not stats.sequential
            and stats.duplicates_dropped == 0
            and stats.extra_pages == 0
            and stats.repair_rounds == 0
        )
        if not self._broken:
            self.pages += 1
        return not self._broken


async def resume_start(
    client: TamioClient,
    next_page: int,
    prefix: Mapping[str, bool],
    *,
    per_page: int,
    filters: Mapping[str, Any],
) -> tuple[int, int | None, int]:
    """The page to resume from, the total its check saw, and the requests the check made.

    Page ``next_page - 1`` is asked: if its last ticket was written by a consistent stretch,
    everything before it was written. Else step back 1, 2, 4 ... pages; page 1 always works.
    """
    page, step, asked = next_page - 1, 1, 0
    while page >= 1:
        answer = await client.tickets.list(page=page, per_page=per_page, **filters)
        asked += 1
        if answer.tickets and prefix.get(answer.tickets[-1].id):
            return page + 1, answer.total_results, asked
        page, step = page - step, step * 2
    return 1, None, asked


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _lock(fd: int, path: str) -> None:
    if fcntl is None:  # pragma: no cover - Windows
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ResumeError(f"another tamio-async is writing {path}; let it finish") from None


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _replace(path: str, data: bytes) -> None:
    """Write ``path`` atomically: a reader (or a crash) sees the old file or the new one."""
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        _write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # the rename itself durable (not on every platform)
        directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
