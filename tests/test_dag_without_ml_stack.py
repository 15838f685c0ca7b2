"""The DAG builds on a login node that has snakemake, pandas and pyyaml but no model stack.

A folder first on PYTHONPATH holds packages ``torch``, ``diffusers``, ``transformers`` and
``cv2`` that raise ImportError when imported, so any of them imported while the DAG is
built fails the dry run. pydantic cannot be shadowed the same way, because Snakemake itself
imports it (its persistence layer is built on sqlmodel); instead the folder's
``sitecustomize`` refuses pydantic to every import statement in the workflow's own files
(Snakefile, rules/, motionedit/), which is where a heavy import would come from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import MODEL_STACK, ROOT, unimportable

pytestmark = pytest.mark.e2e
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
BLOCKED = tuple(name for name in MODEL_STACK if name != "pydantic")

SITECUSTOMIZE = """
import builtins
import os
import sys

_OWN = tuple(p for p in os.environ["BLOCK_PYDANTIC_IN"].split(os.pathsep) if p)
_import = builtins.__import__


def _guarded(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] == "pydantic":
        caller = sys._getframe(1).f_code.co_filename
        if caller.startswith(_OWN):
            raise ImportError(f"pydantic is not importable here (imported by {caller})")
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = _guarded
"""


@pytest.fixture
def without_ml_stack(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which the model stack cannot be imported."""
    folder = unimportable(tmp_path / "blocked", BLOCKED)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    own = [str(ROOT / "Snakefile"), str(ROOT / "rules"), str(ROOT / "motionedit")]
    return os.environ | {
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]),
        "BLOCK_PYDANTIC_IN": os.pathsep.join(own),
        "HF_HUB_OFFLINE": "1",
    }


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT
    )


def test_the_blockers_block(without_ml_stack, tmp_path):
    """The check below could not fail if the blockers did not bite: each heavy package,
    and pydantic imported from one of the workflow's files, raises ImportError."""
    for name in BLOCKED:
        proc = _python(f"import {name}", without_ml_stack)
        assert proc.returncode != 0 and "ImportError" in proc.stderr, name
    proc = _python("import motionedit.models.base", without_ml_stack)
    assert "torch is not installed" in proc.stderr
    own = tmp_path / "own"
    own.mkdir()
    (own / "uses_pydantic.py").write_text("import pydantic\n")
    env = without_ml_stack | {
        "BLOCK_PYDANTIC_IN": str(own),
        "PYTHONPATH": f"{without_ml_stack['PYTHONPATH']}{os.pathsep}{own}",
    }
    proc = _python("import pydantic; import uses_pydantic", env)
    assert "pydantic is not importable here" in proc.stderr, proc.stderr
    assert _python("import snakemake.persistence", without_ml_stack).returncode == 0


def test_the_default_dag_builds_without_the_model_stack(without_ml_stack, tmp_path):
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "--cores",
            "2",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(ROOT / "config.yaml"),
            "--directory",
            str(tmp_path),
        ],
        env=without_ml_stack,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The whole default job is planned: mining, training, inference, evaluation, report.
    for rule in ("fetch", "judge", "dataset", "sft", "train", "infer", "summarize"):
        assert f"rule {rule}:" in proc.stdout or f"\n{rule} " in proc.stdout, rule
