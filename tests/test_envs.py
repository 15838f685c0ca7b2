"""Every rule carries a log, a pinned environment and its resources; the CPU and CUDA
variants of an environment differ only in the torch build."""

from __future__ import annotations

import json
import re
import subprocess
import sys

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


#: conda-forge names of packages PyPI knows by another name.
PYPI_NAMES = {"pytorch-cpu": "torch", "pytorch-gpu": "torch", "matplotlib-base": "matplotlib"}
ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_txt() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[_norm(name)] = version
    return pins


def pins(path) -> tuple[dict[str, str], dict[str, str]]:
    """An environment's conda pins (name -> version) and its pip pins, by normalised name."""
    conda, pip = {}, {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            pip |= {_norm(n): v for n, v in (d.split("==") for d in dep["pip"])}
        else:
            name, version = dep.split("=")
            conda[name] = version
    return conda, pip


def as_pypi(conda: dict[str, str]) -> dict[str, str]:
    return {_norm(PYPI_NAMES.get(n, n)): v for n, v in conda.items() if n not in ("python", "pip")}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_every_pin_is_the_one_requirements_txt_installs(path):
    """The venv that setup.sh builds and the conda environments run the same versions, so a
    result does not depend on --software-deployment-method."""
    wanted = requirements_txt()
    conda, pip = pins(path)
    assert conda["python"] == "3.11"
    for name, version in (as_pypi(conda) | pip).items():
        assert name in wanted, f"{path.name}: {name} is not in requirements.txt"
        expected = wanted[name]
        assert version == expected, f"{path.name}: {name} {version}, requirements {expected}"


def _reachable(url: str) -> str | None:
    """None when ``url`` answers, else why not."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            reply.read(1)
    except OSError as exc:
        return f"{url} cannot be reached ({exc})"
    return None


PYPI = "https://pypi.org/simple/"


@pytest.mark.e2e
@pytest.mark.parametrize("family", FAMILIES)
def test_each_environments_pins_resolve_together_on_the_package_index(family, tmp_path):
    """pip resolves the pip section with the conda packages pinned as conda installs them
    (torch for pytorch-cpu/-gpu, whose requirements are the same): the pins exist and
    agree with what each package requires, on the real index, not this machine's cache.
    The interpreter is the venv's, Python 3.11 as in the environments."""
    why = _reachable(PYPI)
    if why:
        pytest.skip(why)
    conda, pip = pins(ROOT / "envs" / f"{family}.yaml")
    wanted = as_pypi(conda) | pip
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(wanted.items())))
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--quiet",
         "--disable-pip-version-check", "--ignore-installed", "--index-url", PYPI,
         "--report", str(report), "-r", str(requirements)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"envs/{family}.yaml does not resolve:\n{proc.stderr[-3000:]}"
    resolved = {
        _norm(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    for name, version in wanted.items():
        assert resolved.get(name) == version, (name, version, resolved.get(name))


#: The conda-forge packages of every environment, with the versions pinned, as recorded
#: in envs/conda-forge.txt.
def recorded_conda_forge() -> dict[str, str]:
    lines = (ROOT / "envs" / "conda-forge.txt").read_text().splitlines()
    entries = [line.split("#")[0].split() for line in lines]
    return {e[0]: e[1] for e in entries if e}


def test_every_conda_package_is_on_the_recorded_conda_forge_list():
    recorded = recorded_conda_forge()
    for path in ENVS:
        conda, _ = pins(path)
        for name, version in conda.items():
            assert recorded.get(name) == version, f"{path.name}: {name}={version} not recorded"
    used = {n for path in ENVS for n in pins(path)[0]}
    assert set(recorded) == used, "envs/conda-forge.txt lists packages no environment uses"


@pytest.mark.e2e
def test_the_recorded_conda_forge_versions_exist():
    """Each recorded package version is published on conda-forge (anaconda.org's API)."""
    api = "https://api.anaconda.org/package/conda-forge/"
    why = _reachable(api + "python")
    if why:
        pytest.skip(f"conda-forge is not reachable from here: {why}")
    import urllib.request

    for name, version in recorded_conda_forge().items():
        with urllib.request.urlopen(api + name, timeout=30) as reply:
            published = json.loads(reply.read())["versions"]
        wanted = (
            version
            if name != "python"
            else next((v for v in published if v.startswith(version + ".")), version)
        )
        assert wanted in published, f"conda-forge has no {name} {version}"
