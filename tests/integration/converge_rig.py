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
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import sshd_daemon
import yaml
from conftest import CLUSTERS, ROOT, stop_process
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


# -- The lab cluster on these hosts (test_converge.py, test_pulumi_engine_site.py) --------------------------------

# The lab's four machines on loopback addresses, with eight fake GPUs on each GPU node.
LAB_HOSTS = {"ctl01": ("127.0.0.2", 0), "gpu01": ("127.0.0.3", 8), "gpu02": ("127.0.0.4", 8),
             "login01": ("127.0.0.5", 0)}
ACCEPT_FIXTURES = ROOT / "tests" / "fixtures" / "accept"


def ssh_vars(rig: Rig) -> dict:
    """How Ansible reaches the test hosts: root over the rig's sshd with its key and known_hosts, and daemons
    started directly (the hosts have no systemd)."""
    root = rig.root
    return {
        "ansible_user": "root",
        "ansible_port": rig.port,
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": str(root / "id_ed25519"),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={root / 'known_hosts'} -o StrictHostKeyChecking=accept-new"
                                   " -o ConnectTimeout=5",
        "ansible_remote_tmp": str(root / "remote-tmp"),
        "ansible_ssh_transfer_method": "piped",  # sessions are forced into the host's namespace: no sftp
        "gpucloud_service_manager": "direct",
    }


@dataclass(frozen=True)
class LabSettings:
    """What the lab needs to run on the test hosts: the lab spec with the test machine's Slurm settings, the
    extra variables of every playbook run, and a port for each GPU node's slurmd (see node_ports)."""

    spec: dict
    test_vars: dict
    slurmd_ports: dict[str, int]


def lab_settings(rig: Rig) -> LabSettings:
    """The Slurm side in the spec's own settings (free ports instead of Slurm's fixed ones, no cgroup hierarchy of
    our own, a small VM claiming to be an HGX node, a stand-in health check), no pyxis (not packaged), and the rest
    in extra variables (see the comments)."""
    root = rig.root
    names = ("ctld", "dbd", "mysql") + tuple(n for n, (_a, gpus) in rig.hosts.items() if gpus)
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    # Slurm's health check on the GPU nodes, and the node_health role's: all eight fake GPUs are there.
    health = root / "gpu-health-check"
    health.write_text('#!/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n'
                      'test "$(ls /dev | grep -c "^nvidia[0-9]")" -eq 8\n')
    health.chmod(0o755)
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["slurm"]["containers"]["pyxis"] = False  # not packaged for Debian 12
    data["slurm"]["settings"] = {
        "SlurmctldPort": ports["ctld"],
        # No cgroup hierarchy of our own on a shared test machine.
        "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/linux", "PrologFlags": "Alloc",
        "HealthCheckProgram": str(health),
        "SlurmdParameters": "config_overrides",  # a small VM stands in for an HGX node
    }
    data["slurm"]["dbd_settings"] = {"DbdPort": ports["dbd"]}  # slurm.conf's AccountingStoragePort follows it
    test_vars = {
        **ssh_vars(rig),
        # Test-only secrets: the deployment's live in Ansible Vault.
        "vault_munge_key": secrets.token_hex(64),
        # Quotes, a backslash, '$', '#' and a backtick: the SQL and slurmdbd.conf quoting must carry them all, or
        # slurmdbd cannot reach MariaDB and the accounting checks fail.
        "vault_slurmdbd_db_password": secrets.token_hex(8) + "q'u\\o$t#e`x",
        # The test hosts are stand-ins with fake /dev/nvidia* and no GPU on the PCI bus, no HCA and no NVMe: the
        # roles fail on that unless told these hosts are stand-ins.
        "gpucloud_hardware_optional": True,
        "common_time_sync": False,
        "common_sysctl_apply": False,
        "common_hosts_entries": {name: addr for name, (addr, _g) in rig.hosts.items()},
        "enroot_pyxis_enabled": False,
        # The roles install software.slurm's version; this machine's repositories carry Debian's Slurm, so the test
        # pins what Debian has (the roles then check it is exactly that version).
        "slurm_version": debian_slurm(),
        "node_health_packages": [],  # NHC is not packaged for Debian 12; its config is golden-tested
        "node_health_command": str(health),
        # The resume gate's checks run the stand-in GPU and InfiniBand tools (tests/fixtures/accept, written in
        # the tools' output formats, not recorded on hardware).
        "slurmd_accept_script": str(root / "gpucloud-accept-node"),
        "slurmd_accept_environment": {"PATH": f"{ACCEPT_FIXTURES / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                              "/usr/bin:/sbin:/bin",
                                      "GPUCLOUD_ACCEPT_SYSFS": str(ACCEPT_FIXTURES / "sysfs")},
        "gpucloud_batch": 3,
        "gpucloud_max_fail_percentage": 50,
        "slurmdbd_mariadb_port": ports["mysql"],
    }
    return LabSettings(data, test_vars, {n: ports[n] for n in names[3:]})


def debian_slurm() -> str:
    from gpucloud.plan.software import upstream

    res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "slurmd"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout, f"slurmd is not installed: {res.stderr}"
    return upstream(res.stdout)


def node_ports(conf: Path, ports: dict[str, int]) -> None:
    """The plan's NodeName lines in slurm.conf ``conf``, rewritten one per node with its port from ``ports``
    (`Port=`, Slurm's way of running several slurmd on one machine): the test hosts share one network stack.
    NodeName is the plan's (a spec setting cannot replace it), so this edits the plan's file. Idempotent."""
    from gpucloud.hostlist import expand

    out, nodes = [], []
    for line in conf.read_text().splitlines():
        if not line.startswith("NodeName="):
            out.append(line)
            continue
        names, rest = line.removeprefix("NodeName=").split(" ", 1)
        if rest.startswith("Port="):
            rest = rest.split(" ", 1)[1]
        for name in expand(names):
            out.append(f"NodeName={name} Port={ports[name]} {rest}")
            nodes.append(name)
    assert sorted(nodes) == sorted(ports), nodes
    conf.write_text("\n".join(out) + "\n")
