"""Storage changes between two plans, classified for the diff."""

from __future__ import annotations

import copy

import yaml

from conftest import CLUSTERS
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.storage import plan_storage
from gpucloud.plan.storage_impact import IMPACT, impact_of, storage_changes
from gpucloud.spec.model import build

ISHIKARI = yaml.safe_load((CLUSTERS / "ishikari.yaml").read_text())


def storage(data):
    spec = build(data)
    return plan_storage(spec, plan_hosts(spec))


def changed(old, new, **kw):
    return {(c.subject, c.field): c.impact for c in storage_changes(storage(old), storage(new), **kw)}


def test_same_plan_has_no_change():
    assert changed(ISHIKARI, copy.deepcopy(ISHIKARI)) == {}


def test_removing_a_filesystem_destroys_data():
    new = copy.deepcopy(ISHIKARI)
    new["storage"] = [f for f in new["storage"] if f["name"] != "scratch"]
    for t in new["tenants"]:
        t.get("storage_quota", {}).pop("scratch", None)
    got = changed(ISHIKARI, new)
    assert got == {("filesystem scratch", ""): "destroys-data"}  # the quotas go with it, reported once


def test_quota_shrink_below_use_destroys_data():
    new = copy.deepcopy(ISHIKARI)
    new["tenants"][0]["storage_quota"]["scratch"] = "3PB"
    key = ("tenant llm-lab on scratch", "quota")
    assert changed(ISHIKARI, new)[key] == "destroys-data"  # use unknown offline
    assert changed(ISHIKARI, new, used={("llm-lab", "scratch"): 2 * 10**15})[key] == "none"
    assert changed(ISHIKARI, new, used={("llm-lab", "scratch"): 35 * 10**14})[key] == "destroys-data"
    assert changed(new, ISHIKARI)[key] == "none"  # raising is live


def test_mount_options_lnet_and_local_scratch():
    new = copy.deepcopy(ISHIKARI)
    scratch = next(f for f in new["storage"] if f["name"] == "scratch")
    scratch["options"] = ["noatime"]
    scratch["lnet"] = "compute"
    nvme = next(f for f in new["storage"] if f["name"] == "nvme")
    nvme["raid"] = "per-drive"
    got = changed(ISHIKARI, new)
    assert got[("filesystem scratch", "options")] == "drain-reboot"
    assert got[("lnet of pool gpu", "o2ib1")] == "drain-reboot"
    assert got[("local scratch nvme on pool gpu", "raid")] == "destroys-data"


def test_table_for_the_diff():
    assert impact_of("raid")[0] == "destroys-data" and impact_of("options")[0] == "drain-reboot"
    assert impact_of("capacity")[0] == "none"
    assert all(cls in {"none", "reconfigure", "drain-reboot", "destroys-data"} and why for cls, why in IMPACT.values())
