"""Fabric files, Slurm topology.conf and miswire detection on rendered text (the twin does it for real)."""

from __future__ import annotations

import csv
import dataclasses
import io
import re

import pytest

from conftest import CLUSTERS, ROOT, assert_golden, run_cli
from gpucloud.plan import build_plan
from gpucloud.render import fabric as render_fabric
from gpucloud.render import slurm_task_prolog, slurm_topology
from gpucloud.spec import load
from gpucloud.verify.fabric import compare, report

VALID = ROOT / "tests" / "specs" / "valid"
GOLDEN = ROOT / "tests" / "golden" / "fabric"
SPECS = {"lab": CLUSTERS / "lab.yaml", "mid": VALID / "fabric-mid.yaml", "sakuraone": CLUSTERS / "sakuraone.yaml"}


def _plan(name):
    return build_plan(load(SPECS[name]).spec)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_fabric_files(name):
    plan = _plan(name)
    files = {**render_fabric.render(plan), **slurm_topology.render(plan), **slurm_task_prolog.render(plan)}
    assert files == {**render_fabric.render(plan), **slurm_topology.render(plan), **slurm_task_prolog.render(plan)}, \
        "rendering is not deterministic"
    for path, data in sorted(files.items()):
        assert_golden(GOLDEN / name / path, data)


def test_cabling_csv_matches_the_plan():
    plan = _plan("mid")
    fp = plan.fabrics[0]
    rows = list(csv.DictReader(io.StringIO(render_fabric.cabling_csv(fp).decode())))
    assert list(rows[0]) == ["a_device", "a_port", "b_device", "b_port", "tier", "a_rack", "b_rack", "cable"]
    tiers = {t: sum(r["tier"] == t for r in rows) for t in ("node_leaf", "leaf_spine", "spine_core")}
    assert tiers == fp.cable_counts()
    ends = [(r["a_device"], r["a_port"]) for r in rows] + [(r["b_device"], r["b_port"]) for r in rows]
    assert len(ends) == len(set(ends)), "a port appears on two cables"
    a01 = [r for r in rows if r["a_device"] == "a01"]
    assert [(r["a_port"], r["b_device"], r["b_port"]) for r in a01[:2]] == [
        ("mlx5_0", "c-leaf-su001-r0", "1/1"), ("mlx5_1", "c-leaf-su001-r1", "1/1")]
    assert a01[0]["a_rack"] == "ra01" and a01[0]["b_rack"] == "c-su001"


def _definitions(text: str) -> dict[str, str]:
    """Partition name -> its whole definition, joined over the lines it spans (comments dropped)."""
    body = " ".join(ln for ln in text.splitlines() if ln and not ln.startswith("#"))
    return {d.split("=", 1)[0].strip(): d for d in body.split(";") if d.strip()}


def test_partitions_isolate_tenants():
    plan = _plan("mid")
    fp = plan.fabrics[0]
    text = render_fabric.partitions_conf(plan, fp, fp.subnets[0]).decode()
    parts = _definitions(text)
    guid = {(e.host, e.hca): f"0x{e.guid + 1:016x}" for e in fp.endpoints}
    assert guid[("a01", 3)] + "=full" in parts["alpha"] and guid[("a01", 3)] not in parts["beta"]
    assert guid[("b04", 0)] + "=full" in parts["beta"] and guid[("b04", 0)] not in parts["alpha"]
    # every HCA port limited in Default and storage; only the subnet managers full in Default, no storage server here
    assert "ALL_CAS=limited" in parts["Default"] and "ALL_CAS=limited" in parts["storage"]
    assert guid[("ctl01", 0)] + "=full" in parts["Default"] and guid[("login01", 0)] not in parts["Default"]
    assert guid[("a01", 0)] not in parts["Default"] and "=full" not in parts["storage"]
    assert "indx0" in parts["storage"] and "indx0" not in parts["alpha"]
    assert "shared" not in parts  # every compute pool belongs to a tenant with a key
    assert "alpha=0x0a01" in text and "storage=0x7ffd" in text and "Default=0x7fff" in text


def test_partition_lines_stay_short():
    """OpenSM reads partitions.conf in 4,096-byte lines; a definition spans lines, each ending in ',' until ';'."""
    plan = build_plan(load(CLUSTERS / "abci3.yaml").spec)
    fp = plan.fabrics[0]
    text = render_fabric.partitions_conf(plan, fp, fp.subnets[0]).decode()
    lines = text.splitlines()
    assert max(map(len, lines)) < 200
    members = [ln for ln in lines if ln.startswith("  ")]
    assert members and all(ln.endswith((",", ";")) for ln in members)
    parts = _definitions(text)
    # 766 nodes x 8 rails, shared by the three tenants: each tenant's definition lists them all
    assert len(re.findall(r"0x[0-9a-f]{16}=full", parts["gaa50000"])) == 766 * 8


