"""The public front door: one sorted, complete ``__all__`` whose every name resolves."""

from __future__ import annotations

import types

import tamio_async
import tamio_async.models


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


def test_client_is_kept_as_an_alias_of_customer() -> None:
    """The ticket's customer was once named ``Client``; the old name still imports."""
    assert {"Client", "Customer"} <= set(tamio_async.__all__)
    assert tamio_async.Client is tamio_async.Customer
    assert tamio_async.models.Client is tamio_async.models.Customer
    assert tamio_async.Customer.__name__ == "Customer"


def test_the_pytest_plugin_is_registered_for_users() -> None:
    """Installed packages register the fake-server fixtures through the pytest11 entry point."""
    import importlib
    import importlib.metadata

    (entry,) = (
        e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "tamio_async"
    )
    plugin = importlib.import_module(entry.value)
    assert {"fake_tamio", "fake_tamio_factory"} <= set(plugin.__all__)
