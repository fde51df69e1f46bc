"""Slurm 24.11 daemons from a Debian 13 root, for what Debian 12's Slurm 22.05 does not know.

Debian 12 ships Slurm 22.05: no ``topology/block`` (23.11), no ``BlockSizes`` or ``--segment`` (24.05), no
``switch/nvidia_imex`` (24.05). ``scripts/build-slurm-root.sh`` debootstraps a Debian 13 root holding Slurm 24.11
and munge into a cache folder; this harness runs its munged, slurmctld, slurmd and client commands chrooted into
that root, each in its own mount + UTS namespace (``unshare``):

* the root is bind-mounted read-only onto itself, so no test changes the shared cache;
* the test folder is mounted at ``/gpucloud`` inside it (configs, state, spool, logs, the munge socket), so the
  test reads logs and writes configs at its own path outside and the daemons see one fixed path inside;
* ``/etc/hosts`` is the test's (controller and nodes on their own loopback addresses), the host name is the one
  of the machine the daemon stands for, ``/proc`` is fresh, ``/dev`` a tmpfs with the basic devices and, for
  slurmd, fake ``/dev/nvidiaN`` GPUs (major 195), so a gres.conf naming them is used unchanged.

Configuration files (``slurm.conf``, ``topology.conf``, ``gres.conf``, ...) are written into ``/gpucloud/plan``;
``/gpucloud/etc/slurm.conf`` includes the given slurm.conf and sets the test machine's paths, ports and users again
(Slurm keeps the later value), as ``slurm_harness`` does for 22.05. The other files are copied next to it, where
Slurm looks for them. Daemons run in the foreground and are stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterable, Mapping

from conftest import stop_process
from slurm_harness import free_port, loopback

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-slurm-root.sh"
INSIDE = "/gpucloud"  # where the test folder appears inside the root (an empty folder the build script makes)
ROOT_ENV = "GPUCLOUD_SLURM_ROOT"

_root_cache: dict[str, Path | str] = {}


def slurm_root(suite: str = "trixie") -> Path | str:
    """The root of Debian ``suite`` (trixie: Slurm 24.11; forky, Debian testing: 25.05 or later), built (or found)
    by scripts/build-slurm-root.sh, or the reason it cannot be had.

    The build is reused from the cache once made (the script checks its own stamp and returns at once)."""
    if suite in _root_cache:
        return _root_cache[suite]
    result: Path | str
    if os.geteuid() != 0:
        result = f"the Slurm root of Debian {suite} is built with debootstrap and run chrooted in mount namespaces: " \
                 "needs root"
    elif shutil.which("unshare") is None:
        result = "unshare (util-linux) is not installed"
    else:
        proc = subprocess.run([str(BUILD_SCRIPT), suite], capture_output=True, text=True, timeout=1800)
        if proc.returncode == 0 and proc.stdout.strip():
            result = Path(proc.stdout.strip().splitlines()[-1])
        else:
            result = (f"scripts/build-slurm-root.sh {suite} could not build the Slurm root (exit {proc.returncode}): "
                      f"{proc.stderr.strip()[-600:]}")
    _root_cache[suite] = result
    return result


def skip_module_without_slurm24(suite: str = "trixie") -> Path:
    """At the top of a test module: the root, or skip the module saying why it cannot be built.

    ``scripts/setup.sh --test`` builds the roots first, so this only finds them; a skip after setup means the build
    broke, and the reason quotes the build script's message."""
    import pytest

    root = slurm_root(suite)
    if isinstance(root, str):
        pytest.skip(root, allow_module_level=True)
    return root


