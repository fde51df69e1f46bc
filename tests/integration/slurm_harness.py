"""Real Slurm daemons for a rendered plan: munge, MariaDB, slurmdbd, slurmctld and slurmd under one temp dir.

The rendered files are used as they are. What a test machine needs differently is applied from outside them:

* paths, ports and users: a wrapper slurm.conf (and slurmdbd.conf) that ``include``s the rendered file and sets
  those keys again; Slurm keeps the later value. Most of them are keys the plan owns or that name secrets
  (StateSaveLocation, SlurmUser, the pid files, AccountingStoragePass, StoragePass), which no spec setting may
  carry, and all of them point into this harness's temporary folder; a test of the spec's own settings puts them
  in ``slurm.settings`` and the wrapper leaves them alone;
* host names: every daemon and client runs in its own mount + UTS namespace (``unshare``) with a private
  /etc/hosts that maps the plan's controllers and nodes to loopback addresses, and with the host name of the
  machine it stands for, as DNS would on the cluster;
* GPUs: slurmd runs with a private /dev holding fake /dev/nvidiaN character devices (major 195), so the rendered
  gres.conf is used unchanged.

Daemons run in the foreground and are stopped by PID. Ports are free ports on 127.0.0.0/8.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

from conftest import stop_process

SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "scontrol", "srun", "unshare")
ACCOUNTING_BINARIES = ("mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "sacctmgr")


def missing_binaries(accounting: bool = False) -> list[str]:
    names = SLURM_BINARIES + (ACCOUNTING_BINARIES if accounting else ())
    return [n for n in names if shutil.which(n) is None]


def skip_module_without_slurm(accounting: bool = False) -> None:
    """At the top of a test module that runs Slurm daemons: skip it, saying why, without root or the packages."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("the Slurm daemons run in private mount namespaces, which needs root", allow_module_level=True)
    missing = missing_binaries(accounting)
    if missing:
        pytest.skip(f"Slurm test binaries not installed: {', '.join(missing)} (.ci/run installs them)",
                    allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback(i: int, net: int) -> str:
    """A distinct 127.x.y.z address per name (all of 127.0.0.0/8 reaches lo)."""
    return f"127.{net}.{i // 250}.{i % 250 + 1}"


class CatchAllDNS:
    """Answers every A query with one loopback address, for the namespaces' resolv.conf.

    slurmctld resolves every node when it starts; a 12,500-line /etc/hosts is scanned once per lookup (quadratic),
    so large examples list only their controllers in /etc/hosts and let this answer for the nodes. It listens on
    port 53 of a random 127.53.x.y address (root only), in a thread of the test process."""

    def __init__(self, answer: str = "127.0.0.2"):
        self.answer = socket.inet_aton(answer)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            self.address = f"127.53.{random.randrange(256)}.{random.randrange(1, 255)}"
            try:
                self.sock.bind((self.address, 53))
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free address for the test DNS responder")
        self.sock.settimeout(0.5)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                query, peer = self.sock.recvfrom(512)
            except (socket.timeout, OSError):
                continue
            end = 12
            while end < len(query) and query[end]:
                end += query[end] + 1
            qtype = struct.unpack("!H", query[end + 1:end + 3])[0] if end + 3 <= len(query) else 0
            question = query[12:end + 5]
            answers = 1 if qtype == 1 else 0
            reply = query[:2] + struct.pack("!HHHHH", 0x8180, 1, answers, 0, 0) + question
            if answers:
                reply += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + self.answer
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


# Shell lines (in a private mount namespace) that replace /dev with a tmpfs named $dev holding the basic character
# devices and $gpus fake NVIDIA GPUs (/dev/nvidia0.., /dev/nvidiactl): what slurmd's gres.conf File= lines name.
FAKE_GPU_DEV = r'''mount -t tmpfs -o mode=755 "$dev" /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
mkdir /dev/shm /dev/pts; ln -s /proc/self/fd /dev/fd
i=0; while [ "$i" -lt "$gpus" ]; do mknod -m 666 "/dev/nvidia$i" c 195 "$i"; i=$((i + 1)); done
mknod -m 666 /dev/nvidiactl c 195 255
'''

# Runs inside the new namespaces: private /etc/hosts and host name, optionally a /dev with fake GPUs.
_ENTER = r'''
set -e
mount --bind "$GPUCLOUD_HOSTS" /etc/hosts
if [ -n "${GPUCLOUD_RESOLV:-}" ]; then mount --bind "$GPUCLOUD_RESOLV" /etc/resolv.conf; fi
if [ -n "${GPUCLOUD_FAKE_GPUS:-}" ]; then
gpus="$GPUCLOUD_FAKE_GPUS"; dev=gpucloud-dev
''' + FAKE_GPU_DEV + r'''fi
hostname "$GPUCLOUD_HOSTNAME"
exec "$@"
'''


class SlurmHarness:
    """One cluster's daemons. ``files`` are the rendered plan files ({'slurm/slurm.conf': bytes, ...})."""

    def __init__(self, root: Path, files: Mapping[str, bytes], controllers: Iterable[str],
                 nodes: Iterable[str] = (), services: Iterable[str] = (), client_name: str = "gpucloud-client",
                 shared: "SlurmHarness | None" = None, dns_for_nodes: bool = False):
        """``controllers``: SlurmctldHost names, the first is started; ``nodes``: slurmd hosts that will run;
        ``services``: other names the config refers to (the slurmdbd host). ``shared``: use that harness's munge
        and slurmdbd instead of starting new ones (another cluster in the same accounting database).
        ``dns_for_nodes``: resolve the nodes through CatchAllDNS instead of /etc/hosts (for thousands of nodes)."""
        self.root = Path(root)
        self.files = dict(files)
        self.controllers = list(controllers)
        self.services = [s for s in services if s not in self.controllers]
        self.nodes = list(nodes)
        self.dns = CatchAllDNS() if dns_for_nodes else None
        self.client_name = client_name
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.ports = {"slurmctld": free_port(), "slurmd": free_port(), "slurmdbd": free_port(), "mysql": free_port()}
        self.db_password = os.urandom(12).hex()  # a test-only value, never the deployment's secret
        self._munge_socket = shared.munge_socket if shared else self.root / "munge" / "munge.socket"
        if shared:
            self.ports["slurmdbd"] = shared.ports["slurmdbd"]
        for sub in ("plan", "etc", "state", "spool", "log", "run", "munge", "prolog.d", "epilog.d", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o755)
        for rel, data in self.files.items():
            path = self.root / "plan" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.plan_dir = self.root / "plan" / "slurm"
        self._write_hosts()
        self._write_overrides()

    # --- configuration -------------------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self._munge_socket

    def address(self, name: str) -> str:
        return self.addresses[name]

    def _write_hosts(self) -> None:
        self.addresses = {name: loopback(i + 1, 10) for i, name in enumerate(self.controllers + self.services)}
        if self.dns is None:
            self.addresses.update({name: loopback(i + 1, 20) for i, name in enumerate(self.nodes)})
        else:
            (self.root / "etc" / "resolv.conf").write_text(
                f"nameserver {self.dns.address}\noptions timeout:1 attempts:2\n")
        lines = [f"127.0.0.1 localhost {self.client_name}"]
        lines += [f"{addr} {name}" for name, addr in self.addresses.items()]
        (self.root / "etc" / "hosts").write_text("\n".join(lines) + "\n")

    def _write_overrides(self) -> None:
        r, etc = self.root, self.root / "etc"
        health = r / "bin" / "nhc"
        # The deploy step installs these; an empty prolog.d glob fails every job and drains the node.
        for script in (health, r / "prolog.d" / "00-noop", r / "epilog.d" / "00-noop"):
            script.write_text("#!/bin/sh\nexit 0\n")
            script.chmod(0o755)
        (etc / "plugstack.conf").write_text("")  # pyxis is not installed on test machines
        for name in ("gres.conf", "cgroup.conf", "topology.conf"):
            src = self.plan_dir / name
            if src.exists():
                (etc / name).symlink_to(src)
        has_topology = (self.plan_dir / "topology.conf").exists()
        overrides = [
            f"SlurmctldPort={self.ports['slurmctld']}", f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool/%n",
            f"SlurmctldPidFile={r}/run/slurmctld.pid", f"SlurmdPidFile={r}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log", f"SlurmdLogFile={r}/log/slurmd-%n.log",
            f"AuthInfo=socket={self.munge_socket}",
            f"AccountingStoragePort={self.ports['slurmdbd']}", f"AccountingStoragePass={self.munge_socket}",
            # No cgroup hierarchy of our own on a shared test machine.
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/linux",
            "PrologFlags=Alloc", f"Prolog={r}/prolog.d/*", f"Epilog={r}/epilog.d/*",
            f"HealthCheckProgram={health}", f"PlugStackConfig={etc}/plugstack.conf", "MailProg=/bin/true",
            # A 2-core VM stands in for 224-thread nodes; several slurmd share the host on their own addresses.
            "SlurmdParameters=config_overrides", "CommunicationParameters=NoInAddrAny",
        ]
        if not has_topology:
            overrides.append("TopologyPlugin=topology/none")
        prolog = self.plan_dir / "task_prolog.sh"  # where the slurmd role installs it, /etc/slurm, is not ours
        if prolog.exists():
            prolog.chmod(0o755)
            overrides.append(f"TaskProlog={prolog}")
        text = f"include {self.plan_dir}/slurm.conf\n# test-machine overrides (later values win)\n"
        self.conf.write_text(text + "\n".join(overrides) + "\n")
        if (self.plan_dir / "slurmdbd.conf").exists():
            (self.plan_dir / "slurmdbd.conf").chmod(0o600)
            dbd = etc / "slurmdbd.conf"
            dbd.write_text(
                f"include {self.plan_dir}/slurmdbd.conf\n"
                f"DbdPort={self.ports['slurmdbd']}\nSlurmUser=root\nLogFile={r}/log/slurmdbd.log\n"
                f"PidFile={r}/run/slurmdbd.pid\nStorageHost=127.0.0.1\nStoragePort={self.ports['mysql']}\n"
                f"StoragePass={self.db_password}\nAuthInfo=socket={self.munge_socket}\n")
            dbd.chmod(0o600)

    # --- processes -----------------------------------------------------------------------------------------

    def _env(self, hostname: str, gpus: int = 0) -> dict:
        env = {**os.environ, "SLURM_CONF": str(self.conf), "GPUCLOUD_HOSTS": str(self.root / "etc" / "hosts"),
               "GPUCLOUD_HOSTNAME": hostname}
        if gpus:
            env["GPUCLOUD_FAKE_GPUS"] = str(gpus)
        if self.dns is not None:
            env["GPUCLOUD_RESOLV"] = str(self.root / "etc" / "resolv.conf")
        return env

    def _wrap(self, argv: list[str]) -> list[str]:
        return ["unshare", "--mount", "--uts", "sh", "-c", _ENTER, "sh", *argv]

    def spawn(self, name: str, argv: list[str], hostname: str, gpus: int = 0) -> subprocess.Popen:
        log = open(self.root / "log" / f"{name}.out", "ab")
        proc = subprocess.Popen(self._wrap(argv), env=self._env(hostname, gpus), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.root)
        log.close()
        self.procs.append((name, proc))
        return proc

    def run(self, *argv: str, timeout: float = 60, check: bool = False, input: str | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        """A client command (sinfo, srun, sacctmgr, a script) as seen from a login node of the cluster."""
        full_env = {**self._env(self.client_name), **(env or {})}
        # cwd: sbatch writes slurm-<job>.out into the submit directory.
        return subprocess.run(self._wrap(list(argv)), env=full_env, capture_output=True, text=True,
                              timeout=timeout, check=check, input=input, cwd=self.root)

    def wait_for(self, what: str, predicate, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what}: daemon exited with {proc.returncode}\n{self.logs()}")
            if predicate():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{what}: not ready after {timeout}s\n{self.logs()}")

    def logs(self, tail: int = 40) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        m = self.root / "munge"
        proc = self.spawn("munged", ["munged", "-F", "-f", f"--key-file={key}", f"--socket={self.munge_socket}",
                                     f"--pid-file={m}/munged.pid", f"--log-file={self.root}/log/munged.log",
                                     f"--seed-file={m}/munged.seed"], self.client_name)
        self.wait_for("munged", self.munge_socket.exists, 20, proc)

    def start_mariadb(self) -> None:
        data, sock = self.root / "mysql", self.root / "run" / "mysqld.sock"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                        "--skip-test-db", "--auth-root-authentication-method=socket"],
                       check=True, capture_output=True, timeout=180)
        proc = subprocess.Popen(["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={sock}",
                                 f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1", "--user=root",
                                 "--skip-name-resolve", f"--pid-file={self.root}/run/mysqld.pid",
                                 f"--log-error={self.root}/log/mariadb.log", "--innodb-buffer-pool-size=32M",
                                 "--skip-log-bin"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.procs.append(("mariadbd", proc))

        def ready() -> bool:
            return subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e", "SELECT 1"],
                                  capture_output=True).returncode == 0

        self.wait_for("mariadbd", ready, 90, proc)
        grant = (f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{self.db_password}';"
                 "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
        subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e", grant], check=True,
                       capture_output=True)

    def start_slurmdbd(self, host: str) -> None:
        # slurmdbd reads slurmdbd.conf next to $SLURM_CONF, i.e. the wrapper in etc/
        proc = self.spawn("slurmdbd", ["slurmdbd", "-D"], host)
        self.wait_for("slurmdbd", lambda: self.run("sacctmgr", "-nP", "show", "cluster", timeout=20).returncode == 0,
                      90, proc)

    def config_verdict(self, seconds: int = 8) -> tuple[int, str]:
        """Run slurmctld in the foreground for a few seconds: 124 means it kept running (config accepted), 1 that
        it refused the configuration. Returns (exit code, its output)."""
        proc = subprocess.run(self._wrap(["timeout", str(seconds), "slurmctld", "-D", "-c", "-f", str(self.conf)]),
                              env=self._env(self.controllers[0]), capture_output=True, text=True,
                              timeout=seconds + 30, cwd=self.root)
        return proc.returncode, proc.stdout + proc.stderr

    def start_slurmctld(self) -> subprocess.Popen:
        proc = self.spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)], self.controllers[0])
        self.wait_for("slurmctld", lambda: self.run("scontrol", "ping", timeout=20).stdout.count("UP") >= 1, 90, proc)
        return proc

    def start_slurmd(self, node: str, gpus: int) -> subprocess.Popen:
        proc = self.spawn(f"slurmd-{node}", ["slurmd", "-D", "-N", node, "-f", str(self.conf)], node, gpus)
        return proc

    def wait_nodes_idle(self, nodes: Iterable[str], timeout: float = 90) -> None:
        want = set(nodes)

        def idle() -> bool:
            out = self.run("sinfo", "-N", "-h", "-o", "%N %t", timeout=20).stdout.split("\n")
            states = dict(line.split() for line in out if line.strip())
            return all(states.get(n, "").startswith("idle") for n in want)

        self.wait_for(f"slurmd {sorted(want)} idle", idle, timeout)

    def cancel_jobs(self, timeout: float = 30) -> None:
        """Cancel every job and wait until none is left, so no slurmstepd outlives its slurmd."""
        if not any(n == "slurmctld" and p.poll() is None for n, p in self.procs):
            return
        self.run("scancel", "--full", "--user=root", timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.run("squeue", "-h", "-o", "%i", timeout=20).stdout.strip():
            time.sleep(0.5)

    def stop(self, name: str | None = None) -> None:
        """Stop one daemon by name, or all of them in reverse start order."""
        for pname, proc in reversed(list(self.procs)):
            if name is not None and pname != name:
                continue
            stop_process(proc, grace=15)
            self.procs.remove((pname, proc))
        if name is None and self.dns is not None:
            self.dns.close()
            self.dns = None
