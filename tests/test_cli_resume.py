"""Resumable exports: ``tickets --all -o FILE``, interrupted any way, then ``--resume``.

The promise: after any number of interruptions (``kill -9`` included) and resumes, the file
holds every ticket exactly once. Interruptions are made deterministic, never timed: the
server holds a page and the CLI is killed once its request for that page arrives, or the CLI
kills itself (SIGKILL) at the n-th step of its own write protocol: before a commit, between
the progress file's temporary copy and its rename, right after an append to the output or
the id journal.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shlex
import signal
from pathlib import Path
from typing import Any

import pytest
from cli_support import KEY, TIMEOUT, ExportServer, cli_env, cli_process, run_cli

# The CLI, killing itself with SIGKILL at the CRASH_AT-th call of one step of the protocol.
CRASHING = """
import os, signal, sys
from tamio_async.cli import _export, _resume, main
kind, nth = os.environ["CRASH_KIND"], int(os.environ["CRASH_AT"])
_export.COMMIT_INTERVAL = 0  # a commit after every page: many steps to crash at
calls = 0
def crashing(real, after):
    def wrapper(*args):
        global calls
        calls += 1
        if calls == nth and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args)
        if calls == nth and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper
if kind == "commit":  # lines appended, progress not yet committed
    _resume.ExportFiles.commit = crashing(_resume.ExportFiles.commit, after=False)
elif kind == "replace":  # the new progress file written and synced, not yet renamed
    os.replace = crashing(os.replace, after=False)
elif kind == "write":  # right after one append to the output or the journal
    _resume._write = crashing(_resume._write, after=True)
