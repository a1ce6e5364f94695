"""Every registered adapter, on every device it declares, has what a run there needs: a
tox environment that installs the extra of the same name, that extra in pyproject.toml,
and only distributions whose versions its manifests record. A GPU-capable adapter that
forgets one of these fails here, on the CPU, instead of on the first GPU it meets.

Read from the files and the adapter classes alone: no framework is imported.
"""

from __future__ import annotations

import configparser
import re
import tomllib

import pytest

from bench.adapters import adapter_class, framework_names, framework_of_environment
from bench.envs import ORT_ENVIRONMENTS, REPO_ROOT, env_name

#: What an ONNX Runtime environment must record (bench/ort.py: ort_info).
ORT_DISTRIBUTIONS = {"onnxruntime": ("onnxruntime-gpu",)}


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normal(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def _tox() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO_ROOT / "tox.ini")
    return cfg


def _extras() -> dict[str, list[str]]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["optional-dependencies"]


def _declared() -> list[tuple[str, str, str]]:
    """(group, device, environment) for every adapter and ONNX Runtime."""
    rows = [
        (name, device, env)
        for name in framework_names()
        for device, env in adapter_class(name).environments.items()
    ]
    return rows + [("onnxruntime", d, env) for d, env in ORT_ENVIRONMENTS.items()]


def _recorded(group: str) -> set[str]:
    """The distributions a group's records carry: canonical names and their aliases."""
    if group == "onnxruntime":
        names = {"onnxruntime", *ORT_DISTRIBUTIONS["onnxruntime"]}
    else:
        cls = adapter_class(group)
        aliases = cls.distribution_aliases
        names = {*cls.distributions, *(a for d in cls.distributions for a in aliases.get(d, ()))}
    return {_normal(n) for n in names}


DECLARED = _declared()


def test_every_adapter_declares_its_cpu_environment():
    for name in framework_names():
        envs = adapter_class(name).environments
        assert "cpu" in envs, f"{name}: environments {dict(envs)} has no 'cpu' entry"
        assert set(envs) <= {"cpu", "cuda"}, f"{name}: unknown device in {dict(envs)}"


@pytest.mark.parametrize(
    ("group", "device", "env"), DECLARED, ids=[f"{g}-{d}" for g, d, _ in DECLARED]
)
def test_environment_is_defined_in_tox_and_pyproject(group, device, env):
    tox, extras = _tox(), _extras()
    section = f"testenv:{env}"
    assert tox.has_section(section), f"{group} on {device}: tox.ini has no [{section}]"
    listed = {e.strip() for e in re.split(r"[,\n]", tox.get(section, "extras", fallback=""))}
    assert env in listed, f"[{section}] must install the extra {env!r}; it has {sorted(listed)}"
    assert env in extras, f"{group} on {device}: pyproject.toml has no extra {env!r}"


@pytest.mark.parametrize(
    ("group", "device", "env"), DECLARED, ids=[f"{g}-{d}" for g, d, _ in DECLARED]
)
def test_environment_installs_only_recorded_distributions(group, device, env):
    """A requirement whose version no manifest records would change a model's inputs
    unseen; an alias missing (``mxnet-cu112`` for ``mxnet``) would read as "not
    installed" and change the build key between the CPU and the GPU environment."""
    recorded = _recorded(group)
    for requirement in _extras().get(env, []):
        name = _requirement_name(requirement)
        assert name in recorded, (
            f"{group} on {device}: extra {env!r} installs {name!r}, which is neither among "
            f"the distributions it records nor their aliases ({sorted(recorded)})"
        )


@pytest.mark.parametrize(
    ("group", "device", "env"), DECLARED, ids=[f"{g}-{d}" for g, d, _ in DECLARED]
)
def test_environment_names_lead_back_to_the_group(group, device, env):
    """``tox -e <env>`` runs ``--framework <env>``, which must select the adapter; a run
    on the device must use the environment."""
    if group != "onnxruntime":
        assert framework_of_environment(env) == group
    assert env_name(group, [device]) == env


def test_a_framework_without_a_gpu_build_runs_its_cpu_environment():
    for name in framework_names():
        envs = adapter_class(name).environments
        if "cuda" not in envs:
            assert env_name(name, ["cuda"]) == envs["cpu"]


def test_every_extra_of_an_environment_belongs_to_one():
    """No orphan: every framework extra is some group's environment (or a tool extra)."""
    tools = {"report", "test", "dev", "history", "fleet"}  # the results history, the Dask fleet
    envs = {env for _, _, env in DECLARED}
    orphans = set(_extras()) - envs - tools
    assert not orphans, f"extras no adapter or ONNX Runtime declares: {sorted(orphans)}"


def test_every_gpu_capable_adapter_records_its_gpu_settings():
    from bench.adapters.base import Adapter

    for name in framework_names():
        cls = adapter_class(name)
        if "cuda" in cls.environments:
            assert cls.gpu_settings is not Adapter.gpu_settings, (
                f"{name} runs on cuda but reports no GPU settings (Adapter.gpu_settings)"
            )
