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


def test_the_imex_role_is_a_source_of_the_compute_layer_only(project):
    before = digests(project)
    path = project / "playbooks" / "roles" / "imex" / "tasks" / "main.yml"
    path.write_text(path.read_text() + "\n# changed\n")
    sources._digest.cache_clear()
    after = digests(project)
    assert {layer for layer in LAYERS if before[layer] != after[layer]} == {"compute"}


def test_a_new_imex_peer_list_moves_the_compute_layer_only():
    """The compute layer installs imex/<rack>/nodes_config.cfg: a changed list must converge the trays again."""
    from conftest import CLUSTERS
    from gpucloud.pipeline import check_spec, plan_files
    from gpucloud.plan import build_plan
    from gpucloud.plan.layers import layer_contents

    checked = check_spec(CLUSTERS / "nvl72.yaml")
    plan = build_plan(checked.spec, tuple(checked.findings))
    files = dict(plan_files(checked))
    before = layer_contents(plan, files)
    files["imex/nvl01/nodes_config.cfg"] = files["imex/nvl01/nodes_config.cfg"] + b"10.64.16.99\n"
    after = layer_contents(plan, files)
    assert {layer for layer in LAYERS if before[layer]["digest"] != after[layer]["digest"]} == {"compute"}
    # imex/domains.json is data no role reads (its tenants, for one): a tenant edit converges nothing.
    files["imex/domains.json"] = files["imex/domains.json"].replace(b'"frontier-lab"', b'"frontier-lab-2"')
    assert files["imex/domains.json"] != dict(plan_files(checked))["imex/domains.json"]
    assert layer_contents(plan, files) == after
