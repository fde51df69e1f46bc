"""A rollout batch of rack-scale NVLink trays holds the whole rack, against a real slurmctld (slurm_harness).

The lab's two GPU nodes stand for the trays of one NVLink domain. ``gpucloud.stack.rollout.roll`` runs with its real
Slurm client (scontrol and sinfo against the test controller) and stand-ins for the targeted update, converge and
the health check that record Slurm's view of both trays at the moment they run. The real engine's part of a
rollout is tested in test_pulumi_rollout.py; here only the rack matters.

Asserted:
- replacing one tray drains both: while the replaced tray is updated and converged, its rack-mate is drained too
  (a job there would use the replaced tray's GPUs over NVLink); both are resumed at the end;
- a job on the tray that is not replaced holds the whole batch: the drain wait times out, nothing is updated, the
  drain is undone and the job still runs.
"""

from __future__ import annotations

import importlib

import pytest
from conftest import CLUSTERS

pytest.importorskip("pulumi.automation")

from gpucloud.pipeline import check_spec  # noqa: E402
from gpucloud.plan import build_plan  # noqa: E402
from gpucloud.plan.rollout import Domain, batches  # noqa: E402
from gpucloud.render import RENDERERS  # noqa: E402
from gpucloud.stack.rollout import Hooks, NodeSteps, RolloutFailed, Slurm, roll  # noqa: E402
from slurm_harness import SlurmHarness, skip_module_without_slurm  # noqa: E402

pytestmark = pytest.mark.integration

skip_module_without_slurm(accounting=True)

TRAYS = ["gpu01", "gpu02"]
RACK = {"gpu": [Domain("rack01", tuple(TRAYS), 2)]}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    checked = check_spec(CLUSTERS / "lab.yaml")
    plan = build_plan(checked.spec, tuple(checked.findings))
    files: dict[str, bytes] = {}
    for module, name in RENDERERS:
        if module.startswith("gpucloud.render.slurm"):
            files.update(getattr(importlib.import_module(module), name)(plan))
    assert [h.name for h in plan.pools[0].hosts] == TRAYS
    sp = plan.slurm
    harness = SlurmHarness(tmp_path_factory.mktemp("rack-slurm"), files, sp.controllers, nodes=TRAYS,
                           services=[sp.dbd_host] if sp.dbd_host else [])
    try:
        harness.start_munge()
        harness.start_mariadb()
        harness.start_slurmdbd(sp.dbd_host)
        harness.start_slurmctld()
        tenants = harness.run("sh", str(harness.plan_dir / "tenants.sh"), timeout=120)
        assert tenants.returncode == 0, tenants.stdout + tenants.stderr
        harness.run("sacctmgr", "-i", "add", "user", "root", "account=research,teaching", check=True)
        for node in TRAYS:
            harness.start_slurmd(node, gpus=8)
        harness.wait_nodes_idle(TRAYS)
        yield harness
    finally:
        harness.cancel_jobs()
        harness.stop()


def _client(slurm: SlurmHarness) -> Slurm:
    env = slurm._env(slurm.client_name)
    return Slurm(prefix=slurm._wrap([]),
                 env={k: env[k] for k in ("SLURM_CONF", "GPUCLOUD_HOSTS", "GPUCLOUD_HOSTNAME")})


def _roll(slurm: SlurmHarness, timeout: float) -> list:
    client = _client(slurm)
    log: list = []

    def seen(step):
        return lambda hosts: log.append((step, tuple(hosts), client.states(TRAYS))) or 0

    hooks = Hooks(slurm=client, converge=seen("converge"), health=seen("health"), poll_interval=1)
    nodes = {"gpu01": NodeSteps(("urn:gpu01",), False, "gpu")}
    plan = batches(["gpu01"], [("gpu", TRAYS, 2)], domains=RACK)
    assert [(b.nodes, b.peers) for b in plan] == [(("gpu01",), ("gpu02",))]
    roll(None, plan, nodes, {"gpu": timeout}, {"gpu"}, hooks, lambda m: None,
         lambda stack, urns: log.append(("up", tuple(urns), client.states(TRAYS))))
    return log


def _states(slurm: SlurmHarness) -> dict[str, str]:
    return _client(slurm).states(TRAYS)


def test_replacing_one_tray_drains_and_resumes_its_whole_rack(slurm):
    log = _roll(slurm, timeout=60)
    assert [(step, hosts) for step, hosts, _ in log] == [("up", ("urn:gpu01",)), ("converge", ("gpu01",)),
                                                         ("health", ("gpu01",))]
    for step, _, states in log:
        assert states == {"gpu01": "drained", "gpu02": "drained"}, (step, states)
    slurm.wait_for("both trays idle", lambda: _states(slurm) == {"gpu01": "idle", "gpu02": "idle"}, 60)


def test_a_job_on_the_untouched_tray_holds_the_batch(slurm):
    job = slurm.run("sbatch", "--parsable", "-p", "debug", "-A", "teaching", "-N1", "-t", "10", "-w", "gpu02",
                    "--wrap", "sleep 300", check=True).stdout.strip().split(";")[0]
    slurm.wait_for(f"job {job} running on gpu02",
                   lambda: slurm.run("squeue", "-h", "-j", job, "-o", "%T", timeout=20).stdout.strip() == "RUNNING",
                   60)
    with pytest.raises(RolloutFailed) as exc:
        _roll(slurm, timeout=3)
    assert "gpu02 (draining) still run jobs after 3 s" in str(exc.value)
    assert slurm.run("squeue", "-h", "-j", job, "-o", "%T", timeout=20).stdout.strip() == "RUNNING"
    # The drain is undone on both trays ("*": the loaded test machine's slurmd answered a ping late, not a state).
    states = {n: s.rstrip("*") for n, s in _states(slurm).items()}
    assert states["gpu01"] == "idle" and states["gpu02"] in ("allocated", "mixed"), states
    slurm.cancel_jobs()
