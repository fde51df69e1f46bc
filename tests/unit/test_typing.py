"""The package ships its types (PEP 561) and the test command type-checks it before the tests run."""

from __future__ import annotations

import re
import tomllib

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_py_typed_is_in_the_package_and_its_build():
    assert (ROOT / "gpucloud" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["gpucloud"]


def test_mypy_checks_the_whole_package_from_the_test_extra():
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0] for dep in test_extra}
    assert "mypy" in names
    conf = PYPROJECT["tool"]["mypy"]
    assert conf["files"] == ["gpucloud"] and conf["check_untyped_defs"] is True
    assert "ignore_missing_imports" not in conf  # only per library, in the overrides


def test_the_test_command_runs_mypy_before_pytest_and_stops_on_errors():
    text = (ROOT / "scripts" / "test.sh").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    mypy = next(i for i, line in enumerate(lines) if "-m mypy" in line)
    pytest = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert mypy < pytest
    # under `set -e` (not yet turned off by `set +e`), so a failing mypy ends the run
    assert "set -euo pipefail" in lines[:mypy] and "set +e" not in lines[:mypy]
