"""The fabric planner: published DGX SuperPOD counts, balanced wiring, rail alignment, stability and subnets."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter

import pytest

from gpucloud import catalog

from conftest import CLUSTERS, ROOT
from gpucloud.plan import build_plan
from gpucloud.plan.fabric import LID_LIMIT, headroom, link_set, plan_fabric, shape, summary
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
    # pool b fills SU 3, so the service hosts get a leaf of their own rather than ports beyond the SU's slots
    svc = sorted((e.host, sws[e.leaf].name, e.port) for e in fp.endpoints if e.service)
    assert svc == [("ctl01", "c-leaf-svc01", 1), ("ctl02", "c-leaf-svc01", 2), ("login01", "c-leaf-svc01", 3)]
    _non_blocking(fp)


def test_service_hosts_share_the_last_su_from_the_top():
    fp = _fabric(_spec(VALID / "fabric-mid.yaml", b=3))
    sws = fp.switches
    svc = sorted((e.host, sws[e.leaf].name, e.port) for e in fp.endpoints if e.service)
    assert svc == [("ctl01", "c-leaf-su003-r0", 4), ("ctl02", "c-leaf-su003-r1", 4), ("login01", "c-leaf-su003-r2", 4)]
    _non_blocking(fp)


def _non_blocking(fp):
    """No leaf has more host links than uplinks (at 1:1), counted in bandwidth: a split host port is half a port."""
    down = Counter(e.leaf for e in fp.endpoints)
    up = Counter(fp.lo[i] for i in range(len(fp.lo)) if fp.hi_tier[i] == 2)
    taper = fp.fabric.oversubscription[0]
    for leaf, n in down.items():
        assert n <= up[leaf] * taper * fp.step, f"{fp.switches[leaf].name}: {n} host links, {up[leaf]} uplinks"


@pytest.mark.parametrize("path", [CLUSTERS / "lab.yaml", CLUSTERS / "ishikari.yaml", CLUSTERS / "abci3.yaml",
                                  VALID / "fabric-superpod-h100.yaml", VALID / "fabric-mid.yaml"])
def test_leaves_with_service_hosts_stay_non_blocking(path):
    """The lab's leaves had 3 host links and 2 uplinks: service hosts took ports beyond the SU's slots."""
    spec = _spec(path)
    for name in spec.fabrics:
        fp = _fabric(spec, name)
        if fp.fabric.oversubscription[0] == 1:
            _non_blocking(fp)


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
    # 8 rail leaves and a service leaf for ctl01 and login01, each with 2 uplinks
    assert s["ports_in_use"] == {"leaf": 18 + 18, "spine": 18, "core": 0}


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
    if topology == "rail-optimized-fat-tree":
        _non_blocking(fp)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpu=st.integers(1, 400), small=st.integers(0, 40), svc=st.integers(0, 20), su=st.sampled_from([4, 8, 16, 32]),
       taper=st.sampled_from(["1:1", "2:1"]), rate=st.sampled_from([None, "ndr200"]),
       topology=st.sampled_from(["rail-optimized-fat-tree", "fat-tree"]))
def test_headroom_is_the_real_cliff(gpu, small, svc, su, taper, rate, topology):
    """Whatever the sizes and rates: growing by the headroom keeps every link, one node more moves some."""
    model = "hgx-h100-8-ndr200" if rate else "hgx-h100-8"
    spec = _spec(VALID / "fabric-mid.yaml", a=gpu, b=small, ctl=max(1, svc // 2), login=max(0, svc - svc // 2))
    spec = dataclasses.replace(spec, pools=tuple(_with_model(p, model) if p.name in ("a", "b") else p
                                                 for p in spec.pools))
    fabric = dataclasses.replace(spec.fabrics["compute"], scalable_unit=su, topology=topology, rate=rate,
                                 oversubscription=(int(taper[0]), 1))
    spec = dataclasses.replace(spec, fabrics={"compute": fabric})
    room = headroom(spec, "compute", plan_hosts(spec))
    before = link_set(_fabric(spec))
    assert before <= link_set(_fabric(_grown(spec, room.pool, room.nodes)))
    assert len(before - link_set(_fabric(_grown(spec, room.pool, room.nodes + 1)))) == room.moved > 0


@pytest.mark.parametrize("name", ["lab", "ishikari", "abci3"])
def test_every_switch_has_its_own_rack_unit(name):
    """The rack diagram and the cabling plan place switches by (rack, unit): no two may share one, none below U1."""
    plan = build_plan(load(CLUSTERS / f"{name}.yaml").spec)
    for fabric in plan.fabrics:
        places = Counter((s.rack, s.u) for s in fabric.switches)
        assert [p for p, n in places.items() if n > 1] == [], fabric.name
        assert min(s.u for s in fabric.switches) >= 1, fabric.name


def _grown(spec, pool, extra):
    return dataclasses.replace(spec, pools=tuple(dataclasses.replace(p, count=p.count + extra) if p.name == pool
                                                 else p for p in spec.pools))


TSUBAME = """
name: tsubame-like
networks:
  management: {cidr: 10.0.0.0/16, pool_prefix: 22}
  bmc: {cidr: 10.1.0.0/16, pool_prefix: 22}
