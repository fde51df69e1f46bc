"""plan.json: the whole Plan as canonical JSON. Other stages add their section to SECTIONS."""

from __future__ import annotations

import importlib
import os

from gpucloud import jsonout
from gpucloud.hostlist import pool_hostlist
from gpucloud.plan import Plan
from gpucloud.plan.hosts import block_base, gateway

FORMAT = 1

# key -> (module, function(plan) -> JSON-able). Each planner that owns a section of plan.json registers it here.
SECTIONS: dict[str, tuple[str, str]] = {
    "fabric": ("gpucloud.render.fabric", "section"),
    "ethernet": ("gpucloud.render.ethernet", "section"),  # Ethernet (RoCE) fabrics: switches, ASNs, loopbacks
    "storage": ("gpucloud.render.storage", "section"),
    "spec": ("gpucloud.render.resolved", "spec_section"),  # the resolved spec, so plan folders can be diffed
    "slurm": ("gpucloud.plan.slurm", "section"),
    "figures": ("gpucloud.plan.figures", "section"),  # plan.md's at-a-glance numbers and training estimate
}


def _ip(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def cluster_section(plan: Plan) -> dict:
    spec = plan.spec
    pools = []
    for pp in plan.pools:
        pool = pp.pool
        pools.append({
            "name": pool.name, "id": pool.id, "model": pool.model, "roles": list(pool.roles),
            "count": pool.count, "hosts": len(pp.hosts), "gpus": pp.gpus, "hostlist": pool_hostlist(pool),
            "excluded": sorted(pool.exclude), "rails": pp.model.rails if pool.fabric == "compute" else 0,
            "fabric": pool.fabric, "image": pool.image,
        })
    return {
        "name": spec.name,
        "metadata": spec.metadata,
        "nodes": plan.host_count,
        "gpus": plan.gpu_count,
        "pools": pools,
    }


def networks_section(plan: Plan) -> dict:
    out = {}
    for name, net in plan.spec.networks.items():
        entry = {"cidr": str(net.cidr), "pool_prefix": net.pool_prefix}
        if name == "ipoib":
            entry.update({"rail_prefix": net.rail_prefix, "mode": net.mode, "mtu": net.mtu})
        else:
            entry.update({"vlan": net.vlan, "gateway": gateway(net), "mtu": net.mtu, "domain": net.domain})
        blocks = {}
        for pp in plan.pools:
            if name == "ipoib":
                continue
            blocks[pp.pool.name] = f"{_ip(block_base(net, pp.pool.id))}/{net.pool_prefix}"
        if blocks:
            entry["pool_blocks"] = blocks
        out[name] = {k: v for k, v in entry.items() if v is not None}
    return out


def hosts_section(plan: Plan) -> list[dict]:
    rows = []
    for h in plan.hosts():
        row = {"name": h.name, "pool": h.pool, "index": h.index, "rack": h.rack, "slot": h.slot, "u": h.u,
               "management": h.management, "bmc": h.bmc}
        if h.storage:
            row["storage"] = h.storage
        if h.ipoib:
            row["ipoib"] = list(h.ipoib)
        rows.append(row)
    return rows


def document(plan: Plan) -> dict:
    doc = {
        "generator": "gpucloud",
        "format": FORMAT,
        "cluster": cluster_section(plan),
        "networks": networks_section(plan),
        "hosts": hosts_section(plan),
        # The spec's own file name only: the folder it was read from must not change the plan.
        "findings": [{**f.as_dict(), "file": os.path.basename(f.file)} for f in plan.findings],
    }
    for key, (module, name) in sorted(SECTIONS.items()):
        doc[key] = getattr(importlib.import_module(module), name)(plan)
    return doc


def render(plan: Plan) -> dict[str, bytes]:
    return {"plan.json": jsonout.dump_bytes(document(plan))}
