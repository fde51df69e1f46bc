"""`gpucloud apply --all` with the real Pulumi engine on a split cluster: the lab with provider.pod_size 1 is two
stacks (lab-shared: control plane and storage; lab-gpu-pod000: the GPU nodes). Harness: pulumi_harness.Lab.

The rollout across stacks (--all --allow-replace) runs ``apply.run_stacks`` in a child process (ROLL_ALL) with
stand-ins for Slurm (every node idle, drained as soon as asked), converge and the health check, which record each
step and, at converge, the image each node has in its stack's state file; tests/integration/test_pulumi_rollout.py
runs one stack's rollout against a real slurmctld."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("requests")
pytest.importorskip("bcrypt")
pytest.importorskip("pulumi.automation")

from gpucloud.stack import apply  # noqa: E402
from conftest import ROOT  # noqa: E402
from pulumi_harness import LAYERS, PASSWORD, Lab, engine_or_skip  # noqa: E402

pytestmark = pytest.mark.integration

STACKS = ("lab-shared", "lab-gpu-pod000")
LOGIN = "first_u: 10}\n    image: ubuntu-22.04-base"

ROLL_ALL = r"""
import json, sys
from pathlib import Path
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.stack import apply, rollout

spec, record, states = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
checked = check_spec(spec)
plan = build_plan(checked.spec, tuple(checked.findings))

def log(step, hosts):
    images = {}
    if step == "converge":
        for path in sorted(states.glob("*.json")):
            for r in json.loads(path.read_text())["checkpoint"]["latest"]["resources"]:
                if r["type"].endswith(":RedfishNode"):
                    images[r["outputs"]["node"]] = r["outputs"]["image"]
    with record.open("a") as fh:
        fh.write(json.dumps({"step": step, "hosts": list(hosts), "images": images}) + "\n")

class Slurm:
    def __init__(self):
        self.drained = set()
    def states(self, nodes):
        return {n: "drained" if n in self.drained else "idle" for n in nodes}
    def drain(self, nodes):
        self.drained.update(nodes)
        log("drain", nodes)
    def resume(self, nodes):
        self.drained.difference_update(nodes)
        log("resume", nodes)

def converge(hosts):
    log("converge", hosts)
    return 0

def health(hosts):
    log("health", hosts)
    return 0

hooks = rollout.Hooks(slurm=Slurm(), converge=converge, health=health, poll_interval=0)
requests = [apply.Request(spec=spec, stack=s, allow_replace=True) for s in apply.stack_names(plan)]
sys.exit(apply.run_stacks(requests, plan, lambda m: print(m, flush=True), hooks).code)
"""


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    engine = engine_or_skip()
    lab = Lab(tmp_path_factory.mktemp("split"), engine, stacks=STACKS, extra="  pod_size: 1")
    try:
        yield lab
    finally:
        lab.stop()


def test_all_updates_every_stack_shared_first(split):
    result = split.apply()
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert PASSWORD not in out
    assert all(bmc.system()["PowerState"] == "On" for bmc in split.bmcs.values())
    ran = split.layer_log.read_text().splitlines()
    # Each stack runs the six layers over its own hosts: the shared stack first.
    assert len(ran) == 2 * len(LAYERS)
    assert all("--limit" in line for line in ran)
    shared, pod = ran[: len(LAYERS)], ran[len(LAYERS):]
    assert "gpu" not in " ".join(line.split("--limit", 1)[1] for line in shared)
    assert all("gpu" in line.split("--limit", 1)[1] for line in pod)
    for stack in STACKS:
        assert split.state_file(stack).exists()


def test_all_refuses_a_replacement_in_any_stack_before_touching_any(split):
    before = {stack: split.state_file(stack).read_bytes() for stack in STACKS}
    moved = split.write_spec("lab-new-images.yaml", {LOGIN: LOGIN.replace("22.04", "24.04"),
                                                     "image: ubuntu-22.04-gpu": "image: ubuntu-24.04-gpu"})
    result = split.apply(spec=moved)
    out = result.stdout + result.stderr
    assert result.returncode == apply.EXIT_REFUSED, out[-4000:]
    assert "3 node(s) of 2 stacks: lab-shared/login01, lab-gpu-pod000/gpu01, lab-gpu-pod000/gpu02" in out
    assert {stack: split.state_file(stack).read_bytes() for stack in STACKS} == before


def test_all_with_allow_replace_rolls_each_stacks_nodes_in_its_own_batches_shared_stack_first(split, tmp_path):
    moved = split.write_spec("lab-new-images.yaml", {LOGIN: LOGIN.replace("22.04", "24.04"),
                                                     "image: ubuntu-22.04-gpu": "image: ubuntu-24.04-gpu"})
    record = tmp_path / "steps.jsonl"
    states = split.state / ".pulumi" / "stacks" / "gpucloud"
    result = subprocess.run([sys.executable, "-c", ROLL_ALL, str(moved), str(record), str(states)], cwd=ROOT,
                            env=split.env, capture_output=True, text=True, timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert PASSWORD not in out
    assert "stack lab-shared: rolling 1 node(s) in 1 batch(es)" in out
    assert "stack lab-gpu-pod000: rolling 2 node(s) in 2 batch(es)" in out
    steps = [json.loads(line) for line in record.read_text().splitlines()]
    # login01 is no Slurm node: converged only. Each GPU node: drained, replaced, converged, checked, resumed,
    # one at a time (the pool's default budget of 10 % is 1 node).
    assert [(s["step"], s["hosts"]) for s in steps] == [
        ("converge", ["login01"]),
        ("drain", ["gpu01"]), ("converge", ["gpu01"]), ("health", ["gpu01"]), ("resume", ["gpu01"]),
        ("drain", ["gpu02"]), ("converge", ["gpu02"]), ("health", ["gpu02"]), ("resume", ["gpu02"]),
    ]
    images = [s["images"] for s in steps if s["step"] == "converge"]
    # Each targeted up replaced its batch only: the pod stack is untouched while the shared stack rolls.
    # ctl01 runs the provisioning service: its BMC resource carries no image (never PXE-booted by apply).
    assert images[0] == {"ctl01": "", "login01": "ubuntu-24.04-base",
                         "gpu01": "ubuntu-22.04-gpu", "gpu02": "ubuntu-22.04-gpu"}
    assert (images[1]["gpu01"], images[1]["gpu02"]) == ("ubuntu-24.04-gpu", "ubuntu-22.04-gpu")
    assert (images[2]["gpu01"], images[2]["gpu02"]) == ("ubuntu-24.04-gpu", "ubuntu-24.04-gpu")
    assert all(bmc.system()["PowerState"] == "On" for bmc in split.bmcs.values())
    again = split.apply(spec=moved)  # nothing left to replace: the gate lets it through with no changes
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