node_pools:
  - {name: gpu, id: 0, model: h100-4, count: 240, hostname: "r{index:03}", roles: [compute],
     rack: {name: "rk{rack:02}", nodes_per_rack: 8}}
  - {name: sm, id: 1, model: cpu-1u, count: 2, hostname: "sm{index}", roles: [subnet-manager, slurm-controller],
     rack: {name: "svc{rack:02}", nodes_per_rack: 4}}
  - {name: login, id: 2, model: cpu-1u, count: 2, hostname: "login{index}", roles: [login],
     rack: {name: "svc{rack:02}", nodes_per_rack: 4, first_u: 20}}
fabric:
  compute: {switch: qm9700, topology: rail-optimized-fat-tree, scalable_unit: 32, oversubscription: "1:1"}
slurm:
  partitions:
    - {name: all, pools: [gpu], default: true}
"""


@pytest.fixture
def tsubame(tmp_path):
    path = tmp_path / "tsubame.yaml"
    path.write_text(TSUBAME)
    return _spec(path)


def test_filling_the_last_su_is_the_cliff_not_hidden(tsubame):
    """240 nodes of 4 GPUs fill 7.5 SUs; the 4 service hosts share the last SU's top slot. The pool can take 15 more
    without moving a cable; the 256th node fills the slot the service hosts use, so they move to a leaf of their
    own, the 33rd leaf takes the spines from 16 to 32 and every leaf's uplinks move, OpenSM hosts included."""
    room = headroom(tsubame, "compute", plan_hosts(tsubame))
    assert room.nodes == 15 and room.pool == "gpu"
    before = link_set(_fabric(tsubame))
    assert before <= link_set(_fabric(_grown(tsubame, "gpu", 15)))
    after = link_set(_fabric(_grown(tsubame, "gpu", 16)))
    moved = before - after
    assert {a[0] for a, _ in moved if isinstance(a[0], str) and a[0].startswith("sm")} == {"sm1", "sm2"}
    assert len(moved) == room.moved and room.links == len(before) == 240 * 4 + 4 + 32 * 32
    assert "spines 16 -> 32" in room.changes and room.added == 1 + 16


@pytest.mark.parametrize("path, pool_counts", [
    (CLUSTERS / "lab.yaml", {}), (CLUSTERS / "ishikari.yaml", {}), (VALID / "fabric-mid.yaml", {"b": 2}),
    (VALID / "fabric-superpod-h100.yaml", {"dgx": 70}), (VALID / "fabric-superpod-b200.yaml", {"dgx": 70}),
    (VALID / "fabric-superpod-b300-xdr.yaml", {"dgx": 100}), (CLUSTERS / "hokkaido-10k.yaml", {}),
    (VALID / "fabric-superpod-b200.yaml", {"dgx": 600}), (CLUSTERS / "abci3.yaml", {})])
def test_growing_within_headroom_moves_no_cable_and_one_more_does(path, pool_counts):
    spec = _spec(path, **pool_counts)
    for name in spec.fabrics:
        room = headroom(spec, name, plan_hosts(spec))
        if room is None:
            continue
        before = link_set(_fabric(spec, name))
        at_limit = link_set(_fabric(_grown(spec, room.pool, room.nodes), name))
        past = link_set(_fabric(_grown(spec, room.pool, room.nodes + 1), name))
        assert before <= at_limit, f"{name}: growing by {room.nodes} moved {len(before - at_limit)} cables"
        assert len(before - past) == room.moved > 0, f"{name}: the headroom stops before the real cliff"
        assert room.su_nodes == {"lab": 2, "ishikari": 32 if name == "compute" else 16, "mid": 4}.get(
            spec.name, room.su_nodes)