def test_shared_partition_and_storage_servers():
    """Compute pools no tenant key claims get the shared key; storage servers are full storage members."""
    from gpucloud.plan.fabric import partition_keys

    spec = load(SPECS["mid"]).spec
    pools = tuple(dataclasses.replace(p, roles=("storage-server",)) if p.name == "login" else p for p in spec.pools)
    spec = dataclasses.replace(spec, pools=pools, tenants=spec.tenants[:1])
    keys = partition_keys(spec)
    assert keys["a"].tenants == (("alpha", 0x0A01),) and not keys["a"].shared
    assert keys["b"].tenants == () and keys["b"].shared and keys["b"].count == 3
    plan = build_plan(spec)
    fp = plan.fabrics[0]
    parts = _definitions(render_fabric.partitions_conf(plan, fp, fp.subnets[0]).decode())
    guid = {(e.host, e.hca): f"0x{e.guid + 1:016x}" for e in fp.endpoints}
    assert guid[("b01", 0)] + "=full" in parts["shared"] and guid[("a01", 0)] not in parts["shared"]
    assert guid[("login01", 0)] + "=full" in parts["storage"]


def test_opensm_ha_pair_priorities():
    files = render_fabric.render(_plan("mid"))
    one, two = files["fabric/compute/opensm-ctl01.conf"].decode(), files["fabric/compute/opensm-ctl02.conf"].decode()
    assert "sm_priority 15" in one and "sm_priority 14" in two
    assert "routing_engine ftree" in one and "cn_guid_file" in one and "root_guid_file" in one
    roots = files["fabric/compute/root_guids.txt"].decode().split()
    fp = _plan("mid").fabrics[0]
    assert sorted(roots) == sorted(f"0x{s.guid:016x}" for s in fp.switches if s.tier == 2)


def test_bom_counts_twin_port_cages():
    plan = _plan("lab")
    rows = list(csv.DictReader(io.StringIO(render_fabric.bom_csv(plan.fabrics[0]).decode())))
    by = {(r["category"], r["tier"]): int(r["quantity"]) for r in rows}
    # 8 rail leaves and a service leaf for ctl01 and login01 (the gpu nodes fill the SU's two slots)
    assert by[("switch", "leaf")] == 9 and by[("switch", "spine")] == 1
    # each leaf: hosts on ports 1-2 (cage 1), uplinks on 63-64 (cage 32); the spine takes 18 links in 9 cages
    assert by[("transceiver", "switch cage to switches")] == 9 + 9
    assert by[("transceiver", "switch cage to hosts")] == 9
    # a DGX H100-class node carries its 8 compute ports in 4 twin-port cages; ctl01 and login01 take one each
    assert by[("transceiver", "host cage")] == 2 * 4 and by[("transceiver", "host adapter")] == 2


def test_topology_conf_attaches_every_compute_node_once():
    plan = build_plan(load(CLUSTERS / "hokkaido-10k.yaml").spec)
    text = slurm_topology.topology_conf(plan)
    from gpucloud.hostlist import expand

    nodes = [n for ln in text.splitlines() if "Nodes=" in ln for n in expand(ln.split("Nodes=")[1])]
    compute = [h.name for pp in plan.pools if "compute" in pp.pool.roles for h in pp.hosts]
    assert sorted(nodes) == sorted(compute) and len(nodes) == len(set(nodes))
    assert "SwitchName=su009 Nodes=gpu[1001-1032]" in text  # the second pool starts a fresh SU
    assert "SwitchName=pod01 Switches=su[001-004]" in text and "SwitchName=fabric Switches=pod[01-11]" in text


def _net(name="mid"):
    plan = _plan(name)
    return plan.fabrics[0], render_fabric.render(plan)["fabric/compute/topology.net"].decode()


def test_verify_clean_and_swapped():
    fp, net = _net()
    assert compare(fp, net).clean
    # swap the cables of a01 and a02 on the rail-0 leaf (ports 1 and 2), on both sides of the link
    swapped = (net.replace('"a01 mlx5_0"[1]', "@A").replace('"a02 mlx5_0"[1]', '"a01 mlx5_0"[1]')
               .replace("@A", '"a02 mlx5_0"[1]'))
    swapped = (swapped.replace('"c-leaf-su001-r0"[1]\n', "@L\n").replace('"c-leaf-su001-r0"[2]\n', '"c-leaf-su001-r0"[1]\n')
               .replace("@L\n", '"c-leaf-su001-r0"[2]\n'))
    result = compare(fp, swapped)
    assert not result.missing and not result.unexpected and len(result.swapped) == 1
    text = "\n".join(report(result))
    assert "swapped: planned a01 mlx5_0 <-> c-leaf-su001-r0 1/1 and a02 mlx5_0 <-> c-leaf-su001-r0 1/2" in text


