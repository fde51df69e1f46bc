"""Slurm boundaries the rest of the fast suite let through: the RealMemory floor, DefCpuPerGPU/DefMemPerGPU over
pools of different shapes, default_time equal to max_time, topology/block on exactly Slurm 24.05 (and tree without a
fabric), and AllowAccounts for the owners of a dedicated pool.

Each test fails under a one-line bug listed in scripts/mutants.py.
"""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import yaml

from conftest import CLUSTERS
from gpucloud import catalog
from gpucloud.checks import run_checks
from gpucloud.pipeline import check_spec
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.slurm import MEMORY_RESERVE_MIN_MIB, plan_slurm
from gpucloud.render.slurm import render

LAB = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())


def lab(tmp_path, edit=None):
    data = yaml.safe_load(yaml.safe_dump(LAB))
    if edit:
        edit(data)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    assert checked.spec is not None, [f.message for f in checked.findings]
    return checked


def slurm_conf(spec) -> str:
    sp = plan_slurm(spec, plan_hosts(spec))
    return render(SimpleNamespace(slurm=sp))["slurm/slurm.conf"].decode()


def partition_line(conf: str, name: str) -> dict[str, str]:
    line = next(ln for ln in conf.splitlines() if ln.startswith(f"PartitionName={name} "))
    return dict(kv.split("=", 1) for kv in line.split())


# --- RealMemory: 5 % kept back, but never less than 4 GiB, rounded down to whole GiB ---

def test_real_memory_keeps_at_least_the_floor_on_a_small_node(tmp_path, monkeypatch):
    # The model is resolved when the spec is loaded: shrink it first.
    model = catalog.SERVERS["hgx-h100-8"]
    monkeypatch.setitem(catalog.SERVERS, "hgx-h100-8", dataclasses.replace(model, memory_gib=32))
    spec = lab(tmp_path).spec
    (group,) = [g for g in plan_slurm(spec, plan_hosts(spec)).nodes if g.pool == "gpu"]
    # 5 % of 32 GiB is 1.6 GiB, below the floor: 4 GiB are kept back, not 1.6
    assert MEMORY_RESERVE_MIN_MIB == 4096
    assert group.real_memory_mib == 32 * 1024 - 4096 == 28672


def test_real_memory_of_a_large_node_is_five_percent_less_in_whole_gib(tmp_path):
    spec = lab(tmp_path).spec
    (group,) = [g for g in plan_slurm(spec, plan_hosts(spec)).nodes if g.pool == "gpu"]
    # 2048 GiB: 104,857 MiB kept back, 1,992,295 MiB left, rounded down to 1,945 GiB
    assert group.real_memory_mib == 1945 * 1024
    assert f"RealMemory={1945 * 1024}" in slurm_conf(spec)


# --- DefCpuPerGPU / DefMemPerGPU: the smallest share of any pool of the partition ---

def _mixed(data):
    data["node_pools"].append({"name": "small", "id": 3, "model": "h100-4", "count": 1, "hostname": "small{index:02}",
                               "roles": ["compute"], "rack": {"name": "lab{rack:02}", "first": 3},
                               "image": "ubuntu-22.04-gpu"})
    data["slurm"]["partitions"][0]["pools"] = ["gpu", "small"]


