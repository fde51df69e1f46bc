"""A provisioning network in network namespaces: the real Kea, the real HTTP server, and real DHCP/PXE clients.

One namespace holds a bridge with the provisioning server's planned address, Kea serving on the bridge, and
``gpucloud provision serve`` (the rendered provision/http/ and the phone-home receiver). Clients join the bridge:
``busybox udhcpc`` in a namespace of its own on a veth, or QEMU with the iPXE ROM on a tap. Nothing leaves the
namespaces: they have no route out and no link to the host's interfaces. Every process is stopped by PID and the
namespaces are deleted at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import stop_process

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = shutil.which("busybox")
KEA = shutil.which("kea-dhcp4")
QEMU = shutil.which("qemu-system-x86_64")


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if not shutil.which(n)]


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)


def netns_available() -> str:
    """'' when this process may create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"gpcp-probe-{os.getpid()}"
    try:
        sh("ip", "netns", "add", name)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return f"cannot create a network namespace: {getattr(exc, 'stderr', exc)}"
    sh("ip", "netns", "del", name)
    return ""


class Lan:
    """The server namespace with its bridge; clients are added with ``udhcpc`` or ``tap``."""

    def __init__(self, work: Path, server_address: str, prefix: int):
        self.work = work
        self.tag = f"gpcp{os.getpid()}"
        self.server = f"{self.tag}-s"
        self.namespaces = [self.server]
        self.procs: list[subprocess.Popen] = []
        sh("ip", "netns", "add", self.server)
        self.ns(self.server, "ip", "link", "set", "lo", "up")
        self.ns(self.server, "ip", "link", "add", "br0", "type", "bridge")
        self.ns(self.server, "ip", "addr", "add", f"{server_address}/{prefix}", "dev", "br0")
        self.ns(self.server, "ip", "link", "set", "br0", "up")
        self.clients = 0

    @staticmethod
    def ns(name: str, *args: str) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", name, *args)

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)

    # -- services

    def start(self, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        fh = open(log, "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", self.server, *args], stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        fh.close()
        self.procs.append(proc)
        return proc

    def start_kea(self, rendered: Path) -> Path:
        """Kea with the rendered configuration, changed only where a test must: interface, lease file, log."""
        conf = json.loads(rendered.read_text())
        d = conf["Dhcp4"]
        d["interfaces-config"]["interfaces"] = ["br0"]
        d["lease-database"].update(name=str(self.work / "kea-leases4.csv"), **{"lfc-interval": 0})
        log = self.work / "kea.log"
        d["loggers"] = [{"name": "kea-dhcp4", "output_options": [{"output": str(log)}], "severity": "DEBUG",
                         "debuglevel": 40}]
        path = self.work / "kea-dhcp4.conf"
        path.write_text(json.dumps(conf))
        run = self.work / "kea-run"
        run.mkdir(exist_ok=True)
        proc = self.start([KEA, "-c", str(path)], self.work / "kea.stdout",
                          {"KEA_PIDFILE_DIR": str(run), "KEA_LOCKFILE_DIR": str(run)})
        wait_for(lambda: log.exists() and "DHCP4_STARTED" in log.read_text(), 20, "Kea to start", proc,
                 self.work / "kea.stdout")
        return log

    def start_http(self, spec: Path, root: Path, known_hosts: Path) -> Path:
        log = self.work / "http.log"
        proc = self.start([sys.executable, "-m", "gpucloud", "provision", "serve", str(spec), "--root", str(root),
                           "--known-hosts", str(known_hosts)], log, {"PYTHONPATH": str(ROOT)})
        wait_for(lambda: "serving" in log.read_text(), 30, "the provisioning HTTP server", proc, log)
        return log

    # -- clients

    def udhcpc(self, mac: str, *extra: str, timeout: float = 20) -> dict[str, str] | None:
        """One DHCP exchange from a fresh namespace on a veth into the bridge; the bound lease's values or None."""
        self.clients += 1
        name = f"{self.tag}-c{self.clients}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "add", "c0", "netns", name, "type", "veth", "peer", "name", f"v{self.clients}", "netns",
           self.server)
        self.ns(self.server, "ip", "link", "set", f"v{self.clients}", "master", "br0", "up")
        self.ns(name, "ip", "link", "set", "c0", "address", mac, "up")
        out = self.work / f"udhcpc{self.clients}.env"
        script = self.work / "udhcpc.sh"
        script.write_text('#!/bin/sh\n[ "$1" = bound ] && env > "$UDHCPC_OUT"\nexit 0\n')
        script.chmod(0o755)
        proc = subprocess.run(["ip", "netns", "exec", name, BUSYBOX, "udhcpc", "-i", "c0", "-f", "-q", "-n",
                               "-t", "3", "-T", "1", "-s", str(script), *extra],
                              env={**os.environ, "UDHCPC_OUT": str(out)}, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            return None
        return dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)

    def tap(self) -> str:
        self.clients += 1
        name = f"tap{self.clients}"
        self.ns(self.server, "ip", "tuntap", "add", "dev", name, "mode", "tap")
        self.ns(self.server, "ip", "link", "set", name, "master", "br0", "up")
        return name

    def qemu(self, tap: str, mac: str, serial: Path) -> subprocess.Popen:
        """A diskless VM whose only boot device is its NIC's iPXE ROM (ipxe-qemu), on ``tap``."""
        # Software emulation: the same on every machine (nested KVM hangs on some CI VMs), and fast enough here.
        return self.start([QEMU, "-accel", "tcg", "-m", "256", "-no-reboot", "-boot", "n",
                           "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                           "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
                           "-serial", f"file:{serial}", "-monitor", "none", "-display", "none"],
                          serial.with_suffix(".qemu.log"))


