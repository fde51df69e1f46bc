"""The planner's own Slurm files for GB200 NVL72 racks under Slurm 24.11 (Debian 13's, ``slurm24_harness``).

``clusters/nvl72.yaml`` is planned and its rendered ``slurm.conf``, ``topology.conf`` and ``gres.conf`` are given to
slurmctld unchanged; the harness's wrapper slurm.conf sets again only the test machine's paths, ports, users and
authentication (as for every harness), and these keys of the rendered slurm.conf that name what the Debian 13 root
does not hold (``SERVED_ELSEWHERE``, set again; ``SERVED_ELSEWHERE_UNSET``, taken out of the rendered file, as
Slurm parses no empty value to set a key back to its default of none):

* ``AccountingStorageType``, ``AccountingStorageEnforce``, ``AccountingStorageTRES``: no slurmdbd (nor MariaDB)
  runs in the root (24.11 stops on ``AccountingStorageTRES=gres/gpu`` without slurmdbd);
* ``Prolog``, ``Epilog``, ``PrologFlags``, ``TaskProlog``: the node hooks under /etc/slurm, which the Ansible roles
  install on real nodes (``PrologFlags=Contain`` needs proctrack/cgroup; ``Alloc`` is kept);
* ``HealthCheckProgram``, ``HealthCheckInterval``: NHC is not installed in the root;
* ``PlugStackConfig``: pyxis and enroot are not installed in the root;
* ``TaskPlugin`` (and the harness's ``ProctrackType``, ``JobAcctGatherType``, ``CgroupPlugin=disabled`` in place
  of the rendered cgroup.conf): no cgroup hierarchy of its own on a shared test machine.

The first test asks slurmctld what it made of the 64 racks; the second plans a small NVL cluster (a hardware
override of the same tray: racks of 2 trays, 2 racks), runs a slurmd for each tray and shows a job placed by block;
the third is its control (the same files, flat topology). ``SwitchType=switch/nvidia_imex`` stays as rendered: the
slurmd of a tray without an IMEX channel device (no ``nvidia-caps-imex-channels`` in /proc/devices) disables the
plugin with a warning and runs jobs.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.hostlist import expand
from gpucloud.plan.hosts import nvlink_domains
from nvl_mixed import rendered
from slurm24_harness import Slurm24Harness, parse_fields, skip_module_without_slurm24

pytestmark = pytest.mark.integration

ROOT = skip_module_without_slurm24()

# Slurm parses no empty value, so keys whose default is "none" are taken out of the rendered slurm.conf; the others
# are set again after it.
SERVED_ELSEWHERE_UNSET = ["AccountingStorageType", "AccountingStorageEnforce", "AccountingStorageTRES",
                          "Prolog", "Epilog", "TaskProlog",
                          "HealthCheckProgram", "TaskPlugin"]
SERVED_ELSEWHERE = ["PrologFlags=Alloc", "HealthCheckInterval=0",
                    "PlugStackConfig=/gpucloud/etc/plugstack.conf"]  # absent: no SPANK plugin
GIVEN = ("slurm.conf", "topology.conf", "gres.conf")


def planned(path):
    """The plan and its rendered slurm.conf, topology.conf and gres.conf (by the registered renderers)."""
    plan, files = rendered(path)
    return plan, {name: files[f"slurm/{name}"] for name in GIVEN}


def harness(directory, plan, files) -> Slurm24Harness:
    (controller,) = plan.slurm.controllers
    nodes = [h.name for pp in plan.pools if "compute" in pp.pool.roles for h in pp.hosts]
    return Slurm24Harness(directory, files, controller, nodes, ROOT, overrides=SERVED_ELSEWHERE,
                          unset=SERVED_ELSEWHERE_UNSET)


def blocks(h: Slurm24Harness) -> dict[str, list[str]]:
    return {f["BlockName"]: expand(f["Nodes"]) for f in map(parse_fields, h.scontrol("show", "topology").splitlines())
            if "BlockName" in f}


def job_id(submitted: subprocess.CompletedProcess) -> str:
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    return submitted.stdout.strip().split(";")[0]


def test_slurmctld_takes_the_64_planned_racks_as_blocks(tmp_path):
    plan, files = planned(CLUSTERS / "nvl72.yaml")
    domains = nvlink_domains(plan.pools)
    assert len(domains) == 64
    h = harness(tmp_path, plan, files)
    try:
        h.start_munge()
        h.start_slurmctld()
        shown = blocks(h)
        assert shown == {d.name: list(d.hosts) for d in domains}
        assert sorted(shown)[:2] == ["nvl01", "nvl02"] and all(len(nodes) == 18 for nodes in shown.values())
        config = h.scontrol("show", "config").replace(" ", "")
        assert "SwitchType=switch/nvidia_imex" in config
        assert "TopologyPlugin=topology/block" in config
    finally:
        h.stop()


def small_nvl(tmp_path):
    """clusters/nvl72.yaml with racks of 2 trays of the same GB200 tray (a hardware override), 2 racks."""
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text(encoding="utf-8"))
    data["hardware"] = {"models": {"gb200-nvl8": {"base": "gb200-nvl72", "nvlink": {"trays": 2}}}}
    data["node_pools"][0].update(model="gb200-nvl8", count=4, rollout={"max_unavailable": 2})
    data["fabric"]["compute"]["scalable_unit"] = 2
    data["fabric"]["compute"]["spine_leaf_groups"] = {"leaves": 2, "spines": 1}
    for tenant in data["tenants"]:
        tenant["gpu_limit"] = 8
    path = tmp_path / "nvl8.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def pair_after_holding_the_first_tray(directory, plan, files, overrides=(), segment=True,
                                      racks: dict[str, list[str]] | None = None) -> list[str]:
    """Start the small cluster (a slurmd with four fake GPUs per tray; with ``racks``, check slurmctld shows them as
    its blocks), hold gb0001, submit a job for two trays and return the nodes it runs on."""
    h = Slurm24Harness(directory, files, plan.slurm.controllers[0], TRAYS, ROOT,
                       overrides=[*SERVED_ELSEWHERE, *overrides], unset=SERVED_ELSEWHERE_UNSET)
    try:
        h.start_munge()
        h.start_slurmctld()
        if racks is not None:
            assert blocks(h) == racks
        for node in TRAYS:
            h.start_slurmd(node, gpus=4)
        h.wait_nodes_idle(TRAYS)
        assert parse_fields(h.scontrol("show", "node", "gb0001"))["Gres"] == "gpu:gb200:4"
        account = "frontier-lab"  # the partitions' AllowAccounts (no slurmdbd: the name alone)
        hold = job_id(h.sbatch("-N1", "-w", "gb0001", f"--account={account}", script="#!/bin/sh\nsleep 600\n"))
        assert h.wait_job(hold)["NodeList"] == "gb0001"
        fields = h.wait_job(job_id(h.sbatch("-N2", *(["--segment=2"] if segment else []), f"--account={account}",
                                            script="#!/bin/sh\nsleep 600\n")))
        assert fields["JobState"] == "RUNNING", fields
        return expand(fields["NodeList"])
    finally:
        h.cancel_jobs()
        h.stop()


TRAYS = ["gb0001", "gb0002", "gb0003", "gb0004"]


def test_segment_job_lands_in_one_planned_rack(tmp_path):
    plan, files = planned(small_nvl(tmp_path))
    racks = {d.name: list(d.hosts) for d in nvlink_domains(plan.pools)}
    assert racks == {"nvl01": ["gb0001", "gb0002"], "nvl02": ["gb0003", "gb0004"]}
    assert b"BlockSizes=2,4\n" in files["topology.conf"] and b"switch/nvidia_imex" in files["slurm.conf"]
    # gb0001 held, the lowest free pair (gb0002 + gb0003, the control below) straddles the racks.
    assert pair_after_holding_the_first_tray(tmp_path / "block", plan, files, racks=racks) == racks["nvl02"]


def test_without_the_planned_blocks_the_pair_straddles_the_racks(tmp_path):
    """The control: the same rendered files with the default (flat) topology put the same two-tray job on gb0002 and
    gb0003, so the test above fails unless the planned blocks keep it inside one rack."""
    plan, files = planned(small_nvl(tmp_path))
    flat = ["TopologyPlugin=topology/default"]
    assert pair_after_holding_the_first_tray(tmp_path / "flat", plan, files, overrides=flat, segment=False) == [
        "gb0002", "gb0003"]
