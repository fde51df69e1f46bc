"""Fabric details the rest of the fast suite let through: the order of fabrics in the spec, partition keys with the
membership bit set, a hyphenated tenant name in OpenSM's partitions.conf, leaf uplinks rounded up, divisors, and the
rails of service leaves.

Each test fails under a one-line bug listed in scripts/mutants.py.
"""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.checks import run_checks
from gpucloud.pipeline import check_spec, plan_files
from gpucloud.plan import build_plan
from gpucloud.render import diagrams, plan_md
from gpucloud.render import fabric as render_fabric
from gpucloud.spec import load, schema
from gpucloud.spec.model import build


def _write(tmp_path, name, data):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_order_of_fabrics_in_the_spec_changes_no_output(tmp_path):
    data = yaml.safe_load((CLUSTERS / "abci3.yaml").read_text())
    assert list(data["fabric"]) == ["compute", "storage"]
    swapped = copy.deepcopy(data)
    swapped["fabric"] = dict(reversed(list(data["fabric"].items())))
    # Same file name in two folders: findings carry the file name.
    (tmp_path / "swapped").mkdir()
    a = plan_files(check_spec(_write(tmp_path, "abci3", data)))
    b = plan_files(check_spec(_write(tmp_path / "swapped", "abci3", swapped)))
    assert {"plan.md", "diagrams/fabric.svg", "diagrams/racks.svg"} <= set(a)
    assert sorted(a) == sorted(b)
    assert [k for k in sorted(a) if a[k] != b[k]] == []
    plan_md = a["plan.md"].decode()
    assert plan_md.index("| compute |") < plan_md.index("| storage |")


def test_planner_orders_fabrics_itself_whatever_the_order_of_the_spec_model():
    # The loader happens to sort fabrics by name; the planner must not rely on it (a spec built in code, or a
    # loader that keeps the file's order, would otherwise reorder plan.md and the diagrams).
    spec = load(CLUSTERS / "abci3.yaml").spec
    reordered = dataclasses.replace(spec, fabrics=dict(reversed(list(spec.fabrics.items()))))
    assert list(reordered.fabrics) == ["storage", "compute"]
    a, b = build_plan(spec), build_plan(reordered)
    assert [fp.name for fp in a.fabrics] == [fp.name for fp in b.fabrics] == ["compute", "storage"]
    assert diagrams.render(a) == diagrams.render(b)
    assert plan_md.render(a) == plan_md.render(b)


# --- partition keys: the top bit is membership, so 0xfffd is the storage partition and 0xffff the default one ---

def _spec_with_pkey(pkey: str):
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["tenants"][0]["pkey"] = pkey
    assert schema.validate(data) == []
    return data


@pytest.mark.parametrize("pkey, partition", [("0x7ffd", "storage"), ("0xfffd", "storage"), ("0x7fff", "default"),
                                             ("0xffff", "default")])
def test_reserved_pkeys_with_or_without_the_membership_bit(pkey, partition):
    # Built directly, past the loader's own range check, so this check alone is tested.
    spec = build(_spec_with_pkey(pkey))
    (f,) = [f for f in run_checks(spec) if f.check == "fabric-pkey"]
    assert f.level == "error" and f"the {partition} partition" in f.message and f.path[-1] == "pkey"


@pytest.mark.parametrize("pkey", ["0x7ffc", "0x0001", "0x0101"])
def test_ordinary_pkeys_are_not_reserved(pkey):
    spec = build(_spec_with_pkey(pkey))
    assert [f for f in run_checks(spec) if f.check == "fabric-pkey"] == []


@pytest.mark.parametrize("pkey", ["0xfffd", "0xffff", "0x7fff", "0x0000"])
def test_loader_refuses_pkeys_outside_the_tenant_range(tmp_path, pkey):
    loaded = load(_write(tmp_path, "spec", _spec_with_pkey(pkey)))
    assert loaded.spec is None
    (f,) = [f for f in loaded.findings if f.check == "tenant-pkey"]
    assert f.line is not None and "0x0001-0x7ffe" in f.message


# --- OpenSM partition names are plain words: a hyphenated tenant becomes an underscored partition ---

def test_hyphenated_tenant_gets_a_plain_word_partition_name():
    plan = build_plan(load(CLUSTERS / "ishikari.yaml").spec)
    fp = plan.fabrics[0]
    text = render_fabric.partitions_conf(plan, fp, fp.subnets[0]).decode()
    names = [ln.split("=", 1)[0] for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert "llm_lab" in names and "llm-lab" not in text.replace("# tenant llm-lab", "")
    assert all(re.fullmatch(r"\w+", n) for n in names), names
    assert render_fabric._pname("univ-a.b c") == "univ_a_b_c"


# --- leaf uplinks round up, and the smallest divisor at least a bound is the bound itself when it divides ---

@pytest.mark.parametrize("su, ratio, up", [(3, "2:1", 2), (4, "3:1", 2), (2, "1:1", 2), (6, "2:1", 3)])
def test_leaf_uplinks_round_up(tmp_path, su, ratio, up):
    from gpucloud.plan.fabric import shape

    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["fabric"]["compute"].update(scalable_unit=su, oversubscription=ratio)
    checked = check_spec(_write(tmp_path, "spec", data))
    assert not checked.fails("error"), [f.message for f in checked.findings if f.level == "error"]
    sh = shape(checked.spec, "compute")
    assert (sh.su, sh.up) == (su, up)


def test_divisor_at_least():
    from gpucloud.plan.fabric import divisor_at_least

    assert [divisor_at_least(8, low) for low in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 4, 4, 8, 8, 8]
    assert divisor_at_least(12, 5) == 6 and divisor_at_least(7, 3) == 7 and divisor_at_least(6, 0) == 1


def test_service_leaves_beyond_the_free_ports_take_the_rails_in_turn():
    # 2 of the 32 node slots of the one SU hold GPU nodes; the other 30 slots x 8 rails and then service leaves of one
    # SU's slots each (32 hosts, as blocking as a rail leaf) take the 368 single-HCA service hosts: 4 service leaves,
    # spread over the rails so that no plane gets them all.
    data = {"name": "t",
            "networks": {"management": {"cidr": "10.0.0.0/16", "pool_prefix": 22},
                         "bmc": {"cidr": "10.1.0.0/16", "pool_prefix": 22},
                         "ipoib": {"cidr": "10.64.0.0/12", "rail_prefix": 15, "pool_prefix": 22}},
            "node_pools": [{"name": "gpu", "model": "hgx-h100-8", "count": 2, "roles": ["compute"]},
                           {"name": "svc", "model": "cpu-1u", "count": 368, "roles": ["login"],
                            "hostname": "svc{index:03}", "rack": {"name": "s{rack:02}", "nodes_per_rack": 40}}],
            "fabric": {"compute": {"switch": "qm9700", "topology": "rail-optimized-fat-tree", "scalable_unit": 32,
                                   "oversubscription": "1:1"}}}
    assert schema.validate(data) == []
    fp = build_plan(build(data)).fabrics[0]
    svc = [(s.name, s.rail) for s in fp.switches if "-leaf-svc" in s.name]
    assert svc == [("c-leaf-svc01", 0), ("c-leaf-svc02", 1), ("c-leaf-svc03", 2), ("c-leaf-svc04", 3)]
    assert sum(e.service for e in fp.endpoints) == 368
