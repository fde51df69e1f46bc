"""The Ethernet (RoCEv2) fabric planner: SAKURAONE's published switch counts, balanced leaf/spine wiring, RFC 7938
ASNs, per-rail subnets, the model's rail-to-device map and growth that moves no existing cable."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter

from conftest import CLUSTERS
from gpucloud.plan.ethernet import plan_fabric, shape, spine_count
from gpucloud.plan.hosts import plan_hosts
from gpucloud.spec import load

SAKURAONE = CLUSTERS / "sakuraone.yaml"


def _spec(**pool_counts):
    spec = load(SAKURAONE).spec
    assert spec is not None
    if pool_counts:
        pools = tuple(dataclasses.replace(p, count=pool_counts.get(p.name, p.count)) for p in spec.pools)
        spec = dataclasses.replace(spec, pools=pools)
    return spec


def _plan(spec):
    fp = plan_fabric(spec, plan_hosts(spec), "compute")
    assert fp is not None
    return fp


def test_sakuraone_has_the_published_switch_counts():
    # 100 nodes x 8 rails: 2 pods of 8 leaves plus 8 spines, all 64 x 800G (the SAKURAONE papers; docs/fabric.md)
    fp = _plan(_spec())
    assert (fp.count(1), fp.count(2)) == (16, 8)
    assert len(fp.ports) == 800 and len(fp.links) == 16 * 32
    assert (fp.host_gbps, fp.per_cage, fp.down_cages, fp.up_cages, fp.links_per_spine) == (400, 2, 32, 32, 4)


def test_every_leaf_reaches_every_spine_equally_and_no_port_is_used_twice():
    fp = _plan(_spec())
    pairs = Counter((link.leaf, link.spine) for link in fp.links)
    leaves = [i for i, s in enumerate(fp.switches) if s.tier == 1]
    spines = [i for i, s in enumerate(fp.switches) if s.tier == 2]
    assert set(pairs) == {(leaf, spine) for leaf in leaves for spine in spines}
    assert set(pairs.values()) == {fp.links_per_spine}
    used = [(link.leaf, link.leaf_port) for link in fp.links] + [(link.spine, link.spine_port) for link in fp.links]
    used += [(p.leaf, p.port) for p in fp.ports]
    assert len(used) == len(set(used))
    # Uplinks sit on whole 800G cages after the host cages; host ports are the halves of the first cages.
    assert {link.leaf_port for link in fp.links} == {f"Ethernet{8 * c}" for c in range(32, 64)}
    assert {p.port for p in fp.ports if p.leaf == 0} == {f"Ethernet{4 * i}" for i in range(64)}


def test_asns_follow_rfc_7938_and_loopbacks_are_unique():
    fp = _plan(_spec())
    leaves = [s for s in fp.switches if s.tier == 1]
    assert len({s.asn for s in leaves}) == len(leaves)
    assert {s.asn for s in fp.switches if s.tier == 2} == {fp.roce.spine_asn}
    assert fp.roce.spine_asn not in {s.asn for s in leaves}
    assert len({s.loopback for s in fp.switches}) == len(fp.switches)
    assert all(ipaddress.IPv4Address(s.loopback) in ipaddress.IPv4Network(fp.roce.loopbacks) for s in fp.switches)


def test_hosts_take_the_models_rail_devices_and_per_rail_subnets():
    fp = _plan(_spec())
    first = [p for p in fp.ports if p.host == "gpu0001"]
    assert [p.device for p in first] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_7",
                                         "mlx5_11"]
    for p in fp.ports:
        leaf = fp.switches[p.leaf]
        assert leaf.rail == p.rail
        subnet = ipaddress.IPv4Network(leaf.subnet)
        assert ipaddress.IPv4Address(p.address) in subnet and ipaddress.IPv4Address(p.gateway) == subnet[1]
        assert subnet.subnet_of(ipaddress.IPv4Network(fp.rail_blocks[p.rail]))  # type: ignore[arg-type]
    assert len({p.address for p in fp.ports}) == len(fp.ports)
    # gpu0065 starts the second pod
    assert {fp.switches[p.leaf].su for p in fp.ports if p.host == "gpu0065"} == {2}


def test_growth_moves_no_host_cable_and_no_leaf_identity():
    small, big = _plan(_spec(gpu=100)), _plan(_spec(gpu=128))
    assert set(small.ports) <= set(big.ports)
    assert set(s for s in small.switches if s.tier == 1) <= set(big.switches)


def test_spine_count_divides_the_uplinks():
    assert spine_count(16, 32, 64) == 8
    assert spine_count(24, 32, 64) == 16  # 12 would hold the uplinks but does not divide 32
    assert spine_count(8, 32, 64) == 4
    assert spine_count(72, 32, 64) == 0
    assert spine_count(0, 32, 64) == 0


def test_shape_agrees_with_the_plan():
    spec = _spec()
    sh = shape(spec, "compute")
    fp = _plan(spec)
    assert sh is not None and (sh.leaves, sh.spines, sh.sus) == (fp.count(1), fp.count(2), fp.sus)
