"""slurm/topology.conf from the compute fabric plan.

In a rail-optimized fabric a node touches one leaf per rail, so no single leaf holds a node; the smallest group of
nodes that share switches is the scalable unit (its rail leaves), which is the lowest "switch" here. Above it: the
pods of a three-tier fabric, then one top switch. Jobs placed inside an SU talk leaf-local on every rail.

A RoCE Ethernet rail fabric (plan/ethernet.py) has the same shape with two tiers: an SU's leaves (one per rail) hold
its nodes' NICs and every leaf reaches every spine, so its tree is the SUs under one top switch (the spine layer).
"""

from __future__ import annotations

from gpucloud.hostlist import compress
from gpucloud.plan import Plan
from gpucloud.plan.ethernet import SPINE_TIER


def _ethernet(plan: Plan):
    """The compute fabric when it is a RoCE Ethernet one, else None."""
    return next((f for f in getattr(plan, "ethernet", ()) if f.name == "compute"), None)


def _groups(plan: Plan):
    """(SU name, pod, [hosts]) for every compute SU, and the compute hosts off the fabric."""
    fp = next((f for f in plan.fabrics if f.name == "compute"), None)
    compute_pools = {pp.pool.name for pp in plan.pools if "compute" in pp.pool.roles}
    by_su: dict[int, list[str]] = {}
    on_fabric: set[str] = set()
    pod_of: dict[int, int] = {}
    efp = _ethernet(plan) if fp is None else None
    if efp is not None:
        by_su = efp.su_hosts(compute_pools)
        on_fabric.update(h for hosts in by_su.values() for h in hosts)
    if fp is not None:
        sws = fp.switches
        for e in fp.endpoints:
            # HCA 0 stands for the node; every positioned compute node has one, in its own SU.
            if e.hca == 0 and not e.service and e.pool in compute_pools:
                by_su.setdefault(sws[e.leaf].group, []).append(e.host)
                on_fabric.add(e.host)
        if fp.tiers == 3:
            # An SU's pod is the pod of the spines its leaves connect to (the planner keeps SUs inside one pod).
            pod_of_leaf = {}
            for lo, hi, tier in zip(fp.lo, fp.hi, fp.hi_tier):
                if tier == 2:
                    pod_of_leaf[lo] = sws[hi].group
            for i, sw in enumerate(sws):
                if sw.tier == 1 and sw.group in by_su and i in pod_of_leaf:
                    pod_of.setdefault(sw.group, pod_of_leaf[i])
    off = [h.name for pp in plan.pools if pp.pool.name in compute_pools for h in pp.hosts if h.name not in on_fabric]
    return by_su, pod_of, off


def topology_conf(plan: Plan) -> str:
    by_su, pod_of, off = _groups(plan)
    lines = [f"# topology/tree for cluster {plan.spec.name}, from the compute fabric plan (gpucloud).",
             "# Lowest level: scalable units (a node has one port on each rail leaf of its SU); then pods; then the",
             "# fabric. Slurm packs a job into as few of these as it can."]
    efp = _ethernet(plan) if not any(f.name == "compute" for f in plan.fabrics) else None
    if efp is not None:
        lines[1:] = [f"# Lowest level: scalable units of the RoCE Ethernet fabric (a node has one NIC on each of the "
                     f"{efp.rails} rail",
                     f"# leaves of its SU); above them 'fabric', the {efp.count(SPINE_TIER)} spines every leaf reaches. "
                     "Slurm packs a job into as few SUs as it can."]
    tops = []
    for su in sorted(by_su):
        lines.append(f"SwitchName=su{su:03} Nodes={compress(by_su[su])}")
    if by_su:
        if pod_of:
            pods: dict[int, list[str]] = {}
            for su in sorted(by_su):
                pods.setdefault(pod_of[su], []).append(f"su{su:03}")
            for pod in sorted(pods):
                lines.append(f"SwitchName=pod{pod:02} Switches={compress(pods[pod])}")
            tops.append(f"SwitchName=fabric Switches={compress(f'pod{p:02}' for p in pods)}")
        else:
            tops.append(f"SwitchName=fabric Switches={compress(f'su{s:03}' for s in by_su)}")
    if off:
        lines.append("# compute nodes without a compute fabric port: jobs never span them and the fabric")
        tops.append(f"SwitchName=nofabric Nodes={compress(off)}")
    return "\n".join(lines + tops) + "\n"


def nvlink_block_conf(plan: Plan) -> str:
    """One block per NVLink domain (an NVL72 rack), the base block size being a full domain's trays; the compute
    nodes without rack-scale NVLink keep one block per scalable unit of the fabric. Nodes in no block (a compute
    pool on neither) are the slurm-block-partition check's error, so none reach this file."""
    sp = plan.slurm
    nvlink = {name for name, _ in sp.nvlink_blocks}
    lines = [f"# topology/block for cluster {plan.spec.name}: one block per NVLink domain (rack) of "
             f"{sp.block_size} trays;",
             "# a job that fits in a domain gets one, so its GPUs talk over NVLink (topology.conf(5), topology/block)."]
    lines += [f"BlockName={name} Nodes={nodes}" for name, nodes in sp.nvlink_blocks]
    by_su, _, _ = _groups(plan)
    nvlink_hosts = {h for pp in plan.pools if pp.model.nvlink is not None for h in (x.name for x in pp.hosts)} \
        if by_su else set()
    others = [(su, [h for h in hosts if h not in nvlink_hosts]) for su, hosts in sorted(by_su.items())]
    others = [(su, hosts) for su, hosts in others if hosts and f"su{su:03}" not in nvlink]
    if others:
        lines.append("# compute nodes without rack-scale NVLink: one block per scalable unit of the compute fabric")
        lines += [f"BlockName=su{su:03} Nodes={compress(hosts)}" for su, hosts in others]
    base = min([sp.block_size, *(len(hosts) for _, hosts in others)])
    lines.append(f"BlockSizes={','.join(str(s) for s in block_sizes(base, len(sp.nvlink_blocks) + len(others)))}")
    return "\n".join(lines) + "\n"


def block_sizes(base: int, blocks: int) -> list[int]:
    """BlockSizes for ``blocks`` blocks of at least ``base`` nodes: the base block size, then every power-of-two
    multiple up to the first that holds every block, so a job of any size finds an aggregate of consecutive blocks.

    slurmctld (src/plugins/topology/block/block_record.c) takes the first value as the base block size, refuses a
    block with fewer nodes and a size that is not base x 2^n (n <= 15), and without BlockSizes aggregates only up to
    16 blocks; the smallest block is therefore the base (a rack the pool does not fill, or a smaller SU)."""
    levels = min(15, max(0, (blocks - 1).bit_length()))
    return [base << n for n in range(levels + 1)]


def block_conf(plan: Plan) -> str:
    if plan.slurm.nvlink_blocks:
        return nvlink_block_conf(plan)
    by_su, _, off = _groups(plan)
    lines = [f"# topology/block for cluster {plan.spec.name}: one block per scalable unit of the compute fabric."]
    for su in sorted(by_su):
        lines.append(f"BlockName=su{su:03} Nodes={compress(by_su[su])}")
    if off:
        lines.append(f"BlockName=nofabric Nodes={compress(off)}")
    return "\n".join(lines) + "\n"


def render(plan: Plan) -> dict[str, bytes]:
    kind = plan.spec.slurm.topology
    if plan.slurm.topology_yaml:
        return {}  # slurm/topology.yaml instead (render/slurm_topology_yaml.py); Slurm would ignore this file
    if kind == "tree":
        return {"slurm/topology.conf": topology_conf(plan).encode()}
    if kind == "block":
        return {"slurm/topology.conf": block_conf(plan).encode()}
    return {}
