"""Code style: ``ruff check`` (the lint rules of pyproject.toml) and ``ruff format --check`` over the repository root,
i.e. every Python file ruff's configuration covers (the package, the tests, ``bench/``, ``tools/``, ``setup.py``; not
what ``extend-exclude`` leaves out), as the pre-commit hooks run them. ruff comes with the ``dev`` extra."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["."]  # ruff's own file discovery from the root: pyproject.toml's include and exclude decide


@pytest.fixture(scope="module")
def ruff():
    pytest.importorskip("ruff", reason="ruff is not installed (pip install -e '.[dev]' brings it)")
    from ruff.__main__ import find_ruff_bin

    return find_ruff_bin()


def run_ruff(ruff, *args):
    return subprocess.run([ruff, *args, "--no-cache", *PATHS], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_check_is_clean(ruff):
    r = run_ruff(ruff, "check")
    assert r.returncode == 0, f"ruff check {' '.join(PATHS)}:\n{r.stdout}{r.stderr}"


def test_ruff_format_leaves_the_code_as_it_is(ruff):
    r = run_ruff(ruff, "format", "--check")
    where = " ".join(PATHS)
    assert r.returncode == 0, f"ruff format --check {where} (run `ruff format {where}`):\n{r.stdout}{r.stderr}"
