"""Loopback test hosts for a real converge over SSH (used by test_converge.py).

One sshd listens on several 127.0.0.x addresses; ``Match LocalAddress`` sends every session for an address into
that host's own mount and UTS namespace (``nsenter`` into a holder process), so each address behaves like a
separate machine: its own host name, its own writable /etc and /var (overlays on the real ones, so installed
packages are there), an empty /run, and on GPU hosts a /dev with fake NVIDIA devices. The roles run unchanged with
their production paths; daemons they start stay in the host's namespace. Everything is stopped by PID.

The hosts share the machine's network stack: two daemons on different hosts cannot bind the same port, and a
connection from one host to another leaves from 127.0.0.1, not from the sender's own 127.0.0.x.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import sshd_daemon
from conftest import stop_process
from slurm_harness import FAKE_GPU_DEV, free_port  # the same fake /dev as the Slurm daemon tests

BINARIES = ("sshd", "ssh", "ssh-keygen", "unshare", "nsenter", "munged", "slurmctld", "slurmd", "slurmdbd",
            "mariadbd", "mariadb", "start-stop-daemon", "ansible-playbook")

# Runs in the new namespaces of one host; keeps them alive until killed.
_HOLDER = r'''
set -e
r="$1"; name="$2"; gpus="$3"
for d in etc var; do
  mkdir -p "$r/upper/$d" "$r/work/$d"
  mount -t overlay "gpucloud-$name-$d" -o "lowerdir=/$d,upperdir=$r/upper/$d,workdir=$r/work/$d" "/$d"
done
mkdir -p "$r/run"; mount --bind "$r/run" /run
if [ "$gpus" -gt 0 ]; then
dev="gpucloud-$name-dev"
''' + FAKE_GPU_DEV + r'''fi
hostname "$name"
echo ready > "$r/ready"
exec sleep 100000
'''

_ENTER = r'''#!/bin/sh
# sshd ForceCommand: run the client's command inside the namespaces of host $1.
pid=$(cat "$(dirname "$0")/hosts/$1/holder.pid")
exec nsenter --target "$pid" --mount --uts -- /bin/sh -c "${SSH_ORIGINAL_COMMAND:-exec /bin/sh -l}"
'''


def missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie (daemons re-parented to a PID 1 that may never reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(parent: int) -> list[int]:
    """Direct children of a process, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                out.append(int(entry))
    return out


@dataclass
class Rig:
    root: Path
    hosts: dict[str, tuple[str, int]]  # name -> (address, fake GPUs)
    port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)
    sshd: subprocess.Popen | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        client_public_key = sshd_daemon.keygen(self.root / "id_ed25519")
        sshd_daemon.keygen(self.root / "host_key")
        (self.root / "authorized_keys").write_text(client_public_key + "\n")
        enter = self.root / "enter"
        enter.write_text(_ENTER)
        enter.chmod(0o755)
        for name, (_addr, gpus) in self.hosts.items():
            hdir = self.root / "hosts" / name
            hdir.mkdir(parents=True)
            proc = subprocess.Popen(["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", _HOLDER,
                                     "holder", str(hdir), name, str(gpus)], stdin=subprocess.DEVNULL,
                                    stdout=open(hdir / "holder.log", "wb"), stderr=subprocess.STDOUT)
            self.procs.append(proc)
            (hdir / "holder.pid").write_text(str(proc.pid))
        config = [f"Port {self.port}", f"HostKey {self.root / 'host_key'}", f"PidFile {self.root / 'sshd.pid'}",
                  f"AuthorizedKeysFile {self.root / 'authorized_keys'}", "PermitRootLogin prohibit-password",
                  "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                  "MaxSessions 100", "MaxStartups 100:30:200", "LogLevel ERROR", "Subsystem sftp internal-sftp"]
        config += [f"ListenAddress {addr}" for addr, _ in self.hosts.values()]
        for name, (addr, _gpus) in self.hosts.items():
            config += [f"Match LocalAddress {addr}", f"  ForceCommand {enter} {name}"]
        (self.root / "sshd_config").write_text("\n".join(config) + "\n")
        first = next(iter(self.hosts.values()))[0]
        self.sshd = sshd_daemon.start(self.root / "sshd_config", self.root / "sshd.log", first, self.port)
        self.procs.append(self.sshd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all((self.root / "hosts" / n / "ready").exists() for n in self.hosts):
                return
            for name, proc in zip(self.hosts, self.procs):
                if proc.poll() is not None:
                    log = (self.root / "hosts" / name / "holder.log").read_text()
                    raise RuntimeError(f"test host {name} exited: {log}")
            time.sleep(0.2)
        raise RuntimeError("test hosts not ready: " + ", ".join(
            f"{n}: {(self.root / 'hosts' / n / 'holder.log').read_text()}" for n in self.hosts))

    def ssh(self, name: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        addr = self.hosts[name][0]
        return subprocess.run(
            ["ssh", "-p", str(self.port), "-i", str(self.root / "id_ed25519"), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}", "-o", "StrictHostKeyChecking=accept-new",
             f"root@{addr}", command], capture_output=True, text=True, timeout=timeout)

    def pids_in(self, name: str) -> list[int]:
        """Processes living in a host's mount namespace (its daemons), the holder excluded."""
        holder = int((self.root / "hosts" / name / "holder.pid").read_text())
        try:
            ns = os.readlink(f"/proc/{holder}/ns/mnt")
        except OSError:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == holder:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                    pids.append(int(entry))
            except OSError:
                continue
        return pids

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, every process in the hosts' namespaces (daemons, job steps), then the holders."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [pid for name in self.hosts for pid in self.pids_in(name)]
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + 10
            while pids and time.monotonic() < deadline and any(_running(p) for p in pids):
                time.sleep(0.2)
        # sshd leaves its per-connection processes running when the listener stops; Ansible's ControlPersist
        # masters would hold them open for minutes after the test.
        for pid in _children(self.sshd.pid) if self.sshd else ():
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs:
            stop_process(proc)
