"""For the Slurm tests of NVL72 plans (unit and integration): the small mixed cluster (NVL72 racks beside HGX nodes)
and the plan with its rendered Slurm files."""

from __future__ import annotations

import importlib

import yaml

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import RENDERERS


def rendered(path):
    """The plan of the spec at ``path`` (which must have no errors) and what the Slurm renderers and plan.json's
    renderer write for it, by path (``slurm/slurm.conf``, ``plan.json``, ...)."""
    checked = check_spec(path)
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    plan = build_plan(checked.spec, tuple(checked.findings))
    files: dict[str, bytes] = {}
    for module, name in RENDERERS:
        if module.startswith("gpucloud.render.slurm") or module == "gpucloud.render.plan_json":
            files.update(getattr(importlib.import_module(module), name)(plan))
    return plan, files


def mixed_spec(tmp_path, slurm: str):
    """clusters/nvl72.yaml cut down to 2 racks of 2 trays, plus a pool of 2 HGX H100 nodes on the same fabric."""
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text(encoding="utf-8"))
    data["hardware"] = {"models": {"gb200-nvl8": {"base": "gb200-nvl72", "nvlink": {"trays": 2}}}}
    data["node_pools"][0].update(model="gb200-nvl8", count=4, rollout={"max_unavailable": 2})
    data["node_pools"].insert(1, {"name": "hgx", "id": 3, "model": "hgx-h100-8", "count": 2,
                                  "hostname": "hgx{index:02}", "roles": ["compute"],
                                  "rack": {"name": "hgx{rack:02}", "nodes_per_rack": 2}, "image": "ubuntu-24.04-base"})
    data["fabric"]["compute"].update(scalable_unit=4, spine_leaf_groups={"leaves": 2, "spines": 1})
    data["slurm"]["topology"] = "block"
    data["slurm"]["partitions"] = [{"name": "gpu", "pools": ["gpu"], "default": True, "max_time": "1-00:00:00"},
                                   {"name": "hgx", "pools": ["hgx"], "max_time": "1-00:00:00"}]
    for tenant in data["tenants"]:
        tenant.update(gpu_limit=16, partitions=["gpu", "hgx"])
    data["software"]["slurm"] = slurm
    path = tmp_path / f"mixed-{slurm}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
