"""Provisioning files read by their real consumers: Kea, cloud-init, and PXE clients on a namespaced network.

* ``kea-dhcp4 -t`` accepts the rendered configuration of the lab and of the 12,500-node example, and refuses a
  configuration with a MAC reserved twice (so the check can fail);
* ``cloud-init schema`` accepts the user-data and the installed system's first-boot config inside it;
* a real DHCP client (busybox udhcpc) on the bridge with the real Kea gets its reservation and the boot file its
  firmware class should get, and an unknown MAC gets nothing;
* a real PXE client: QEMU with Debian's iPXE ROM boots from the network, gets its planned address, fetches its own
  iPXE script, the kernel and an initrd over HTTP from ``gpucloud provision serve``; the initrd's /init phones home
  with a host key, which lands in known_hosts. A VM with an unknown MAC gets no address and fetches nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from gpucloud.pipeline import check_spec, plan_files
from gpucloud.render.provision import KEA
from gpucloud.spec import discovered
from gpucloud.spec.model import HostHardware
from provision_harness import BUSYBOX, KEA as KEA_BIN, QEMU, Lan, host_kernel, make_initrd, netns_available, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "clusters" / "lab.yaml"
CLOUD_INIT = shutil.which("cloud-init")
HTTP = "provision/http"


def lab_files() -> dict[str, bytes]:
    checked = check_spec(LAB)
    assert not checked.fails(), checked.findings
    return plan_files(checked)


def write_tree(files: dict[str, bytes], prefix: str, dest: Path) -> Path:
    for rel, data in files.items():
        if rel.startswith(prefix + "/"):
            p = dest / rel[len(prefix) + 1:]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return dest


def kea_test(conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run([KEA_BIN, "-t", str(conf)], capture_output=True, text=True, timeout=600)


# -- Kea and cloud-init as validators


@pytest.mark.skipif(KEA_BIN is None, reason="kea-dhcp4 is missing (apt-get install kea-dhcp4-server)")
def test_kea_accepts_the_lab_config_and_refuses_a_mac_reserved_twice(tmp_path):
    conf = tmp_path / "kea-dhcp4.conf"
    conf.write_bytes(lab_files()[KEA])
    result = kea_test(conf)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(conf.read_text())
    rows = data["Dhcp4"]["subnet4"][0]["reservations"]
    rows[1]["hw-address"] = rows[0]["hw-address"]
    conf.write_text(json.dumps(data))
    result = kea_test(conf)
    assert result.returncode != 0 and "already been added" in result.stdout + result.stderr


@pytest.mark.skipif(KEA_BIN is None, reason="kea-dhcp4 is missing (apt-get install kea-dhcp4-server)")
def test_kea_accepts_the_config_of_12500_nodes(tmp_path):
    """colossus-100k with a provisioner pool and a recorded MAC for every host (bench/ times this)."""
    text = (ROOT / "clusters" / "colossus-100k.yaml").read_text()
    text = text.replace("roles: [slurm-controller, slurmdbd, subnet-manager, monitoring]",
                        "roles: [slurm-controller, slurmdbd, subnet-manager, monitoring, provisioner]")
    spec = tmp_path / "colossus-100k.yaml"
    spec.write_text(text)
    checked = check_spec(spec)
    (tmp_path / "discovered").mkdir()
    hosts = {}
    n = 0
    for pool in checked.spec.pools:
        for i in pool.indices:
            n += 1
            mac = f"52:54:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
            hosts[pool.hostname_for(i)] = HostHardware(mac, (mac,))
    discovered.write(tmp_path / "discovered" / "colossus-100k.yaml", "colossus-100k", hosts)
    checked = check_spec(spec)
    assert not checked.fails(), [f for f in checked.findings if f.level == "error"][:3]
    from gpucloud.plan import build_plan
    from gpucloud.render.provision import kea_config

    plan = build_plan(checked.spec)
    assert len(plan.provision.reservations) == len(hosts) - 1  # all but the server
    conf = tmp_path / "kea-dhcp4.conf"
    conf.write_bytes(kea_config(plan.provision))
    result = kea_test(conf)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


@pytest.mark.skipif(CLOUD_INIT is None, reason="cloud-init is missing (apt-get install cloud-init)")
def test_cloud_init_accepts_the_user_data_and_the_first_boot_config(tmp_path):
    files = lab_files()
    seeds = sorted(f for f in files if f.endswith("/user-data"))
    assert len(seeds) == 3
    for rel in seeds:
        outer = tmp_path / "user-data"
        outer.write_bytes(files[rel])
        inner = tmp_path / "first-boot"
        inner.write_text("#cloud-config\n" + yaml.safe_dump(yaml.safe_load(files[rel])["autoinstall"]["user-data"]))
        for path in (outer, inner):
            result = subprocess.run([CLOUD_INIT, "schema", "-c", str(path)], capture_output=True, text=True,
                                    timeout=120)
            assert result.returncode == 0 and "Valid cloud-config" in result.stdout, (rel, result.stdout,
                                                                                      result.stderr)
    # and the check can fail: a misspelt module key in the first-boot config
    bad = tmp_path / "bad"
    bad.write_text("#cloud-config\nphone_home: {url: 5, post: nothing}\n")
    result = subprocess.run([CLOUD_INIT, "schema", "-c", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0


# -- clients on a namespaced network

NEEDS_NET = [pytest.mark.skipif(KEA_BIN is None or BUSYBOX is None,
                                reason="kea-dhcp4 or busybox is missing (apt-get install kea-dhcp4-server "
                                       "busybox-static)")]


@pytest.fixture
def lan(tmp_path):
    why = netns_available()
    if why:
        pytest.skip(why)
    files = lab_files()
    lan = Lan(tmp_path, "10.100.0.129", 22)
    try:
        rendered = tmp_path / "kea-rendered.conf"
        rendered.write_bytes(files[KEA])
        lan.kea_log = lan.start_kea(rendered)
        lan.files = files
        yield lan
    finally:
        lan.close()


@pytest.mark.skipif(KEA_BIN is None or BUSYBOX is None, reason="kea-dhcp4 or busybox-static is missing")
def test_dhcp_client_gets_its_reservation_and_its_class_boot_file(lan):
    ipxe = lan.udhcpc("52:54:00:10:00:01", "-x", "0x4d:69505845")  # user class 'iPXE'
    assert ipxe is not None, lan.kea_log.read_text()[-3000:]
    assert (ipxe["ip"], ipxe["hostname"], ipxe["router"]) == ("10.100.0.65", "gpu01", "10.100.0.1")
    assert ipxe["boot_file"] == "http://10.100.0.129:8080/ipxe/boot.ipxe"
    bios = lan.udhcpc("52:54:00:10:00:04", "-x", "0x5d:0000")  # a BIOS PXE ROM
    assert (bios["ip"], bios["hostname"], bios["boot_file"], bios["siaddr"]) == (
        "10.100.0.193", "login01", "undionly.kpxe", "10.100.0.129")
    plain = lan.udhcpc("52:54:00:10:00:02")  # known, but no boot firmware: an address, no boot file
    assert plain["ip"] == "10.100.0.66" and not plain.get("boot_file")
    assert lan.udhcpc("52:54:00:99:99:99", "-x", "0x4d:69505845") is None
    assert "ALLOC_ENGINE_V4_ALLOC_FAIL_NO_POOLS" in lan.kea_log.read_text()


@pytest.mark.skipif(KEA_BIN is None or BUSYBOX is None or QEMU is None or shutil.which("ssh-keygen") is None
                    or not Path("/usr/share/qemu/efi-virtio.rom").exists() and
                    not Path("/usr/lib/ipxe/qemu/efi-virtio.rom").exists(),
                    reason="needs kea-dhcp4, busybox-static, qemu-system-x86, ipxe-qemu and ssh-keygen")
def test_pxe_boot_in_qemu_reaches_phone_home_and_an_unknown_mac_gets_nothing(lan, tmp_path):
    kernel = host_kernel()
    if kernel is None:
        pytest.skip("no readable /boot/vmlinuz-* with its /lib/modules (apt-get install linux-image-cloud-amd64)")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hostkey")], check=True)
    host_key = (tmp_path / "hostkey.pub").read_text().strip()
    root = write_tree(lan.files, HTTP, tmp_path / "http")
    image = root / "images" / "ubuntu-22.04-gpu"
    image.mkdir(parents=True)
    shutil.copy(kernel[0], image / "vmlinuz")
    shutil.copy(make_initrd(tmp_path, kernel[1], host_key), image / "initrd")
    known_hosts = tmp_path / "known_hosts"
    http_log = lan.start_http(LAB, root, known_hosts)

    stranger = lan.qemu(lan.tap(), "52:54:00:99:99:98", tmp_path / "stranger.serial")
    vm = lan.qemu(lan.tap(), "52:54:00:10:00:01", tmp_path / "gpu01.serial")
    try:
        wait_for(lambda: known_hosts.exists() and known_hosts.read_text(), 300, "gpu01 to phone home", vm, http_log)
        vm.wait(timeout=120)  # the initrd powers the VM off after phoning home
    finally:
        from conftest import stop_process

        stop_process(stranger)
        stop_process(vm)
    kind, blob = host_key.split()[:2]
    assert known_hosts.read_text() == f"10.100.0.65,gpu01,gpu01.lab.gpucloud.internal {kind} {blob}\n"
    log = http_log.read_text()
    for path in ("/ipxe/boot.ipxe", "/ipxe/52-54-00-10-00-01.ipxe", "/images/ubuntu-22.04-gpu/vmlinuz",
                 "/images/ubuntu-22.04-gpu/initrd"):
        assert re.search(rf"^10\.100\.0\.65 .*\"GET {re.escape(path)} HTTP", log, re.M), (path, log[-3000:])
    assert "gpu01: recorded 1 host key(s)" in log
    kea = lan.kea_log.read_text()
    assert "52:54:00:99:99:98" in kea  # the stranger did ask
    leases = (tmp_path / "kea-leases4.csv").read_text()
    assert "52:54:00:10:00:01" in leases and "52:54:00:99:99:98" not in leases
    assert len(re.findall(r"^10\.100\.0\.\d+ ", log, re.M)) == len(re.findall(r"^10\.100\.0\.65 ", log, re.M))
