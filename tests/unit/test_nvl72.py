"""Rack-scale NVLink (GB200/GB300 NVL72): the catalog's trays, NVLink domains as racks, Slurm's block topology and
IMEX channels, the IMEX peer lists, the checks, and the compute fabric against the DGX SuperPOD GB200 RA."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud import catalog
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan.fabric import summary
from gpucloud.plan.hosts import nvlink_domains
from gpucloud.render import imex, slurm, slurm_topology

EXAMPLE = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text(encoding="utf-8"))


def _checked(tmp_path, data):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return check_spec(path)


def _findings(checked):
    return {(f.check, f.level) for f in checked.findings}


def _variant(**changes):
    data = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        data["node_pools"][0][key] = value
    return data


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    checked = check_spec(CLUSTERS / "nvl72.yaml")
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    return build_plan(checked.spec, tuple(checked.findings))


def test_catalog_trays():
    for name, hca, rate in (("gb200-nvl72", "ConnectX-7", "ndr"), ("gb300-nvl72", "ConnectX-8", "xdr")):
        m = catalog.SERVERS[name]
        assert m.gpus == 4 and m.rails == 4 and m.sockets == 2 and m.cpu_arch == "aarch64", name
        assert m.compute_hcas[0].model.startswith(hca) and m.compute_hcas[0].rate == rate, name
        assert m.nvlink is not None and (m.nvlink.trays, m.nvlink.switch_trays) == (18, 9), name
        assert m.nvlink_domain_gpus == 72 and m.nvlink.nmx and not m.nvswitch, name
        # a tray's share of the rack: the plan's per-host power sums give the rack's figure
        assert abs(m.power_kw * 18 - m.nvlink.rack_power_kw) < 0.01, name
    assert catalog.SERVERS["hgx-h100-8"].nvlink is None and catalog.SERVERS["hgx-h100-8"].nvlink_domain_gpus == 8


def test_racks_are_nvlink_domains(plan):
    domains = nvlink_domains(plan.pools)
    assert len(domains) == 64 and all(d.full and d.gpus == 72 for d in domains)
    gpu = plan.pool("gpu")
    rack_of = {h.name: h.rack for h in gpu.hosts}
    address = {h.name: h.management for h in gpu.hosts}
    for d in domains:
        assert {rack_of[h] for h in d.hosts} == {d.name}  # a domain never crosses a rack
        assert d.peers == tuple(address[h] for h in d.hosts)
    assert sum(len(d.hosts) for d in domains) == len(gpu.hosts) == 1152


def test_imex_peer_lists_stay_inside_their_domain(plan):
    files = imex.render(plan)
    gpu = plan.pool("gpu")
    rack_of_address = {h.management: h.rack for h in gpu.hosts}
    configs = {k: v for k, v in files.items() if k.endswith("nodes_config.cfg")}
    assert len(configs) == 64
    for path, data in configs.items():
        rack = path.split("/")[1]
        peers = data.decode().split()
        assert len(peers) == 18 and {rack_of_address[p] for p in peers} == {rack}, path
    assert b'"fabric_manager": false' in files["imex/domains.json"]


def test_the_compute_layer_converges_whole_racks_within_the_budget(plan):
    """imex/converge.yml: Ansible serial batches over the NVL72 trays in inventory order, 6 racks (108 trays, the
    example's budget) at a time, the last batch the 4 racks left."""
    data = yaml.safe_load(imex.render(plan)["imex/converge.yml"])
    assert data == {"gpucloud_nvlink_serial": [108] * 10 + [72]}
    assert sum(data["gpucloud_nvlink_serial"]) == len(plan.pool("gpu").hosts)


def test_block_topology_and_imex_channels(plan):
    topo = slurm_topology.render(plan)["slurm/topology.conf"].decode()
    blocks = [line for line in topo.splitlines() if line.startswith("BlockName=")]
    assert len(blocks) == 64 and blocks[0] == "BlockName=nvl01 Nodes=gb[0001-0018]"
    assert blocks[-1] == "BlockName=nvl64 Nodes=gb[1135-1152]"
    assert "BlockSizes=18,36,72,144,288,576,1152" in topo.splitlines()
    assert _slurmctld_block_errors(topo) == []
    files = slurm.render(plan)
    conf = files["slurm/slurm.conf"].decode().splitlines()
    assert "TopologyPlugin=topology/block" in conf and "SwitchType=switch/nvidia_imex" in conf
    assert "SwitchParameters=imex_channel_count=2048" in conf
    gres = files["slurm/gres.conf"].decode()
    # Grace: no core range guessed from an x86 socket layout
    assert "NodeName=gb[0001-1152] Name=gpu Type=gb200 File=/dev/nvidia[0-3]\n" in gres and "Cores=" not in gres


def _slurmctld_block_errors(topo: str) -> list[str]:
    """What slurmctld's topology/block refuses (src/plugins/topology/block/block_record.c): the first BlockSizes
    value is the base block size; every further one is base x 2^n, n <= 15; a block with fewer nodes than the base
    is fatal."""
    from gpucloud.hostlist import expand

    sizes = [int(v) for line in topo.splitlines() if line.startswith("BlockSizes=")
             for v in line.split("=", 1)[1].split(",")]
    blocks = {kv["BlockName"]: len(expand(kv["Nodes"])) for kv in
              (dict(f.split("=", 1) for f in line.split()) for line in topo.splitlines()
               if line.startswith("BlockName="))}
    base = sizes[0] if sizes else next(iter(blocks.values()))
    errors = [f"BlockSizes {s} is not {base} x 2^n" for s in sizes
              if s % base or (s // base) & (s // base - 1) or s // base > 1 << 15]
    errors += [f"block {name} has {n} nodes, fewer than the base {base}" for name, n in blocks.items() if n < base]
    return errors


def test_partial_domain_lowers_the_base_block(tmp_path):
    checked = _checked(tmp_path, _variant(count=1160))
    assert ("nvlink-partial-rack", "warning") in _findings(checked)
    p = build_plan(checked.spec)
    assert nvlink_domains(p.pools)[-1].hosts == tuple(f"gb{i:04}" for i in range(1153, 1161))
    topo = slurm_topology.render(p)["slurm/topology.conf"].decode()
    assert "BlockName=nvl65 Nodes=gb[1153-1160]" in topo and "BlockSizes=8,16,32,64,128,256,512,1024" in topo
    assert _slurmctld_block_errors(topo) == []


def test_an_excluded_tray_keeps_topology_conf_acceptable(tmp_path):
    p = build_plan(_checked(tmp_path, _variant(exclude=[20])).spec)
    topo = slurm_topology.render(p)["slurm/topology.conf"].decode()
    assert "BlockName=nvl02 Nodes=gb[0019,0021-0036]" in topo and "BlockSizes=17," in topo
    assert _slurmctld_block_errors(topo) == []


def test_rack_that_is_not_one_domain_is_an_error(tmp_path):
    data = _variant(rack={"name": "nvl{rack:02}", "nodes_per_rack": 16})
    found = [f for f in _checked(tmp_path, data).findings if f.check == "nvlink-rack-domain"]
    assert found and found[0].level == "error" and found[0].path == ("node_pools", 0, "rack", "nodes_per_rack")


def test_imex_needs_slurm_24_11(tmp_path):
    data = copy.deepcopy(EXAMPLE)
    data["software"]["slurm"] = "23.11.10"
    assert ("slurm-imex-version", "error") in _findings(_checked(tmp_path, data))


def _mixed(hgx_fabric: str) -> dict:
    data = copy.deepcopy(EXAMPLE)
    data["node_pools"].append({"name": "hgx", "id": 3, "model": "hgx-h100-8", "count": 36,
                               "hostname": "h{index:03}", "roles": ["compute"], "fabric": hgx_fabric,
                               "rack": {"name": "h{rack:02}"}})
    data["slurm"]["partitions"].append({"name": "hgx", "pools": ["hgx"]})
    return data


def test_partition_outside_every_block_is_an_error(tmp_path):
    found = [f for f in _checked(tmp_path, _mixed("none")).findings if f.check == "slurm-block-partition"]
    assert found and found[0].level == "error" and found[0].path == ("slurm", "partitions", 2, "pools", 0)
    # on the compute fabric the HGX nodes get blocks of their scalable unit: no error, a note on the version rule
    checked = _checked(tmp_path, _mixed("compute"))
    assert ("slurm-block-partition", "error") not in _findings(checked)
    assert ("slurm-block-mixed", "info") in _findings(checked)
    topo = slurm_topology.render(build_plan(checked.spec))["slurm/topology.conf"].decode()
    assert "BlockName=su065 Nodes=h[001-018]" in topo and "BlockName=su066 Nodes=h[019-036]" in topo
    assert _slurmctld_block_errors(topo) == []


def test_mixed_partition_warns(tmp_path):
    data = _mixed("compute")
    data["slurm"]["partitions"][0]["pools"] = ["gpu", "hgx"]
    assert ("slurm-block-mixed", "warning") in _findings(_checked(tmp_path, data))


def test_override_of_the_domain(tmp_path):
    """Spec overrides work as for any model: an NVL36-style rack of 9 trays from the catalog's tray."""
    data = copy.deepcopy(EXAMPLE)
    data["hardware"] = {"models": {"gb200-nvl36": {"base": "gb200-nvl72", "nvlink": {"trays": 9, "rack_power_kw": 66}}}}
    data["node_pools"][0].update(model="gb200-nvl36", count=72, rollout={"max_unavailable": 18})
    data["fabric"]["compute"]["scalable_unit"] = 9
    data["fabric"]["compute"]["spine_leaf_groups"] = {"leaves": 8, "spines": 3}
    checked = _checked(tmp_path, data)
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    p = build_plan(checked.spec)
    domains = nvlink_domains(p.pools)
    assert len(domains) == 8 and all(len(d.hosts) == 9 and d.gpus == 36 for d in domains)
    assert "BlockSizes=9,18,36,72\n" in slurm_topology.render(p)["slurm/topology.conf"].decode()


# DGX SuperPOD GB200 RA, "Network Fabrics", compute fabric scale-out: per SU 4 spine-leaf groups (one per rail), each
# of 8 leaves (one per rack) and 6 spines, core group j joining spine j of every group; its Table 3 of switches for
# 2 to 16 SUs. Cables: a fully non-blocking fat tree over the 576 GPU ports of an SU (72 trays x 4) on every tier.
RA_GB200 = {2: (64, 48, 18), 4: (128, 96, 36), 8: (256, 192, 72), 16: (512, 384, 144)}


@pytest.mark.parametrize("sus", sorted(RA_GB200))
def test_fabric_matches_the_gb200_superpod_ra(tmp_path, sus):
    checked = _checked(tmp_path, _variant(count=sus * 8 * 18))
    assert not checked.fails()
    s = summary(build_plan(checked.spec).fabrics[0])
    assert (s["leaf"], s["spine"], s["core"]) == RA_GB200[sus]
    assert s["cables"] == {"node_leaf": 576 * sus, "leaf_spine": 576 * sus, "spine_core": 576 * sus}
    assert s["ports_used"] == {"leaf_down": 18, "leaf_up": 18, "spine": 48, "core": 64} and s["tiers"] == 3


def test_spine_leaf_groups_the_switches_cannot_build(tmp_path):
    data = copy.deepcopy(EXAMPLE)
    data["fabric"]["compute"]["spine_leaf_groups"] = {"leaves": 8, "spines": 5}
    found = [f for f in _checked(tmp_path, data).findings if f.check == "fabric-spine-leaf-groups"]
    assert found and found[0].level == "error" and "divides 18" in found[0].hint


def test_a_rollout_budget_that_is_not_whole_racks_is_rounded_to_racks(tmp_path):
    data = _variant(rollout={"max_unavailable": 100})
    found = [f for f in _checked(tmp_path, data).findings if f.check == "nvlink-rollout-budget"]
    assert found and found[0].level == "info" and "e.g. 90" in found[0].hint
    assert "rounded down to 5 whole racks (90 trays)" in found[0].message
    data = copy.deepcopy(EXAMPLE)
    del data["node_pools"][0]["rollout"]  # the default 10 % of 1,152 trays is 115: 6 racks
    found = [f for f in _checked(tmp_path, data).findings if f.check == "nvlink-rollout-budget"]
    assert found and "budget 115 (the default 10%) rounded down to 6 whole racks" in found[0].message
    # Less than a rack: a whole rack anyway, more than the spec asked, so a warning.
    data = _variant(rollout={"max_unavailable": 4})
    found = [f for f in _checked(tmp_path, data).findings if f.check == "nvlink-rollout-budget"]
    assert found and found[0].level == "warning" and "raised to 1 rack (18 trays)" in found[0].message
    assert not [f for f in check_spec(CLUSTERS / "nvl72.yaml").findings if f.check == "nvlink-rollout-budget"]


def test_two_pools_in_one_rack_are_an_error(tmp_path):
    data = copy.deepcopy(EXAMPLE)
    data["node_pools"][0]["count"] = 36
    data["node_pools"][0]["rollout"] = {"max_unavailable": 18}
    data["node_pools"].append({"name": "gpu2", "id": 3, "model": "gb200-nvl72", "count": 18, "hostname": "gc{index:04}",
                               "roles": ["compute"], "rack": {"name": "nvl{rack:02}", "first": 2, "first_u": 24}})
    found = [f for f in _checked(tmp_path, data).findings if f.check == "nvlink-rack-shared"]
    assert found and found[0].level == "error" and "rack nvl02" in found[0].message
    data["node_pools"][-1]["rack"]["first"] = 3
    assert ("nvlink-rack-shared", "error") not in _findings(_checked(tmp_path, data))


def test_gb300_racks_on_an_xdr_fabric(tmp_path):
    """GB300 NVL72 trays plan the same way, with ConnectX-8 XDR adapters on Quantum-X800 leaves."""
    data = _variant(model="gb300-nvl72", count=144, rollout={"max_unavailable": 18})
    data["fabric"]["compute"]["switch"] = "q3400"
    del data["fabric"]["compute"]["spine_leaf_groups"]
    del data["software"]["doca_ofed"]  # 2.9.1 predates ConnectX-8 (catalog/compat.py): the check refuses it
    checked = _checked(tmp_path, data)
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    p = build_plan(checked.spec)
    fp = p.fabrics[0]
    assert fp.rate == "xdr" and fp.count(1) == 32 and len(fp.endpoints) == 576
    assert p.figures.rack_power_kw == 142.0 and p.figures.domain_gpus == 72
    files = slurm.render(p)
    assert "Gres=gpu:gb300:4" in files["slurm/slurm.conf"].decode()
    assert "Type=gb300 File=/dev/nvidia[0-3]\n" in files["slurm/gres.conf"].decode()


def test_a_change_of_spine_leaf_groups_is_cabling_work(tmp_path):
    import subprocess
    import sys

    specs = []
    for name, groups in (("old", {"leaves": 8, "spines": 6}), ("new", {"leaves": 4, "spines": 6})):
        data = _variant(count=288, rollout={"max_unavailable": 18})
        data["fabric"]["compute"]["spine_leaf_groups"] = groups
        (tmp_path / name).mkdir()
        specs.append(tmp_path / name / "nvl72.yaml")
        specs[-1].write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "gpucloud", "diff", *map(str, specs)], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    assert "| hardware / cabling work | fabric compute spine_leaf_groups | 8, 6 -> 4, 6 |" in out.stdout


def test_a_smaller_fabric_block_sets_the_base(tmp_path):
    """HGX nodes of a mixed cluster whose last scalable unit is partly filled make the smallest block: it is the
    base, or slurmctld would refuse that block."""
    data = _mixed("compute")
    data["node_pools"][-1]["count"] = 40
    topo = slurm_topology.render(build_plan(_checked(tmp_path, data).spec))["slurm/topology.conf"].decode()
    assert "BlockName=su067 Nodes=h[037-040]" in topo and "\nBlockSizes=4,8,16," in topo
    assert _slurmctld_block_errors(topo) == []


def test_domains_record_their_tenants_and_a_sole_owner_as_planned_data(tmp_path, plan):
    shared = json.loads(imex.render(plan)["imex/domains.json"])["domains"]
    assert all(d["tenants"] == ["frontier-lab", "inference"] and d["owner"] is None for d in shared)
    data = copy.deepcopy(EXAMPLE)
    data["tenants"] = [{"name": "frontier-lab", "pools": ["gpu"], "users": ["fl01"], "gpu_limit": 4608,
                        "pkey": "0x0201"}]
    data["slurm"]["partitions"] = [{"name": "gpu", "pools": ["gpu"], "default": True}]
    checked = _checked(tmp_path, data)
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    owned = build_plan(checked.spec, tuple(checked.findings))
    doms = json.loads(imex.render(owned)["imex/domains.json"])["domains"]
    assert len(doms) == 64 and all(d["tenants"] == ["frontier-lab"] and d["owner"] == "frontier-lab" for d in doms)
    from gpucloud.render import plan_md
    assert ("Tenants on pool `gpu`'s domains: frontier-lab alone (each domain its whole NVLink partition)"
            in plan_md.render_text(owned))


def test_a_budget_of_the_whole_pool_that_is_not_whole_racks_is_said_too():
    """27 trays (a rack and a half) with a budget of 100 %: one rack at a time, which the note must say."""
    from gpucloud.plan.rollout import rack_note

    assert rack_note("100%", 27, 18) == "budget 27 (100%) rounded down to 1 whole racks (18 trays)"
    assert rack_note("100%", 36, 18) is None
