"""The testing extra as a user gets it: the built wheel in a fresh virtualenv, README's tests.

The wheel is built with pip from a copy of the source (never in the tree: .ci/run runs the
suites of two Pythons at once), installed with the ``[testing]`` extra into
``tmp_path/venv`` by pip from the package index (its cache makes that quick), and pytest runs
inside that virtualenv on a project made of the files README's testing section shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: README's files for a user project: ``<!-- file: NAME ... -->`` then a fenced block.
FILE_BLOCK = re.compile(r"<!-- file: (\S+)[^>]*-->\n```\w*\n(.*?)```", re.DOTALL)
#: Generous: building and installing run on a shared 2-core machine; they never take this.
TIMEOUT = 600.0


def readme_files() -> dict[str, str]:
    return dict(FILE_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")))


def user_env() -> dict[str, str]:
    """This environment minus what ties a process to this checkout or to our own pytest."""
    drop = ("PYTEST_", "COV_", "COVERAGE_", "TAMIO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    return {**env, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd, env=user_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{output}"
    return output


def copy_source(into: Path) -> Path:
    """What the wheel is built from: the package and its metadata files, nothing else."""
    source = into / "tamio-async"
    shutil.copytree(
        ROOT / "tamio_async",
        source / "tamio_async",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy2(ROOT / name, source / name)
    return source


def test_readme_shows_a_whole_user_project() -> None:
    files = readme_files()
    assert set(files) == {"pyproject.toml", "test_tickets.py"}
    assert 'asyncio_mode = "auto"' in files["pyproject.toml"]
    assert "@pytest.mark.fake_tamio(" in files["test_tickets.py"]
    assert "fake_tamio_factory" in files["test_tickets.py"]


def test_the_wheel_with_the_testing_extra_runs_readmes_tests_in_a_fresh_venv(
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    source, wheels, venv = copy_source(tmp_path), tmp_path / "wheels", tmp_path / "venv"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source, cwd=tmp_path)
    (wheel,) = wheels.glob("tamio_async-*.whl")
    # No pip inside: this environment's pip installs into it (--python), which saves the
    # ensurepip step; everything the tests import comes from the wheel and its extra.
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", f"{wheel}[testing]",
        cwd=tmp_path,
    )  # fmt: skip
    where = run(python, "-c", "import tamio_async, pytest_asyncio; print(tamio_async.__file__)",
                cwd=tmp_path)  # fmt: skip
    assert Path(where.strip()).is_relative_to(venv)  # the installed wheel, not this checkout
    project = tmp_path / "project"
    project.mkdir()
    for name, text in readme_files().items():
        (project / name).write_text(text, encoding="utf-8")
    output = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=project)
    assert "2 passed" in output, output
    print(f"wheel, venv, install and README's tests: {time.perf_counter() - started:.1f} s")
