"""The NFS server's quota script (quotas: xfs-project) run twice on a real XFS filesystem with project quotas, on a
loop device standing in for the filer's export."""

from __future__ import annotations

import copy
import os
import subprocess

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.plan import build_plan
from gpucloud.render.storage import quota_scripts
from gpucloud.spec.model import build
from storage_harness import need, need_root

pytestmark = pytest.mark.integration


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=120)


@pytest.fixture
def xfs_export(tmp_path):
    need_root()
    need("losetup", "mkfs.xfs", "xfs_quota", "xfs_io")
    image = tmp_path / "export.img"
    with open(image, "wb") as fh:
        fh.truncate(320 * 2**20)
    proc = sh("losetup", "--find", "--show", str(image), check=False)
    if proc.returncode != 0:
        pytest.skip(f"no loop device available: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    mnt = tmp_path / "export"
    mnt.mkdir()
    try:
        sh("mkfs.xfs", "-q", dev)
        if sh("mount", "-o", "prjquota", dev, str(mnt), check=False).returncode != 0:
            pytest.skip("this kernel cannot mount XFS with project quotas")
        (mnt / "home").mkdir()
        yield mnt
    finally:
        sh("umount", str(mnt), check=False)
        sh("losetup", "-d", dev, check=False)


def test_xfs_project_quota_script_is_idempotent(tmp_path, xfs_export):
    data = yaml.safe_load((CLUSTERS / "ishikari.yaml").read_text())
    home = next(f for f in data["storage"] if f["name"] == "home")
    home["quotas"] = "xfs-project"
    data = copy.deepcopy(data)
    data["tenants"][1]["inode_quota"] = {"home": 100000}
    spec = build(data)
    plan = build_plan(spec)
    script = tmp_path / "home.sh"
    script.write_bytes(quota_scripts(plan)["storage/quota/home.sh"])
    env = {**os.environ, "EXPORT": str(xfs_export / "home")}

    first = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    projects = {p.tenant: p for p in plan.storage.projects if p.filesystem == "home"}
    for tenant, p in projects.items():
        assert f"created {xfs_export}/home/{tenant}" in first.stdout
        lsproj = sh("xfs_io", "-c", "lsproj", str(xfs_export / "home" / tenant)).stdout
        assert lsproj.split() == ["projid", "=", str(p.project_id)]
        # New files inherit the project: what users write counts against their tenant.
        (xfs_export / "home" / tenant / "f").write_bytes(b"x" * 8192)
        assert sh("xfs_io", "-c", "lsproj", str(xfs_export / "home" / tenant / "f")).stdout.split()[2] == \
            str(p.project_id)
    report = sh("xfs_quota", "-x", "-c", "report -p -n -b -i", str(xfs_export)).stdout
    rows = {line.split()[0]: line.split() for line in report.splitlines() if line.startswith("#")}
    llm = rows[f"#{projects['llm-lab'].project_id}"]
    assert llm[3] == str(20 * 2**30)  # bhard in KiB: 20 TiB
    univ = rows[f"#{projects['univ-a'].project_id}"]
    assert univ[8] == "100000"  # ihard

    second = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""  # no directory created, no project re-tagged
    assert sh("xfs_quota", "-x", "-c", "report -p -n -b -i", str(xfs_export)).stdout == report
