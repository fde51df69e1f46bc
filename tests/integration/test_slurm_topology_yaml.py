"""topology.yaml for NVL72 racks beside HGX nodes, under the Slurm of Debian testing (25.05 or later).

Before 25.05 a cluster has one topology plugin, so HGX nodes beside NVL72 racks share topology/block (one block per
scalable unit). From 25.05 the planner writes topology.yaml instead: a tree over the compute fabric (the cluster
default) and a block topology over the NVLink domains, which the partitions of NVL72 pools name (``Topology=``).
The harness is ``slurm24_harness`` with the root of Debian testing (forky: Slurm 26.05 today), built by
``scripts/build-slurm-root.sh forky``; the rendered slurm.conf, topology.yaml and gres.conf are given to the daemons
unchanged but for the keys ``test_slurm24_nvl72`` explains (what the root does not hold).

The small cluster: 2 racks of 2 GB200 trays (a hardware override of the tray) and 2 HGX H100 nodes, with a
scalable unit of 4 trays, so the fabric's tree puts all four trays under one leaf switch while the NVLink blocks
split them by rack. The control (the same files without ``Topology=nvlink`` on the partition) shows that the block
topology, not the tree, keeps the two-tray job inside one rack.
"""

from __future__ import annotations

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.hostlist import expand
from gpucloud.plan.hosts import nvlink_domains
from nvl_mixed import mixed_spec, rendered
from slurm24_harness import Slurm24Harness, parse_fields, skip_module_without_slurm24
from test_slurm24_nvl72 import SERVED_ELSEWHERE, SERVED_ELSEWHERE_UNSET, job_id

pytestmark = pytest.mark.integration

ROOT = skip_module_without_slurm24("forky")
TRAYS = ["gb0001", "gb0002", "gb0003", "gb0004"]
HGX = ["hgx01", "hgx02"]
ACCOUNT = "frontier-lab"  # in both partitions' AllowAccounts (no slurmdbd: the name alone)


def run_pair(directory, plan, files) -> tuple[list[str], list[str], dict[str, dict[str, list[str]]]]:
    """Start the cluster (4 fake GPUs per tray, 8 per HGX node), hold gb0001, submit a two-tray job to partition gpu
    and a two-node job to partition hgx: the nodes of each, and the topologies slurmctld shows."""
    nodes = TRAYS + HGX
    h = Slurm24Harness(directory, {n: files[f"slurm/{n}"] for n in ("slurm.conf", "topology.yaml", "gres.conf")},
                       plan.slurm.controllers[0], nodes, ROOT, overrides=SERVED_ELSEWHERE,
                       unset=SERVED_ELSEWHERE_UNSET)
    try:
        h.start_munge()
        h.start_slurmctld()
        shown = {}
        for name, key in (("fabric", "SwitchName"), ("nvlink", "BlockName")):
            lines = map(parse_fields, h.scontrol("show", "topology", name).splitlines())
            shown[name] = {f[key]: expand(f["Nodes"]) for f in lines if key in f and "Nodes" in f}
        shown["partition gpu"] = {"Topology": [w.split("=", 1)[1] for w in h.scontrol("show", "partition", "gpu").split()
                                               if w.startswith("Topology=")]}
        for node in nodes:
            h.start_slurmd(node, gpus=4 if node in TRAYS else 8)
        h.wait_nodes_idle(nodes)
        hold = job_id(h.sbatch("-N1", "-w", "gb0001", f"--account={ACCOUNT}", script="#!/bin/sh\nsleep 600\n"))
        assert h.wait_job(hold)["NodeList"] == "gb0001"
        pair = h.wait_job(job_id(h.sbatch("-N2", "-p", "gpu", f"--account={ACCOUNT}",
                                          script="#!/bin/sh\nsleep 600\n")))
        hgx = h.wait_job(job_id(h.sbatch("-N2", "-p", "hgx", f"--account={ACCOUNT}",
                                         script="#!/bin/sh\nsleep 600\n")))
        assert pair["JobState"] == hgx["JobState"] == "RUNNING", (pair, hgx)
        return expand(pair["NodeList"]), expand(hgx["NodeList"]), shown
    finally:
        h.cancel_jobs()
        h.stop()