def test_verify_missing_cable_and_switch():
    fp, net = _net()
    sws = fp.switches
    lo, lp, hi, hp = fp.lo[0], fp.lo_port[0], fp.hi[0], fp.hi_port[0]
    a, b = sws[lo].name, sws[hi].name
    cut = "\n".join(ln for ln in net.splitlines()
                    if not ln.startswith((f'[{lp}]\t"{b}"[{hp}]', f'[{hp}]\t"{a}"[{lp}]')))
    result = compare(fp, cut)
    assert [f"{x[0]} {x[1]} <-> {y[0]} {y[1]}" for x, y in result.missing] == [
        f"{a} {fp.port_label(lp)} <-> {b} {fp.port_label(hp)}"] == ["c-leaf-su001-r0 31/1 <-> c-spine-001 1/1"]
    assert not result.unexpected and not result.swapped
    # drop a spine: every cable of it is missing and the device is named
    blocks = net.split("\n\n")
    gone = "\n\n".join(blk for blk in blocks if 'Switch\t64 "c-spine-002"' not in blk)
    gone = "\n".join(ln for ln in gone.splitlines() if '"c-spine-002"' not in ln)
    result = compare(fp, gone)
    assert result.absent_devices == [("c-spine-002", 50)] and len(result.missing) == 50
    assert "absent: c-spine-002 is not in the fabric (50 planned cable(s) missing with it)" in report(result)


def test_fabric_verify_cli_exit_codes(tmp_path):
    fp, net = _net("lab")
    good = tmp_path / "good.net"
    good.write_text(net)
    bad = tmp_path / "bad.net"
    bad.write_text("\n".join(ln for ln in net.splitlines() if '"gpu02 mlx5_3"' not in ln))
    ok = run_cli("fabric", "verify", str(CLUSTERS / "lab.yaml"), "--ibnetdiscover", str(good))
    assert ok.returncode == 0 and "fabric matches the plan" in ok.stdout
    diff = run_cli("fabric", "verify", str(CLUSTERS / "lab.yaml"), "--ibnetdiscover", str(bad))
    assert diff.returncode == 1 and "missing: c-leaf-su001-r3 1/2 <-> gpu02 mlx5_3" in diff.stdout
    junk = tmp_path / "junk.net"
    junk.write_text("hello\n")
    usage = run_cli("fabric", "verify", str(CLUSTERS / "lab.yaml"), "--ibnetdiscover", str(junk))
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_verify_reads_managed_switch_and_fqdn_descriptions():
    fp, net = _net("lab")
    real = net.replace('"c-leaf-su001-r0"', '"MF0;c-leaf-su001-r0:MQM9700/U1"').replace('"gpu01 mlx5_0"',
                                                                                          '"gpu01.lab.example mlx5_0"')
    assert compare(fp, real).clean


def test_topology_conf_of_an_ethernet_rail_fabric():
    """SAKURAONE's RoCE fabric: a node's 8 NICs sit on the 8 rail leaves of its SU, so the SU is the lowest switch
    and the spines (every leaf reaches every spine) are the one above; before the Ethernet plan was read here, every
    node landed under 'nofabric'."""
    plan = _plan("sakuraone")
    fp = plan.ethernet[0]
    text = slurm_topology.topology_conf(plan)
    from gpucloud.hostlist import expand

    switches = dict(re.findall(r"^SwitchName=(\S+) (?:Nodes|Switches)=(\S+)", text, re.M))
    assert set(switches) == {"su001", "su002", "fabric"} and "nofabric" not in text
    assert expand(switches["fabric"]) == ["su001", "su002"]
    # every planned leaf of an SU holds exactly that SU's nodes (one NIC each, one per rail)
    for su in (1, 2):
        nodes = sorted(expand(switches[f"su{su:03}"]))
        for leaf in (i for i, s in enumerate(fp.switches) if s.tier == 1 and s.su == su):
            assert sorted(p.host for p in fp.ports if p.leaf == leaf) == nodes
    assert len(expand(switches["su001"])) == 64 and len(expand(switches["su002"])) == 36
    blocks = slurm_topology.block_conf(plan)
    assert "BlockName=su001 Nodes=gpu[0001-0064]" in blocks and "nofabric" not in blocks
