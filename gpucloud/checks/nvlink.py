"""Checks: rack-scale NVLink (GB200/GB300 NVL72). A rack is one NVLink domain, so the racks a pool fills must hold
exactly one domain's trays; Slurm places jobs by blocks of those domains, and every job gets an IMEX channel.

* ``nvlink-rack-domain``: rack.nodes_per_rack of an NVL72 pool is not the model's trays per rack (a block or an
  IMEX peer list would cross a domain's boundary or leave trays out);
* ``nvlink-partial-rack``: the pool does not fill its last rack (a smaller last domain and block);
* ``nvlink-rack-shared``: two NVL72 pools in one rack (one domain's IMEX peers and block split in two);
* ``slurm-block-partition``: a partition holds nodes outside every block (topology/block never allocates them);
* ``slurm-block-mixed``: NVL72 and other GPU nodes in one cluster or partition under one block topology;
* ``slurm-imex-version``: switch/nvidia_imex needs a Slurm release that has it;
* ``nvlink-rollout-budget``: the pool's rollout budget is not whole racks: a rolling update rounds it down to whole
  racks (info), or raises it to one rack when it is less than a rack (warning: more trays out at once than asked).
"""

from __future__ import annotations

from typing import Iterable

from gpucloud.checks import check
from gpucloud.findings import Finding
from gpucloud.plan.rollout import budget, rack_budget, rack_note
from gpucloud.plan.slurm import TOPOLOGY_YAML_SINCE, slurm_release, uses_topology_yaml
from gpucloud.spec.model import NodePool, Spec

# The release gpucloud has seen accept TopologyPlugin=topology/block with SwitchType=switch/nvidia_imex (24.11.5).
IMEX_SINCE = (24, 11)
# TOPOLOGY_YAML_SINCE (gpucloud.plan.slurm): Slurm 25.05's topology.yaml names several topologies and lets a
# partition pick one; before it, one TopologyPlugin serves the whole cluster.


def _nvlink_pools(spec: Spec) -> list[NodePool]:
    return [p for p in spec.pools if p.hardware is not None and p.hardware.nvlink is not None]


@check("nvlink-rack-domain")
def rack_domain(spec: Spec) -> Iterable[Finding]:
    """An NVL72 pool's racks hold exactly one NVLink domain's trays."""
    for pool in _nvlink_pools(spec):
        assert pool.hardware is not None and pool.hardware.nvlink is not None
        trays = pool.hardware.nvlink.trays
        if pool.rack.nodes_per_rack != trays:
            yield Finding("nvlink-rack-domain", "error", (*pool.path, "rack", "nodes_per_rack"),
                          f"pool '{pool.name}' puts {pool.rack.nodes_per_rack} trays in a rack, but a "
                          f"{pool.model} rack is one NVLink domain of {trays} trays: Slurm blocks and IMEX peer "
                          "lists would not match the racks' NVLink domains",
                          f"set rack.nodes_per_rack: {trays}, or leave it out (it defaults to the model's trays)")


@check("nvlink-partial-rack")
def partial_rack(spec: Spec) -> Iterable[Finding]:
    """An NVL72 pool fills whole racks (its last NVLink domain is not smaller than the others)."""
    for pool in _nvlink_pools(spec):
        assert pool.hardware is not None and pool.hardware.nvlink is not None
        trays = pool.hardware.nvlink.trays
        if pool.count % trays:
            yield Finding("nvlink-partial-rack", "warning", (*pool.path, "count"),
                          f"pool '{pool.name}' has {pool.count} trays, not whole racks of {trays}: its last NVLink "
                          f"domain has {pool.count % trays} trays, and since Slurm refuses a block smaller than the "
                          f"base block, the base block size of every rack becomes {pool.count % trays}",
                          f"use a multiple of {trays} trays (count: {pool.count + trays - pool.count % trays})")


@check("slurm-block-partition")
def block_partition(spec: Spec) -> Iterable[Finding]:
    """A partition with nodes outside every block of topology/block.

    Under topology/block with NVL72 racks, the blocks are the NVLink domains and the scalable units of the compute
    fabric; a compute pool on neither has nodes in no block, which Slurm never allocates to a job."""
    if spec.slurm.topology != "block" or not _nvlink_pools(spec) or uses_topology_yaml(spec):
        return  # with topology.yaml such pools are on the default tree (its nofabric switch)
    blockless = {p.name for p in spec.pools if "compute" in p.roles and p.hardware is not None
                 and p.hardware.nvlink is None and p.fabric != "compute"}
    for part in spec.slurm.partitions:
        for j, pool in enumerate(part.pools):
            if pool in blockless:
                yield Finding("slurm-block-partition", "error", (*part.path, "pools", j),
                              f"partition '{part.name}' holds pool '{pool}', whose nodes are in no block of "
                              "topology/block (no rack-scale NVLink, no compute fabric): Slurm would never run a "
                              "job on them", f"attach pool '{pool}' to the compute fabric, or take it out of the "
                              "partition")


