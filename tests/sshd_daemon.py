"""One way to start a test sshd, shared by the converge rig and the verify harness.

sshd needs machine state that its init script (``/etc/init.d/ssh``) or systemd (``RuntimeDirectory=sshd``) creates
at boot, not the package: the privilege-separation directory ``/run/sshd`` (root-owned, not group- or
world-writable; sshd chroots its pre-auth child into it). ``/run`` is a tmpfs, so a freshly booted machine without an
init system has none, and sshd exits with "Missing privilege separation directory". ``prepare_machine`` does what
the init script does; ``start`` checks the config first (``sshd -t``) and waits for the SSH banner, so a broken
config or machine fails with sshd's own message instead of a timeout. The caller stops the process by PID
(``conftest.stop_process``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
SSH_KEYGEN = shutil.which("ssh-keygen")
PRIVSEP_DIR = Path("/run/sshd")
PRIVSEP_USER = "sshd"


def prepare_machine() -> None:
    """Create what sshd needs from the machine and only an init system provides; explain what cannot be created."""
    if os.geteuid() != 0:
        return  # an unprivileged sshd neither chroots nor changes user
    try:
        pwd.getpwnam(PRIVSEP_USER)
    except KeyError:
        raise RuntimeError(f"the privilege-separation user {PRIVSEP_USER!r} does not exist: "
                           "reinstall openssh-server (its postinst creates it)") from None
    PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = PRIVSEP_DIR.stat()
    if st.st_uid != 0 or st.st_mode & 0o022:
        # sshd refuses a privsep dir that others could write into; the init script makes it root:root 0755.
        os.chown(PRIVSEP_DIR, 0, 0)
        PRIVSEP_DIR.chmod(0o755)


def keygen(path: Path, comment: str = "") -> str:
    """A new ed25519 key pair at ``path``; returns the public key line."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return Path(str(path) + ".pub").read_text().strip()


def start(config: Path, log: Path, address: str, port: int, timeout: float = 30) -> subprocess.Popen:
    """Start ``sshd -D -e -f config`` with its output in ``log``; return once ``address:port`` sends the SSH
    banner. Raises RuntimeError with sshd's own words when the config is rejected or sshd exits."""
    prepare_machine()
    test = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if test.returncode != 0:
        raise RuntimeError(f"sshd rejected {config}: {(test.stdout + test.stderr).strip()}")
    with open(log, "wb") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection((address, port), timeout=1) as s:
                if s.recv(8).startswith(b"SSH-"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"sshd did not answer on {address}:{port} within {timeout:.0f} s: {log.read_text()[-2000:]}")