def test_per_gpu_defaults_are_the_minimum_over_pools_of_different_shapes(tmp_path):
    checked = lab(tmp_path, _mixed)
    assert not checked.fails("error"), [f.message for f in checked.findings if f.level == "error"]
    conf = slurm_conf(checked.spec)
    groups = {g.pool: g for g in plan_slurm(checked.spec, plan_hosts(checked.spec)).nodes}
    big, small = groups["gpu"], groups["small"]
    # hgx-h100-8: 224 CPUs / 8 GPUs = 28, 1,991,680 MiB / 8 = 248,960; h100-4: 192 / 4 = 48, 995,328 / 4 = 248,832.
    # Each minimum comes from a different pool, so a maximum (or either pool alone) gives another line.
    assert (big.cpus // big.gpus, small.cpus // small.gpus) == (28, 48)
    assert (big.real_memory_mib // big.gpus, small.real_memory_mib // small.gpus) == (248960, 248832)
    gpu = partition_line(conf, "gpu")
    assert (gpu["DefCpuPerGPU"], gpu["DefMemPerGPU"]) == ("28", "248832")
    # A partition of one pool gets that pool's share.
    debug = partition_line(conf, "debug")
    assert (debug["DefCpuPerGPU"], debug["DefMemPerGPU"]) == ("28", "248960")


# --- default_time and max_time ---

def _times(default_time, max_time):
    def edit(data):
        data["slurm"]["partitions"][1].update(default_time=default_time, max_time=max_time)
    return edit


def test_default_time_equal_to_max_time_is_accepted(tmp_path):
    checked = lab(tmp_path, _times("01:00:00", "01:00:00"))
    assert [f for f in checked.findings if f.check == "slurm-partition-time"] == []
    assert re.search(r"PartitionName=debug .*MaxTime=01:00:00 DefaultTime=01:00:00 ", slurm_conf(checked.spec))


def test_default_time_a_minute_over_max_time_is_refused(tmp_path):
    checked = lab(tmp_path, _times("01:01:00", "01:00:00"))
    (f,) = [f for f in checked.findings if f.check == "slurm-partition-time"]
    assert f.level == "error" and f.path[-1] == "default_time"


# --- topology/block arrived in Slurm 23.11; the BlockSizes= our topology.conf writes in 24.05 ---

def _block(version):
    def edit(data):
        data["slurm"]["topology"] = "block"
        data["software"]["slurm"] = version
    return edit


def test_block_topology_on_exactly_24_05_is_accepted(tmp_path):
    for version in ("24.05", "24.05.0", "24.11.5"):
        spec = lab(tmp_path, _block(version)).spec
        assert [f for f in run_checks(spec) if f.check == "slurm-topology"] == [], version
        assert "TopologyPlugin=topology/block" in slurm_conf(spec)


def test_block_topology_before_24_05_is_refused(tmp_path):
    for version in ("24.02", "23.02.7", "22.05"):
        spec = lab(tmp_path, _block(version)).spec
        (f,) = [f for f in run_checks(spec) if f.check == "slurm-topology"]
        assert f.level == "error" and "24.05" in f.message, version


def test_block_topology_on_23_11_is_refused_for_block_sizes(tmp_path):
    """23.11 has topology/block but not BlockSizes= (it had BlockLevels=), which our topology.conf writes: a spec
    that asks for block on 23.11 stops, naming software.slurm and the release to set."""
    checked = lab(tmp_path, _block("23.11.10"))
    (f,) = [f for f in checked.findings if f.check == "slurm-topology"]
    assert f.level == "error" and f.path == ("slurm", "topology"), f
    assert "BlockSizes" in f.message and "software.slurm is 23.11.10" in f.message, f.message
    assert f.hint == "set software.slurm to 24.05 or later, or use topology: tree"
    assert checked.fails()


# --- AllowAccounts: owners of a dedicated pool reach every partition over it ---

def test_dedicated_pool_owner_is_allowed_on_every_partition_over_the_pool(tmp_path):
    def edit(data):
        data["tenants"].append({"name": "owners", "pools": ["gpu"], "users": ["dave"]})
    conf = slurm_conf(lab(tmp_path, edit).spec)
    assert partition_line(conf, "gpu")["AllowAccounts"] == "owners,research"
    assert partition_line(conf, "debug")["AllowAccounts"] == "owners,research,teaching"


# --- topology: tree needs a fabric to describe, block does not ---

def _no_fabric(topology, version="24.11.5"):
    def edit(data):
        data.pop("fabric")
        data["slurm"]["topology"] = topology
        data["software"]["slurm"] = version
    return edit


def test_tree_topology_without_a_fabric_is_refused(tmp_path):
    spec = lab(tmp_path, _no_fabric("tree")).spec
    assert [f.level for f in run_checks(spec) if f.check == "slurm-topology" and "planned fabric" in f.message] == [
        "error"]


def test_block_topology_without_a_fabric_is_not_asked_for_one(tmp_path):
    spec = lab(tmp_path, _no_fabric("block")).spec
    assert [f for f in run_checks(spec) if f.check == "slurm-topology"] == []