def test_nvl72_partition_places_by_rack_and_hgx_by_the_fabric_tree(tmp_path):
    plan, files = rendered(mixed_spec(tmp_path, "26.05.5"))
    assert "slurm/topology.conf" not in files and b"TopologyPlugin" not in files["slurm/slurm.conf"]
    racks = {d.name: list(d.hosts) for d in nvlink_domains(plan.pools)}
    assert racks == {"nvl01": ["gb0001", "gb0002"], "nvl02": ["gb0003", "gb0004"]}
    pair, hgx, shown = run_pair(tmp_path / "yaml", plan, files)
    assert shown["nvlink"] == racks and shown["partition gpu"] == {"Topology": ["nvlink"]}
    assert shown["fabric"]["su001"] == TRAYS and shown["fabric"]["su002"] == HGX
    assert shown["fabric"]["fabric"] == TRAYS + HGX  # every compute node is on the default topology
    # gb0001 held: the lowest free pair (gb0002 + gb0003, the control below) would straddle the racks.
    assert pair == racks["nvl02"]
    assert hgx == HGX  # outside every block, yet scheduled: its partition uses the tree


def test_without_the_partitions_topology_the_pair_straddles_the_racks(tmp_path):
    """The control: the same files without Topology=nvlink on partition gpu put the two-tray job on the cluster
    default (the tree, whose leaf holds all four trays): gb0002 and gb0003, one tray in each rack."""
    plan, files = rendered(mixed_spec(tmp_path, "26.05.5"))
    conf = files["slurm/slurm.conf"]
    assert conf.count(b" Topology=nvlink") == 1
    files["slurm/slurm.conf"] = conf.replace(b" Topology=nvlink", b"")
    pair, hgx, shown = run_pair(tmp_path / "tree", plan, files)
    assert shown["partition gpu"] == {"Topology": []}
    assert pair == ["gb0002", "gb0003"] and hgx == HGX


def test_slurmctld_takes_the_example_with_hgx_pools_at_full_size(tmp_path):
    """clusters/nvl72.yaml (64 racks, 1,152 trays) with 256 HGX H100 nodes on the same fabric: slurmctld 26.05 reads
    both topologies of the planned topology.yaml, every rack a block and every compute node on the tree."""
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text(encoding="utf-8"))
    data["node_pools"].insert(1, {"name": "hgx", "id": 3, "model": "hgx-h100-8", "count": 256,
                                  "hostname": "hgx{index:03}", "roles": ["compute"],
                                  "rack": {"name": "hgx{rack:02}", "nodes_per_rack": 4}, "image": "ubuntu-24.04-base"})
    data["slurm"]["topology"] = "block"
    data["slurm"]["partitions"].append({"name": "hgx", "pools": ["hgx"]})
    for tenant in data["tenants"]:
        tenant["partitions"] = [*tenant["partitions"], "hgx"]
    data["software"]["slurm"] = "26.05.5"
    path = tmp_path / "nvl72-hgx.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    plan, files = rendered(path)
    assert plan.slurm.topology_yaml and "slurm/topology.conf" not in files
    computes = [h.name for pp in plan.pools if "compute" in pp.pool.roles for h in pp.hosts]
    assert len(computes) == 1152 + 256
    h = Slurm24Harness(tmp_path / "run", {n: files[f"slurm/{n}"] for n in ("slurm.conf", "topology.yaml", "gres.conf")},
                       plan.slurm.controllers[0], computes, ROOT, overrides=SERVED_ELSEWHERE,
                       unset=SERVED_ELSEWHERE_UNSET)
    try:
        h.start_munge()
        h.start_slurmctld()
        blocks = {f["BlockName"]: expand(f["Nodes"]) for f in
                  map(parse_fields, h.scontrol("show", "topology", "nvlink").splitlines()) if "BlockName" in f}
        assert blocks == {d.name: list(d.hosts) for d in nvlink_domains(plan.pools)} and len(blocks) == 64
        tree = [parse_fields(line) for line in h.scontrol("show", "topology", "fabric").splitlines() if line.strip()]
        top = max(tree, key=lambda f: int(f["Level"]))
        assert sorted(expand(top["Nodes"])) == sorted(computes)
        shown = {p: " ".join(w.split("=", 1)[1] for w in h.scontrol("show", "partition", p).split()
                             if w.startswith("Topology=")) for p in ("gpu", "debug", "hgx")}
        assert shown == {"gpu": "nvlink", "debug": "nvlink", "hgx": ""}
    finally:
        h.stop()
