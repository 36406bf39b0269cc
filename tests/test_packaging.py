"""The two ways to install (pip via pyproject.toml, conda via environment.yml) stay in step."""

from __future__ import annotations

import re

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

from ser_utils import config


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((config.REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((config.REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_names = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert pip_names == conda_names
    assert "python=3.11" in env["dependencies"]


def test_every_environment_dependency_says_what_uses_it():
    lines = [line for line in (config.REPO_ROOT / "environment.yml").read_text().splitlines()
             if line.strip().startswith("- ") and ">=" in line]
    assert lines and all("#" in line for line in lines)


def test_torch_requirement_stays_open_for_gpu_users():
    project = tomllib.loads((config.REPO_ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if _name(r) == "torch")
    assert "==" not in torch_req
