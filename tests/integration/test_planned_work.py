"""A role never reports success for work the plan gives a host and the host cannot do.

Real ansible-playbook on localhost: the GPU roles on a host whose PCI bus shows no GPU, and the layer playbooks run
with an inventory whose gpucloud_plan_dir holds no plan (the repository's inventory/<cluster>/).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from storage_harness import ANSIBLE_PLAYBOOK, converge, need

from conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("role", ["nvidia_driver", "cuda", "dcgm"])
def test_gpu_roles_fail_where_planned_gpus_are_missing(tmp_path, role):
    need("ansible-playbook")
    pci = tmp_path / "pci"
    (pci / "0000:17:00.0").mkdir(parents=True)  # a device, but not an NVIDIA GPU
    (pci / "0000:17:00.0" / "vendor").write_text("0x15b3\n")
    (pci / "0000:17:00.0" / "class").write_text("0x020700\n")
    v = {"gpucloud_gpus": 8, "gpucloud_model": "hgx-h100-8", "nvidia_driver_version": "550.90.07",
         "cuda_version": "12.4", "dcgm_version": "3.3.6", "nvidia_driver_pci_dir": str(pci),
         "cuda_pci_dir": str(pci), "dcgm_pci_dir": str(pci)}
    result = converge(tmp_path, role, v)
    assert result.rc != 0 and result.failed == 1, result.out[-3000:]
    assert "the plan gives it 8 GPUs (hgx-h100-8) but no NVIDIA GPU is on the PCI bus" in result.out
    # A host the plan gives no GPU (a login node) skips the GPU steps and succeeds.
    result = converge(tmp_path, role, {**v, "gpucloud_gpus": 0}, 2)
    assert (result.rc, result.failed, result.changed) == (0, 0, 0), result.out[-3000:]
    # A stand-in test host skips them only when it says so.
    result = converge(tmp_path, role, {**v, "gpucloud_hardware_optional": True}, 3)
    assert (result.rc, result.failed, result.changed) == (0, 0, 0), result.out[-3000:]


@pytest.mark.parametrize("layer", ["storage", "slurm", "fabric"])
def test_layers_refuse_an_inventory_without_its_plan(tmp_path, layer):
    """The committed inventory/<cluster>/ has no slurm/, fabric/ or storage/ beside it: a layer run with it fails
    before any role, naming gpucloud_plan_dir, instead of skipping what it cannot find."""
    need("ansible-playbook")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(ROOT / "inventory" / "lab"), str(ROOT / "playbooks" / f"{layer}.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "no plan at gpucloud_plan_dir=" in out and "inventory/lab/.." in out, out[-3000:]
    assert "PLAY [Storage clients" not in out and "PLAY [MUNGE" not in out and "PLAY [RDMA" not in out


def _plan_play(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "plan").mkdir(exist_ok=True)
    (tmp_path / "plan" / "plan.json").write_text("{}")
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    node01: {ansible_connection: local}\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(ROOT / "playbooks" / "plan.yml"),
                           "-e", f"gpucloud_plan_dir={tmp_path / 'plan'}", "-e", f"ansible_python_interpreter={sys.executable}",
                           *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_hosts_must_run_a_supported_os_family(tmp_path):
    """The roles branch on the gathered OS family; a host of another family fails before any role runs."""
    need("ansible-playbook")
    ok = _plan_play(tmp_path)
    assert ok.returncode == 0 and re.search(r"node01\s+: ok=3 ", ok.stdout), (ok.stdout + ok.stderr)[-3000:]
    # Extra variables outrank the gathered facts: the host looks like a Rocky Linux one to the play.
    bad = _plan_play(tmp_path, "-e", '{"ansible_facts": {"os_family": "RedHat", "distribution": "Rocky"}}')
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "(RedHat family); the roles support the Debian family only" in out, out[-3000:]


def test_pyxis_plugin_must_be_where_the_plan_loads_it(tmp_path):
    """A `required` SPANK plugin that is missing fails every srun: the role fails first, naming the path."""
    need("ansible-playbook")
    plugin = tmp_path / "lib" / "spank_pyxis.so"
    plan = tmp_path / "plan"
    (plan / "slurm").mkdir(parents=True)
    (plan / "slurm" / "plugstack.conf").write_text(f"# plan\nrequired {plugin} runtime_path=/run/pyxis\n")
    v = {"enroot_pyxis_enabled": True, "enroot_pyxis_enroot_version": "3.5.0", "enroot_pyxis_packages": [],
         "enroot_pyxis_pyxis_packages": [], "enroot_pyxis_config_file": str(tmp_path / "enroot.conf"),
         "gpucloud_plan_dir": str(plan), "enroot_pyxis_data_path": "/local/enroot/data/user-$(id -u)"}
    result = converge(tmp_path, "enroot_pyxis", v)
    assert result.rc != 0 and f"loads {plugin} as required" in result.out, result.out[-3000:]
    plugin.parent.mkdir()
    plugin.write_bytes(b"")
    result = converge(tmp_path, "enroot_pyxis", v, 2)
    assert result.rc == 0 and result.failed == 0, result.out[-3000:]
    conf = (tmp_path / "enroot.conf").read_text()
    assert "ENROOT_DATA_PATH /local/enroot/data/user-$(id -u)\n" in conf
    assert "# ENROOT_CACHE_PATH: enroot default (no local scratch)\n" in conf


def test_rdma_fails_where_planned_adapters_are_missing(tmp_path):
    need("ansible-playbook")
    sysfs = tmp_path / "sys-ib"
    sysfs.mkdir()
    v = {"rdma_sys_class_dir": str(sysfs), "rdma_expected_hcas": 8, "gpucloud_ib_rails": 8}
    result = converge(tmp_path, "rdma", v)
    assert result.rc != 0 and "the plan gives localhost 8 InfiniBand adapter(s) but there is none" in result.out, \
        result.out[-3000:]
    result = converge(tmp_path, "rdma", {**v, "rdma_expected_hcas": 0, "gpucloud_ib_rails": 0}, 2)
    assert (result.rc, result.failed) == (0, 0), result.out[-3000:]


def test_slurm_config_removes_what_the_plan_no_longer_has(tmp_path):
    """Slurm reads topology.yaml before topology.conf: one left from an earlier plan (Slurm 25.05+, NVL72 racks beside
    HGX nodes) would keep the old topology after the plan went back to topology.conf."""
    need("ansible-playbook")
    etc, plan = tmp_path / "etc", tmp_path / "plan"
    (plan / "slurm").mkdir(parents=True)
    (plan / "slurm" / "slurm.conf").write_text("ClusterName=t\n")
    (plan / "slurm" / "topology.yaml").write_text("- topology: fabric\n  cluster_default: true\n  flat: true\n")
    v = {"gpucloud_plan_dir": str(plan), "slurm_config_dir": str(etc), "slurm_config_hook_dirs": []}
    first = converge(tmp_path, "slurm_config", v)
    assert first.failed == 0 and (etc / "topology.yaml").is_file(), first.out[-3000:]
    (plan / "slurm" / "topology.yaml").unlink()
    (plan / "slurm" / "topology.conf").write_text("SwitchName=s1 Nodes=n1\n")
    second = converge(tmp_path, "slurm_config", v, 1)
    assert second.failed == 0 and second.changed >= 2, second.out[-3000:]
    assert not (etc / "topology.yaml").exists() and (etc / "topology.conf").read_text() == "SwitchName=s1 Nodes=n1\n"
    third = converge(tmp_path, "slurm_config", v, 2)
    assert third.failed == 0 and third.changed == 0, third.out[-3000:]