def test_without_service_hosts_a_pool_grows_by_whole_sus_while_the_spines_hold():
    """B200 SuperPOD at 3 SUs has 16 spines, as at 4 SUs: the fourth SU only adds cables; the fifth needs 32."""
    spec = _spec(VALID / "fabric-superpod-b200.yaml", dgx=70)
    room = headroom(spec, "compute", plan_hosts(spec))
    assert room.nodes == 128 - 70 and room.changes == ("spines 16 -> 32", "new scalable unit")


def test_service_hosts_past_a_full_three_tier_fabric_are_a_shown_cliff():
    """511 DGX H100 and the UFM appliances fill 16 SUs (4 pods of 32 leaves): no node more fits without moving a
    cable. The 512th sends the UFM ports to a leaf of their own, a fifth pod: 97 switches for four ports."""
    spec = _spec(VALID / "fabric-superpod-h100.yaml", dgx=511)
    room = headroom(spec, "compute", plan_hosts(spec))
    assert room.nodes == 0 and room.added == 1 + 32 + 64
    assert room.changes == ("spines 128 -> 160", "cores 64 -> 128", "service hosts moved to a leaf of their own")
    from gpucloud.checks.fabric import service_leaf

    [warning] = service_leaf(_spec(VALID / "fabric-superpod-h100.yaml", dgx=512))
    assert "adds 97 switch(es)" in warning.message and "1 node slot(s) free" in warning.hint


def _with_model(pool, model: str):
    """The pool on another catalog model: the model name and the hardware the spec resolved from it."""
    return dataclasses.replace(pool, model=model, hardware=catalog.SERVERS[model])


def _ndr200(spec):
    """The DGX SuperPOD H100 layout with NDR200 adapters on split QM9700 ports."""
    pools = tuple(_with_model(p, "hgx-h100-8-ndr200") if p.name == "dgx" else p for p in spec.pools)
    fabric = dataclasses.replace(spec.fabrics["compute"], rate="ndr200")
    return dataclasses.replace(spec, pools=pools, fabrics={"compute": fabric})


def _bom(fp):
    from gpucloud.render.fabric import bom_csv

    rows = list(csv.DictReader(io.StringIO(bom_csv(fp).decode())))
    return {(r["category"], r["tier"]): int(r["quantity"]) for r in rows}


def test_split_host_ports_keep_full_rate_uplinks_and_count_splitters():
    """At NDR200 only host ports are split: a leaf of 32 NDR200 hosts needs 16 uplinks at 400G (512 leaf-spine
    cables at 4 SUs, not 1,024 at 200G), and a splitter serves two host ports, so 1,020 host links are 512 cables."""
    fp = _fabric(_ndr200(_spec(VALID / "fabric-superpod-h100.yaml")))
    assert fp.rate == "ndr200" and fp.step == 2 and fp.leaf_up == 16
    assert (fp.count(1), fp.count(2), fp.count(3)) == (32, 8, 0)
    assert len(fp.endpoints) == 127 * 8 + 4
    assert fp.cable_counts() == {"node_leaf": 512, "leaf_spine": 512, "spine_core": 0}
    _balanced(fp)
    _ports_unique(fp)
    _non_blocking(fp)
    # uplinks take whole 400G ports (the first logical half, odd numbers) in cages of their own, above the hosts
    assert all(p % 2 == 1 and p > fp.leaf_down for p in fp.lo_port) and all(p % 2 == 1 for p in fp.hi_port)
    bom = _bom(fp)
    assert bom[("cable", "node_leaf")] == 512 and bom[("cable", "leaf_spine")] == 512
    # 16 host ports (8 cages) and 16 uplinks (8 cages) per leaf; 64 full-rate ports (32 cages) per spine
    assert bom[("transceiver", "switch cage to hosts")] == 32 * 8
    assert bom[("transceiver", "switch cage to switches")] == 32 * 8 + 8 * 32
    assert bom[("transceiver", "host adapter")] == 127 * 8 + 4


