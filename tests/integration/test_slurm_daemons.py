"""The rendered Slurm configuration under real daemons: Debian's slurmctld, slurmd, slurmdbd and MariaDB.

One lab cluster (munge, MariaDB, slurmdbd, slurmctld, two slurmd with eight fake GPUs each) serves every test of
the module; the other examples each get a slurmctld of their own that shares the lab's munge and slurmdbd.
"""

from __future__ import annotations

import importlib
import os
import re
import time

import pytest
import yaml

from conftest import CLUSTERS, EXAMPLES
from gpucloud.hostlist import expand
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import RENDERERS
from slurm_harness import SlurmHarness, missing_binaries

pytestmark = pytest.mark.integration

_missing = missing_binaries(accounting=True)
if os.geteuid() != 0:
    pytest.skip("the Slurm daemons run in private mount namespaces, which needs root", allow_module_level=True)
if _missing:
    pytest.skip(f"Slurm test binaries not installed: {', '.join(_missing)} (.ci/run installs them)",
                allow_module_level=True)


def planned(path):
    """The plan and the files under slurm/ (ours and the fabric's topology.conf), through the registered renderers;
    the other renderers are skipped: they cost seconds on the large examples and Slurm never reads their files."""
    checked = check_spec(path)
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    plan = build_plan(checked.spec, tuple(checked.findings))
    files = {}
    for module, name in RENDERERS:
        if module.startswith("gpucloud.render.slurm"):
            files.update(getattr(importlib.import_module(module), name)(plan))
    return plan, files


def compute_hosts(plan) -> list[str]:
    return [h.name for pp in plan.pools if "compute" in pp.pool.roles for h in pp.hosts]


