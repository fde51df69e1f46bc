"""The Quickstart installs what the full offline dry-run needs and ends by pointing at the plan's plan.md.

Running the script itself needs a network (pip) and minutes; these checks read it and the setup it calls, so a
Quickstart that drops the Pulumi SDK again (and writes a plan whose Pulumi graph was checked by nothing) fails here.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

from conftest import ROOT

QUICKSTART = ROOT / "scripts" / "quickstart.sh"
SETUP = ROOT / "scripts" / "setup.sh"


def _commands(path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")]


def test_quickstart_installs_the_deploy_extra_with_the_pulumi_sdk():
    # Planning needs the SDK, not the engine: the quickstart skips the engine's build from Go modules.
    assert "GPUCLOUD_BUILD_ENGINE=0 scripts/setup.sh --deploy" in _commands(QUICKSTART)
    assert '"${GPUCLOUD_BUILD_ENGINE:-1}" != 0' in SETUP.read_text()
    assert "pip install -q -e '.[deploy]'" in SETUP.read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0] for dep in extras["deploy"]}
    # gpucloud/render/pulumi.py checks the graph under mocks only when the SDK imports; the configuration layers
    # are a dynamic provider of the project's own (gpucloud/stack/layer.py), so no provider package is needed.
    assert "pulumi" in names and "pulumi-command" not in names


def test_quickstart_checks_the_sdk_before_planning_and_ends_at_plan_md():
    commands = _commands(QUICKSTART)
    sdk = next(i for i, c in enumerate(commands) if c == ".venv/bin/python -c 'import pulumi' || {")
    plan = next(i for i, c in enumerate(commands) if c.startswith(".venv/bin/gpucloud plan "))
    assert sdk < plan
    out = commands[plan].split("--out ", 1)[1].split()[0]
    assert commands[-1].startswith("echo ") and f"{out}/plan.md" in commands[-1]


def test_setup_refuses_an_unknown_option():
    res = subprocess.run(["bash", str(SETUP), "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "usage: scripts/setup.sh [--deploy|--test]" in res.stderr
