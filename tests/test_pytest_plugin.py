"""The pytest plugin as users meet it: each case is a small project run by pytest in a subprocess.

The subprocesses use this environment's pytest and pytest-asyncio, and the installed
tamio-async's entry point (tests/test_testing_extra.py does the same from a built wheel in a
fresh virtualenv).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tamio_async.testing import FakeTamioServer

TIMEOUT = 120.0
#: A configuration like README's: asyncio_mode and the fixture loop scope set, strict markers.
AUTO = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
"""
STRICT = AUTO.replace("asyncio_mode = auto", "asyncio_mode = strict")


def clean_env() -> dict[str, str]:
    """This environment without what would steer the inner pytest (ours, coverage's)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "COV_", "COVERAGE_", "TAMIO_")) and k != "PYTHONPATH"
    }


def run_pytest(
    project: Path, test: str, ini: str = AUTO, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    project.mkdir(exist_ok=True)
    (project / "pytest.ini").write_text(ini)
    (project / "test_user.py").write_text(textwrap.dedent(test))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=project, env=clean_env() if env is None else env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


USES_MARKER = """
    import aiohttp
    import pytest

    from tamio_async import TamioClient

    pytestmark = pytest.mark.fake_tamio(tickets=40, api_key="module-key")

    @pytest.mark.fake_tamio(max_per_page=7)
    async def test_marker_options_merge_closest_first(fake_tamio):
        assert (fake_tamio.api_key, fake_tamio.max_per_page) == ("module-key", 7)
        async with TamioClient(api_key=fake_tamio.api_key, base_url=fake_tamio.base_url) as c:
            tickets = await c.tickets.list_all(per_page=7)
        assert [t.id for t in tickets] == fake_tamio.expected_ids()
        assert len(tickets) == 40

    @pytest.mark.fake_tamio(tickets=3, api_key="test-key")
    async def test_the_function_marker_overrides_the_module(fake_tamio):
        assert len(fake_tamio.tickets) == 3

    async def test_the_factory_still_builds_its_own(fake_tamio_factory):
        async with fake_tamio_factory(tickets=2) as fake:
            assert len(fake.tickets) == 2
"""


def test_the_marker_configures_fake_tamio_under_strict_markers(tmp_path: Path) -> None:
    code, out = run_pytest(tmp_path / "p", USES_MARKER)
    assert code == 0, out
    assert "3 passed" in out


UNMARKED = """
    async def test_lists(fake_tamio):
        assert fake_tamio.base_url
"""


def test_strict_mode_without_the_asyncio_mark_fails_saying_what_to_set(tmp_path: Path) -> None:
    code, out = run_pytest(tmp_path / "p", UNMARKED, STRICT)
    assert code == 1, out
    assert "the fake_tamio fixture (tamio-async) is async, but pytest-asyncio does not run" in out
    assert 'asyncio_mode = "auto"' in out
    assert "@pytest.mark.asyncio" in out


def test_strict_mode_with_the_asyncio_mark_works(tmp_path: Path) -> None:
    marked = "import pytest\n\n@pytest.mark.asyncio" + UNMARKED.replace("\n    ", "\n")
    code, out = run_pytest(tmp_path / "p", marked, STRICT)
    assert code == 0, out
    assert "1 passed" in out


def test_a_sync_test_is_told_to_be_async(tmp_path: Path) -> None:
    code, out = run_pytest(tmp_path / "p", "def test_sync(fake_tamio_factory):\n    pass\n")
    assert code == 1, out
    assert "fake_tamio_factory fixture (tamio-async) is an async fixture" in out


def test_pytest_asyncio_disabled_is_named(tmp_path: Path) -> None:
    code, out = run_pytest(tmp_path / "p", UNMARKED, AUTO.replace("filterwarnings = error\n", ""))
    assert code == 0, out
    code, out = run_pytest(
        tmp_path / "p", UNMARKED, STRICT.replace("filterwarnings = error\n", ""), "-p", "no:asyncio"
    )
    assert code == 1, out
    assert "installed but not loaded (-p no:asyncio?)" in out


def test_pytest_asyncio_missing_is_named_with_the_install_command(tmp_path: Path) -> None:
    # A pytest_asyncio that cannot be imported stands in for one that is not installed.
    shadow = tmp_path / "shadow" / "pytest_asyncio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed (simulated)')\n")
    env = {**clean_env(), "PYTHONPATH": str(shadow.parent)}
    ini = "[pytest]\naddopts = -p no:asyncio -p no:cacheprovider\n"
    code, out = run_pytest(tmp_path / "p", UNMARKED, ini, env=env)
    assert code == 1, out
    assert "needs pytest-asyncio, which is not installed" in out
    assert 'pip install "tamio-async[testing]"' in out


def test_a_test_loop_other_than_the_fixtures_is_named(tmp_path: Path) -> None:
    module_loop = """
        import pytest

        @pytest.mark.asyncio(loop_scope="module")
        async def test_lists(fake_tamio):
            pass
    """
    code, out = run_pytest(tmp_path / "p", module_loop)
    assert code == 1, out
    assert 'set asyncio_default_fixture_loop_scope = "module"' in out


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("fake_tamio(500)", "takes keyword options only"),
        ("fake_tamio(tikets=5)", "unknown options ['tikets']"),
    ],
)
def test_a_malformed_marker_is_a_usage_error(tmp_path: Path, marker: str, message: str) -> None:
    test = f"import pytest\n\n@pytest.mark.{marker}\nasync def test_x(fake_tamio):\n    pass\n"
    code, out = run_pytest(tmp_path / "p", test)
    assert code != 0, out
    assert message in out


@pytest.mark.fake_tamio(tickets=12, max_per_page=5, api_key="marked")
async def test_the_marker_configures_fake_tamio_in_our_own_suite(
    fake_tamio: FakeTamioServer,
) -> None:
    assert (len(fake_tamio.tickets), fake_tamio.max_per_page, fake_tamio.api_key) == (
        12, 5, "marked",
    )  # fmt: skip


async def test_without_a_marker_fake_tamio_has_the_defaults(fake_tamio: FakeTamioServer) -> None:
    assert (len(fake_tamio.tickets), fake_tamio.api_key) == (1000, "test-key")
