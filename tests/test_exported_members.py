"""The public front door: one sorted, complete ``__all__`` whose every name resolves."""

from __future__ import annotations

import types

import tamio_async


def public_names() -> set[str]:
    """Names a user can see on the package: no leading underscore, no submodules."""
    return {
        name
        for name, value in vars(tamio_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_all_is_sorted() -> None:
    assert tamio_async.__all__ == sorted(tamio_async.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(tamio_async.__all__) == len(set(tamio_async.__all__))


def test_all_lists_every_public_name() -> None:
    assert public_names() - set(tamio_async.__all__) == set()


def test_every_name_in_all_resolves() -> None:
    missing = [name for name in tamio_async.__all__ if not hasattr(tamio_async, name)]
    assert missing == []


def test_all_exports_the_version() -> None:
    assert "__version__" in tamio_async.__all__
    assert isinstance(tamio_async.__version__, str)
