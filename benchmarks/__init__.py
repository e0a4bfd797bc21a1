"""Benchmarks of tamio-async against what users write by hand (not shipped in the wheel).

Run ``python -m benchmarks --help``; benchmarks/README.md explains the scenarios and tables.
"""
