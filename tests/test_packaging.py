"""What the repository promises about itself: license, Python floor, install sets, environment.yml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from labkit import data

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]


def _names(requirements) -> set[str]:
    return {Requirement(r).name.lower() for r in requirements}


def _floor() -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", PROJECT["requires-python"])
    assert match, f"requires-python should be one floor, '>=3.N': {PROJECT['requires-python']!r}"
    return 3, int(match.group(1))


# --------------------------------------------------------------------------- license


def test_mit_license_file_and_field():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the labkit authors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert not [c for c in PROJECT.get("classifiers", []) if c.startswith("License ::")], \
        "an SPDX license expression replaces the License classifier"


# --------------------------------------------------------------------------- the Python floor


def test_one_python_floor_everywhere():
    floor = _floor()
    assert floor == (3, 11), "the tests use tomllib: Python 3.11"
    assert sys.version_info[:2] >= floor, "the suite runs on a Python the package says it supports"
    minors = sorted(int(c.rsplit(".", 1)[1]) for c in PROJECT["classifiers"]
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert minors and minors[0] == floor[1], f"the classifiers start at the floor: {minors}"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python={floor[0]}.{floor[1]}" in env["dependencies"]
    readme = (ROOT / "README.md").read_text()
    assert f"Python {floor[0]}.{floor[1]}" in readme


def test_the_code_needs_no_python_newer_than_the_floor():
    """vermin reads every module and test: none may need a Python newer than the floor, and the floor is needed."""
    floor = "%d.%d" % _floor()
    vermin = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]
    done = subprocess.run([*vermin, "--no-tips", "--eval-annotations", "--violations",
                           f"--target={floor}-", "labkit", "tests", "benchmarks"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"code that needs more than Python {floor}:\n{done.stdout}{done.stderr}"
    needed = subprocess.run([*vermin, "--no-tips", "--eval-annotations", "labkit",
                             "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True, check=True)
    match = re.search(r"Minimum required versions?: (?:~2, )?(?:!2, )?([\d.]+)", needed.stdout)
    assert match and Version(match.group(1)) <= Version(floor), needed.stdout


# --------------------------------------------------------------------------- install sets


def test_the_version_lives_in_labkit():
    import labkit

    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "labkit.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", labkit.__version__)


def test_runtime_needs_only_what_the_notebooks_import():
    deps = {Requirement(r).name.lower(): Requirement(r).specifier for r in PROJECT["dependencies"]}
    assert set(deps) == {"torch", "torchvision", "numpy", "matplotlib", "tqdm", "ipywidgets", "filelock"}
    assert deps["torch"] == SpecifierSet(">=2.1") and deps["torchvision"] == SpecifierSet(">=0.16")
    widgets = deps["ipywidgets"]
    assert all(v in widgets for v in ("7.6.0", "7.7.1", "7.8.5", "8.1.9")) and "9.0" not in widgets
    assert "7.5.1" not in widgets


def test_extras_for_students_instructors_and_ci():
    assert _names(EXTRAS["lab"]) == {"jupyterlab", "ipykernel", "ipywidgets"}
    assert {"nbformat", "nbclient", "papermill", "nbconvert"} <= _names(EXTRAS["grade"])
    test = _names(EXTRAS["test"])
    assert "labkit" not in test, "the test extra lists its packages, it does not refer to other extras"
    assert _names(EXTRAS["lab"]) - {"ipywidgets"} <= test and _names(EXTRAS["grade"]) <= test
    assert {"pytest", "nbval", "playwright", "vermin"} <= test
    assert "dev" not in EXTRAS


def _make_n(target: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("target, extra", [("lab", "lab"), ("test", "test"), ("setup", "test"),
                                           ("run", "grade"), ("handouts", "grade")])
def test_make_installs_the_set_each_target_needs(target, extra):
    installs = re.findall(r"pip install .*-e '\.\[(\w+)\]'", _make_n(target))
    assert installs == [extra], installs


def test_environment_yml_installs_the_lab_set_registers_the_kernel_and_sets_the_data_folder(monkeypatch, tmp_path):
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    [pip] = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip == ["-e .[lab]"]
    # ipykernel installed by conda puts the `python3` kernelspec (the notebooks' kernel) into the environment
    assert "ipykernel" in conda and any(d.startswith("jupyterlab") for d in conda)
    import importlib.metadata as md

    shipped = {str(f).replace("\\", "/").split("share/", 1)[-1] for f in md.distribution("ipykernel").files}
    assert "jupyter/kernels/python3/kernel.json" in shipped, "ipykernel's own package carries the kernelspec"
    assert "python -m ipykernel install" in (ROOT / "environment.yml").read_text()  # and the one command for others
    folder = env["variables"]["LABKIT_DATA"]
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LABKIT_DATA", folder)
    assert data.data_root() == str(tmp_path / folder.removeprefix("~/"))
    monkeypatch.setenv("LABKIT_DATA", "$HOME/x")
    assert data.data_root() == str(tmp_path / "x")
