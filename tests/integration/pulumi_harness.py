"""A lab stack for the real Pulumi engine: one sushy-emulator per node on its planned BMC address, a stack in a
temporary work folder with its own file backend, and a recording stand-in for ansible-playbook.

The lab spec, with its BMC network moved to loopback (127.101.0.0/22), gets one emulator (fake driver) per node
listening on that node's BMC address, port 443, over TLS with a certificate the spec's provider.ca_bundle names. The
stack lives in a temporary work folder (GPUCLOUD_PULUMI_WORK_DIR) with a file backend there, so nothing in the
checkout's own Pulumi.<stack>.yaml or .pulumi-state/ is touched. Used by tests/integration/test_pulumi_engine.py
and bench/bench_pulumi_engine.py; started and stopped by PID.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from gpucloud.stack import apply

ROOT = Path(__file__).resolve().parents[2]
EMULATOR = shutil.which("sushy-emulator")
USER, PASSWORD = "admin", "bmc-engine-test-password-4f1c"
PASSPHRASE = "engine-test-passphrase"
BMC_CIDR = "127.101.0.0/22"
NODES = {"gpu01": "127.101.0.65", "gpu02": "127.101.0.66", "ctl01": "127.101.0.129", "login01": "127.101.0.193"}
LAYERS = ["common", "fabric", "storage", "slurm", "compute", "monitoring"]

STAND_IN = """#!/bin/sh
# ansible-playbook stand-in: the layer must run in the project root, with the plan's inventory (-i FILE) on disk.
[ "$1" = -i ] && [ -f "$2" ] || { echo "no inventory $2 in $PWD" >&2; exit 9; }
echo "$*" >> "$GPUCLOUD_TEST_LAYER_LOG"
"""


def engine_or_skip() -> Path:
    """The built Pulumi engine, or a skip naming what is missing (the engine, sushy-emulator or openssl). In CI
    scripts/setup.sh builds the engine, so these tests run there."""
    try:
        engine = apply.require_engine()
    except apply.ApplyError as exc:
        pytest.skip(f"{exc}")
    if EMULATOR is None:
        pytest.skip("sushy-emulator is not installed (pip install sushy-tools)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    return engine


class Bmc:
    """One sushy-emulator (fake driver) on a node's BMC address, port 443, TLS, basic auth."""

    def __init__(self, root: Path, node: str, ip: str, cert: Path, key: Path, auth: Path):
        self.node, self.ip, self.url = node, ip, f"https://{ip}"
        self.uuid = f"5b3c2a1e-0000-4000-8000-{int(ip.split('.')[-1]):012d}"
        root.mkdir(parents=True)
        systems = [{"uuid": self.uuid, "name": node, "power_state": "Off",
                    "nics": [{"mac": f"52:54:00:aa:01:{int(ip.split('.')[-1]):02x}", "ip": ip}]}]
        conf = root / "emulator.conf"
        conf.write_text("\n".join([
            f"SUSHY_EMULATOR_LISTEN_IP = {ip!r}", "SUSHY_EMULATOR_LISTEN_PORT = 443",
            "SUSHY_EMULATOR_FAKE_DRIVER = True", f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}",
            f"SUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}", f"SUSHY_EMULATOR_STATE_DIR = {str(root / 'state')!r}",
            f"SUSHY_EMULATOR_SSL_CERT = {str(cert)!r}", f"SUSHY_EMULATOR_SSL_KEY = {str(key)!r}"]) + "\n")
        self.ca = str(cert)
        self.log = open(root / "emulator.log", "wb")
        self.proc = subprocess.Popen([EMULATOR, "--config", str(conf)], stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=root)

    def get(self, path: str) -> dict:
        r = requests.get(self.url + path, auth=(USER, PASSWORD), timeout=5, verify=self.ca)
        r.raise_for_status()
        return r.json()

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sushy-emulator for {self.node} exited: see {self.log.name}")
            try:
                self.get("/redfish/v1/")
                return
            except requests.exceptions.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"sushy-emulator for {self.node} did not answer in time")

    def system(self) -> dict:
        return self.get(f"/redfish/v1/Systems/{self.uuid}")

    def force_off(self) -> None:
        r = requests.post(f"{self.url}/redfish/v1/Systems/{self.uuid}/Actions/ComputerSystem.Reset",
                          json={"ResetType": "ForceOff"}, auth=(USER, PASSWORD), timeout=5, verify=self.ca)
        r.raise_for_status()
        deadline = time.monotonic() + 40
        while self.system()["PowerState"] != "Off":
            assert time.monotonic() < deadline, f"{self.node} did not power off"
            time.sleep(0.5)

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()


