"""Run one storage role with ansible-playbook on localhost (connection local), in a private folder per run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CLUSTERS, ROOT
from gpucloud.plan import build_plan
from gpucloud.render import storage as render
from gpucloud.spec import load

ROLES = ROOT / "playbooks" / "roles"
# The venv's own ansible-playbook when pytest runs from one that is not activated (scripts/test.sh).
_SIBLING = Path(sys.executable).parent / "ansible-playbook"
ANSIBLE_PLAYBOOK = str(_SIBLING) if _SIBLING.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None
               and not (t == "ansible-playbook" and Path(ANSIBLE_PLAYBOOK).exists())]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs them)")


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices, mounts and mount namespaces need root")


def pool_vars(cluster: str, pool: str) -> dict:
    spec = load(CLUSTERS / f"{cluster}.yaml").spec
    return render.pool_vars(build_plan(spec), pool)


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc, self.out = proc.returncode, proc.stdout + proc.stderr
        m = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", self.out)
        assert m, self.out[-3000:]
        self.ok, self.changed, self.failed = (int(g) for g in m.groups())


def converge(tmp_path: Path, role: str, variables: dict, run: int = 0) -> Result:
    work = tmp_path / f"ansible-{role}-{run}"
    work.mkdir(parents=True)
    (work / "play.yml").write_text(f"- hosts: localhost\n  connection: local\n  gather_facts: false\n"
                                   f"  roles:\n    - role: {role}\n")
    (work / "vars.json").write_text(json.dumps({**variables, "ansible_python_interpreter": sys.executable}))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_HOME": str(work / "home"),
           "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_REMOTE_TMP": str(work / "rtmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_PIPELINING": "1"}
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "play.yml", "-e", "@vars.json"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=300)
    return Result(proc)