def harness_for(root, plan, files, nodes=None, shared=None) -> SlurmHarness:
    """slurmctld resolves every node's address when it starts: small clusters list them in the private
    /etc/hosts, large ones resolve them through the harness's catch-all DNS."""
    sp = plan.slurm
    nodes = compute_hosts(plan) if nodes is None else nodes
    return SlurmHarness(root, files, sp.controllers, nodes=nodes, services=[sp.dbd_host] if sp.dbd_host else [],
                        shared=shared, dns_for_nodes=len(nodes) > 500)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    plan, files = planned(CLUSTERS / "lab.yaml")
    nodes = compute_hosts(plan)
    h = harness_for(tmp_path_factory.mktemp("slurm-lab"), plan, files, nodes)
    try:
        h.start_munge()
        h.start_mariadb()
        h.start_slurmdbd(plan.slurm.dbd_host)
        # The deploy order: slurmdbd, slurmctld (it registers the cluster and its gres/gpu TRES, which the QOS
        # limits name), then the tenants.
        h.start_slurmctld()
        first = h.run("sh", str(h.plan_dir / "tenants.sh"), timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        # Test jobs are submitted by root: give root an association in both tenants' accounts (test-only).
        h.run("sacctmgr", "-i", "add", "user", "root", "account=research,teaching", check=True)
        for node in nodes:
            h.start_slurmd(node, gpus=8)
        h.wait_nodes_idle(nodes)
        yield h, plan, files, first.stdout
    finally:
        h.cancel_jobs()
        h.stop()


def test_sinfo_matches_plan(lab):
    h, plan, _, _ = lab
    out = h.run("sinfo", "-h", "-o", "%R|%D|%l|%N|%G", check=True).stdout.split()
    got = {line.split("|")[0]: line.split("|")[1:] for line in out}
    want = {p.name: p for p in plan.slurm.partitions}
    assert set(got) == set(want)
    for name, (count, limit, nodes, gres) in got.items():
        assert int(count) == want[name].node_count
        assert sorted(expand(nodes)) == sorted(expand(want[name].nodes))
        assert limit == want[name].max_time.replace("01:00:00", "1:00:00")
        assert gres.startswith("gpu:h100:8")
    default = h.run("sinfo", "-h", "-o", "%P", check=True).stdout.split()
    assert [p for p in default if p.endswith("*")] == ["gpu*"]


def test_scontrol_show_node_matches_plan(lab):
    h, plan, _, _ = lab
    (group,) = plan.slurm.nodes
    for node in expand(group.names):
        text = h.run("scontrol", "show", "node", node, check=True).stdout
        fields = dict(re.findall(r"(\w+)=(\S+)", text))
        assert fields["CPUTot"] == str(group.cpus)
        assert fields["RealMemory"] == str(group.real_memory_mib)
        assert fields["Gres"].startswith("gpu:h100:8")
        assert fields["AvailableFeatures"] == ",".join(group.features)
        assert set(fields["Partitions"].split(",")) == {p.name for p in plan.slurm.partitions}
        assert "gres/gpu=8" in fields["CfgTRES"]


def test_topology_matches_plan(lab):
    h, plan, files, _ = lab
    assert plan.spec.slurm.topology == "tree"  # the lab asks for topology/tree: its topology.conf must be there
    text = files["slurm/topology.conf"].decode()
    want = set(re.findall(r"^SwitchName=(\S+)", text, re.M))
    got = {}
    for line in h.run("scontrol", "show", "topology", check=True).stdout.splitlines():
        name = re.search(r"SwitchName=(\S+)", line)
        nodes = re.search(r"\bNodes=(\S+)", line)
        if name:
            got[name.group(1)] = sorted(expand(nodes.group(1))) if nodes else []
    assert set(got) == want
    leaves = re.findall(r"^SwitchName=(\S+)\s+Nodes=(\S+)", text, re.M)
    assert leaves
    for name, nodes in leaves:
        assert got[name] == sorted(expand(nodes))


def test_eight_gpu_job_sees_every_device(lab):
    h, _, _, _ = lab
    r = h.run("srun", "-p", "gpu", "-A", "research", "-N1", "--gres=gpu:8", "printenv", "CUDA_VISIBLE_DEVICES",
              timeout=90)
    assert r.returncode == 0, r.stderr + h.logs()
    assert r.stdout.split() == ["0,1,2,3,4,5,6,7"]


def test_job_runs_across_two_slurmd(lab):
    h, _, _, _ = lab
    r = h.run("srun", "-p", "debug", "-A", "research", "-N2", "--ntasks-per-node=1", "--gres=gpu:1",
              "printenv", "SLURMD_NODENAME", timeout=90)
    assert r.returncode == 0, r.stderr + h.logs()
    assert sorted(r.stdout.split()) == ["gpu01", "gpu02"]


def test_partition_admits_only_its_tenants(lab):
    h, _, _, _ = lab
    # teaching lists only 'debug'; the 'gpu' partition is closed to it by AllowAccounts.
    # EnforcePartLimits=ALL refuses it at submission instead of queueing it for ever.
    r = h.run("srun", "--immediate=20", "-p", "gpu", "-A", "teaching", "-N1", "--gres=gpu:1", "true", timeout=60)
    assert r.returncode != 0
    assert "invalid account or account/partition combination" in r.stderr.lower(), r.stderr


def _qos_dump(h) -> str:
    qos = h.run("sacctmgr", "-nP", "show", "qos", "format=name,grptres,maxwall,priority", check=True).stdout
    assoc = h.run("sacctmgr", "-nP", "show", "assoc", "where", "cluster=lab",
                  "format=account,user,qos,defaultqos", check=True).stdout
    users = h.run("sacctmgr", "-nP", "show", "user", "format=user,defaultaccount", check=True).stdout
    return qos + assoc + users


def test_tenant_script_creates_then_changes_nothing(lab):
    h, plan, _, first = lab
    assert "added qos research" in first and "added account teaching" in first
    assert "added user carol to teaching" in first
    qos = {line.split("|")[0]: line.split("|")[1:]
           for line in h.run("sacctmgr", "-nP", "show", "qos", "format=name,grptres,maxwall,priority",
                             check=True).stdout.split()}
    assert qos["research"] == ["gres/gpu=8", "2-00:00:00", "0"]
    assert qos["teaching"] == ["gres/gpu=4", "", "0"]
    users = dict(line.split("|") for line in h.run("sacctmgr", "-nP", "show", "user",
                                                   "format=user,defaultaccount", check=True).stdout.split())
    assert (users["alice"], users["bob"], users["carol"]) == ("research", "research", "teaching")
    before = _qos_dump(h)
    again = h.run("sh", str(h.plan_dir / "tenants.sh"), timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "tenants of lab: unchanged\n"
    assert _qos_dump(h) == before


def test_job_over_the_gpu_limit_waits_on_its_qos(lab):
    h, _, _, _ = lab
    ids = []
    try:
        for _ in range(2):  # teaching may hold 4 GPUs: the first job takes them, the second must wait
            r = h.run("sbatch", "--parsable", "-p", "debug", "-A", "teaching", "-N1", "--gres=gpu:4", "-t", "5",
                      "--wrap", "sleep 120", check=True)
            ids.append(r.stdout.strip().split(";")[0])
        deadline = time.monotonic() + 60
        states = {}
        while time.monotonic() < deadline:
            out = h.run("squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r", check=True).stdout.split()
            states = {i: (t, r) for i, t, r in (line.split("|") for line in out)}
            if states.get(ids[0], ("",))[0] == "RUNNING" and states.get(ids[1], ("", ""))[1] == "QOSGrpGRES":
                break
            time.sleep(0.5)
        assert states[ids[0]][0] == "RUNNING", states
        assert states[ids[1]] == ("PENDING", "QOSGrpGRES"), states
    finally:
        if ids:
            h.run("scancel", *ids)


def test_slurmctld_refuses_what_the_checks_stop(lab, tmp_path):
    """A partition over a pool without slurmd would name unknown nodes: slurmctld exits, and validate says why
    before anything is rendered."""
    h, plan, files, _ = lab
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["slurm"]["partitions"].append({"name": "login", "pools": ["login"]})
    spec = tmp_path / "lab.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    assert "slurm-partition-pool" in {f.check for f in check_spec(spec).findings if f.level == "error"}
    broken = dict(files)
    broken["slurm/slurm.conf"] = files["slurm/slurm.conf"] + b"PartitionName=login Nodes=login01 State=UP\n"
    other = harness_for(tmp_path / "broken", plan, broken, shared=h)
    rc, out = other.config_verdict()
    assert rc == 1, out
    assert "login01" in out


@pytest.mark.parametrize("example", [p for p in EXAMPLES if p.stem != "lab"], ids=lambda p: p.stem)
def test_slurmctld_accepts_example(example, lab, tmp_path):
    h = lab[0]
    plan, files = planned(example)
    other = harness_for(tmp_path, plan, files, shared=h)
    try:
        other.run("sacctmgr", "-i", "add", "cluster", plan.slurm.cluster_name, check=True)
        other.start_slurmctld()
        out = other.run("sinfo", "-h", "-o", "%R|%D", check=True).stdout.split()
        assert dict(line.split("|") for line in out) == {p.name: str(p.node_count) for p in plan.slurm.partitions}
        if plan.slurm.topology_plugin == "topology/tree":
            want = set(re.findall(r"^SwitchName=(\S+)", files["slurm/topology.conf"].decode(), re.M))
            shown = other.run("scontrol", "show", "topology", check=True, timeout=120).stdout
            assert set(re.findall(r"SwitchName=(\S+)", shown)) == want
    finally:
        other.stop()
