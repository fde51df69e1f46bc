"""``gpucloud accept`` against real Slurm daemons (22.05: munge, MariaDB, slurmdbd, slurmctld and one slurmd per
node, through tests/integration/slurm_harness.py) with stand-in GPU and InfiniBand tools on the jobs' PATH.

The stand-ins (tests/fixtures/accept/bin) print the real tools' documented output formats; they were written for
these tests, not recorded on hardware. The cluster is the lab example grown to six GPU nodes in SUs of four, so
SU 1 holds gpu01-04 and SU 2 gpu05-06: gpu02 fails a DCGM test, gpu03 has slow NVLink (single-node NCCL), and
gpu05 a slow cable that only a two-node run shows. gpu05's own SU has no other good node, so its partner comes
from SU 1.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import RENDERERS
from slurm_harness import SlurmHarness, skip_module_without_slurm

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "accept"
NODES = [f"gpu{i:02d}" for i in range(1, 7)]
FAULTS = {"gpu02": "dcgm", "gpu03": "nccl", "gpu05": "link"}

skip_module_without_slurm(accounting=True)


def _spec(tmp: Path) -> Path:
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["node_pools"][0]["count"] = len(NODES)
    data["fabric"]["compute"]["scalable_unit"] = 4
    for pool in data["node_pools"][1:]:
        pool["rack"]["first"] = 3  # the second GPU rack takes lab02
    path = tmp / "lab6.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accept")
    spec = _spec(tmp)
    checked = check_spec(spec)
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    plan = build_plan(checked.spec)
    files = {}
    for module, name in RENDERERS:
        if module.startswith("gpucloud.render.slurm"):
            files.update(getattr(importlib.import_module(module), name)(plan))
    sp = plan.slurm
    h = SlurmHarness(tmp / "slurm", files, sp.controllers, nodes=NODES, services=[sp.dbd_host])
    try:
        h.start_munge()
        h.start_mariadb()
        h.start_slurmdbd(sp.dbd_host)
        h.start_slurmctld()
        tenants = h.run("sh", str(h.plan_dir / "tenants.sh"), timeout=120)
        assert tenants.returncode == 0, tenants.stdout + tenants.stderr
        h.run("sacctmgr", "-i", "add", "user", "root", "account=research", check=True)
        # The test jobs run under an account without a GPU cap (a two-node run holds 16 GPUs, and several run at
        # once); test-only: the tenant's own QOS would keep them pending on QOSGrpGRES.
        h.run("sacctmgr", "-i", "modify", "qos", "research", "set", "GrpTRES=gres/gpu=-1", check=True)
        for node in NODES:
            h.start_slurmd(node, gpus=8)
        h.wait_nodes_idle(NODES)
        faults = tmp / "faults"
        faults.write_text("".join(f"{kind} {node}\n" for node, kind in FAULTS.items()))
        yield h, spec, faults, tmp
    finally:
        h.cancel_jobs()
        h.stop()


def gpucloud(h: SlurmHarness, faults: Path, *args: str, timeout: float = 600):
    env = {"PATH": f"{FIX / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "GPUCLOUD_FAKE_FAULTS": str(faults), "GPUCLOUD_ACCEPT_SYSFS": str(FIX / "sysfs")}
    return h.run(sys.executable, "-m", "gpucloud", *args, timeout=timeout, env=env)


def node_fields(h: SlurmHarness, node: str) -> dict:
    text = h.run("scontrol", "--oneliner", "show", "node", node, check=True).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", text))
    reason = re.search(r"Reason=(.*?)(?: \[[^\]]*\])?(?= \w+=|$)", text.strip())
    fields["Reason"] = reason.group(1) if reason else ""
    return fields


def test_accept_resumes_healthy_nodes_and_holds_faulty_ones_with_the_reason(cluster):
    h, spec, faults, tmp = cluster
    held = gpucloud(h, faults, "accept", str(spec), "--hold")
    assert held.returncode == 0, held.stderr
    for node in NODES:
        f = node_fields(h, node)
        assert "DRAIN" in f["State"] and f["Reason"] == "accept: pending", f

    report = tmp / "report"
    r = gpucloud(h, faults, "accept", str(spec), "--parallel", "3", "--account", "research", "--report", str(report))
    assert r.returncode == 1, r.stdout + r.stderr + h.logs()

    states = {n: node_fields(h, n) for n in NODES}
    for node in ("gpu01", "gpu04", "gpu06"):
        assert states[node]["State"] == "IDLE", (node, states[node], r.stderr)
        assert states[node]["Reason"] == ""
    assert "DRAIN" in states["gpu02"]["State"]
    assert states["gpu02"]["Reason"].startswith("accept: dcgm GPU Memory gpu 3: Pending page retirements")
    assert "DRAIN" in states["gpu03"]["State"]
    assert states["gpu03"]["Reason"] == "accept: nccl busbw 37.5 < 360 GB/s"
    assert "DRAIN" in states["gpu05"]["State"]
    assert states["gpu05"]["Reason"] == "accept: nccl pair busbw 76.5 < 280 GB/s (with gpu01)"
    # the reservation is gone: the passed nodes take user jobs again
    assert "gpucloud-accept" not in h.run("scontrol", "show", "reservation").stdout
    job = h.run("srun", "-p", "gpu", "-A", "research", "-w", "gpu06", "-N1", "--gres=gpu:8", "hostname", timeout=90)
    assert job.returncode == 0, job.stderr

    data = json.loads((report / "accept.json").read_text())
    assert data["summary"] == {"pass": 3, "fail": 3, "skipped": 0, "untested": 0}
    by_name = {n["name"]: n for n in data["nodes"]}
    assert by_name["gpu03"]["checks"][-1]["busbw_gbs"] == pytest.approx(37.4577)
    assert [p["nodes"] for p in by_name["gpu05"]["pairs"]] == [["gpu05", "gpu06"], ["gpu05", "gpu01"]]
    assert by_name["gpu06"]["result"] == "pass" and by_name["gpu06"]["su"] == 2
    md = (report / "accept.md").read_text()
    assert "| gpu03 | gpu | 1 | fail | accept: nccl busbw 37.5 < 360 GB/s | 37.5 |" in md


def test_accept_skips_nodes_in_service(cluster):
    h, spec, faults, tmp = cluster
    r = gpucloud(h, faults, "accept", str(spec), "--limit", "gpu01", "--report", str(tmp / "again"))
    assert r.returncode == 0, r.stderr
    (node,) = json.loads((tmp / "again" / "accept.json").read_text())["nodes"]
    assert node["result"] == "skipped" and node["reason"].startswith("not held (state idle)")
    assert node_fields(h, "gpu01")["State"] == "IDLE"


def test_accept_refuses_unknown_limit(cluster):
    h, spec, faults, _ = cluster
    r = gpucloud(h, faults, "accept", str(spec), "--limit", "login01")
    assert r.returncode == 2
    assert "not compute nodes of lab" in r.stderr
