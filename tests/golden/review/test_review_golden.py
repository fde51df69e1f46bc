"""Golden copies of what reviewers read: plan.md and the diagrams of every example, and the diff of a typical change.
Refresh with GPUCLOUD_UPDATE_GOLDEN=1 python -m pytest tests/golden/review and read the diff before committing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS, EXAMPLES
from gpucloud.diff import compare, report
from gpucloud.diff.inputs import document_of
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import diagrams, plan_md

HERE = Path(__file__).parent


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_plan_md(spec, golden):
    checked = check_spec(spec)
    # Without the rendered files: stack resources are the layout's estimate, so no Pulumi run is needed.
    text = plan_md.render_text(build_plan(checked.spec, tuple(checked.findings)))
    golden(HERE / f"{spec.stem}.plan.md", text)


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_diagrams(spec, golden):
    for rel, data in diagrams.render(build_plan(check_spec(spec).spec)).items():
        golden(HERE / f"{spec.stem}.{Path(rel).name}", data)


def test_lab_change_diff(golden, tmp_path):
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["software"]["nvidia_driver"] = "550.127.05"
    data["slurm"]["partitions"][1]["max_time"] = "02:00:00"
    data["node_pools"][0]["count"] = 4
    data["storage"] = [fs for fs in data["storage"] if fs["name"] != "home"]
    new = tmp_path / "lab.yaml"
    new.write_text(yaml.safe_dump(data, sort_keys=False))
    diff = compare(document_of(check_spec(CLUSTERS / "lab.yaml")), document_of(check_spec(new)),
                   "clusters/lab.yaml", "lab.yaml (edited)")
    # The derived records mirror other planners' plan.json sections; they are tested by property in
    # tests/unit/test_diff.py so that a new field there does not churn this file.
    # Two more nodes add 8 leaves to the lab's fabric: that derived record must say hardware.
    assert ("fabric.compute", "hardware") in {(c.subject, c.impact.value) for c in diff.derived}
    diff.derived = []
    golden(HERE / "lab-change.diff.md", report.markdown(diff) + "\n")
    golden(HERE / "lab-change.diff.json", report.as_json(diff))


def test_sakuraone_change_diff(golden, tmp_path):
    """A RoCE Ethernet fabric's typical change: a third SU (the full spines double and existing leaf-spine cables
    move), a new DSCP for RoCE (every switch and host at once) and a new spine ASN (BGP)."""
    data = yaml.safe_load((CLUSTERS / "sakuraone.yaml").read_text())
    data["node_pools"][0]["count"] = 130
    data["fabric"]["compute"]["roce"].update(dscp=24, spine_asn=4200000001)
    new = tmp_path / "sakuraone.yaml"
    new.write_text(yaml.safe_dump(data, sort_keys=False))
    diff = compare(document_of(check_spec(CLUSTERS / "sakuraone.yaml")), document_of(check_spec(new)),
                   "clusters/sakuraone.yaml", "sakuraone.yaml (edited)")
    assert ("ethernet.compute", "hardware") in {(c.subject, c.impact.value) for c in diff.derived}
    diff.derived = []
    golden(HERE / "sakuraone-change.diff.md", report.markdown(diff) + "\n")


def _lab_edit(edit) -> dict:
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    edit(data)
    return data


def _h100_4(data):
    # The lab on 4-GPU boards without NVSwitch: nothing runs Fabric Manager.
    data["node_pools"][0]["model"] = "h100-4"


def _driver(data):
    _h100_4(data)
    data["software"]["nvidia_driver"] = "550.127.05"


def _new_tenant(data):
    data["tenants"].append({"name": "vision", "description": "Vision group", "partitions": ["gpu"],
                            "users": ["dave"], "gpu_limit": 8, "pkey": "0x0103"})


# Day-1 changes whose class the diff once got wrong: each golden shows the class, the hosts and the step.
CASES = {
    # Used to be one 'reconfigure' row without hosts: OpenSM must restart for the pkey, tenants.sh must run.
    "lab-new-tenant": (lambda d: None, _new_tenant),
    # Used to be 'drain + reboot': a new id readdresses every host, and a new BMC address replaces (reinstalls) it.
    "lab-pool-id": (lambda d: None, lambda d: d["node_pools"][2].update(id=5)),
    "lab-bmc-network": (lambda d: None, lambda d: d["networks"]["bmc"].update(cidr="10.111.0.0/22")),
    # Used to be 'No changes.' although plan.md and plan.json differ.
    "lab-metadata": (lambda d: None, lambda d: d["metadata"].update(description="Two HGX H100 nodes | <!-- lab")),
    # Used to list a drain + reboot Fabric Manager row for boards without NVSwitch.
    "lab-h100-4-driver": (_h100_4, _driver),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_day1_change_diffs(golden, tmp_path, case):
    old_edit, new_edit = CASES[case]
    docs = []
    for side, edit in (("old", old_edit), ("new", new_edit)):
        path = tmp_path / side / "lab.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(_lab_edit(edit), sort_keys=False))
        checked = check_spec(path)
        assert not checked.fails("error"), [f.message for f in checked.findings]
        docs.append(document_of(checked))
    diff = compare(docs[0], docs[1], "lab.yaml", f"lab.yaml ({case})")
    diff.derived = []  # other planners' sections, tested by property in tests/unit/test_diff.py
    golden(HERE / f"{case}.diff.md", report.markdown(diff) + "\n")
