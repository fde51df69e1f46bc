"""`gpucloud apply --all` with the real Pulumi engine on a split cluster: the lab with provider.pod_size 1 is two
stacks (lab-shared: control plane and storage; lab-gpu-pod000: the GPU nodes). Harness: pulumi_harness.Lab."""

from __future__ import annotations


import pytest

pytest.importorskip("requests")
pytest.importorskip("bcrypt")
pytest.importorskip("pulumi.automation")

from gpucloud.stack import apply  # noqa: E402
from pulumi_harness import LAYERS, PASSWORD, Lab, engine_or_skip  # noqa: E402

pytestmark = pytest.mark.integration

STACKS = ("lab-shared", "lab-gpu-pod000")


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
    login = "first_u: 10}\n    image: ubuntu-22.04-base"
    moved = split.write_spec("lab-new-images.yaml", {login: login.replace("22.04", "24.04"),
                                                     "image: ubuntu-22.04-gpu": "image: ubuntu-24.04-gpu"})
    result = split.apply(spec=moved)
    out = result.stdout + result.stderr
    assert result.returncode == apply.EXIT_REFUSED, out[-4000:]
    assert "3 node(s) of 2 stacks: lab-shared/login01, lab-gpu-pod000/gpu01, lab-gpu-pod000/gpu02" in out
    assert {stack: split.state_file(stack).read_bytes() for stack in STACKS} == before
