"""`gpucloud apply --allow-replace` rolls a replacement in batches: the real Pulumi engine against sushy-emulator
BMCs (pulumi_harness.Lab) and a real slurmctld with one slurmd per lab GPU node (slurm_harness), the same node
names in both.

The rollout runs through ``apply.run_stacks`` in a child process (ROLL below), with its Slurm client pointed at the
test slurmctld (inside the harness's namespace, where the cluster's names resolve) and stand-ins for converge and
the health check that record, at the moment they run, Slurm's view of both GPU nodes, the image each node has in
the Pulumi state file and each BMC's boot override.

Asserted, in order (each test builds on the state the previous one left):
- an image change of the GPU pool with max_unavailable 1 rolls in two batches, printed before they start: gpu01
  is drained, replaced (the state has the new image for gpu01 only; its BMC got a one-time PXE boot, gpu02's did
  not) and converged while gpu02 is still in service; then gpu02 the same way, with gpu01 resumed; both end idle;
- a failing converge in batch 1 stops the rollout (exit 1, naming the batch, the step and the nodes left): gpu02
  keeps its image in the state file and stays in service in Slurm, gpu01 stays drained;
- a node running a job is not powered off: the drain wait times out after the pool's drain_timeout, apply stops
  with a message naming the node and the timeout, the state file and the BMC are untouched, the drain is undone
  and the job still runs;
- shrinking the pool removes gpu02 only once it is drained: with a job on it nothing is powered off; without one it
  is drained, then powered off, and stays drained.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLUSTERS, ROOT

pytest.importorskip("requests")
pytest.importorskip("bcrypt")
pytest.importorskip("pulumi.automation")

from gpucloud.pipeline import check_spec  # noqa: E402
from gpucloud.plan import build_plan  # noqa: E402
from gpucloud.render import RENDERERS  # noqa: E402
from gpucloud.stack import apply  # noqa: E402
from pulumi_harness import PASSWORD, USER, Lab, engine_or_skip  # noqa: E402
from slurm_harness import SlurmHarness, skip_module_without_slurm  # noqa: E402

pytestmark = pytest.mark.integration

skip_module_without_slurm(accounting=True)

GPU_NODES = ["gpu01", "gpu02"]
OLD_IMAGE = "image: ubuntu-22.04-gpu"

ROLL = r"""
import json, sys
from pathlib import Path
import requests
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.stack import apply, rollout

cfg = json.loads(Path(sys.argv[1]).read_text())
spec = Path(cfg["spec"])
checked = check_spec(spec)
plan = build_plan(checked.spec, tuple(checked.findings))
slurm = rollout.Slurm(prefix=cfg["prefix"], env=cfg["env"])

def snapshot(step, hosts):
    state = json.loads(Path(cfg["state_file"]).read_text())["checkpoint"]["latest"]["resources"]
    images = {r["outputs"]["node"]: r["outputs"]["image"] for r in state if r["type"].endswith(":RedfishNode")}
    boots = {node: requests.get(url, auth=tuple(cfg["auth"]), verify=cfg["ca"], timeout=10).json()["Boot"][
        "BootSourceOverrideTarget"] for node, url in cfg["systems"].items()}
    with open(cfg["record"], "a") as fh:
        fh.write(json.dumps({"step": step, "hosts": list(hosts), "slurm": slurm.states(cfg["nodes"]),
                             "images": images, "boot": boots}) + "\n")

def converge(hosts):
    snapshot("converge", hosts)
    return cfg["converge_rc"]

def health(hosts):
    snapshot("health", hosts)
    return 0

