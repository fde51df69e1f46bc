"""topology.yaml: which plans get it (Slurm 25.05+, NVL72 racks beside other GPU pools on the fabric) and what it
holds. The real slurmctld reads it in tests/integration/test_slurm_topology_yaml.py."""

from __future__ import annotations

import json

import pytest
import yaml

from gpucloud.checks.slurm import verify_rendered
from gpucloud.render.slurm_topology import topology_conf
from nvl_mixed import mixed_spec, rendered


@pytest.mark.parametrize("version", ["24.11.5", "25.05.0"])
def test_the_version_decides_the_file(tmp_path, version):
    _, files = rendered(mixed_spec(tmp_path, version))
    new = version >= "25.05"
    assert ("slurm/topology.yaml" in files) is new and ("slurm/topology.conf" in files) is not new
    assert (b"TopologyPlugin=topology/block" in files["slurm/slurm.conf"]) is not new
    assert (b" Topology=nvlink State=UP" in files["slurm/slurm.conf"]) is new
    partitions = {p["name"]: p.get("topology") for p in json.loads(files["plan.json"])["slurm"]["partitions"]}
    assert partitions == ({"gpu": "nvlink", "hgx": None} if new else {"gpu": None, "hgx": None})


def test_a_cluster_of_nvl72_racks_only_keeps_topology_conf(tmp_path):
    """No other GPU pool on the fabric: one block topology says it all, whatever the version."""
    data = yaml.safe_load(mixed_spec(tmp_path, "25.05.0").read_text())
    data["node_pools"] = [p for p in data["node_pools"] if p["name"] != "hgx"]
    data["slurm"]["partitions"] = data["slurm"]["partitions"][:1]
    for tenant in data["tenants"]:
        tenant["partitions"] = ["gpu"]
    path = tmp_path / "nvl-only.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    _, files = rendered(path)
    assert "slurm/topology.yaml" not in files and b"BlockName=nvl01" in files["slurm/topology.conf"]


def test_the_tree_is_topology_conf_and_the_blocks_are_the_racks(tmp_path):
    plan, files = rendered(mixed_spec(tmp_path, "25.05.0"))
    fabric, nvlink = yaml.safe_load(files["slurm/topology.yaml"])
    assert fabric["topology"] == "fabric" and fabric["cluster_default"] is True
    assert nvlink["topology"] == "nvlink" and nvlink["cluster_default"] is False
    switches = [f"SwitchName={s['switch']} " + (f"Nodes={s['nodes']}" if "nodes" in s else f"Switches={s['children']}")
                for s in fabric["tree"]["switches"]]
    assert switches == [line for line in topology_conf(plan).splitlines() if line.startswith("SwitchName=")]
    assert switches[:2] == ["SwitchName=su001 Nodes=gb[0001-0004]", "SwitchName=su002 Nodes=hgx[01-02]"]
    assert nvlink["block"] == {"block_sizes": [2, 4], "blocks": [{"block": "nvl01", "nodes": "gb[0001-0002]"},
                                                                 {"block": "nvl02", "nodes": "gb[0003-0004]"}]}


def test_self_check_reads_topology_yaml(tmp_path):
    """The default topology must hold every node (as topology.conf must); the block topology only known ones."""
    _, files = rendered(mixed_spec(tmp_path, "25.05.0"))
    assert verify_rendered(files) == []
    text = files["slurm/topology.yaml"]
    no_hgx = {**files, "slurm/topology.yaml": text.replace(b'nodes: "hgx[01-02]"', b'nodes: "hgx01"')}
    assert [f.message for f in verify_rendered(no_hgx)] == [
        "1 node(s) are on no switch in topology.yaml (topology fabric), e.g. hgx02"]
    stray = {**files, "slurm/topology.yaml": text.replace(b'nodes: "gb[0003-0004]"', b'nodes: "gb[0003-0005]"')}
    messages = [f.message for f in verify_rendered(stray)]
    assert messages == ["topology.yaml (topology nvlink) switch/block nvl02 names 1 unknown node(s), e.g. gb0005"]


def test_plan_md_names_the_topology_of_each_partition(tmp_path):
    from gpucloud.render.plan_md import render as plan_md

    plan, _ = rendered(mixed_spec(tmp_path, "25.05.0"))
    text = next(iter(plan_md(plan).values())).decode()
    assert ("- Slurm: `slurm/topology.yaml` (Slurm 25.05+): topology/block with one block per NVLink domain (base "
            "block 2 trays) for partitions gpu (`Topology=nvlink`), topology/tree over the compute fabric for the "
            "others (the cluster default);") in text


@pytest.mark.parametrize("version", ["24.11.5", "25.05.0"])
def test_a_pool_off_the_fabric_is_refused_only_without_topology_yaml(tmp_path, version):
    """Under one topology/block a compute pool on no fabric is in no block (Slurm never runs a job there); with
    topology.yaml it sits on the default tree's nofabric switch."""
    from gpucloud.pipeline import check_spec

    data = yaml.safe_load(mixed_spec(tmp_path, version).read_text())
    data["node_pools"].append({"name": "l40", "id": 5, "model": "hgx-h100-8", "count": 2, "hostname": "l{index:02}",
                               "roles": ["compute"], "fabric": "none", "rack": {"name": "l{rack:02}"}})
    data["slurm"]["partitions"].append({"name": "l40", "pools": ["l40"]})
    path = tmp_path / "with-l40.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    found = [f for f in check_spec(path).findings if f.check == "slurm-block-partition"]
    if version < "25.05":
        assert [f.level for f in found] == ["error"]
        return
    assert found == []
    _, files = rendered(path)
    fabric, _ = yaml.safe_load(files["slurm/topology.yaml"])
    assert {"switch": "nofabric", "nodes": "l[01-02]"} in fabric["tree"]["switches"]
    assert verify_rendered(files) == []
