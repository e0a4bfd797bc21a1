"""A userspace latency proxy: TCP passthrough with a round trip time, in its own process.

    python -m benchmarks.network.proxy '{"upstream": "/tmp/x/server.sock", "rtts": [0, 0.05]}'

One listener on 127.0.0.1 per RTT; every accepted connection is piped, byte for byte, to
the page server's Unix socket (TLS stays end to end between client and server: the proxy
never decrypts). The emulation, per connection:

- the client's first bytes are held one RTT after the accept (the TCP handshake the
  loopback connect skipped), then
- every chunk, each way, leaves RTT/2 after it arrived; so the TLS 1.3 handshake costs one
  RTT and each request one more.

Delays are scheduled, not slept: each direction is a queue of (due time, chunk), drained by
one timer, so chunks keep their order and their spacing (a chunk that arrives 1 ms after
another leaves 1 ms after it). A full outgoing buffer pauses reading on the other side.
Once listening it prints one JSON line (``{"ports": [...], "pid": ...}``, in the order of
``rtts``); it exits when its stdin closes (or on SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
from collections import deque

__all__ = ["listen", "main"]


class _Direction:
    """One way of one connection: chunks wait in a queue until they are due, then are written.

    ``None`` in the queue is the end of the stream: the destination is closed once every
    chunk before it is written. Due times only grow, so the queue is in order of both.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, hold_until: float) -> None:
        self._loop = loop
        self._delay = delay
        self._hold_until = hold_until
        self._queue: deque[tuple[float, bytes | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._ended = False
        self.destination: asyncio.Transport | None = None  # None until it is connected

    def push(self, chunk: bytes | None) -> None:
        """Queue a chunk (None: the end), due RTT/2 from now, or from the end of the hold."""
        if self._ended:
            return
        self._ended = chunk is None
        self._queue.append((max(self._loop.time(), self._hold_until) + self._delay, chunk))
        self._wake()

    def drain(self) -> None:
        """Write every chunk that is due; wake up again for the next one."""
        self._timer = None
        now = self._loop.time()
        while self.destination is not None and self._queue and self._queue[0][0] <= now:
            _, chunk = self._queue.popleft()
            if chunk is None:
                self.destination.close()  # after what it has buffered
            else:
                self.destination.write(chunk)
        self._wake()

    def cancel(self) -> None:
        """The destination is gone: drop what is queued for it."""
        self._ended = True
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        # Until the upstream is connected nothing can be written; connecting drains.
        if self._timer is None and self._queue and self.destination is not None:
            self._timer = self._loop.call_at(self._queue[0][0], self.drain)


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: what it reads goes into ``outgoing``."""

    def __init__(self, outgoing: _Direction, incoming: _Direction) -> None:
        self.outgoing = outgoing
        self.incoming = incoming
        self.peer: _Side | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.incoming.destination = transport
        self.incoming.drain()

    def data_received(self, data: bytes) -> None:
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        self.outgoing.push(None)
        return True  # keep our side open until the end reaches the other side

    def connection_lost(self, exc: Exception | None) -> None:
        self.incoming.cancel()
        self.outgoing.push(None)

    # Flow control: our send buffer is full, so stop reading what would be sent to us.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


def _accept(rtt: float, upstream: str) -> _Side:
    """A client connection: its upstream connection to the server is opened at once."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    to_server = _Direction(loop, rtt / 2, hold_until=now + rtt)
    to_client = _Direction(loop, rtt / 2, hold_until=now)
    client = _Side(outgoing=to_server, incoming=to_client)
    server = _Side(outgoing=to_client, incoming=to_server)
    client.peer, server.peer = server, client

    async def connect() -> None:
        try:
            await loop.create_unix_connection(lambda: server, upstream)
        except OSError:
            if client.transport is not None:
                client.transport.abort()

    task = loop.create_task(connect())
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return client


_pending: set[asyncio.Task[None]] = set()  # upstream connects in progress (kept referenced)


async def listen(rtt: float, upstream: str) -> asyncio.Server:
    """A listener on 127.0.0.1 (a free port) whose connections are piped to ``upstream``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(functools.partial(_accept, rtt, upstream), "127.0.0.1", 0)


async def serve(spec: dict[str, object]) -> None:
    """Listen once per RTT, announce the ports, proxy until stdin closes."""
    upstream = str(spec["upstream"])
    rtts = [float(rtt) for rtt in spec["rtts"]]  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    servers = [await listen(rtt, upstream) for rtt in rtts]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 4096):
            loop.remove_reader(stdin)
            stop.set()

    with contextlib.suppress(PermissionError):  # a terminal: only SIGTERM/SIGINT stop it
        loop.add_reader(stdin, on_stdin)
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps({"ports": ports, "pid": os.getpid()}), flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is one JSON spec (``upstream``: a Unix socket; ``rtts``: s)."""
    asyncio.run(serve(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
