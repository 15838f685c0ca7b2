"""Every rule carries a log, a pinned environment and its resources; the CPU and CUDA
variants of an environment differ only in the torch build."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT

RULE_FILES = sorted((ROOT / "rules").glob("*.smk"))


def rule_blocks() -> dict[str, str]:
    blocks = {}
    for path in RULE_FILES:
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.M)
        blocks |= dict(zip(parts[1::2], parts[2::2], strict=True))
    return blocks


def test_every_rule_has_a_log_an_environment_and_resources():
    blocks = rule_blocks()
    assert len(blocks) >= 15
    for name, body in blocks.items():
        for directive in ("log:", "conda:", "resources:"):
            assert f"\n    {directive}" in "\n" + body, f"rule {name} has no {directive}"
        assert re.search(r'conda_env\("(\w+)"\)', body), f"rule {name}: conda_env(<family>)"


FAMILIES = sorted(
    {m for p in RULE_FILES for m in re.findall(r'conda_env\("(\w+)"\)', p.read_text())}
)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_environment_is_pinned_and_has_a_cuda_twin(family):
    cpu, cuda = (ROOT / "envs" / f"{family}{s}.yaml" for s in ("", "-cuda"))
    for path in (cpu, cuda):
        env = yaml.safe_load(path.read_text())
        assert env["channels"] == ["conda-forge", "nodefaults"], path
        for dep in env["dependencies"]:
            if isinstance(dep, dict):
                assert all(re.fullmatch(r"[\w.-]+==[\w.]+", d) for d in dep["pip"]), dep
            else:
                assert re.fullmatch(r"[\w.-]+=[\w.]+", dep), f"{path.name}: {dep} is not pinned"
    torch_lines = [
        (a, b)
        for a, b in zip(
            yaml.safe_load(cpu.read_text())["dependencies"],
            yaml.safe_load(cuda.read_text())["dependencies"],
            strict=True,
        )
        if a != b
    ]
    assert torch_lines == [("pytorch-cpu=2.13.0", "pytorch-gpu=2.13.0")]
