"""Impact classes the rest of the fast suite let through: Slurm's cluster name, and a network's MTU, VLAN and IPoIB
mode.

Each test fails under a one-line bug listed in scripts/mutants.py.
"""

from __future__ import annotations

import yaml

from conftest import CLUSTERS
from gpucloud.diff import compare
from gpucloud.impact import Impact
from gpucloud.diff.inputs import document_of
from gpucloud.hostlist import expand
from gpucloud.pipeline import check_spec

LAB = (CLUSTERS / "lab.yaml").read_text()


def diff_of(tmp_path, edit):
    docs = []
    for name, change in (("old", None), ("new", edit)):
        data = yaml.safe_load(LAB)
        if change:
            change(data)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        checked = check_spec(path)
        assert not checked.fails("error"), [f.message for f in checked.findings]
        docs.append(document_of(checked))
    return compare(docs[0], docs[1], "old", "new")


def only(diff, **match):
    found = [c for c in diff.changes if all(getattr(c, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [c.as_dict() for c in diff.changes])
    return found[0]


ALL_HOSTS = {"gpu01", "gpu02", "ctl01", "login01"}


def test_renaming_the_slurm_cluster_destroys_the_controllers_state(tmp_path):
    diff = diff_of(tmp_path, lambda d: d["slurm"].update(cluster_name="lab2"))
    c = only(diff, section="slurm", field="cluster_name")
    assert c.impact is Impact.DESTROYS_DATA and c.new == "lab2"
    assert set(expand(c.hosts)) == {"ctl01"}
    assert diff.exit_code == 3  # destroys data: refused unless asked for


def test_mtu_change_drains_and_reboots_every_host(tmp_path):
    diff = diff_of(tmp_path, lambda d: d["networks"]["management"].update(mtu=9000))
    c = only(diff, section="networks", field="mtu")
    assert c.impact is Impact.DRAIN_REBOOT and c.new == 9000
    assert set(expand(c.hosts)) == ALL_HOSTS


def test_vlan_change_drains_and_reboots_every_host(tmp_path):
    diff = diff_of(tmp_path, lambda d: d["networks"]["bmc"].update(vlan=201))
    c = only(diff, section="networks", field="vlan")
    assert c.impact is Impact.DRAIN_REBOOT and (c.old, c.new) == (101, 201)
    assert set(expand(c.hosts)) == ALL_HOSTS


def test_ipoib_mode_change_drains_and_reboots_the_hosts_on_the_fabric(tmp_path):
    diff = diff_of(tmp_path, lambda d: d["networks"]["ipoib"].update(mode="connected"))
    c = only(diff, section="networks", field="mode")
    assert c.impact is Impact.DRAIN_REBOOT and c.new == "connected"
    # every lab host has an HCA on the compute fabric
    assert set(expand(c.hosts)) == ALL_HOSTS
