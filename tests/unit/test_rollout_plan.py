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
from gpucloud.plan.rollout import Batch, batches, budget, pools_of


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
