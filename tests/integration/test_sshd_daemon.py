"""The shared test sshd starts on a machine as freshly booted: /run empty, no /run/sshd.

Each case runs in its own mount namespace with a new tmpfs on /run, which is what a machine without an init system
has after boot; the machine's own /run is not touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sshd_daemon

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="a private /run needs root (mount namespace)"),
    pytest.mark.skipif(sshd_daemon.SSHD is None or sshd_daemon.SSH_KEYGEN is None or shutil.which("unshare") is None,
                       reason="openssh-server, openssh-client and unshare are needed (.ci/run installs them)"),
]

TESTS = Path(__file__).resolve().parent.parent

# Runs inside the namespace: start sshd through the helper (or bare, with "bare"), then log in once.
_SCRIPT = r'''
import subprocess, sys
from pathlib import Path
import sshd_daemon
from conftest import stop_process
from slurm_harness import free_port

work, mode = Path(sys.argv[1]), sys.argv[2]
print("run/sshd before:", Path("/run/sshd").exists())
client = sshd_daemon.keygen(work / "client")
sshd_daemon.keygen(work / "host")
(work / "authorized_keys").write_text(client + "\n")
port = free_port()
(work / "sshd_config").write_text("\n".join([
    f"ListenAddress 127.0.0.1:{port}", f"HostKey {work / 'host'}", f"PidFile {work / 'sshd.pid'}",
    f"AuthorizedKeysFile {work / 'authorized_keys'}", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
    "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "LogLevel ERROR"]) + "\n")
if mode == "bare":
    out = subprocess.run([sshd_daemon.SSHD, "-D", "-e", "-f", str(work / "sshd_config")], capture_output=True,
                         text=True, timeout=10)
    print("bare sshd:", out.returncode, out.stderr.strip())
    sys.exit(0)
proc = sshd_daemon.start(work / "sshd_config", work / "sshd.log", "127.0.0.1", port)
try:
    login = subprocess.run(["ssh", "-p", str(port), "-i", str(work / "client"), "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={work / 'known_hosts'}", "-o", "StrictHostKeyChecking=no",
                            "root@127.0.0.1", "echo logged-in"], capture_output=True, text=True, timeout=30)
    print("login:", login.returncode, login.stdout.strip(), login.stderr.strip())
finally:
    stop_process(proc)
'''


def _in_fresh_run(tmp_path: Path, mode: str) -> str:
    script = tmp_path / "start.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS / "integration"), str(TESTS.parent)])}
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          'mount -t tmpfs gpucloud-fresh-run /run && exec "$0" "$@"',
                          sys.executable, str(script), str(tmp_path), mode],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_bare_sshd_fails_on_a_fresh_run(tmp_path):
    """The case the helper exists for: without it, sshd refuses to start (so the next test can fail)."""
    out = _in_fresh_run(tmp_path, "bare")
    assert "run/sshd before: False" in out
    assert "Missing privilege separation directory: /run/sshd" in out, out


def test_helper_starts_sshd_on_a_fresh_run(tmp_path):
    out = _in_fresh_run(tmp_path, "helper")
    assert "run/sshd before: False" in out
    assert "login: 0 logged-in" in out, out
