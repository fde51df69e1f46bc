"""The rollout planner (gpucloud.plan.rollout) and the spec's rollout budget: its check and its diff class."""

from __future__ import annotations

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.diff import compare
from gpucloud.diff.inputs import document_of
from gpucloud.impact import Impact
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan.rollout import Batch, Domain, batches, budget, domains_of, nvlink_serial, pools_of, rack_budget


@pytest.mark.parametrize("value, size, want", [
    (None, 2, 1), (None, 19, 1), (None, 20, 2), (None, 250, 25),  # the default: 10 %, at least 1
    ("10%", 250, 25), ("25%", 12, 3), ("1%", 50, 1), ("100%", 7, 7), ("50%", 3, 1),
    (1, 2, 1), (3, 10, 3),
])
def test_budget(value, size, want):
    assert budget(value, size) == want


POOLS = [("gpu", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu05"], 2), ("cpu", ["cpu01", "cpu02"], 1)]


def test_batches_follow_spec_order_then_host_order_within_each_budget():
    got = batches(["cpu02", "gpu05", "gpu01", "gpu03", "gpu02", "cpu01"], POOLS)
    assert got == [Batch(1, "gpu", ("gpu01", "gpu02"), 2), Batch(2, "gpu", ("gpu03", "gpu05"), 2),
                   Batch(3, "cpu", ("cpu01",), 1), Batch(4, "cpu", ("cpu02",), 1)]


def test_a_batch_never_mixes_pools_or_exceeds_its_budget():
    got = batches(["gpu01", "cpu01"], [("gpu", ["gpu01"], 5), ("cpu", ["cpu01"], 5)])
    assert [b.nodes for b in got] == [("gpu01",), ("cpu01",)]


def test_removed_nodes_roll_with_their_pool_and_nodes_of_a_removed_pool_last_one_at_a_time():
    gone = {"gpu07": "gpu", "gpu06": "gpu", "old01": "old", "old02": "old"}
    got = batches(["old02", "gpu07", "gpu06", "gpu05", "old01"], POOLS, gone)
    assert got == [Batch(1, "gpu", ("gpu05", "gpu06"), 2), Batch(2, "gpu", ("gpu07",), 2),
                   Batch(3, "old", ("old01",), 1), Batch(4, "old", ("old02",), 1)]


def test_nothing_to_roll_is_no_batch():
    assert batches([], POOLS) == []


def test_batches_are_deterministic_whatever_the_input_order():
    nodes = ["gpu03", "gpu01", "cpu02", "gpu04"]
    assert batches(nodes, POOLS) == batches(list(reversed(nodes)), POOLS) == batches(sorted(nodes), POOLS)


def test_pools_of_a_plan_carry_the_spec_budget(tmp_path):
    text = (CLUSTERS / "lab.yaml").read_text().replace(
        "    image: ubuntu-22.04-gpu\n", "    image: ubuntu-22.04-gpu\n    rollout: {max_unavailable: 2}\n", 1)
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    checked = check_spec(path)
    assert not checked.fails("error")
    pools = pools_of(build_plan(checked.spec, tuple(checked.findings)))
    assert pools[0] == ("gpu", ["gpu01", "gpu02"], 2)
    assert pools[1] == ("ctl", ["ctl01"], 1)


def _lab_with(tmp_path, name: str, rollout: dict | None) -> dict:
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    if rollout is not None:
        data["node_pools"][0]["rollout"] = rollout
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings]
    return document_of(checked)


def test_a_budget_change_is_classified_and_touches_no_node(tmp_path):
    old = _lab_with(tmp_path, "old", None)
    new = _lab_with(tmp_path, "new", {"max_unavailable": 2, "drain_timeout": 60})
    diff = compare(old, new, "old", "new")
    (change,) = diff.changes
    assert (change.section, change.field, change.impact) == ("pools", "rollout", Impact.NONE)
    assert change.new == {"max_unavailable": 2, "drain_timeout": 60}
    assert not change.hosts


def test_nodes_of_removed_pools_roll_in_name_order_whatever_the_input_order():
    # Enough nodes that a set's iteration order is never sorted by chance (1 in 12!).
    names = [f"old{i:02}" for i in range(1, 13)]
    gone = dict.fromkeys(names, "old")
    for order in (names, list(reversed(names)), names[6:] + names[:6]):
        assert [b.nodes for b in batches(order, POOLS, gone)] == [(n,) for n in names]


# NVLink pools (NVL72 racks): whole racks per batch, the rest of a touched rack drained with it.
RACKS = [Domain("r1", ("t01", "t02", "t03"), 3), Domain("r2", ("t04", "t05", "t06"), 3),
         Domain("r3", ("t07", "t08"), 3), Domain("r4", ("t10", "t11", "t12"), 3)]
TRAYS = [h for d in RACKS for h in d.hosts]


@pytest.mark.parametrize("size, trays, want", [(1, 18, 1), (17, 18, 1), (18, 18, 1), (35, 18, 1), (36, 18, 2),
                                               (115, 18, 6)])
def test_rack_budget_is_whole_racks_rounded_down_and_at_least_one(size, trays, want):
    assert rack_budget(size, trays) == want


def test_nvlink_batches_are_whole_racks_and_drain_the_untouched_trays_of_each():
    got = batches(["t08", "t02", "t11", "t05", "t04"], [("nv", TRAYS, 6)], domains={"nv": RACKS})
    assert got == [
        Batch(1, "nv", ("t02", "t04", "t05"), 6, ("r1", "r2"), ("t01", "t03", "t06")),
        Batch(2, "nv", ("t08", "t11"), 6, ("r3", "r4"), ("t07", "t10", "t12")),
    ]
    assert got[0].held == ("t02", "t04", "t05", "t01", "t03", "t06")


def test_a_rack_is_never_split_across_batches_even_when_all_its_trays_roll():
    got = batches(TRAYS, [("nv", TRAYS, 3)], domains={"nv": RACKS})
    assert [b.racks for b in got] == [("r1",), ("r2",), ("r3",), ("r4",)]
    assert [b.nodes for b in got] == [d.hosts for d in RACKS] and not any(b.peers for b in got)


def test_nodes_gone_from_an_nvlink_pool_roll_after_its_racks():
    got = batches(["t13", "t01"], [("nv", TRAYS, 3)], gone={"t13": "nv"}, domains={"nv": RACKS})
    assert got == [Batch(1, "nv", ("t01",), 3, ("r1",), ("t02", "t03")), Batch(2, "nv", ("t13",), 3)]


def _nvl72(tmp_path, rollout):
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text())
    data["node_pools"][0]["count"] = 90
    data["node_pools"][0]["exclude"] = [20]  # rack nvl02 holds 17 trays
    data["node_pools"][0]["rollout"] = rollout
    path = tmp_path / "nvl.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings if f.level == "error"]
    return build_plan(checked.spec, tuple(checked.findings))


@pytest.mark.parametrize("said, racks", [(4, 1), (18, 1), (40, 2), ("50%", 2)])
def test_the_budget_of_an_nvl72_pool_of_a_plan_is_whole_racks(tmp_path, said, racks):
    plan = _nvl72(tmp_path, {"max_unavailable": said})
    assert pools_of(plan)[0][2] == racks * 18
    doms = domains_of(plan)["gpu"]
    assert [d.rack for d in doms] == ["nvl01", "nvl02", "nvl03", "nvl04", "nvl05"] and len(doms[1].hosts) == 17
    # The compute layer's serial batches: whole racks, in inventory order, the short rack counted as it is.
    want = {1: [18, 17, 18, 18, 18], 2: [35, 36, 18]}[racks]
    assert nvlink_serial(plan) == want
    # A tray of the second rack replaced: its 16 other trays drain with it, and no other rack's.
    got = batches([plan.pools[0].hosts[19].name], pools_of(plan), domains=domains_of(plan))
    assert len(got) == 1 and got[0].racks == ("nvl02",) and set(got[0].held) == set(doms[1].hosts)
