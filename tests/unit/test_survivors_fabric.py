"""Fabric details the rest of the fast suite let through: the order of fabrics in the spec, partition keys with the
membership bit set, and a hyphenated tenant name in OpenSM's partitions.conf.

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
    # The one warning of abci3 names its line, which moves with the swap; everything else must not move.
    ignore = ("fabric-subnet-manager",)
    a = plan_files(check_spec(_write(tmp_path, "a", data), ignore))
    b = plan_files(check_spec(_write(tmp_path, "a2", swapped), ignore))
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
