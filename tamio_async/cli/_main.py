"""`main`: parse, set up logging on stderr, run the command, turn every outcome into a status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence

from tamio_async import TamioError

from ._commands import COMMANDS, Command
from ._common import Context
from ._parser import PROG, UsageError, check, in_cli_terms, parser
from ._resume import ResumeError

__all__ = ["main"]

logger = logging.getLogger("tamio_async.cli")
EXIT_ERROR, EXIT_USAGE = 1, 2


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Logs to stderr with the key masked, on whatever sys.stderr is now (rich may wrap it)."""

    def __init__(self, secret: str | None) -> None:
        super().__init__()
        self._secret = secret

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)

    def format(self, record: logging.LogRecord) -> str:
        return _redact(super().format(record), self._secret)


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _setup_logging(debug: bool, secret: str | None) -> None:
    """Warnings from everything; with ``--debug``, the library's debug lines too (not asyncio's)."""
    handler = _StderrHandler(secret)
    if debug:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%H:%M:%S"
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    if debug:
        logging.getLogger("tamio_async").setLevel(logging.DEBUG)


def _launcher() -> str:
    """How the user started us, for commands we print: the script, or ``python -m``."""
    if os.path.basename(sys.argv[0]) == "__main__.py":
        return f"{shlex.quote(sys.executable)} -m tamio_async"
    return PROG


def _run(command: Command, args: object, ctx: Context) -> int:
    """Run a command; SIGINT/SIGTERM cancel it, so files close and requests stop cleanly."""

    async def guarded() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        signals = (signal.SIGINT, signal.SIGTERM)

        def on_signal(signum: int) -> None:
            ctx.signal = signum
            for sig in signals:  # a second signal stops the process the hard way
                loop.remove_signal_handler(sig)
            task.cancel()

        for sig in signals:
            # Cancelling from the loop, never mid-write: unlike KeyboardInterrupt, which may
            # strike anywhere. Windows has no add_signal_handler: Ctrl-C still works there.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await command(args, ctx)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            if ctx.signal is None:
                raise
            return 128 + ctx.signal

    return asyncio.run(guarded())


def _fail(message: object, status: int, secret: str | None, ctx: Context) -> int:
    for line in [f"error: {message}", *ctx.after_error]:
        text = " ".join(line.split())  # one line, whatever the server's message held
        print(f"{PROG}: {_redact(text, secret)}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status (the console script exits with it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    ctx = Context(argv=arguments, launcher=_launcher())
    secret: str | None = None
    try:
        args, unknown = parser().parse_known_args(arguments)
        if unknown:  # argparse would blame the top level; the help to read is the command's
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}", args.help_for)
        secret = getattr(args, "api_key", None) or os.environ.get("TAMIO_API_KEY") or None
        _setup_logging(args.debug, secret)
        check(args)
        status = _run(COMMANDS[args.command], args, ctx)
    except UsageError as exc:
        return _fail(exc, EXIT_USAGE, secret, ctx)
    except TamioError as exc:
        exc.hint = None  # it names library arguments (start_page=...), not our options
        return _fail(in_cli_terms(str(exc)), EXIT_ERROR, secret, ctx)
    except BrokenPipeError:
        # The reader left (`| head`): that is how pipes end. Stop quietly, and point stdout
        # at devnull so that the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (OSError, ResumeError) as exc:
        return _fail(exc, EXIT_ERROR, secret, ctx)
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
        ctx.signal = ctx.signal or signal.SIGINT
    except Exception as exc:
        logger.debug("unexpected error", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc} (see --debug)", 1, secret, ctx)
    if status > 128 and not ctx.reported:
        print(f"{PROG}: stopped by {signal.Signals(status - 128).name}", file=sys.stderr)
    return status
