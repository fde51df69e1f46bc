"""nfs_client and lustre_client converged on localhost; what they write is read back by the real parsers
(findmnt, autofs, exportfs) in a private mount namespace.

This kernel may lack the NFS client and server (no nfs/nfsd in /proc/filesystems) and has no InfiniBand HCA or
Lustre module; the roles must then configure what they can and say why they mount nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from storage_harness import converge, need, need_root, pool_vars
from conftest import ROOT

pytestmark = pytest.mark.integration


def nfs_vars(tmp_path) -> dict:
    v = pool_vars("ishikari", "login")
    (home,) = v["nfs_client_mounts"]
    projects = {**home, "name": "projects", "path": str(tmp_path / "projects"), "automount": True,
                "source": "10.18.0.10:/export/projects"}
    kernel_nfs = " nfs\n" in Path("/proc/filesystems").read_text() or "\tnfs\n" in Path("/proc/filesystems").read_text()
    return {
        "nfs_client_mounts": [{**home, "path": str(tmp_path / "home")}, projects],
        "nfs_client_install_packages": False,
        # Nothing serves 10.18.0.10 here: mount only where the kernel cannot anyway (to see the role say so).
        "nfs_client_mount_now": not kernel_nfs,
        "nfs_client_fstab": str(tmp_path / "fstab"),
        "nfs_client_autofs_master_dir": str(tmp_path / "auto.master.d"),
        "nfs_client_autofs_map_dir": str(tmp_path),
    }


def test_nfs_client_fstab_and_autofs(tmp_path):
    need("ansible-playbook", "findmnt")
    (tmp_path / "auto.master.d").mkdir()
    v = nfs_vars(tmp_path)
    first = converge(tmp_path, "nfs_client", v, 1)
    assert first.rc == 0 and first.failed == 0, first.out[-3000:]
    if v["nfs_client_mount_now"]:
        assert "this kernel has no NFS client" in first.out
    opts = "vers=4.2,proto=tcp,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576,nconnect=4"
    assert (tmp_path / "fstab").read_text() == f"10.18.0.10:/export/home {tmp_path}/home nfs {opts},_netdev 0 0\n"
    assert (tmp_path / "auto.gpucloud-projects").read_text().splitlines()[1] == \
        f"{tmp_path}/projects -fstype=nfs,{opts} 10.18.0.10:/export/projects"
    assert (tmp_path / "auto.master.d" / "gpucloud-projects.autofs").read_text() == \
        f"/- {tmp_path}/auto.gpucloud-projects --timeout=600\n"
    second = converge(tmp_path, "nfs_client", v, 2)
    assert (second.rc, second.changed) == (0, 0), second.out[-3000:]

    # util-linux parses the fstab it would mount from.
    verify = subprocess.run(["findmnt", "--verify", "--tab-file", str(tmp_path / "fstab")], capture_output=True,
                            text=True, timeout=30)
    out = verify.stdout + verify.stderr
    assert "Success, no errors" in out or "0 parse errors" in out, out


def test_autofs_reads_the_direct_map(tmp_path):
    need_root()
    need("ansible-playbook", "automount", "unshare")
    (tmp_path / "auto.master.d").mkdir()
    assert converge(tmp_path, "nfs_client", nfs_vars(tmp_path)).rc == 0
    master = tmp_path / "auto.master"
    master.write_text(f"+dir:{tmp_path}/auto.master.d\n")
    # autofs reads /etc/auto.master; a private mount namespace shows it ours without touching the host's.
    dump = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {master} /etc/auto.master && automount -m"],
                          capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert "Mount point: /-" in dump.stdout
    assert (f"{tmp_path}/projects | -fstype=nfs,vers=4.2,proto=tcp,hard,timeo=600,retrans=2,rsize=1048576,"
            "wsize=1048576,nconnect=4 10.18.0.10:/export/projects") in dump.stdout


def test_exportfs_accepts_the_rendered_exports(tmp_path):
    need_root()
    need("exportfs", "unshare")
    exports = (ROOT / "tests" / "golden" / "storage" / "ishikari" / "nfs" / "exports").read_text()
    export = tmp_path / "export" / "home"
    export.mkdir(parents=True)
    (tmp_path / "exports").write_text(exports.replace("/export/home ", f"{export} "))
    (tmp_path / "varlib").mkdir()
    script = (f"mount --bind {tmp_path}/exports /etc/exports && mount --bind {tmp_path}/varlib /var/lib/nfs && "
              "exportfs -ra && exportfs -v")
    run = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "unknown keyword" not in run.stderr
    listed = run.stdout.replace("\n\t\t", " ")  # exportfs -v wraps long paths onto the next line
    for block in ("10.18.4.0/22", "10.18.8.0/22", "10.18.12.0/22"):
        line = next(line for line in listed.splitlines() if block in line)
        assert line.startswith(str(export)) and all(o in line for o in ("rw", "sync", "root_squash", "no_subtree_check"))


def lustre_vars(tmp_path, **extra) -> dict:
    v = pool_vars("ishikari", "gpu")
    v["lustre_client_filesystems"] = [{**f, "path": str(tmp_path / "lustre" / f["name"])}
                                      for f in v["lustre_client_filesystems"]]
    v.update({"lustre_client_modprobe_conf": str(tmp_path / "lustre.conf"), "lustre_client_fstab": str(tmp_path / "fstab"),
              "lustre_client_unit_dir": str(tmp_path / "units"), **extra})
    (tmp_path / "units").mkdir(exist_ok=True)
    return v


def test_lustre_client_fails_without_hca(tmp_path):
    """The plan mounts Lustre here: no HCA is a failed host, not a skipped role that reports ok."""
    need("ansible-playbook")
    if any(Path("/sys/class/infiniband").glob("*")):
        pytest.skip("this host has an InfiniBand HCA")
    result = converge(tmp_path, "lustre_client", lustre_vars(tmp_path))
    assert result.rc != 0 and result.failed == 1, result.out[-3000:]
    assert "the plan mounts scratch on this host but it cannot: no InfiniBand HCA" in result.out
    assert not (tmp_path / "lustre.conf").exists() and not (tmp_path / "fstab").exists()
    # A stand-in test host says so explicitly; only then are the hardware steps skipped.
    result = converge(tmp_path, "lustre_client", lustre_vars(tmp_path, gpucloud_hardware_optional=True), 2)
    assert (result.rc, result.changed) == (0, 0), result.out[-3000:]
    assert "lustre_client: skipped, no InfiniBand HCA on this host" in result.out


def test_lustre_client_fails_without_module(tmp_path):
    need("ansible-playbook")
    sysfs_ib, sysfs_net = tmp_path / "sys-ib", tmp_path / "sys-net"
    (sysfs_ib / "mlx5_8").mkdir(parents=True)
    for iface in ("ib8", "ib9"):
        (sysfs_net / iface).mkdir(parents=True)
    if Path("/sys/module/lustre").exists():
        pytest.skip("this host has the Lustre client module")
    v = lustre_vars(tmp_path, lustre_client_sysfs_infiniband=str(sysfs_ib), lustre_client_sysfs_net=str(sysfs_net))
    result = converge(tmp_path, "lustre_client", v)
    assert result.rc != 0 and result.failed == 1, result.out[-3000:]
    assert "but it cannot: no Lustre client module for this kernel" in result.out
    (sysfs_net / "ib9").rmdir()
    result = converge(tmp_path, "lustre_client", v, 2)
    assert result.rc != 0 and "but it cannot: LNet interface(s) ib9 missing" in result.out


def test_lustre_client_configure_only_writes_the_plan(tmp_path):
    """Building a node image: no HCA, no module, but the configuration lands byte for byte."""
    need("ansible-playbook")
    v = lustre_vars(tmp_path, lustre_client_configure_only=True)
    first = converge(tmp_path, "lustre_client", v, 1)
    assert first.rc == 0 and first.failed == 0, first.out[-3000:]
    golden = (ROOT / "tests" / "golden" / "storage" / "ishikari" / "lnet" / "gpu.conf").read_text()
    assert (tmp_path / "lustre.conf").read_text() == golden
    assert (tmp_path / "fstab").read_text() == (
        f"10.18.0.21@o2ib1:10.18.0.22@o2ib1:/scratch {tmp_path}/lustre/scratch lustre "
        "flock,lazystatfs,_netdev 0 0\n")
    unit = (tmp_path / "units" / "lustre-tuning-scratch.service").read_text()
    assert f"RequiresMountsFor={tmp_path}/lustre/scratch\n" in unit
    for t in v["lustre_client_filesystems"][0]["tuning"]:
        assert f"# {t['reason']}\nExecStart=/usr/sbin/lctl set_param {t['param']}={t['value']}\n" in unit
    second = converge(tmp_path, "lustre_client", v, 2)
    assert (second.rc, second.changed) == (0, 0), second.out[-3000:]


def test_roles_reject_vars_not_from_the_plan(tmp_path):
    need("ansible-playbook")
    result = converge(tmp_path, "lustre_client", lustre_vars(tmp_path, lustre_client_lnet_conf=""))
    assert result.rc != 0 and "load the pool's storage/vars/<pool>.yml" in result.out
    bad = nfs_vars(tmp_path)
    bad["nfs_client_mounts"][0]["source"] = "/export/home"
    result = converge(tmp_path, "nfs_client", bad, 2)
    assert result.rc != 0 and "needs source server:/export" in result.out
