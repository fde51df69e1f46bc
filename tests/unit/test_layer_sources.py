"""A layer's trigger covers the Ansible it runs: editing a role moves the triggers of exactly the layers whose
playbooks reach it (directly or through include_role), and nothing else."""

from __future__ import annotations

import shutil

import pytest

from conftest import ROOT
from gpucloud.stack import sources

LAYERS = ["common", "fabric", "storage", "slurm", "compute", "monitoring"]


@pytest.fixture
def project(tmp_path):
    shutil.copytree(ROOT / "playbooks", tmp_path / "playbooks")
    return tmp_path


def digests(root):
    return {layer: sources.digest(f"playbooks/{layer}.yml", root) for layer in LAYERS}


@pytest.mark.parametrize("role_file, moved", [
    ("roles/munge/tasks/main.yml", {"slurm"}),  # listed by the slurm playbook only
    ("roles/nvidia_driver/defaults/main.yml", {"compute"}),
    ("roles/daemon/tasks/main.yml", {"common", "fabric", "slurm", "compute", "monitoring"}),  # included by many
    ("plan.yml", set(LAYERS)),  # imported by every layer's playbook
])
def test_a_source_change_moves_exactly_the_layers_that_run_it(project, role_file, moved):
    before = digests(project)
    path = project / "playbooks" / role_file
    path.write_text(path.read_text() + "\n# changed\n")
    sources._digest.cache_clear()
    after = digests(project)
    assert {layer for layer in LAYERS if before[layer] != after[layer]} == moved


def test_the_sources_of_a_layer_are_its_playbook_and_roles(project):
    files = [p.relative_to(project).as_posix() for p in sources.layer_sources("playbooks/fabric.yml", project)]
    assert "playbooks/fabric.yml" in files and "playbooks/plan.yml" in files
    roles = sorted({f.split("/")[2] for f in files if f.startswith("playbooks/roles/")})
    assert roles == ["daemon", "opensm", "rdma", "roce_host"]
