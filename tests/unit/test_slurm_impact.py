"""The table of what a changed Slurm setting costs, and the classified diff of two rendered slurm/ folders."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from conftest import CLUSTERS
from gpucloud.plan import slurm_impact as si
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.slurm import plan_slurm
from gpucloud.render.slurm import render
from gpucloud.spec import load


@pytest.fixture(scope="module")
def lab_files():
    spec = load(CLUSTERS / "lab.yaml").spec
    return render(SimpleNamespace(slurm=plan_slurm(spec, plan_hosts(spec))))


def test_every_rendered_key_is_classified(lab_files):
    keys = set()
    for line in lab_files["slurm/slurm.conf"].decode().splitlines():
        if line and not line.startswith("#"):
            keys.update(word.split("=", 1)[0] for word in line.split() if "=" in word)
    assert sorted(k for k in keys if k not in si.IMPACT) == []
    for name in lab_files:
        assert name == "slurm/slurm.conf" or name.rsplit("/", 1)[-1] in si.IMPACT


@pytest.mark.parametrize("key, impact", [
    ("MaxTime", si.RECONFIGURE), ("AllowAccounts", si.RECONFIGURE), ("TreeWidth", si.RECONFIGURE),
    ("NodeName", si.RESTART_SLURMD), ("Gres", si.RESTART_SLURMD), ("GresTypes", si.RESTART_SLURMD),
    ("TopologyPlugin", si.RESTART_SLURMCTLD), ("SlurmctldHost", si.RESTART_SLURMCTLD),
    ("gres.conf", si.RESTART_SLURMD), ("slurmdbd.conf", si.RESTART_SLURMDBD), ("tenants.sh", si.NONE),
])
def test_known_classes(key, impact):
    assert si.impact_of(key)[0] == impact


def test_unknown_key_is_a_lookup_error():
    with pytest.raises(KeyError):
        si.impact_of("NoSuchKey")


def _edit(files, path, old, new):
    assert old in files[path]
    return {**files, path: files[path].replace(old, new)}


def test_partition_time_is_a_reconfigure(lab_files):
    new = _edit(lab_files, "slurm/slurm.conf", b"MaxTime=01:00:00", b"MaxTime=02:00:00")
    (change,) = si.setting_changes(lab_files, new)
    assert (change.where, change.key, change.old, change.new) == ("slurm.conf PartitionName=debug", "MaxTime",
                                                                   "01:00:00", "02:00:00")
    assert change.impact == si.RECONFIGURE


def test_growing_a_pool_restarts_the_daemons(lab_files):
    new = _edit(lab_files, "slurm/slurm.conf", b"NodeName=gpu[01-02]", b"NodeName=gpu[01-04]")
    changes = si.setting_changes(lab_files, new)
    nodes = [c for c in changes if c.key == "NodeName"]
    assert len(nodes) == 2 and {c.impact for c in nodes} == {si.RESTART_SLURMD}  # old line gone, new line added
    assert si.worst(c.impact for c in changes) == si.RESTART_SLURMD


def test_file_changes_and_no_changes(lab_files):
    assert si.setting_changes(lab_files, lab_files) == []
    new = _edit(lab_files, "slurm/gres.conf", b"Cores=0-55", b"Cores=0-27")
    (change,) = si.setting_changes(lab_files, new)
    assert (change.where, change.impact) == ("gres.conf", si.RESTART_SLURMD)
    assert re.search("starts", change.why)


def test_renaming_the_cluster_says_the_queue_is_lost(lab_files):
    """A restart alone fails on a renamed cluster; the reason must tell the operator to clear the state first."""
    new = _edit(lab_files, "slurm/slurm.conf", b"ClusterName=lab", b"ClusterName=lab2")
    (change,) = si.setting_changes(lab_files, new)
    assert change.impact == si.RESTART_SLURMCTLD
    assert "StateSaveLocation" in change.why and "lost" in change.why
