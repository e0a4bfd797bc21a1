"""Bandwidth shaping: a network namespace of our own whose loopback ``tc tbf`` slows down.

The contender and the latency proxy run inside it (``ip netns exec``) and talk over its
shaped loopback; the proxy reaches the page server, outside, through the server's Unix socket
(filesystem sockets cross network namespaces), which no qdisc sees. So each response byte
crosses the shaped link once. Needs root, ``ip`` and ``tc``; the namespace is deleted on exit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Namespace", "ShapingUnavailable", "namespace"]

#: ``tbf``'s queue: how long a packet may wait for tokens before it is dropped.
TBF_LATENCY = "100ms"
#: ``tbf``'s bucket: at least 5 ms of the rate, and never below the 64 KB of a loopback packet.
BURST_S = 0.005
MIN_BURST_BYTES = 128 * 1024


class ShapingUnavailable(Exception):
    """This machine cannot shape (not root, no ``ip``/``tc``, namespaces refused)."""


@dataclass(frozen=True)
class Namespace:
    """A network namespace with its loopback up."""

    name: str

    @property
    def prefix(self) -> list[str]:
        """Prepend to a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def shape(self, rate_bits_per_s: float) -> None:
        """Limit the loopback to ``rate_bits_per_s`` (both ways; replaces any earlier rate)."""
        burst = max(MIN_BURST_BYTES, int(rate_bits_per_s / 8 * BURST_S))
        _ip(
            *self.prefix,
            *("tc", "qdisc", "replace", "dev", "lo", "root", "tbf"),
            *("rate", f"{int(rate_bits_per_s)}bit", "burst", str(burst), "latency", TBF_LATENCY),
        )


@contextmanager
def namespace() -> Iterator[Namespace]:
    """Create a namespace for this run, yield it, delete it; ``ShapingUnavailable`` if not."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise ShapingUnavailable(f"{' and '.join(missing)} not found")
    if os.geteuid() != 0:
        raise ShapingUnavailable("network namespaces need root")
    created = Namespace(f"tamio-bench-{os.getpid()}")
    _ip("ip", "netns", "add", created.name)
    try:
        _ip(*created.prefix, "ip", "link", "set", "lo", "mtu", "1500", "up")
        yield created
    finally:
        subprocess.run(["ip", "netns", "delete", created.name], check=False, capture_output=True)


def _ip(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ShapingUnavailable(f"`{' '.join(command)}` failed: {error}")
