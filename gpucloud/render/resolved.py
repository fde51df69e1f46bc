"""The ``spec`` section of plan.json: the spec with every default applied, so two plan folders can be diffed.

Hosts, networks and pools are already in plan.json; this section adds the intent that is not: software versions,
Slurm settings and partitions, storage, tenants, fabric settings and the provider. Secrets appear by name only.
"""

from __future__ import annotations

from dataclasses import asdict

from gpucloud.plan import Plan
from gpucloud.spec.model import Rollout


def _fabric(f) -> dict:
    return {
        "kind": f.kind, "switch": f.switch, "rate": f.rate, "topology": f.topology,
        "scalable_unit": f.scalable_unit, "oversubscription": f"{f.oversubscription[0]}:{f.oversubscription[1]}",
        "tiers": f.tiers, "split": f.split,
        "subnet_manager": {"kind": f.subnet_manager.kind, "routing_engine": f.subnet_manager.routing_engine,
                           "pool": f.subnet_manager.pool},
        **({"spine_leaf_groups": list(f.spine_leaf_groups)}  # [leaves, spines]
           if f.spine_leaf_groups else {}),
        **({"roce": asdict(f.roce)} if f.roce is not None else {}),  # Ethernet fabrics only
    }


def spec_section(plan: Plan) -> dict:
    spec = plan.spec
    s = spec.slurm
    return {
        "pools": {p.name: {"hostname": p.hostname, "start": p.start, "features": list(p.features),
                           "rack": {"name": p.rack.name, "first": p.rack.first,
                                    "nodes_per_rack": p.rack.nodes_per_rack, "first_u": p.rack.first_u},
                           # Only when the spec sets it, so plans of specs without one stay as they were.
                           **({"rollout": {"max_unavailable": p.rollout.max_unavailable,
                                           "drain_timeout": p.rollout.drain_timeout}}
                              if p.rollout != Rollout() else {})}
                  for p in spec.pools},
        "fabric": {name: _fabric(f) for name, f in spec.fabrics.items()},
        "slurm": {
            "cluster_name": s.cluster_name, "topology": s.topology, "gres_autodetect": s.gres_autodetect,
            "enroot": s.enroot, "pyxis": s.pyxis, "health_check_interval": s.health_check_interval,
            "state_save": {"filesystem": s.state_save.filesystem, "directory": s.state_save.directory}
            if s.state_save else None,
            "accounting": {"enabled": s.accounting.enabled, "database_password": s.accounting.database_password,
                           "retention_months": s.accounting.retention_months},
            "partitions": {p.name: {"pools": list(p.pools), "default": p.default, "max_time": p.max_time,
                                    "default_time": p.default_time, "priority_tier": p.priority_tier,
                                    "exclusive": p.exclusive}
                           for p in s.partitions},
            "settings": dict(s.settings), "dbd_settings": dict(s.dbd_settings),
        },
        "storage": {fs.name: {"kind": fs.kind, "mount": fs.mount,
                              "pools": list(fs.pools) if fs.pools is not None else None,
                              "capacity": fs.capacity, "options": list(fs.options), **fs.settings}
                    for fs in spec.storage},
        "tenants": {t.name: {"description": t.description, "pools": list(t.pools), "partitions": list(t.partitions),
                             "users": list(t.users), "gpu_limit": t.gpu_limit, "max_time": t.max_time,
                             "priority": t.priority, "pkey": f"0x{t.pkey:04x}" if t.pkey is not None else None,
                             "storage_quota": dict(t.storage_quota), "inode_quota": dict(t.inode_quota),
                             "project_id": t.project_id}
                    for t in spec.tenants},
        "software": _software(spec),
        "provider": {k: getattr(spec.provider, k) for k in sorted(vars(spec.provider))},
    }


def _software(spec) -> dict:
    """Pins, the mirror and the repositories by name; None where the spec has none, as a plan from before these
    settings reads (a missing key), so that it compares unchanged."""
    sw = spec.software
    out = {k: getattr(sw, k) for k in sorted(vars(sw)) if k != "repositories"}
    out["repositories"] = {r.name: {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(vars(r).items())
                                    if k != "name"} for r in sw.repositories} or None
    return out