class Lab:
    def __init__(self, tmp: Path, engine: Path, stacks: tuple[str, ...] = ("lab",), extra: str = "",
                 base: dict | None = None, playbook: str = STAND_IN, nodes: dict[str, str] | None = None,
                 spec_text: str | None = None):
        """``stacks``: the plan's stacks (one, "lab", unless ``extra`` provider settings such as pod_size split it).
        ``base``: the spec's data instead of clusters/lab.yaml (its BMC network and CA bundle are set the same way).
        ``playbook``: the ansible-playbook first on PATH (default the recording stand-in). ``nodes`` and
        ``spec_text``, for another cluster than the lab: node -> BMC address (one emulator each), and the spec's text
        with its BMC network already on loopback and @CA_BUNDLE@ where the BMCs' certificate goes."""
        self.tmp, self.engine, self.stacks, self.extra, self.base = tmp, engine, stacks, extra, base
        self.nodes, self.spec_text = nodes or NODES, spec_text
        self.work = tmp / "work"
        self.work.mkdir()
        # Pulumi runs the providers in the program's folder (`main: infra/`); the layers run one level up, in the
        # project root, as they do from a checkout's own work folder.
        shutil.copy(ROOT / "Pulumi.yaml", self.work / "Pulumi.yaml")
        (self.work / "infra").symlink_to(ROOT / "infra")
        self.state = tmp / "state"
        self.layer_log = tmp / "layers.log"
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "ansible-playbook").write_text(playbook)
        (bin_dir / "ansible-playbook").chmod(0o755)
        cert, key, auth = tmp / "bmc.crt", tmp / "bmc.key", tmp / "htpasswd"
        sans = ",".join(f"IP:{ip}" for ip in self.nodes.values())
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=lab BMCs", "-addext", f"subjectAltName={sans}", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        auth.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
        self.spec = self.write_spec("lab.yaml", {})
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                    "PULUMI_BACKEND_URL": f"file://{self.state}", "GPUCLOUD_PULUMI_WORK_DIR": str(self.work),
                    "GPUCLOUD_TEST_LAYER_LOG": str(self.layer_log),
                    "PATH": os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), os.environ["PATH"]])}
        self.bmcs = {}
        try:
            for node, ip in self.nodes.items():
                self.bmcs[node] = Bmc(tmp / f"bmc-{node}", node, ip, cert, key, auth)
            deadline = time.monotonic() + 30 + len(self.bmcs)  # emulators start one Python process each
            for bmc in self.bmcs.values():
                bmc.wait_ready(deadline)
        except Exception:
            self.stop()
            raise
        self.set_password()

    def write_spec(self, name: str, replace: dict[str, str]) -> Path:
        if self.base is not None:
            assert not replace and not self.extra, "a spec from data takes no text replacements"
            data = copy.deepcopy(self.base)
            data["networks"]["bmc"]["cidr"] = BMC_CIDR
            data["provider"]["ca_bundle"] = str(self.tmp / "bmc.crt")
            path = self.tmp / name
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            return path
        if self.spec_text is not None:
            text = self.spec_text.replace("@CA_BUNDLE@", str(self.tmp / "bmc.crt"))
        else:
            text = (ROOT / "clusters" / "lab.yaml").read_text()
            text = text.replace("bmc: {cidr: 10.101.0.0/22,", f"bmc: {{cidr: {BMC_CIDR},")
            text = text.replace("  password: {secret: bmc-password}", "  password: {secret: bmc-password}\n"
                                f"  ca_bundle: {self.tmp / 'bmc.crt'}\n{self.extra}")
        for old, new in replace.items():
            assert old in text
            text = text.replace(old, new)
        path = self.tmp / name
        path.write_text(text)
        return path

    def set_password(self) -> None:
        """The operator's one-time step: the BMC password as a secret in the stack's config (encrypted)."""
        pulumi = str(self.engine / "bin" / "pulumi")
        env = {**self.env, **apply.engine_env(self.engine, f"file://{self.state}")}
        self.state.mkdir()
        for stack in self.stacks:
            for args in (["stack", "init", stack],
                         ["config", "set", "--secret", "gpucloud:bmc-password", PASSWORD, "--stack", stack]):
                subprocess.run([pulumi, *args, "--non-interactive"], cwd=self.work, env=env, check=True,
                               capture_output=True, text=True)

    def apply(self, *args: str, spec: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        which = ["--stack", self.stacks[0]] if len(self.stacks) == 1 else ["--all"]
        cmd = [sys.executable, "-m", "gpucloud", "apply", str(spec or self.spec), *which, *args]
        return subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)

    def state_file(self, stack: str | None = None) -> Path:
        return self.state / ".pulumi" / "stacks" / "gpucloud" / f"{stack or self.stacks[0]}.json"

    def stop(self) -> None:
        for bmc in self.bmcs.values():
            bmc.stop()




def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
