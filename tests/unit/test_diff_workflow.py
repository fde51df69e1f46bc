"""The pull-request workflow users copy: its shell steps run here, in order, against a real git repository with a
base branch, with the gpucloud CLI on PATH, the way GitHub Actions runs them (env in, $GITHUB_OUTPUT out)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS, ROOT
from gpucloud.diff import review

WORKFLOW = ROOT / ".github" / "workflows" / "plan.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def step(name: str) -> dict:
    return next(s for s in workflow()["jobs"]["plan"]["steps"] if s.get("name") == name)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", *args], cwd=repo, check=True,
                   capture_output=True)


def test_triggers_permissions_and_shared_constants():
    wf = workflow()
    on = wf[True]  # YAML 1.1 reads the key 'on' as true
    assert "labeled" in on["pull_request"]["types"] and "synchronize" in on["pull_request"]["types"]
    assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert wf["env"]["ALLOW_LABEL"] == review.ALLOW_LABEL
    assert f"const marker = '{review.MARKER}';" in step("Post or update the comment")["with"]["script"]
    checkout = wf["jobs"]["plan"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0
    for name in ("Changed specs", "Plan", "Build the comment", "Gate"):
        assert "${{" not in step(name)["run"], f"{name}: inputs come through env so the script runs locally"


class Runner:
    """Runs the workflow's `run:` scripts like Actions does: bash -e, env from the step, outputs collected."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo, self.outputs = repo, {}
        shim = tmp / "bin"
        shim.mkdir()
        (shim / "gpucloud").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gpucloud "$@"\n')
        (shim / "gpucloud").chmod(0o755)
        self.env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
                    "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"), "ALLOW_LABEL": review.ALLOW_LABEL}

    def run(self, name: str, **env: str) -> subprocess.CompletedProcess:
        s = step(name)
        out = self.repo / ".github_output"
        out.write_text("")
        proc = subprocess.run(["bash", "-e", "-c", s["run"]], cwd=self.repo, capture_output=True, text=True,
                              env={**self.env, "GITHUB_OUTPUT": str(out), **env}, timeout=600)
        self.outputs[s.get("id", name)] = dict(line.split("=", 1) for line in out.read_text().splitlines())
        return proc


@pytest.fixture
def pull_request(tmp_path):
    """main holds the lab spec; the pull request's branch removes the home filesystem and edits a partition."""
    repo = tmp_path / "repo"
    (repo / "clusters").mkdir(parents=True)
    shutil.copy(CLUSTERS / "lab.yaml", repo / "clusters" / "lab.yaml")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "lab")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "-b", "change")
    spec = repo / "clusters" / "lab.yaml"
    data = yaml.safe_load(spec.read_text())
    data["storage"] = [fs for fs in data["storage"] if fs["name"] != "home"]
    data["slurm"]["partitions"][1]["max_time"] = "02:00:00"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    (repo / "README.md").write_text("not a spec\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "change")
    return repo


def test_workflow_steps_gate_a_destroys_data_change_until_the_label(pull_request, tmp_path):
    r = Runner(pull_request, tmp_path)
    proc = r.run("Changed specs", BASE="origin/main")
    assert proc.returncode == 0, proc.stderr
    assert (pull_request / "specs.txt").read_text() == "clusters/lab.yaml\n"
    assert r.outputs["specs"] == {"count": "1"}

    proc = r.run("Plan")
    assert proc.returncode == 0 and r.outputs["plan"] == {"rc": "0"}, proc.stderr
    assert (pull_request / "plans" / "lab" / "plan.md").exists()

    proc = r.run("Build the comment", BASE="origin/main", ALLOWED="false")
    assert proc.returncode == 0, proc.stderr
    assert r.outputs["comment"] == {"rc": "3"}
    body = (pull_request / "comment.md").read_text()
    assert body.startswith(review.MARKER) and "remove filesystem home" in body
    assert (tmp_path / "summary.md").read_text() == body

    gate = r.run("Gate", PLAN_RC="0", COMMENT_RC="3")
    assert gate.returncode == 1 and review.ALLOW_LABEL in gate.stdout

    r.run("Build the comment", BASE="origin/main", ALLOWED="true")
    assert r.outputs["comment"] == {"rc": "1"}
    assert r.run("Gate", PLAN_RC="0", COMMENT_RC="1").returncode == 0


def test_gate_fails_on_spec_errors():
    for plan_rc, comment_rc in (("2", "2"), ("0", "2"), ("0", "")):
        proc = subprocess.run(["bash", "-e", "-c", step("Gate")["run"]], capture_output=True, text=True,
                              env={**os.environ, "PLAN_RC": plan_rc, "COMMENT_RC": comment_rc,
                                   "ALLOW_LABEL": review.ALLOW_LABEL})
        assert proc.returncode == 1, (plan_rc, comment_rc, proc.stdout)