def test_dgx_transceivers_are_counted_per_twin_port_cage():
    """DGX SuperPOD H100 RA, 4 SUs: 508 twin-port transceivers for 127 DGX H100 (four OSFP cages for eight ports)
    plus 4 for the UFM appliances, not 1,020."""
    bom = _bom(_fabric(_spec(VALID / "fabric-superpod-h100.yaml")))
    assert bom[("transceiver", "host cage")] == 508 and bom[("transceiver", "host adapter")] == 4
    assert bom[("cable", "node_leaf")] == 1020 and bom[("cable", "leaf_spine")] == 1024


@pytest.mark.parametrize("split", [False, True])
def test_cabling_bom_and_plan_md_agree(split):
    from gpucloud.render.fabric import cabling_csv
    from gpucloud.render.plan_md import _bom as plan_bom

    spec = _spec(VALID / "fabric-superpod-h100.yaml", dgx=95)
    spec = _ndr200(spec) if split else spec
    plan = build_plan(spec)
    fp = plan.fabrics[0]
    rows = list(csv.DictReader(io.StringIO(cabling_csv(fp).decode())))
    # legs of one splitter share the switch's cage/port
    cables = {t: len({(r["b_device"], r["b_port"].rsplit("/", 1)[0] if split else r["b_port"]) if t == "node_leaf"
                      else (r["a_device"], r["a_port"]) for r in rows if r["tier"] == t})
              for t in ("node_leaf", "leaf_spine", "spine_core")}
    bom = _bom(fp)
    assert cables == {t: bom.get(("cable", t), 0) for t in cables}
    line = next(ln for ln in plan_bom(plan) if ln.startswith("| cables (compute fabric)"))
    assert f"| {sum(cables.values()):,} |" in line


def _reordered(spec):
    return dataclasses.replace(spec, pools=tuple(reversed(spec.pools)))


@pytest.mark.parametrize("path", [VALID / "fabric-mid.yaml", CLUSTERS / "abci3.yaml",
                                  VALID / "fabric-superpod-h100.yaml"])
def test_reordering_pools_gives_the_same_fabric(path):
    spec = _spec(path)
    for name in spec.fabrics:
        a, b = _fabric(spec, name), _fabric(_reordered(spec), name)
        assert [s.name for s in a.switches] == [s.name for s in b.switches]
        assert link_set(a) == link_set(b) and a.rate == b.rate and a.rails == b.rails


def _mixed(rails: bool):
    spec = _spec(VALID / "fabric-mid.yaml")
    model = "h100-4" if rails else "hgx-h100-8-ndr200"
    return dataclasses.replace(spec, pools=tuple(_with_model(p, model) if p.name == "b" else p
                                                 for p in spec.pools))


def test_mixed_rates_are_refused_at_the_pool_whatever_the_order():
    from gpucloud.checks.fabric import mixed_rate

    for spec in (_mixed(False), _reordered(_mixed(False))):
        found = list(mixed_rate(spec))
        assert [(f.check, f.level, f.path) for f in found] == [
            ("fabric-mixed-rate", "error", (*spec.pool("b").path, "model"))]
        assert "ndr200" in found[0].message and "set fabric.compute.rate" in found[0].hint
        assert _fabric(spec).rate == "ndr"  # the fastest adapter, never the first pool's
    # NDR nodes on split NDR200 ports are refused too
    spec = _spec(VALID / "fabric-mid.yaml")
    spec = dataclasses.replace(spec, fabrics={"compute": dataclasses.replace(spec.fabrics["compute"], rate="ndr200")})
    assert {f.path[1] for f in mixed_rate(spec)} == {0, 1}


def test_mixed_rails_plan_leaves_only_for_used_rails():
    """A 4-HCA pool on an 8-rail fabric gets 4 leaves per SU, not 8 with 4 empty ones that still take uplinks."""
    fp = _fabric(_mixed(True))
    used = {e.leaf for e in fp.endpoints}
    assert all(i in used for i, s in enumerate(fp.switches) if s.tier == 1)
    su3 = sorted(s.name for s in fp.switches if s.tier == 1 and s.group == 3)
    assert su3 == [f"c-leaf-su003-r{r}" for r in range(4)]
    sh = shape(_mixed(True), "compute")
    assert (sh.leaves, sh.spines) == (fp.count(1), fp.count(2))
    _balanced(fp)
    _ports_unique(fp)