@check("slurm-block-mixed")
def block_mixed(spec: Spec) -> Iterable[Finding]:
    """NVL72 racks and other GPU nodes under one topology/block: what Slurm before 25.05 can express."""
    if spec.slurm.topology != "block" or not _nvlink_pools(spec):
        return
    nvlink = {p.name for p in _nvlink_pools(spec)}
    gpu_others = {p.name for p in spec.pools if "compute" in p.roles and p.name not in nvlink
                  and p.hardware is not None and p.hardware.gpus}
    if not gpu_others:
        return
    v = slurm_release(spec.software.slurm)
    on_fabric = {p.name for p in spec.pools if p.name in gpu_others and p.fabric == "compute"}
    if on_fabric and (v is None or v < TOPOLOGY_YAML_SINCE):
        yield Finding("slurm-block-mixed", "info", ("slurm", "topology"),
                      f"pools {', '.join(sorted(on_fabric))} have no rack-scale NVLink but share the cluster's one "
                      "topology/block with the NVL72 racks: their nodes get one block per scalable unit of the "
                      "fabric, of another size than the NVLink blocks",
                      "fine for Slurm before 25.05; with software.slurm 25.05 or later gpucloud writes topology.yaml "
                      "instead, which gives them a tree over the fabric of their own (docs/slurm.md)")
    for part in spec.slurm.partitions:
        if set(part.pools) & nvlink and set(part.pools) & gpu_others:
            yield Finding("slurm-block-mixed", "warning", (*part.path, "pools"),
                          f"partition '{part.name}' mixes NVL72 trays with other GPU nodes: a job may span both, "
                          "and its GPUs would meet over InfiniBand only",
                          "give the NVL72 pools and the other GPU pools partitions of their own")


@check("slurm-imex-version")
def imex_version(spec: Spec) -> Iterable[Finding]:
    """switch/nvidia_imex (IMEX channels per job on NVL72 trays) needs a Slurm release that has it."""
    if not any("compute" in p.roles for p in _nvlink_pools(spec)):
        return
    v = slurm_release(spec.software.slurm)
    if v is None or v < IMEX_SINCE:
        yield Finding("slurm-imex-version", "error", ("software", "slurm"),
                      f"NVL72 trays get SwitchType=switch/nvidia_imex, which needs Slurm 24.11 or later "
                      f"(software.slurm is {spec.software.slurm or 'not set'})",
                      "set software.slurm to 24.11 or later")


@check("nvlink-rollout-budget")
def rollout_budget(spec: Spec) -> Iterable[Finding]:
    """A rolling update of an NVL72 pool takes whole racks (gpucloud.plan.rollout): say what a budget that is not
    whole racks becomes."""
    for pool in _nvlink_pools(spec):
        assert pool.hardware is not None and pool.hardware.nvlink is not None
        trays = pool.hardware.nvlink.trays
        hosts = pool.count - len(pool.exclude & set(pool.indices))
        note = rack_note(pool.rollout.max_unavailable, hosts, trays)
        if note is None:
            continue
        size = budget(pool.rollout.max_unavailable, hosts)
        racks = rack_budget(size, trays)
        raised = size < trays
        yield Finding("nvlink-rollout-budget", "warning" if raised else "info",
                      (*pool.path, "rollout", "max_unavailable") if pool.rollout.max_unavailable is not None
                      else pool.path,
                      f"pool '{pool.name}' rolls whole racks (NVLink domains of {trays} trays): {note}; a rolling "
                      f"update takes {racks} rack(s) out of service at a time",
                      f"set rollout.max_unavailable to a multiple of {trays} "
                      f"(e.g. {racks * trays}) to say so in the spec")


@check("nvlink-rack-shared")
def rack_shared(spec: Spec) -> Iterable[Finding]:
    """No rack holds trays of two NVL72 pools: a rack is one NVLink domain, and two pools in it would split its IMEX
    peer list and its Slurm block in two (trays of one domain that do not list each other)."""
    owner: dict[str, str] = {}
    for pool in _nvlink_pools(spec):
        assert pool.hardware is not None and pool.hardware.nvlink is not None
        per = max(1, pool.rack.nodes_per_rack)
        racks = (pool.count + per - 1) // per
        for n in range(pool.rack.first, pool.rack.first + racks):
            name = pool.rack.name.format(rack=n)
            other = owner.setdefault(name, pool.name)
            if other != pool.name:
                yield Finding("nvlink-rack-shared", "error", (*pool.path, "rack", "name"),
                              f"rack {name} would hold trays of pools '{other}' and '{pool.name}', but an NVL72 rack "
                              "is one NVLink domain: its IMEX peers and its Slurm block would be split in two",
                              "give each NVL72 pool racks of its own (rack.name or rack.first)")
                break
