"""slurm.settings and slurm.dbd_settings: checked, merged into the plan's slurm.conf / slurmdbd.conf, classified by
the diff."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.diff import compare
from gpucloud.diff.inputs import document_of
from gpucloud.hostlist import expand
from gpucloud.impact import Impact
from gpucloud.pipeline import check_spec
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.slurm import plan_slurm
from gpucloud.render.slurm import render, with_settings

LAB = (CLUSTERS / "lab.yaml").read_text()


def lab_with(tmp_path, name: str = "lab", **slurm) -> Path:
    data = yaml.safe_load(LAB)
    data["slurm"].update(slurm)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def files_of(path) -> dict[str, bytes]:
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings]
    spec = checked.spec
    return render(SimpleNamespace(slurm=plan_slurm(spec, plan_hosts(spec))))


def findings(path, check: str):
    return [f for f in check_spec(path).findings if f.check == check]


@pytest.fixture(scope="module")
def lab_files():
    return files_of(CLUSTERS / "lab.yaml")


def test_a_setting_replaces_the_plans_line_in_place_whatever_its_case(tmp_path, lab_files):
    files = files_of(lab_with(tmp_path, settings={"maxjobcount": 50000, "KILLWAIT": 45, "DisableRootJobs": True}))
    old, new = lab_files["slurm/slurm.conf"].decode().splitlines(), files["slurm/slurm.conf"].decode().splitlines()
    i = old.index("MaxJobCount=10000")
    # Same place, the plan's spelling of the key, the plan's value named in a comment above it.
    assert new[i:i + 2] == ["# slurm.settings: the plan has MaxJobCount=10000", "MaxJobCount=50000"]
    assert not any(line.lower().startswith("maxjobcount=") for line in new[i + 2:])
    # New keys: a commented site section at the end, sorted, spelled as slurm.conf(5) spells them.
    assert new[len(old) + 1:] == ["", "# Site settings (slurm.settings in the spec)", "DisableRootJobs=YES",
                                  "KillWait=45"]
    assert new[:i] == old[:i] and new[i + 2:len(old) + 1] == old[i + 1:]


def test_no_settings_leave_the_file_as_it_is(lab_files):
    text = lab_files["slurm/slurm.conf"]
    assert with_settings(text, (), "slurm.settings") is text


def test_settings_are_written_in_one_order_whatever_the_spec_order(tmp_path):
    a = files_of(lab_with(tmp_path, "a", settings={"KillWait": 45, "InactiveLimit": 60}))
    b = files_of(lab_with(tmp_path, "b", settings={"InactiveLimit": 60, "KillWait": 45}))
    assert a == b


def test_dbd_port_moves_slurmdbd_and_the_accounting_port_together(tmp_path, lab_files):
    files = files_of(lab_with(tmp_path, dbd_settings={"DbdPort": 7031, "CommitDelay": 1}))
    dbd = files["slurm/slurmdbd.conf"].decode().splitlines()
    assert "DbdPort=7031" in dbd and "DbdPort=6819" not in dbd and dbd[-1] == "CommitDelay=1"
    conf = files["slurm/slurm.conf"].decode().splitlines()
    assert "AccountingStoragePort=7031" in conf and "AccountingStoragePort=6819" not in conf
    assert files["slurm/gres.conf"] == lab_files["slurm/gres.conf"]


def test_the_plans_ports_are_the_settings(tmp_path):
    checked = check_spec(lab_with(tmp_path, settings={"slurmctldport": 7020, "SlurmdPort": "7021"},
                                  dbd_settings={"dbdport": 7022}))
    sp = plan_slurm(checked.spec, plan_hosts(checked.spec))
    assert (sp.port("slurmctld"), sp.port("slurmd"), sp.port("slurmdbd")) == (7020, 7021, 7022)
    ranged = check_spec(lab_with(tmp_path, "ranged", settings={"SlurmctldPort": "7020-7023"}))
    assert plan_slurm(ranged.spec, plan_hosts(ranged.spec)).port("slurmctld") == 6817  # the line says the range


def test_node_name_is_refused_where_it_is_written(tmp_path):
    path = lab_with(tmp_path, settings={"KillWait": 45, "nodename": "gpu01"})
    (f,) = findings(path, "slurm-setting-owned")
    assert f.level == "error" and f.path == ("slurm", "settings", "nodename")
    assert "NodeName" in f.message and "node_pools" in f.hint
    text = path.read_text().splitlines()
    assert f.line is not None and text[f.line - 1].strip().startswith("nodename:")


@pytest.mark.parametrize("field, key, driver", [
    ("settings", "PartitionName", "slurm.partitions"), ("settings", "SlurmctldHost", "slurm-controller"),
    ("settings", "clustername", "slurm.cluster_name"), ("settings", "TopologyPlugin", "slurm.topology"),
    ("settings", "AccountingStoragePort", "DbdPort"), ("settings", "GresTypes", "GPUs"),
    ("dbd_settings", "PurgeJobAfter", "retention_months"), ("dbd_settings", "DbdHost", "slurmdbd"),
])
def test_keys_the_plan_owns_are_refused_with_the_field_that_drives_them(tmp_path, field, key, driver):
    (f,) = findings(lab_with(tmp_path, **{field: {key: "x"}}), "slurm-setting-owned")
    assert f.path == ("slurm", field, key) and driver in f.hint


@pytest.mark.parametrize("field, key", [("settings", "AccountingStoragePass"), ("dbd_settings", "StoragePass"),
                                        ("dbd_settings", "storagepass"), ("settings", "JobCompPass")])
def test_passwords_are_refused(tmp_path, field, key):
    (f,) = findings(lab_with(tmp_path, **{field: {key: "hunter2hunter2"}}), "slurm-setting-secret")
    assert f.level == "error" and "database_password" in f.hint and "hunter2" not in f.message + f.hint


def test_the_same_key_twice_in_different_case_is_refused(tmp_path):
    (f,) = findings(lab_with(tmp_path, settings={"KillWait": 30, "killwait": 60}), "slurm-setting-duplicate")
    assert f.level == "error" and "KillWait" in f.message and "killwait" in f.message


def test_an_unknown_key_is_a_warning_with_did_you_mean(tmp_path):
    path = lab_with(tmp_path, settings={"SchedulerParamters": "bf_continue",
                                        "schedulerparameters": "bf_max_job_test=500"})
    (f,) = findings(path, "slurm-setting-unknown")
    assert f.level == "warning" and f.path[-1] == "SchedulerParamters"
    assert "SchedulerParameters" in f.hint
    assert not check_spec(path).fails("error")


def test_a_dbd_port_must_be_one_port(tmp_path):
    (f,) = findings(lab_with(tmp_path, dbd_settings={"DbdPort": "6819-6820"}), "slurm-setting-port")
    assert f.path == ("slurm", "dbd_settings", "DbdPort")


@pytest.mark.parametrize("value", ["two words", "a#comment", 'quo"te', "back\\slash", "", ["list"]])
def test_values_slurm_cannot_read_are_schema_errors(tmp_path, value):
    checked = check_spec(lab_with(tmp_path, settings={"KillWait": value}))
    assert any(f.check == "schema" and f.path[:2] == ("slurm", "settings") for f in checked.findings)


def _doc(path):
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings]
    return document_of(checked)


def test_the_diff_classifies_each_changed_setting_by_its_key(tmp_path):
    old = _doc(lab_with(tmp_path, "old", settings={"KillWait": 30, "SlurmctldParameters": "idle_on_node_suspend"}))
    new = _doc(lab_with(tmp_path, "new", settings={"killwait": 60, "SlurmctldParameters": "enable_configless",
                                                   "SelectTypeParameters": "CR_Core"},
                        dbd_settings={"DbdPort": 7031}))
    changes = {c.field: c for c in compare(old, new).changes if c.section == "slurm"}
    assert set(changes) == {"killwait", "SlurmctldParameters", "SelectTypeParameters", "DbdPort"}
    assert changes["killwait"].impact is Impact.RECONFIGURE and (changes["killwait"].old,
                                                                 changes["killwait"].new) == ("30", "60")
    assert changes["SlurmctldParameters"].impact is Impact.RESTART and changes["SlurmctldParameters"].hosts == "ctl01"
    assert changes["SelectTypeParameters"].impact is Impact.RESTART
    assert {"ctl01", "gpu01", "gpu02"} <= set(expand(changes["SelectTypeParameters"].hosts))  # slurmd too
    assert changes["DbdPort"].impact is Impact.RESTART and "AccountingStoragePort" in changes["DbdPort"].note


def test_a_key_respelled_is_no_change(tmp_path):
    old = _doc(lab_with(tmp_path, "old", settings={"KillWait": 30}))
    new = _doc(lab_with(tmp_path, "new", settings={"killwait": 30}))
    assert [c for c in compare(old, new).changes if c.section == "slurm"] == []