# Runs on the host inside the new namespaces, then chroots. $R the root, $D the test folder.
_ENTER = r'''
set -e
R="$GPUCLOUD_SLURM_ROOT"; D="$GPUCLOUD_DIR"
mount --bind "$R" "$R"
mount -o remount,bind,ro "$R"
mount --bind "$D" "$R/gpucloud"
mount --bind "$D/etc/hosts" "$R/etc/hosts"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=1777 gpucloud-tmp "$R/tmp"
mount -t tmpfs -o mode=755 gpucloud-run "$R/run"
mount -t tmpfs -o mode=755 gpucloud-dev "$R/dev"
mknod -m 666 "$R/dev/null" c 1 3; mknod -m 666 "$R/dev/zero" c 1 5; mknod -m 666 "$R/dev/full" c 1 7
mknod -m 666 "$R/dev/random" c 1 8; mknod -m 666 "$R/dev/urandom" c 1 9; mknod -m 666 "$R/dev/tty" c 5 0
mkdir "$R/dev/shm" "$R/dev/pts"; ln -s /proc/self/fd "$R/dev/fd"
gpus="${GPUCLOUD_FAKE_GPUS:-0}"
if [ "$gpus" -gt 0 ]; then
  i=0; while [ "$i" -lt "$gpus" ]; do mknod -m 666 "$R/dev/nvidia$i" c 195 "$i"; i=$((i + 1)); done
  mknod -m 666 "$R/dev/nvidiactl" c 195 255
fi
hostname "$GPUCLOUD_HOSTNAME"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
exec chroot "$R" /usr/bin/env --chdir=/gpucloud "$@"
'''


