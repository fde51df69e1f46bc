"""slurm/topology.yaml: NVL72 racks and other GPU nodes in one cluster, each under the topology that fits it.

Before Slurm 25.05 a cluster has one topology plugin, so NVL72 racks (one block per NVLink domain) and HGX nodes
beside them share topology/block, the HGX nodes getting one block per scalable unit. From 25.05, topology.yaml(5)
holds several named topologies and a partition picks one with ``Topology=``:

* ``fabric``, the cluster default: topology/tree over the compute fabric, the same switches as topology.conf's
  (scalable units, pods, the fabric); every compute node is on it, so cluster-wide operations reach every node;
* ``nvlink``: topology/block with one block per NVLink domain (an NVL72 rack) and the base block a full domain,
  used by the partitions whose pools are all NVL72 (``PartitionName=... Topology=nvlink``).

Slurm reads topology.yaml before topology.conf and ignores the latter when both exist, so only this file is
written. The tree is built from the lines topology.conf would have, so both files always describe one fabric.
"""

from __future__ import annotations

import json

from gpucloud.plan import Plan
from gpucloud.plan.slurm import FABRIC_TOPOLOGY, NVLINK_TOPOLOGY
from gpucloud.render.slurm_topology import block_sizes, topology_conf


def _tree(plan: Plan) -> list[tuple[str, str, str]]:
    """(switch, "nodes" or "children", hostlist) for every SwitchName line topology.conf would have."""
    out = []
    for raw in topology_conf(plan).splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = dict(f.split("=", 1) for f in line.split())
        if "Nodes" in fields:
            out.append((fields["SwitchName"], "nodes", fields["Nodes"]))
        else:
            out.append((fields["SwitchName"], "children", fields["Switches"]))
    return out


def _q(text: str) -> str:
    """A YAML scalar for a name or hostlist: JSON's string syntax is YAML's double-quoted one."""
    return json.dumps(text)


def topology_yaml(plan: Plan) -> str:
    sp = plan.slurm
    lines = [f"# topology.yaml for cluster {plan.spec.name} (Slurm 25.05 or later; topology.yaml(5)), from the plan",
             "# (gpucloud). 'fabric': topology/tree over the compute fabric, every compute node, the cluster default;",
             f"# '{NVLINK_TOPOLOGY}': topology/block, one block per NVLink domain (rack) of {sp.block_size} trays, for the",
             "# partitions of NVL72 pools only (PartitionName=... Topology=nvlink in slurm.conf).",
             "---",
             f"- topology: {FABRIC_TOPOLOGY}",
             "  cluster_default: true",
             "  tree:",
             "    switches:"]
    for name, kind, hosts in _tree(plan):
        lines += [f"      - switch: {_q(name)}", f"        {kind}: {_q(hosts)}"]
    lines += [f"- topology: {NVLINK_TOPOLOGY}",
              "  cluster_default: false",
              "  block:",
              "    block_sizes: [" + ", ".join(str(s) for s in block_sizes(sp.block_size, len(sp.nvlink_blocks))) + "]",
              "    blocks:"]
    for name, hosts in sp.nvlink_blocks:
        lines += [f"      - block: {_q(name)}", f"        nodes: {_q(hosts)}"]
    return "\n".join(lines) + "\n"


def render(plan: Plan) -> dict[str, bytes]:
    if not plan.slurm.topology_yaml:
        return {}
    return {"slurm/topology.yaml": topology_yaml(plan).encode()}