hooks = rollout.Hooks(slurm=slurm, converge=converge, health=health, poll_interval=1)
request = apply.Request(spec=spec, stack="lab", allow_replace=True)
sys.exit(apply.run_stacks([request], plan, lambda m: print(m, flush=True), hooks).code)
"""


def _slurm_files(spec: Path):
    checked = check_spec(spec)
    plan = build_plan(checked.spec, tuple(checked.findings))
    files = {}
    for module, name in RENDERERS:
        if module.startswith("gpucloud.render.slurm"):
            files.update(getattr(importlib.import_module(module), name)(plan))
    return plan, files


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    engine = engine_or_skip()
    plan, files = _slurm_files(CLUSTERS / "lab.yaml")
    nodes = [h.name for pp in plan.pools if "compute" in pp.pool.roles for h in pp.hosts]
    assert nodes == GPU_NODES  # the BMC emulators and the slurmd stand for the same machines
    sp = plan.slurm
    slurm = SlurmHarness(tmp_path_factory.mktemp("rollout-slurm"), files, sp.controllers, nodes=nodes,
                         services=[sp.dbd_host] if sp.dbd_host else [])
    lab = None
    try:
        slurm.start_munge()
        slurm.start_mariadb()
        slurm.start_slurmdbd(sp.dbd_host)
        slurm.start_slurmctld()
        tenants = slurm.run("sh", str(slurm.plan_dir / "tenants.sh"), timeout=120)
        assert tenants.returncode == 0, tenants.stdout + tenants.stderr
        slurm.run("sacctmgr", "-i", "add", "user", "root", "account=research,teaching", check=True)
        for node in nodes:
            slurm.start_slurmd(node, gpus=8)
        slurm.wait_nodes_idle(nodes)
        lab = Lab(tmp_path_factory.mktemp("rollout-engine"), engine)
        yield lab, slurm
    finally:
        if lab is not None:
            lab.stop()
        slurm.cancel_jobs()
        slurm.stop()


def _states(slurm: SlurmHarness) -> dict[str, str]:
    out = slurm.run("sinfo", "-h", "-N", "-o", "%N %T", check=True).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _images(lab: Lab) -> dict[str, str]:
    state = json.loads(lab.state_file().read_text())["checkpoint"]["latest"]["resources"]
    return {r["outputs"]["node"]: r["outputs"]["image"] for r in state if r["type"].endswith(":RedfishNode")}


def _set_boot(lab: Lab, target: str) -> None:
    import requests

    for node in GPU_NODES:
        bmc = lab.bmcs[node]
        r = requests.patch(f"{bmc.url}/redfish/v1/Systems/{bmc.uuid}",
                           json={"Boot": {"BootSourceOverrideTarget": target}}, auth=(USER, PASSWORD), timeout=10,
                           verify=bmc.ca)
        r.raise_for_status()
        assert bmc.system()["Boot"]["BootSourceOverrideTarget"] == target


def _roll(lab: Lab, slurm: SlurmHarness, spec: Path, tmp: Path, converge_rc: int = 0):
    record = tmp / "record.jsonl"
    record.unlink(missing_ok=True)
    env = slurm._env(slurm.client_name)
    cfg = {
        "spec": str(spec), "prefix": slurm._wrap([]), "record": str(record), "converge_rc": converge_rc,
        "env": {k: env[k] for k in ("SLURM_CONF", "GPUCLOUD_HOSTS", "GPUCLOUD_HOSTNAME")},
        "nodes": GPU_NODES, "state_file": str(lab.state_file()), "auth": [USER, PASSWORD],
        "ca": lab.bmcs["gpu01"].ca,
        "systems": {n: f"{lab.bmcs[n].url}/redfish/v1/Systems/{lab.bmcs[n].uuid}" for n in GPU_NODES},
    }
    (tmp / "roll.json").write_text(json.dumps(cfg))
    result = subprocess.run([sys.executable, "-c", ROLL, str(tmp / "roll.json")], cwd=ROOT, env=lab.env,
                            capture_output=True, text=True, timeout=900)
    out = result.stdout + result.stderr
    assert PASSWORD not in out
    records = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return result.returncode, out, records


def _spec(lab: Lab, name: str, image: str, drain_timeout: int = 120, extra: dict | None = None) -> Path:
    return lab.write_spec(name, {OLD_IMAGE: f"image: {image}\n    rollout: {{max_unavailable: 1, drain_timeout: "
                                            f"{drain_timeout}}}", **(extra or {})})


def _submit(slurm: SlurmHarness, node: str) -> str:
    job = slurm.run("sbatch", "--parsable", "-p", "debug", "-A", "teaching", "-N1", "-t", "10", "-w", node,
                    "--wrap", "sleep 300", check=True).stdout.strip().split(";")[0]
    slurm.wait_for(f"job {job} running on {node}",
                   lambda: slurm.run("squeue", "-h", "-j", job, "-o", "%T", timeout=20).stdout.strip() == "RUNNING",
                   60)
    return job


def test_create(rig):
    lab, slurm = rig
    result = lab.apply()
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # ctl01 runs the provisioning service: its BMC resource carries no image (never PXE-booted by apply).
    assert _images(lab) == {"ctl01": "", "gpu01": "ubuntu-22.04-gpu", "gpu02": "ubuntu-22.04-gpu",
                            "login01": "ubuntu-22.04-base"}


def test_an_image_change_rolls_one_node_at_a_time_drained_replaced_converged_resumed(rig, tmp_path):
    lab, slurm = rig
    _set_boot(lab, "Hdd")  # so a PXE boot set by the rollout shows
    spec = _spec(lab, "lab-v2.yaml", "ubuntu-24.04-gpu")
    code, out, records = _roll(lab, slurm, spec, tmp_path)
    assert code == 0, out[-4000:]
    assert "2 batch(es)" in out
    assert out.index("batch 1/2: pool gpu, 1 node(s) (budget 1): gpu01") < out.index("drained gpu01")
    assert "batch 2/2: pool gpu, 1 node(s) (budget 1): gpu02" in out
    converge = [r for r in records if r["step"] == "converge"]
    assert [r["hosts"] for r in converge] == [["gpu01"], ["gpu02"]]
    first, second = converge
    # Batch 1: gpu01 drained and reinstalled; gpu02 untouched and in service.
    assert first["slurm"]["gpu01"] == "drained" and first["slurm"]["gpu02"] == "idle"
    assert first["images"]["gpu01"] == "ubuntu-24.04-gpu" and first["images"]["gpu02"] == "ubuntu-22.04-gpu"
    assert first["boot"] == {"gpu01": "Pxe", "gpu02": "Hdd"}
    # Batch 2: gpu01 back in service, gpu02 drained and reinstalled.
    assert second["slurm"]["gpu01"] == "idle" and second["slurm"]["gpu02"] == "drained"
    assert second["images"] == {**first["images"], "gpu02": "ubuntu-24.04-gpu"}
    assert second["boot"] == {"gpu01": "Pxe", "gpu02": "Pxe"}
    assert [r["hosts"] for r in records if r["step"] == "health"] == [["gpu01"], ["gpu02"]]
    assert _states(slurm) == {"gpu01": "idle", "gpu02": "idle"}
    assert _images(lab)["gpu01"] == _images(lab)["gpu02"] == "ubuntu-24.04-gpu"
    # The rest of the update ran after the batches: a second apply finds nothing to do.
    again = lab.apply(spec=spec)
    assert again.returncode == 0 and "to replace" not in again.stdout + again.stderr


def test_a_failed_converge_stops_the_rollout_with_the_next_batch_untouched(rig, tmp_path):
    lab, slurm = rig
    spec = _spec(lab, "lab-v3.yaml", "ubuntu-24.10-gpu")
    code, out, records = _roll(lab, slurm, spec, tmp_path, converge_rc=1)
    assert code == apply.EXIT_FAILED, out[-4000:]
    assert "the rollout stopped at batch 1/2 (gpu01), step converge" in out
    assert "batches done: none" in out and "nodes left untouched: gpu02" in out
    assert [r["hosts"] for r in records] == [["gpu01"]]  # no health check, no second batch
    assert _images(lab)["gpu01"] == "ubuntu-24.10-gpu" and _images(lab)["gpu02"] == "ubuntu-24.04-gpu"
    assert _states(slurm) == {"gpu01": "drained", "gpu02": "idle"}  # gpu02 still in service


def test_a_node_running_a_job_is_not_powered_off_the_drain_wait_times_out(rig, tmp_path):
    lab, slurm = rig
    slurm.run("scontrol", "update", "nodename=gpu01", "state=resume", check=True)
    job = _submit(slurm, "gpu01")
    _set_boot(lab, "Hdd")
    before = lab.state_file().read_bytes()
    spec = _spec(lab, "lab-v4.yaml", "ubuntu-25.04-gpu", drain_timeout=3)
    code, out, records = _roll(lab, slurm, spec, tmp_path)
    assert code == apply.EXIT_FAILED, out[-4000:]
    assert "gpu01 (draining) still run jobs after 3 s" in out and "no node of this batch was powered off" in out
    assert "step drain" in out and "nodes left untouched: gpu02" in out
    assert records == []
    assert lab.state_file().read_bytes() == before
    system = lab.bmcs["gpu01"].system()
    assert system["PowerState"] == "On" and system["Boot"]["BootSourceOverrideTarget"] == "Hdd"
    assert slurm.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "RUNNING"
    assert _states(slurm)["gpu01"].rstrip("*") in ("allocated", "mixed")  # the drain was undone
    slurm.run("scancel", job, check=True)


def test_shrinking_the_pool_powers_off_a_removed_node_only_once_it_is_drained(rig, tmp_path):
    lab, slurm = rig
    slurm.wait_nodes_idle(GPU_NODES)
    job = _submit(slurm, "gpu02")
    shrink = {"    count: 2\n    hostname: \"gpu{index:02}\"": "    count: 1\n    hostname: \"gpu{index:02}\""}
    # The image stays as the state has it for gpu01, so only the removal of gpu02 rolls.
    spec = _spec(lab, "lab-shrunk.yaml", "ubuntu-24.10-gpu", drain_timeout=3, extra=shrink)
    code, out, _ = _roll(lab, slurm, spec, tmp_path)
    assert code == apply.EXIT_FAILED, out[-4000:]
    assert "gpu02 (draining) still run jobs" in out
    assert lab.bmcs["gpu02"].system()["PowerState"] == "On"
    slurm.run("scancel", job, check=True)
    slurm.wait_for("gpu02 idle", lambda: _states(slurm)["gpu02"] == "idle", 60)
    code, out, records = _roll(lab, slurm, spec, tmp_path)
    assert code == 0, out[-4000:]
    assert "1 batch(es)" in out and "powering off gpu02" in out
    assert records == []  # a removed node is not converged
    assert lab.bmcs["gpu02"].system()["PowerState"] == "Off"
    assert set(_images(lab)) == {"gpu01", "ctl01", "login01"}
    assert _states(slurm)["gpu02"] == "drained"