def wait_for(ready, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


# -- a tiny boot image: the host's kernel and a busybox initrd


def host_kernel() -> tuple[Path, Path] | None:
    """The newest readable /boot/vmlinuz-<version> with its /lib/modules/<version>, or None."""
    for kernel in sorted(Path("/boot").glob("vmlinuz-*"), reverse=True):
        modules = Path("/lib/modules") / kernel.name[len("vmlinuz-"):]
        if os.access(kernel, os.R_OK) and (modules / "modules.dep").exists():
            return kernel, modules
    return None


def _module_order(modules: Path, wanted: list[str]) -> list[Path]:
    deps: dict[str, list[str]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {re.sub(r"\.ko(\..*)?$", "", Path(m).name).replace("-", "_"): m for m in deps}
    order: list[str] = []

    def add(mod: str) -> None:
        for dep in reversed(deps.get(mod, [])):
            add(dep)
        if mod not in order:
            order.append(mod)

    for name in wanted:
        if name in by_name:  # built into the kernel when absent
            add(by_name[name])
    return [modules / m for m in order]


INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /bin /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s
for m in $(cat /modules.order); do insmod /modules/$m; done
url=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in gpucloud.phone_home=*) url="${arg#gpucloud.phone_home=}";; esac
done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -q -n -t 10 -T 2 -s /udhcpc.sh
mac=$(cat /sys/class/net/eth0/address)
echo "gpucloud-initrd: mac=$mac hostname=$(hostname) url=$url"
key=$(cat /host_key.pub)
wget -q -O - --post-data "hostname=$(hostname)&mac=$mac&pub_key_ed25519=$(echo "$key" | sed 's/+/%2B/g; s/ /+/g; s/\\//%2F/g; s/=/%3D/g')" "$url"
echo "gpucloud-initrd: posted rc=$?"
poweroff -f
"""

UDHCPC = """#!/bin/sh
case "$1" in bound|renew)
  ifconfig "$interface" "$ip" netmask "$subnet" up
  [ -n "$hostname" ] && hostname "$hostname";;
esac
exit 0
"""


def make_initrd(work: Path, modules: Path, host_key_pub: str) -> Path:
    """A newc cpio with busybox, the virtio NIC modules and an /init that phones home with ``host_key_pub``."""
    tree = work / "initrd-tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "modules").mkdir()
    shutil.copy(BUSYBOX, tree / "bin" / "busybox")
    order = []
    for mod in _module_order(modules, ["virtio_pci", "virtio_net"]):
        if mod.suffix != ".ko":
            raise AssertionError(f"{mod}: compressed modules are not handled by this harness")
        shutil.copy(mod, tree / "modules" / mod.name)
        order.append(mod.name)
    (tree / "modules.order").write_text("\n".join(order) + "\n")
    for name, text in (("init", INIT), ("udhcpc.sh", UDHCPC)):
        (tree / name).write_text(text)
        (tree / name).chmod(0o755)
    (tree / "host_key.pub").write_text(host_key_pub + "\n")
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    out = work / "initrd"
    with open(out, "wb") as fh:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], input=("\n".join(files) + "\n").encode(),
                       cwd=tree, stdout=fh, check=True)
    return out
