"""Package pins and repositories of the spec's software section: schema, model, plan, inventory, diff."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.diff import compare
from gpucloud.diff.impact import Impact
from gpucloud.diff.inputs import document_of
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan.software import pool_pins, repositories, upstream
from gpucloud.render.inventory import all_vars

CUDA = {"name": "cuda", "url": "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/",
        "suite": "/", "key": "/usr/share/keyrings/cuda-archive-keyring.gpg",
        "packages": ["nvidia-driver-550-server", "datacenter-gpu-manager"]}
DOCA = {"name": "doca", "url": "https://linux.mellanox.com/public/repo/doca/2.7.0/ubuntu22.04/x86_64/",
        "suite": "./", "fingerprint": "A" * 40, "packages": ["doca-ofed"]}
SLURM = {"name": "slurm", "url": "https://packages.example.org/slurm", "suite": "jammy", "components": ["main"],
         "key": "/usr/share/keyrings/site.gpg", "fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567",
         "packages": ["slurmd", "slurmctld"]}


def _checked(tmp_path: Path, edit, name: str = "lab"):
    data = yaml.safe_load((CLUSTERS / f"{name}.yaml").read_text())
    edit(data["software"])
    path = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return check_spec(path)


@pytest.mark.parametrize("debian, up", [("550.127.08-0ubuntu1", "550.127.08"), ("1:3.3.7", "3.3.7"),
                                        ("1:3.3.7-1", "3.3.7"), ("22.05.8-4+deb12u3", "22.05.8"),
                                        ("2.7.0", "2.7.0"), ("24.07-0.6.1.0-0", "24.07-0.6.1.0")])
def test_upstream_drops_epoch_and_revision(debian, up):
    assert upstream(debian) == up


def test_pins_follow_each_pools_hardware_and_roles():
    plan = build_plan(check_spec(CLUSTERS / "lab.yaml").spec)
    by_pool = {pp.pool.name: pp for pp in plan.pools}

    def pins(name):
        pp = by_pool[name]
        hcas = len(pp.model.compute_hcas) if pp.pool.fabric == "compute" else 0
        return pool_pins(plan.spec, pp.model.gpus, pp.model.nvswitch, hcas, pp.pool.roles)

    gpu = pins("gpu")
    assert gpu["nvidia-driver-550-server"] == gpu["nvidia-utils-550-server"] == "550.90.07"
    assert gpu["nvidia-fabricmanager-550"] == "550.90.07"  # HGX: NVSwitch
    assert gpu["datacenter-gpu-manager"] == "3.3.7" and gpu["doca-ofed"] == "2.7.0"
    assert gpu["slurmd"] == gpu["slurm-client"] == "23.11.10" and gpu["enroot"] == "3.5.0"
    assert gpu["nvslurm-plugin-pyxis"] == "0.20.0"
    assert list(gpu) == sorted(gpu)
    others = {name: pins(name) for name in by_pool if name != "gpu"}
    assert all("nvidia-driver-550-server" not in p and "slurmd" not in p for p in others.values())
    assert any(p.get("slurmctld") == "23.11.10" for p in others.values())


def test_repositories_become_the_roles_sources_and_the_mirror_moves_them_all(tmp_path):
    checked = _checked(tmp_path, lambda sw: sw.update(repositories=[CUDA, DOCA, SLURM]))
    assert not checked.fails("error"), [f.message for f in checked.findings]
    listed = all_vars(build_plan(checked.spec))["repositories_list"]
    assert listed == repositories(checked.spec)
    assert listed[0] == {"name": "cuda", "uris": CUDA["url"], "suites": "/", "signed_by": CUDA["key"],
                         "packages": CUDA["packages"]}
    assert listed[1]["signed_by"] == "A" * 40 and "components" not in listed[1]
    assert listed[2]["components"] == "main" and listed[2]["signed_by"] == f"{SLURM['key']} {SLURM['fingerprint']}"

    mirrored = _checked(tmp_path, lambda sw: sw.update(repositories=[CUDA, DOCA, SLURM],
                                                      mirror="http://mirror.site.example/apt"))
    assert [r["uris"] for r in repositories(mirrored.spec)] == [
        "http://mirror.site.example/apt/cuda/", "http://mirror.site.example/apt/doca/",
        "http://mirror.site.example/apt/slurm/"]
    # Same keys: the mirror serves the vendors' signed files unchanged.
    assert [r["signed_by"] for r in repositories(mirrored.spec)] == [r["signed_by"] for r in listed]


def test_a_spec_without_repositories_renders_as_before():
    assert "repositories_list" not in all_vars(build_plan(check_spec(CLUSTERS / "lab.yaml").spec))


@pytest.mark.parametrize("edit, path", [
    (lambda sw: sw.update(repositories=[{k: v for k, v in CUDA.items() if k != "key"}]),
     "$.software.repositories[0]"),  # unsigned
    (lambda sw: sw.update(repositories=[{**CUDA, "key": "keys/cuda.gpg"}]), "$.software.repositories[0].key"),
    (lambda sw: sw.update(repositories=[{**CUDA, "fingerprint": "abc"}]), "$.software.repositories[0].fingerprint"),
    (lambda sw: sw.update(mirror="http://mirror.example/apt/"), "$.software.mirror"),  # no trailing slash
    (lambda sw: sw.update(repositories=[{**CUDA, "packages": []}]), "$.software.repositories[0].packages"),
])
def test_schema_refuses_unsigned_or_malformed_repositories(tmp_path, edit, path):
    checked = _checked(tmp_path, edit)
    errors = [f for f in checked.findings if f.level == "error"]
    assert errors and any(f.check == "schema" and f.json_path == path for f in errors), \
        [(f.check, f.json_path, f.message) for f in errors]


def test_repository_and_mirror_changes_restart_nothing(tmp_path):
    old = document_of(_checked(tmp_path, lambda sw: sw.update(repositories=[CUDA])))
    new = document_of(_checked(tmp_path, lambda sw: sw.update(repositories=[{**CUDA, "suite": "jammy",
                                                                            "components": ["main"]}],
                                                              mirror="http://mirror.site.example/apt")))
    diff = compare(old, new, "old", "new")
    found = {c.field: c for c in diff.changes if c.section == "software"}
    assert set(found) == {"mirror", "repositories"}, [c.as_dict() for c in diff.changes]
    assert all(c.impact is Impact.NONE for c in found.values())
    # A spec that never had repositories compares unchanged against its plans from before these settings.
    plain = document_of(check_spec(CLUSTERS / "lab.yaml"))
    older = copy.deepcopy(plain)
    for key in ("mirror", "repositories"):
        assert plain["spec"]["software"][key] is None
        del older["spec"]["software"][key]
    assert [c for c in compare(older, plain, "old", "new").changes if c.section == "software"] == []


def test_verify_expects_the_pinned_lustre_client_only_where_the_pool_mounts_lustre():
    """The lustre_client role installs its packages at software.lustre_client on pools that mount Lustre; verify
    reads back the same packages there, and nowhere else."""
    from gpucloud.plan.software import LUSTRE_CLIENT_PACKAGES
    from gpucloud.verify.expect import expectations

    plan = build_plan(check_spec(CLUSTERS / "abci3.yaml").spec)
    defaults = yaml.safe_load((Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "lustre_client" /
                               "defaults" / "main.yml").read_text())
    assert tuple(defaults["lustre_client_packages"]) == LUSTRE_CLIENT_PACKAGES
    by_pool = {}
    for he in expectations(plan):
        by_pool.setdefault(he.pool.pool, dict(he.pool.packages))
    lustre_pools = {name for fs in plan.storage.lustre for name in fs.pools}
    assert lustre_pools and set(by_pool) - lustre_pools, "the example must have pools with and without Lustre"
    for pool, packages in by_pool.items():
        for name in LUSTRE_CLIENT_PACKAGES:
            assert packages.get(name) == ("2.15.5" if pool in lustre_pools else None), (pool, name)


def test_nvl72_trays_pin_imex_at_the_drivers_version():
    """The imex role installs IMEX at the driver's version; verify reads the same pin back and looks for the
    service. Named after the branch up to 575, nvidia-imex from 580 (NVIDIA's CUDA repository)."""
    from gpucloud.plan.software import imex_package
    from gpucloud.verify.expect import pool_expect

    assert (imex_package("570.133.20"), imex_package("575.57.08"), imex_package("580.65.06")) == (
        "nvidia-imex-570", "nvidia-imex-575", "nvidia-imex")
    plan = build_plan(check_spec(CLUSTERS / "nvl72.yaml").spec)
    gpu, ctl = (pool_expect(plan, pp) for pp in plan.pools[:2])
    assert dict(gpu.packages)["nvidia-imex-570"] == "570.133.20" and "nvidia-imex" in gpu.services
    assert not any("imex" in name for name, _ in ctl.packages) and "nvidia-imex" not in ctl.services
    lab = build_plan(check_spec(CLUSTERS / "lab.yaml").spec)
    assert not any("imex" in name for pp in lab.pools for name, _ in pool_expect(lab, pp).packages)