sys.exit(main(sys.argv[1:]))
"""
# The CLI committing after every page, so that a kill finds a checkpoint past page one.
EVERY_PAGE = (
    "import sys; from tamio_async.cli import _export, main; _export.COMMIT_INTERVAL = 0; "
    "sys.exit(main(sys.argv[1:]))"
)


def ids_in(path: Path, fmt: str) -> list[str]:
    """The ticket ids the export file holds, in order (it must parse as a whole)."""
    text = path.read_text()
    if fmt == "jsonl":
        return [json.loads(line)["id"] for line in text.splitlines()]
    if fmt == "json":
        return [ticket["id"] for ticket in json.loads(text)]
    if fmt == "csv":
        return [row["id"] for row in csv.DictReader(text.splitlines())]
    lines = text.splitlines()
    assert lines[0].split()[0] == "id" and set(lines[1]) <= {"-", " "}
    return [line.split()[0] for line in lines[2:]]


def put(path: Path | str, data: bytes) -> None:
    Path(path).write_bytes(data)


def exists(path: str) -> bool:
    return Path(path).exists()


def sidecars(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "."))


def export_args(
    server: ExportServer, path: Path, *extra: str, fmt: str = "jsonl", per_page: int = 10
) -> list[str]:
    return [
        "tickets", "--all", "--per-page", str(per_page), "--concurrency", "2", "--format", fmt,
        "-o", str(path), "-q", *extra, *server.conn(),
    ]  # fmt: skip


async def kill_at(
    server: ExportServer, page: int, args: list[str], code: str | None = None
) -> None:
    """Run the CLI until its request for ``page`` arrives, then ``kill -9`` it."""
    server.hold(page)
    async with cli_process(*args, code=code) as proc:
        await server.wait_arrived(page)
        proc.kill()
        await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    server.release()


def checkpoint(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(f"{path}.progress.json").read_text())
    return data


# -- kill -9 --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table"])
async def test_kill_9_at_several_pages_then_resume_holds_every_ticket_once(
    tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"tickets.{fmt}"
    async with ExportServer(300) as server:
        args = export_args(server, path, fmt=fmt)
        await kill_at(server, 5, args)
        for page in (13, 14, 27):  # 14 right after 13: a resume killed at its first pages
            await kill_at(server, page, [*args, "--resume"])
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        assert ids_in(path, fmt) == server.ids
    assert sidecars(path) == []  # done: no progress file, no journal, no temporary file


CRASH_POINTS = [
    ("commit", 2), ("commit", 7), ("commit", 13),
    ("replace", 1), ("replace", 5), ("replace", 12),
    ("write", 3), ("write", 8), ("write", 9), ("write", 20), ("write", 21),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "nth"), CRASH_POINTS, ids=[f"{k}-{n}" for k, n in CRASH_POINTS])
async def test_a_crash_at_any_step_of_a_write_loses_and_repeats_nothing(
    tmp_path: Path, kind: str, nth: int
) -> None:
    path = tmp_path / "tickets.json"  # json: a cut-off file is not even valid until resumed
    async with ExportServer(120) as server:
        args = export_args(server, path, fmt="json")
        env = cli_env(CRASH_KIND=kind, CRASH_AT=str(nth))
        crashed = await run_cli(*args, code=CRASHING, env=env)
        assert crashed.code == -signal.SIGKILL, "the crash point was never reached"
        again = await run_cli(*args, "--resume")
        assert again.code == 0, again.err
        assert ids_in(path, "json") == server.ids
    assert sidecars(path) == []


async def test_crashes_in_a_row_each_resumed_still_hold_every_ticket_once(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    async with ExportServer(200) as server:
        args = export_args(server, path, fmt="csv")
        for kind, nth in [("write", 7), ("commit", 4), ("replace", 3), ("write", 10)]:
            env = cli_env(CRASH_KIND=kind, CRASH_AT=str(nth))
            crashed = await run_cli(*args, "--resume", code=CRASHING, env=env)
            assert crashed.code == -signal.SIGKILL, (kind, nth)
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        assert ids_in(path, "csv") == server.ids


# -- the data moves -------------------------------------------------------------------------


async def test_tickets_inserted_between_runs_are_not_written_twice(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(200) as server:
        args = export_args(server, path)
        await kill_at(server, 9, args, code=EVERY_PAGE)
        resume_page = checkpoint(path)["next_page"]
        assert resume_page > 1
        before = server.ids
        server.insert_front(25)  # every written ticket moves 2.5 pages later
        asked = len(server.requests)
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        got = ids_in(path, "jsonl")
        assert len(got) == len(set(got))
        assert set(before) <= set(got)
        assert server.requests[asked] == resume_page - 1  # the check of the page before


async def test_tickets_deleted_between_runs_pull_none_behind_the_resume_point(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(200) as server:
        args = export_args(server, path)
        await kill_at(server, 12, args, code=EVERY_PAGE)
        resume_page = checkpoint(path)["next_page"]
        assert resume_page > 4
        # 35 written tickets go: 35 unwritten ones move onto pages before the resume point,
        # where resuming at that page (or one early) would never look.
        deleted = server.ids[:35]
        server.delete(deleted)
        survivors = server.ids
        asked = len(server.requests)
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        got = ids_in(path, "jsonl")
        assert len(got) == len(set(got))
        assert set(survivors) <= set(got)
        assert min(server.requests[asked:]) < resume_page - 1  # the check stepped back


async def test_a_listing_that_moved_mid_run_resumes_from_before_the_move(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(200) as server:
        original = server.ids
        server.insert_after(3, 15)  # while the first run pages: 15 new at the front
        args = export_args(server, path)
        await kill_at(server, 12, args, code=EVERY_PAGE)
        # Pages after the move are written but are no safe place to resume from.
        assert checkpoint(path)["next_page"] <= 5
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        got = ids_in(path, "jsonl")
        assert len(got) == len(set(got))
        assert set(original) <= set(got)


# -- what the user sees ---------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_a_signal_says_how_many_were_written_and_the_command_that_resumes(
    tmp_path: Path, signum: int, code: int
) -> None:
    path = tmp_path / "tickets.json"
    async with ExportServer(150) as server:
        args = ["tickets", "--all", "--per-page", "10", "--concurrency", "2", "--format",
                "json", "-o", str(path)]  # fmt: skip
        server.hold(6)
        async with cli_process(*args, env=server.env()) as proc:
            await server.wait_arrived(6)
            proc.send_signal(signum)
            _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == code, err
        server.release()
        name = signal.Signals(signum).name
        found = json.loads(path.read_text())  # closed: valid JSON even now
        message = err.decode().splitlines()[-1]
        assert message.startswith(f"tamio-async: stopped by {name}: {path} holds ")
        count = int(message.split(" holds ")[1].split(" tickets")[0])
        assert [t["id"] for t in found] == server.ids[:count] and count >= 10
        command = message.split("; resume with: ")[1]
        assert command.endswith("--resume") and KEY not in command
        resumed = await asyncio.create_subprocess_exec(
            *shlex.split(command), env=server.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(resumed.communicate(), TIMEOUT)
        assert resumed.returncode == 0, err
        assert ids_in(path, "json") == server.ids
        assert f"({len(server.ids)} in {path})" in err.decode()


async def test_the_resume_command_never_shows_a_key_given_as_an_option(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(100) as server:
        server.hold(4)
        async with cli_process(*export_args(server, path)) as proc:
            await server.wait_arrived(4)
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    text = err.decode()
    assert KEY not in text
    assert "--api-key" not in text.split("resume with: ")[1].split(" (and your")[0]
    assert "(and your --api-key: it is never printed)" in text
    assert KEY not in json.dumps(checkpoint(path))


async def test_an_api_error_mid_export_says_how_to_resume(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(150) as server:
        server.fail(8, 500)
        args = export_args(server, path, "--max-retries", "0")
        failed = await run_cli(*args)
        assert failed.code == 1
        error, after = failed.err.splitlines()
        assert error.startswith("tamio-async: error: ") and "500" in error
        assert f"{path} holds " in after and "resume with: " in after
        server.clear_failures()
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        assert ids_in(path, "jsonl") == server.ids


async def test_a_resume_of_another_command_is_refused_and_touches_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(100) as server:
        await kill_at(server, 5, export_args(server, path, "--closed"), code=EVERY_PAGE)
        before = path.read_bytes(), checkpoint(path)
        for other, options, says in [
            (["--open"], {}, "--closed/--open was --closed, now --open"),
            (["--closed"], {"per_page": 20}, "--per-page was 10, now 20"),
            (["--closed", "--filter", "x"], {}, "--filter was not given, now 'x'"),
            (["--closed"], {"fmt": "csv"}, "--format was 'jsonl', now 'csv'"),
        ]:
            args = export_args(server, path, *other, "--resume", **options)  # type: ignore[arg-type]
            result = await run_cli(*args)
            assert result.code == 2, result.err
            assert "belongs to another export" in result.err and says in result.err, other
            assert "(see tamio-async tickets --help)" in result.err
        assert (path.read_bytes(), checkpoint(path)) == before


async def test_resume_without_an_unfinished_export(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(30) as server:
        args = export_args(server, path, "--resume")
        started = await run_cli(*args)  # nothing there yet: it starts
        assert started.code == 0, started.err
        assert ids_in(path, "jsonl") == server.ids
        finished = await run_cli(*args)  # finished: refused, never appended to
        assert finished.code == 2
        assert "nothing to resume" in finished.err
        assert ids_in(path, "jsonl") == server.ids


async def test_running_again_without_resume_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(100) as server:
        args = export_args(server, path)
        args.remove("-q")
        await kill_at(server, 6, args, code=EVERY_PAGE)
        result = await run_cli(*args)
        assert result.code == 0, result.err
        assert "held an unfinished export" in result.err and "starting over" in result.err
        assert ids_in(path, "jsonl") == server.ids


async def test_limit_holds_across_resumes(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(200) as server:
        args = export_args(server, path, "--limit", "55")
        await kill_at(server, 4, args, code=EVERY_PAGE)
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        assert ids_in(path, "jsonl") == server.ids[:55]


async def test_two_exports_to_one_file_cannot_run_at_once(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(100) as server:
        args = export_args(server, path)
        server.hold(4)
        async with cli_process(*args) as first:
            await server.wait_arrived(4)
            second = await run_cli(*args, "--resume")
            assert second.code == 1
            assert f"another tamio-async is writing {path}" in second.err
            first.kill()
            await asyncio.wait_for(first.wait(), TIMEOUT)
        server.release()
        result = await run_cli(*args, "--resume")
        assert result.code == 0, result.err
        assert ids_in(path, "jsonl") == server.ids


async def test_the_progress_file_is_plain_json_beside_the_output(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    async with ExportServer(100) as server:
        await kill_at(server, 6, export_args(server, path), code=EVERY_PAGE)
    progress = checkpoint(path)
    assert progress["kind"] == "tamio-async export progress"
    assert progress["output_bytes"] <= len(path.read_bytes())
    assert progress["tickets"] >= 10 and progress["next_page"] > 1
    assert progress["command"]["filters"] == {}
    assert progress["resume"].endswith("--resume")
    # (and the temporary copy, when the kill came in the middle of a commit)
    beside = set(sidecars(path)) - {"tickets.jsonl.progress.json.tmp"}
    assert beside == {"tickets.jsonl.progress.ids", "tickets.jsonl.progress.json"}


async def test_files_that_no_longer_match_their_progress_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    progress = f"{path}.progress.json"
    async with ExportServer(100) as server:
        args = export_args(server, path, "--resume")
        await kill_at(server, 6, args, code=EVERY_PAGE)
        saved, output = json.dumps(checkpoint(path)).encode(), path.read_bytes()
        put(path, output[:10])  # someone cut the output short
        cut = await run_cli(*args)
        assert cut.code == 1
        assert "was changed since; drop --resume to start over" in cut.err
        put(progress, b"{not json")
        garbled = await run_cli(*args)
        assert garbled.code == 1
        assert "is not a progress file" in garbled.err
        put(progress, saved)
        put(path, output)
        put(f"{path}.progress.ids", b"")  # the journal lost
        lost = await run_cli(*args)
        assert lost.code == 1
        assert "does not match" in lost.err
        assert server.requests.count(1) == 1  # refused before any request


async def test_an_export_to_a_device_or_pipe_streams_without_progress_files() -> None:
    async with ExportServer(40) as server:
        result = await run_cli("tickets", "--all", "-o", "/dev/stdout", *server.conn())
        resumed = await run_cli("tickets", "--all", "-o", "/dev/stdout", "--resume", *server.conn())
    assert result.code == 0, result.err
    assert [json.loads(line)["id"] for line in result.out.splitlines()] == server.ids
    assert not exists("/dev/stdout.progress.json")
    assert resumed.code == 2 and "--resume needs a regular file" in resumed.err
