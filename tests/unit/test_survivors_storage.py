"""Defaults and boundaries of storage: local scratch without ``raid:`` (raid0, in the plan and in the checks),
Lustre without ``lnet:`` (the storage fabric when there is one), and quotas adding up to exactly the capacity.

Each test here fails under a one-line bug of scripts/mutants.py that the rest of the fast suite let through.
"""

from __future__ import annotations

import dataclasses

import yaml

from conftest import CLUSTERS
from gpucloud import catalog
from gpucloud.checks import run_checks
from gpucloud.pipeline import check_spec
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.storage import plan_storage

LAB = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())


def lab_spec(tmp_path, raid: str | None):
    data = yaml.safe_load(yaml.safe_dump(LAB))
    scratch = next(f for f in data["storage"] if f["name"] == "scratch")
    scratch.pop("raid", None)
    scratch["pools"] = ["gpu"]
    if raid is not None:
        scratch["raid"] = raid
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    assert checked.spec is not None and not checked.fails("error"), [f.message for f in checked.findings]
    return checked.spec


def test_local_scratch_without_raid_is_raid0_over_every_drive(tmp_path):
    spec = lab_spec(tmp_path, None)
    (local,) = plan_storage(spec, plan_hosts(spec)).local
    drives = catalog.SERVERS["hgx-h100-8"].nvme_drives
    assert local.raid == "raid0" and len(local.devices) == drives == 8
    assert local.md_device == "/dev/md/scratch" and local.mounts() == (("/dev/md/scratch", "/scratch"),)
    assert local.capacity == drives * local.drive_bytes
    # Written out, the same array: the default is raid0, not a different layout.
    explicit = lab_spec(tmp_path, "raid0")
    assert plan_storage(explicit, plan_hosts(explicit)).local == (local,)


def test_raid_none_uses_one_drive_and_no_md_device(tmp_path):
    spec = lab_spec(tmp_path, "none")
    (local,) = plan_storage(spec, plan_hosts(spec)).local
    assert local.md_device is None and local.capacity == local.drive_bytes
    assert local.mounts() == ((local.devices[0], "/scratch"),)


def _one_drive(monkeypatch):
    model = catalog.SERVERS["hgx-h100-8"]
    monkeypatch.setitem(catalog.SERVERS, "hgx-h100-8", dataclasses.replace(model, nvme_drives=1))


def test_one_drive_model_gets_the_raid0_note_whether_raid0_is_written_or_left_default(tmp_path, monkeypatch):
    _one_drive(monkeypatch)  # before loading: the spec resolves its pools' hardware then
    written = lab_spec(tmp_path, "raid0")
    default = lab_spec(tmp_path, None)
    for spec in (written, default):
        notes = [f for f in run_checks(spec) if f.check == "storage-local-drives"]
        assert [(f.level, f.path[-1]) for f in notes] == [("info", "raid")], notes
        assert "one NVMe drive" in notes[0].message
        (local,) = plan_storage(spec, plan_hosts(spec)).local
        assert local.md_device is None  # what the note says: no array over a single drive
    none = lab_spec(tmp_path, "none")
    assert [f for f in run_checks(none) if f.check == "storage-local-drives"] == []


# --- Lustre goes over the storage fabric when there is one, else over the compute fabric ---

def test_lustre_defaults_to_the_storage_fabric_when_the_spec_has_one(tmp_path):
    from gpucloud.plan.storage import lustre_via

    data = yaml.safe_load((CLUSTERS / "abci3.yaml").read_text())
    specs = []
    for written in (True, False):
        for fs in data["storage"]:
            if fs["kind"] == "lustre":
                fs.pop("lnet", None)
                if written:
                    fs["lnet"] = "storage"
        path = tmp_path / f"abci3-{written}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        checked = check_spec(path)
        assert not checked.fails("error"), [f.message for f in checked.findings if f.level == "error"]
        specs.append(checked.spec)
    default = specs[1]
    lustre = [fs for fs in default.storage if fs.kind == "lustre"]
    assert lustre and {lustre_via(default, fs) for fs in lustre} == {"storage"}
    # Left out, the same LNet as written out.
    plans = [plan_storage(s, plan_hosts(s)) for s in specs]
    assert plans[0].lnet == plans[1].lnet and plans[1].lnet
    # Without a storage fabric, the compute fabric carries it.
    compute_only = dataclasses.replace(default, fabrics={"compute": default.fabrics["compute"]})
    assert {lustre_via(compute_only, fs) for fs in lustre} == {"compute"}


# --- tenant quotas may add up to exactly the capacity ---

def _quotas(tmp_path, research, teaching):
    data = yaml.safe_load(yaml.safe_dump(LAB))
    for tenant, quota in zip(data["tenants"], (research, teaching)):
        tenant["storage_quota"] = {"home": quota}
    path = tmp_path / "quota.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return [f for f in check_spec(path).findings if f.check == "storage-overcommit"]


def test_quotas_adding_up_to_exactly_the_capacity_are_accepted(tmp_path):
    assert next(f for f in LAB["storage"] if f["name"] == "home")["capacity"] == "20TiB"
    assert _quotas(tmp_path, "12TiB", "8TiB") == []
    (f,) = _quotas(tmp_path, "12TiB", "9TiB")
    assert f.level == "error" and f.path[-1] == "capacity"
