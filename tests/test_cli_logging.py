"""``TAMIO_LOG``: the library's logging on stderr from the environment, set when it is imported.

Import-time behaviour is tested in fresh interpreters (``python -c``); the idempotence of
`configure_from_env` in process, restoring the logger afterwards.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cli_support import ExportServer, cli_env, run_cli

from tamio_async import _logging

LOG_ONE = (
    "import logging, tamio_async; log = logging.getLogger('tamio_async'); "
    "log.debug('a debug line'); log.info('an info line'); log.warning('a warning line')"
)


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True, text=True, env=cli_env(**env), timeout=60, check=False,
    )  # fmt: skip


def test_debug_shows_the_librarys_debug_lines_on_stderr() -> None:
    result = python(LOG_ONE, TAMIO_LOG="debug")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "DEBUG tamio_async: a debug line",
        "INFO tamio_async: an info line",
        "WARNING tamio_async: a warning line",
    ]
    assert result.stdout == ""


@pytest.mark.parametrize(("value", "shown"), [("info", 2), ("INFO", 2), (" warning ", 1)])
def test_a_level_hides_what_is_below_it(value: str, shown: int) -> None:
    result = python(LOG_ONE, TAMIO_LOG=value)
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == shown
    assert "a debug line" not in result.stderr


def test_unset_or_empty_changes_nothing() -> None:
    for env in ({}, {"TAMIO_LOG": ""}):
        result = python(LOG_ONE, **env)
        # Python's own last-resort handler: warnings only, without our format.
        assert result.stderr == "a warning line\n"


def test_an_invalid_value_warns_once_naming_the_variable_and_never_raises() -> None:
    result = python(LOG_ONE + "; import tamio_async.cli", TAMIO_LOG="verbose")
    assert result.returncode == 0, result.stderr  # -W error: not even a warning exception
    first, *rest = result.stderr.splitlines()
    assert first == "ignoring TAMIO_LOG='verbose': it accepts debug, info or warning"
    assert rest == ["a warning line"]


def test_an_app_that_configures_logging_sees_each_record_once_in_its_format() -> None:
    code = (
        "import logging, tamio_async; logging.basicConfig(format='APP %(message)s'); "
        "logging.getLogger('tamio_async').debug('a debug line')"
    )
    result = python(code, TAMIO_LOG="debug")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "APP a debug line\n"


async def test_the_command_line_honours_it_without_debug() -> None:
    async with ExportServer(30) as server:
        env = {**server.env(), "TAMIO_LOG": "debug"}
        result = await run_cli("tickets", "--all", env=env)
    assert result.code == 0, result.err
    assert "DEBUG tamio_async: GET " in result.err
    assert server.api_key not in result.err


@pytest.fixture
def library_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tamio_async")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_configuring_twice_adds_one_handler(library_logger: logging.Logger) -> None:
    before = len(library_logger.handlers)
    _logging.configure_from_env({"TAMIO_LOG": "info"})
    _logging.configure_from_env({"TAMIO_LOG": "debug"})
    assert len(library_logger.handlers) <= before + 1
    assert library_logger.level == logging.DEBUG
