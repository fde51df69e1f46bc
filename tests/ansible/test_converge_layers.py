"""`gpucloud converge --tags <layers>` runs those layers' playbooks alone.

Ansible runs every role's argument validation (tagged ``always``) whatever ``--tags`` selects, so site.yml with
``--tags provision`` still validates the Slurm roles and asks for their Vault secrets. The task lists Ansible itself
prints show both: site.yml with the tag lists other layers' validations, the converge's wrapper lists none.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT
from gpucloud import converge

needs_ansible = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")


def _tasks(playbook, tags, tmp_path) -> list[str]:
    argv = ["ansible-playbook", "--list-tasks", "-i", str(ROOT / "inventory" / "lab"), str(playbook)]
    if tags:
        argv += ["--tags", tags]
    env = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_HOME": str(tmp_path / "ah"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "lt"), "ANSIBLE_ROLES_PATH": str(ROOT / "playbooks" / "roles")}

    res = subprocess.run(argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return [line.strip() for line in res.stdout.splitlines() if "TAGS:" in line and "play #" not in line]


def test_layer_tags_choose_the_layer_playbooks_in_site_order(tmp_path):
    playbook, tags = converge.layer_playbook("storage, provision", tmp_path)
    assert tags is None
    imported = [entry["ansible.builtin.import_playbook"] for entry in yaml.safe_load(playbook.read_text())]
    assert imported == [str(ROOT / "playbooks" / "provision.yml"), str(ROOT / "playbooks" / "storage.yml")]
    # A tag that is not a layer keeps site.yml and the tags as given; no tags: the whole site.
    assert converge.layer_playbook("provision,kea", tmp_path) == (converge.PLAYBOOK, "provision,kea")
    assert converge.layer_playbook(None, tmp_path) == (converge.PLAYBOOK, None)
    assert set(converge.site_layers()) == {"common", "provision", "fabric", "storage", "slurm", "compute",
                                           "monitoring"}


@needs_ansible
def test_the_provision_layer_alone_validates_no_other_role(tmp_path):
    through_site = _tasks(converge.PLAYBOOK, "provision", tmp_path)
    assert any(t.startswith("slurmdbd : Validating arguments") for t in through_site), through_site
    playbook, tags = converge.layer_playbook("provision", tmp_path)
    alone = _tasks(playbook, tags, tmp_path)
    validations = sorted({t.split(" : ")[0] for t in alone if "Validating arguments" in t})
    assert validations == ["provisioner"], validations
    assert any(t.startswith("provisioner : Install Kea") for t in alone)