class Slurm24Harness:
    """One cluster's munged, slurmctld and slurmd from the 24.11 root.

    ``files``: {'slurm.conf': bytes, 'topology.conf': bytes, 'gres.conf': bytes, ...}; slurm.conf may name the
    test folder's paths as ``/gpucloud/...``. ``controller``: the SlurmctldHost name; ``nodes``: the slurmd hosts
    (each gets its own loopback address in /etc/hosts). ``overrides``: further ``Key=value`` lines for the wrapper
    slurm.conf, after the test machine's, for what a rendered slurm.conf names that this machine cannot serve;
    ``unset``: keys whose lines are taken out of the given slurm.conf, for those that cannot be set back to their
    default (Slurm parses no empty value: ``Prolog=`` is an error)."""

    def __init__(self, directory: Path, files: Mapping[str, bytes], controller: str, nodes: Iterable[str],
                 root: Path, client_name: str = "gpucloud-client", overrides: Iterable[str] = (),
                 unset: Iterable[str] = ()):
        self.dir = Path(directory)
        self.overrides = list(overrides)
        self.unset = tuple(unset)
        self.root = Path(root)
        self.files = dict(files)
        self.controller = controller
        self.nodes = list(nodes)
        self.client_name = client_name
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.ports = {"slurmctld": free_port(), "slurmd": free_port()}
        for sub in ("plan", "etc", "state", "spool", "log", "run", "munge", "jobs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "munge").chmod(0o755)
        self.dir.chmod(0o755)
        self.write_files(self.files)

    # --- configuration -------------------------------------------------------------------------------------

    @property
    def conf(self) -> str:
        """slurm.conf as the daemons see it (inside the root)."""
        return f"{INSIDE}/etc/slurm.conf"

    @property
    def munge_socket(self) -> str:
        return f"{INSIDE}/munge/munge.socket"

    def write_files(self, files: Mapping[str, bytes]) -> None:
        """(Re)write the configuration: the given files and the wrapper slurm.conf; a file left out is removed."""
        self.files = dict(files)
        etc = self.dir / "etc"
        for path in list((self.dir / "plan").iterdir()) + [etc / n for n in ("topology.conf", "topology.yaml",
                                                                               "gres.conf", "cgroup.conf")]:
            if path.is_file():
                path.unlink()
        for name, data in self.files.items():
            if name == "slurm.conf" and self.unset:
                keys = tuple(f"{k.lower()}=" for k in self.unset)
                data = b"".join(line for line in data.splitlines(keepends=True)
                                if not line.decode().lower().startswith(keys))
            (self.dir / "plan" / name).write_bytes(data)
            if name != "slurm.conf":
                # Slurm reads topology.conf, gres.conf, cgroup.conf next to the slurm.conf it was given.
                (etc / name).write_bytes(data)
        if "cgroup.conf" not in self.files:
            # No cgroup hierarchy of our own on a shared test machine (CgroupPlugin=disabled: 24.05 and later).
            (etc / "cgroup.conf").write_text("CgroupPlugin=disabled\n")
        addresses = {self.controller: loopback(1, 10)}
        addresses.update({n: loopback(i + 1, 20) for i, n in enumerate(self.nodes)})
        self.addresses = addresses
        hosts = [f"127.0.0.1 localhost {self.client_name}"] + [f"{a} {n}" for n, a in addresses.items()]
        (etc / "hosts").write_text("\n".join(hosts) + "\n")
        d = INSIDE
        overrides = [
            f"SlurmctldPort={self.ports['slurmctld']}", f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={d}/state", f"SlurmdSpoolDir={d}/spool/%n",
            f"SlurmctldPidFile={d}/run/slurmctld.pid", f"SlurmdPidFile={d}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={d}/log/slurmctld.log", f"SlurmdLogFile={d}/log/slurmd-%n.log",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.munge_socket}",
            # No cgroup hierarchy of our own on a shared test machine (24.11 has no task/none: TaskPlugin stays
            # unset unless the given slurm.conf sets it).
            "ProctrackType=proctrack/linuxproc", "JobAcctGatherType=jobacct_gather/linux",
            "MailProg=/bin/true",
            # A 2-core VM stands in for big nodes; several slurmd share the host on their own addresses.
            "SlurmdParameters=config_overrides", "CommunicationParameters=NoInAddrAny",
            *self.overrides,
        ]
        text = f"include {d}/plan/slurm.conf\n# test-machine overrides (later values win)\n"
        (etc / "slurm.conf").write_text(text + "\n".join(overrides) + "\n")

    # --- processes -----------------------------------------------------------------------------------------

    def _env(self, hostname: str, gpus: int = 0) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8",
                "HOME": INSIDE, "SLURM_CONF": self.conf, "GPUCLOUD_SLURM_ROOT": str(self.root),
                "GPUCLOUD_DIR": str(self.dir), "GPUCLOUD_HOSTNAME": hostname, "GPUCLOUD_FAKE_GPUS": str(gpus)}

    @staticmethod
    def _wrap(argv: list[str]) -> list[str]:
        return ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", _ENTER, "sh", *argv]

    def spawn(self, name: str, argv: list[str], hostname: str, gpus: int = 0) -> subprocess.Popen:
        log = open(self.dir / "log" / f"{name}.out", "ab")
        proc = subprocess.Popen(self._wrap(argv), env=self._env(hostname, gpus), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        self.procs.append((name, proc))
        return proc

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A client command (scontrol, sbatch, squeue, sinfo) from the root, as seen from a login node."""
        return subprocess.run(self._wrap(list(argv)), env=self._env(self.client_name), capture_output=True,
                              text=True, timeout=timeout, cwd=self.dir)

    def scontrol(self, *args: str) -> str:
        proc = self.run("scontrol", *args)
        if proc.returncode != 0:
            raise RuntimeError(f"scontrol {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def sbatch(self, *args: str, script: str = "#!/bin/sh\nhostname\n") -> subprocess.CompletedProcess:
        """Submit a batch job (``--parsable``: stdout is the job id). The script and its output live in jobs/."""
        path = self.dir / "jobs" / f"job-{len(list((self.dir / 'jobs').glob('job-*.sh')))}.sh"
        path.write_text(script)
        path.chmod(0o755)
        return self.run("sbatch", "--parsable", f"--chdir={INSIDE}/jobs", *args, f"{INSIDE}/jobs/{path.name}")

    def squeue(self, *args: str) -> str:
        return self.run("squeue", "-h", *args).stdout

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
        for path in sorted((self.dir / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def start_munge(self) -> None:
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))  # a test-only key, never a deployment's
        key.chmod(0o600)
        m = f"{INSIDE}/munge"
        proc = self.spawn("munged", ["munged", "-F", "-f", f"--key-file={m}/munge.key", f"--socket={m}/munge.socket",
                                     f"--pid-file={m}/munged.pid", f"--log-file={INSIDE}/log/munged.log",
                                     f"--seed-file={m}/munged.seed"], self.client_name)
        self.wait_for("munged", (self.dir / "munge" / "munge.socket").exists, 20, proc)

    def config_verdict(self, seconds: int = 8) -> tuple[int, str]:
        """Run slurmctld in the foreground for a few seconds: 124 means it kept running (configuration accepted),
        anything else that it refused it. Returns (exit code, its output and log). Needs munged."""
        log = self.dir / "log" / "slurmctld.log"
        before = log.stat().st_size if log.exists() else 0
        proc = subprocess.run(self._wrap(["timeout", str(seconds), "slurmctld", "-D", "-c", "-f", self.conf]),
                              env=self._env(self.controller), capture_output=True, text=True,
                              timeout=seconds + 30, cwd=self.dir)
        logged = log.read_bytes()[before:].decode(errors="replace") if log.exists() else ""
        return proc.returncode, proc.stdout + proc.stderr + logged

    def start_slurmctld(self) -> subprocess.Popen:
        # -c: clear the state of an earlier start in this folder (a fresh cluster each time).
        proc = self.spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", self.conf], self.controller)
        self.wait_for("slurmctld", lambda: "UP" in self.run("scontrol", "ping", timeout=20).stdout, 90, proc)
        return proc

    def start_slurmd(self, node: str, gpus: int = 0) -> subprocess.Popen:
        return self.spawn(f"slurmd-{node}", ["slurmd", "-D", "-N", node, "-f", self.conf], node, gpus)

    def wait_nodes_idle(self, nodes: Iterable[str], timeout: float = 90) -> None:
        want = set(nodes)

        def idle() -> bool:
            out = self.run("sinfo", "-N", "-h", "-o", "%N %t", timeout=20).stdout.splitlines()
            states = dict(line.split() for line in out if line.strip())
            return all(states.get(n, "").startswith("idle") for n in want)

        self.wait_for(f"slurmd {sorted(want)} idle", idle, timeout)

    def wait_job(self, job: str, timeout: float = 60) -> dict[str, str]:
        """Wait until the job has left PENDING/CONFIGURING and return ``scontrol show job`` as key=value pairs."""
        fields: dict[str, str] = {}

        def started() -> bool:
            fields.clear()
            fields.update(parse_fields(self.run("scontrol", "show", "job", job, timeout=20).stdout))
            return fields.get("JobState", "PENDING") not in ("PENDING", "CONFIGURING", "")

        self.wait_for(f"job {job} started", started, timeout)
        return dict(fields)

    def cancel_jobs(self, timeout: float = 30) -> None:
        """Cancel every job and wait until none is left, so no slurmstepd outlives its slurmd."""
        if not any(n == "slurmctld" and p.poll() is None for n, p in self.procs):
            return
        self.run("scancel", "--full", "--user=root", timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.squeue("-o", "%i").strip():
            time.sleep(0.5)

    def stop(self, name: str | None = None) -> None:
        """Stop one daemon by name, or all of them in reverse start order."""
        for pname, proc in reversed(list(self.procs)):
            if name is not None and pname != name:
                continue
            stop_process(proc, grace=15)
            self.procs.remove((pname, proc))


def parse_fields(text: str) -> dict[str, str]:
    """``scontrol show`` output (Key=Value words, values without spaces for what the tests read) as a dict."""
    fields: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields
