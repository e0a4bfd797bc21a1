"""The realistic-network mode: ``python -m benchmarks --network`` (see benchmarks/README.md).

The page server over TLS 1.3, behind a userspace latency proxy (``proxy``), optionally with
the bandwidth shaped by ``tc`` in a network namespace (``_shaping``); lower bounds in round
trips (``_bounds``); the runner and its targets (``mode``).
"""
