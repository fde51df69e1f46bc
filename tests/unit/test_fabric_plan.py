"""The fabric planner: published DGX SuperPOD counts, balanced wiring, rail alignment, stability and subnets."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from conftest import CLUSTERS, ROOT
from gpucloud.plan import build_plan
from gpucloud.plan.fabric import LID_LIMIT, headroom, plan_fabric, shape, summary
from gpucloud.plan.hosts import plan_hosts
from gpucloud.spec import load

VALID = ROOT / "tests" / "specs" / "valid"


def _spec(path, **pool_counts):
    spec = load(path).spec
    assert spec is not None
    if pool_counts:
        pools = tuple(dataclasses.replace(p, count=pool_counts.get(p.name, p.count)) for p in spec.pools)
        spec = dataclasses.replace(spec, pools=pools)
    return spec


def _fabric(spec, name="compute"):
    return plan_fabric(spec, plan_hosts(spec), name)


# (nodes, leaf, spine, core, node_leaf, leaf_spine, spine_core) as published; the sources are cited in the specs
# and in docs/fabric.md.
H100 = [(31, 8, 4, 0, 252, 256, 0), (63, 16, 8, 0, 508, 512, 0), (95, 24, 16, 0, 764, 768, 0),
        (127, 32, 16, 0, 1020, 1024, 0)]
B200 = [(64, 16, 8, 0, 512, 512, 0), (128, 32, 16, 0, 1024, 1024, 0), (256, 64, 32, 0, 2048, 2048, 0),
        (512, 128, 128, 64, 4096, 4096, 4096), (1024, 256, 256, 128, 8192, 8192, 8192),
        (2048, 512, 512, 256, 16384, 16384, 16384)]
B300_XDR = [(72, 8, 4, 0, 576, 576, 0), (144, 16, 8, 0, 1152, 1152, 0), (288, 32, 18, 0, 2304, 2304, 0),
            (576, 64, 36, 0, 4608, 4608, 0), (1296, 144, 72, 0, 10368, 10368, 0)]
REFERENCE = ([("fabric-superpod-h100.yaml", *row) for row in H100]
             + [("fabric-superpod-b200.yaml", *row) for row in B200]
             + [("fabric-superpod-b300-xdr.yaml", *row) for row in B300_XDR])


@pytest.mark.parametrize("spec_file,nodes,leaf,spine,core,node_leaf,leaf_spine,spine_core", REFERENCE)
def test_dgx_superpod_reference_counts(spec_file, nodes, leaf, spine, core, node_leaf, leaf_spine, spine_core):
    spec = _spec(VALID / spec_file, dgx=nodes)
    s = summary(_fabric(spec))
    assert (s["leaf"], s["spine"], s["core"]) == (leaf, spine, core)
    assert s["cables"] == {"node_leaf": node_leaf, "leaf_spine": leaf_spine, "spine_core": spine_core}
    # The counting shortcut the checks use agrees with the wired plan.
    sh = shape(spec, "compute")
    assert (sh.leaves, sh.spines, sh.cores) == (leaf, spine, core)


def _balanced(fp):
    links = Counter(zip(fp.lo, fp.hi))
    per_lower: dict[int, set[int]] = {}
    for (lo, hi), n in links.items():
        per_lower.setdefault(lo, set()).add(n)
    # every lower switch has the same number of links to each upper switch it uses
    assert all(len(ns) == 1 for ns in per_lower.values()), "unbalanced uplinks"
    tier_of = [s.tier for s in fp.switches]
    for tier in (1, 2):
        ups = {lo: len([1 for (a, _), n in links.items() if a == lo for _ in range(n)])
               for lo in per_lower if tier_of[lo] == tier}
        assert len(set(ups.values())) <= 1, f"tier {tier} switches have different uplink counts"


def _ports_unique(fp):
    used = Counter()
    for e in fp.endpoints:
        used[(e.leaf, e.port)] += 1
    for s, p in zip(fp.lo, fp.lo_port):
        used[(s, p)] += 1
    for s, p in zip(fp.hi, fp.hi_port):
        used[(s, p)] += 1
    assert max(used.values()) == 1, "a switch port carries two cables"
    assert all(1 <= p <= fp.radix for _, p in used), "a port beyond the switch radix"


@pytest.mark.parametrize("path", [*[VALID / f for f in ("fabric-superpod-h100.yaml", "fabric-mid.yaml")],
                                  CLUSTERS / "lab.yaml", CLUSTERS / "ishikari.yaml", CLUSTERS / "abci3.yaml"])
def test_wiring_is_balanced_and_ports_unique(path):
    spec = _spec(path)
    for name in spec.fabrics:
        fp = _fabric(spec, name)
        _balanced(fp)
        _ports_unique(fp)


def test_three_tier_pods_and_cores_are_balanced():
    fp = _fabric(_spec(VALID / "fabric-superpod-b200.yaml", dgx=512))
    _balanced(fp)
    _ports_unique(fp)
    sws = fp.switches
    # a leaf only reaches the spines of its own pod; 4 SUs of 8 rails make a 32-leaf pod
    for lo, hi, tier in zip(fp.lo, fp.hi, fp.hi_tier):
        if tier == 2:
            assert (sws[lo].group - 1) // 4 + 1 == sws[hi].group
    # each core joins the same spine position of every pod, with the same number of links
    per_core = Counter((hi, sws[lo].group) for lo, hi, t in zip(fp.lo, fp.hi, fp.hi_tier) if t == 3)
    assert set(per_core.values()) == {16}
    assert len({pod for _, pod in per_core}) == 4


def test_rail_alignment_and_service_ports():
    fp = _fabric(_spec(VALID / "fabric-mid.yaml"))
    sws = fp.switches
    for e in fp.endpoints:
        leaf = sws[e.leaf]
        if not e.service:
            assert leaf.rail == e.hca, "HCA i must land on the rail-i leaf"
    # pool a (6 nodes) fills SU 1 and half of SU 2; pool b starts on a fresh SU 3
    su_of = {(e.host, e.hca): sws[e.leaf].group for e in fp.endpoints}
    assert su_of[("a01", 0)] == 1 and su_of[("a05", 7)] == 2 and su_of[("b01", 0)] == 3
    # service hosts take the free top ports of the last SU's leaves, rail by rail
    svc = sorted((e.host, sws[e.leaf].name, e.port) for e in fp.endpoints if e.service)
    assert svc == [("ctl01", "c-leaf-su003-r0", 60), ("ctl02", "c-leaf-su003-r1", 60),
                   ("login01", "c-leaf-su003-r2", 60)]


def test_growing_a_pool_moves_no_existing_cable():
    small = _fabric(_spec(VALID / "fabric-superpod-b200.yaml", dgx=100))
    big = _fabric(_spec(VALID / "fabric-superpod-b200.yaml", dgx=128))

    def cables(fp):
        return {(e.host, e.hca): (fp.switches[e.leaf].name, e.port, e.guid) for e in fp.endpoints}

    before, after = cables(small), cables(big)
    assert all(after[k] == v for k, v in before.items())
    leaf_guids = {s.name: s.guid for s in small.switches if s.tier == 1}
    assert all(s.guid == leaf_guids[s.name] for s in big.switches if s.name in leaf_guids)


def test_guids_unique_and_stable():
    fp = _fabric(_spec(CLUSTERS / "ishikari.yaml"))
    guids = [s.guid for s in fp.switches] + [e.guid for e in fp.endpoints] + [e.guid + 1 for e in fp.endpoints]
    assert len(guids) == len(set(guids))
    again = _fabric(_spec(CLUSTERS / "ishikari.yaml"))
    assert [s.guid for s in again.switches] == [s.guid for s in fp.switches]


def test_per_rail_split_gives_disconnected_subnets():
    spec = _spec(VALID / "fabric-mid.yaml")
    spec = dataclasses.replace(spec, fabrics={"compute": dataclasses.replace(spec.fabrics["compute"],
                                                                             split="per-rail")})
    fp = _fabric(spec)
    assert fp.split == "per-rail" and len(fp.subnets) == 8
    sub = [s.subnet for s in fp.switches]
    assert all(sub[lo] == sub[hi] for lo, hi in zip(fp.lo, fp.hi)), "a cable joins two subnets"
    assert all(sub[e.leaf] == fp.switches[e.leaf].rail for e in fp.endpoints)
    assert sum(s.endpoints for s in fp.subnets) == len(fp.endpoints)


def test_colossus_splits_per_rail_under_the_lid_limit():
    sh = shape(_spec(CLUSTERS / "colossus-100k.yaml"), "compute")
    assert sh.split == "per-rail" and len(sh.planes) == 8 and sh.tiers == 3
    assert sh.endpoints > LID_LIMIT > sh.lids_per_subnet()


def test_plan_json_section_has_integer_summary():
    plan = build_plan(_spec(CLUSTERS / "lab.yaml"))
    from gpucloud.render.fabric import section

    s = section(plan)["compute"]["summary"]
    assert all(isinstance(s[k], int) for k in ("leaf", "spine", "core"))
    assert set(s["cables"]) == {"node_leaf", "leaf_spine", "spine_core"}
    assert s["ports_used"]["leaf_up"] == 2 and s["cables"]["node_leaf"] == 2 * 8 + 2
    assert s["ports_in_use"] == {"leaf": 18 + 16, "spine": 16, "core": 0}


def test_port_labels_follow_the_osfp_cages():
    fp = _fabric(_spec(CLUSTERS / "lab.yaml"))
    assert [fp.port_label(p) for p in (1, 2, 3, 64)] == ["1/1", "1/2", "2/1", "32/2"]
    abci = _fabric(_spec(CLUSTERS / "abci3.yaml"))  # NDR200: each of the two ports of a cage split in two
    assert [abci.port_label(p) for p in (1, 2, 3, 4, 5, 128)] == ["1/1/1", "1/1/2", "1/2/1", "1/2/2", "2/1/1",
                                                                 "32/2/2"]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpu=st.integers(1, 700), small=st.integers(0, 40), svc=st.integers(0, 70), su=st.sampled_from([4, 8, 16, 32]),
       taper=st.sampled_from(["1:1", "2:1", "3:1"]), tiers=st.sampled_from(["auto", 3]),
       topology=st.sampled_from(["rail-optimized-fat-tree", "fat-tree"]))
def test_planner_invariants(gpu, small, svc, su, taper, tiers, topology):
    """Whatever the sizes: balanced, no port used twice, every HCA cabled once, counts equal the shortcut."""
    spec = _spec(VALID / "fabric-mid.yaml", a=gpu, b=small, ctl=max(1, svc // 2), login=max(1, svc - svc // 2))
    fabric = dataclasses.replace(spec.fabrics["compute"], scalable_unit=su, topology=topology,
                                 oversubscription=(int(taper[0]), 1), tiers=tiers)
    spec = dataclasses.replace(spec, fabrics={"compute": fabric})
    fp = _fabric(spec)
    _balanced(fp)
    _ports_unique(fp)
    hosts = {h.name: pp.model.rails for pp in plan_hosts(spec) for h in pp.hosts}
    assert Counter(e.host for e in fp.endpoints) == Counter(hosts)
    sh = shape(spec, "compute")
    assert (sh.leaves, sh.spines, sh.cores, sh.endpoints) == (fp.count(1), fp.count(2), fp.count(3),
                                                              len(fp.endpoints))
    assert sum(s.lids for s in fp.subnets) == len(fp.endpoints) + len(fp.switches)


@pytest.mark.parametrize("name", ["lab", "ishikari", "abci3"])
def test_every_switch_has_its_own_rack_unit(name):
    """The rack diagram and the cabling plan place switches by (rack, unit): no two may share one, none below U1."""
    plan = build_plan(load(CLUSTERS / f"{name}.yaml").spec)
    for fabric in plan.fabrics:
        places = Counter((s.rack, s.u) for s in fabric.switches)
        assert [p for p, n in places.items() if n > 1] == [], fabric.name
        assert min(s.u for s in fabric.switches) >= 1, fabric.name


@pytest.mark.parametrize("name, fabric", [("lab", "compute"), ("ishikari", "compute"), ("ishikari", "storage")])
def test_headroom_is_exactly_where_the_planner_adds_a_third_tier(name, fabric):
    spec = _spec(CLUSTERS / f"{name}.yaml")
    room = headroom(spec, fabric, plan_hosts(spec))
    assert room is not None and room.nodes > 0
    pool = next(p for p in spec.pools if p.name == room.pool)
    at_limit = _spec(CLUSTERS / f"{name}.yaml", **{pool.name: pool.count + room.nodes})
    past = _spec(CLUSTERS / f"{name}.yaml", **{pool.name: pool.count + room.nodes + 1})
    assert _fabric(at_limit, fabric).tiers == 2
    assert _fabric(past, fabric).tiers == 3
    # A scalable unit in nodes: rail-optimised, the SU size; plain fat tree, a leaf's down ports over the node's HCAs.
    assert room.su_nodes == {("lab", "compute"): 2, ("ishikari", "compute"): 32, ("ishikari", "storage"): 16}[
        (name, fabric)]


def test_no_headroom_line_for_three_tier_or_pinned_fabrics():
    spec = _spec(CLUSTERS / "hokkaido-10k.yaml")
    assert headroom(spec, "compute", plan_hosts(spec)) is None  # already three tiers
    lab = _spec(CLUSTERS / "lab.yaml")
    pinned = dataclasses.replace(lab, fabrics={**lab.fabrics, "compute": dataclasses.replace(
        lab.fabrics["compute"], tiers=2)})
    assert headroom(pinned, "compute", plan_hosts(pinned)) is None
