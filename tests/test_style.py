"""The workflow lints clean and its files are formatted as the community tools want."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    proc = run(str(BIN / "snakemake"), "--lint", "--cores", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_leaves_the_rules_unchanged():
    proc = run(str(BIN / "snakefmt"), "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def tracked_python_files(root: Path) -> list[str] | None:
    """The ``.py`` files git tracks under ``root``, or None outside a git checkout.

    What is committed is what must lint clean. ``ruff check .`` also walked untracked
    scratch files and whatever a symlinked virtual environment inside the checkout holds,
    which failed or slowed the test for files nobody will commit. A tracked file deleted in
    the work tree is left out: ruff would report it missing.
    """
    git = shutil.which("git")
    if git is None:
        return None
    proc = subprocess.run(
        [git, "ls-files", "-z", "--", "*.py"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None
    return sorted(f for f in proc.stdout.split("\0") if f and (root / f).is_file())


def test_ruff_is_clean():
    files = tracked_python_files(ROOT)
    if not files:
        pytest.skip(f"{ROOT} is not a git checkout with Python files; run `ruff check .`")
    # --force-exclude: files named one by one still honour the configured exclusions.
    proc = run(str(BIN / "ruff"), "check", "--force-exclude", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_tracked_files_are_linted(tmp_path: Path):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    assert not tracked_python_files(tmp_path)  # not a checkout: the ruff test skips
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "kept.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "gone.py").write_text("Y = 2\n")
    subprocess.run([git, "add", "pkg"], cwd=tmp_path, check=True)
    (tmp_path / "pkg" / "gone.py").unlink()  # tracked, deleted in the work tree
    (tmp_path / "scratch.py").write_text("import os\n")  # untracked, unused import
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "lib.py").write_text("import sys\n")
    (tmp_path / ".venv").symlink_to(tmp_path / "elsewhere")  # an environment linked in
    assert tracked_python_files(tmp_path) == ["pkg/kept.py"]
