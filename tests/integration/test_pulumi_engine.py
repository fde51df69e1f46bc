"""`gpucloud apply` with the real Pulumi engine (built by scripts/build-pulumi.sh) against Redfish BMC emulators.

The lab spec, with its BMC network moved to loopback (127.101.0.0/22), gets one sushy-emulator per node listening on
its planned BMC address, port 443, over TLS with a certificate the spec's provider.ca_bundle names. The stack lives in
a temporary work folder (GPUCLOUD_PULUMI_WORK_DIR) with a file backend there, so nothing in the checkout's own
Pulumi.<stack>.yaml or .pulumi-state/ is touched. The configuration layers run a recording stand-in for
ansible-playbook (first on PATH): it checks it runs in the project root with the plan's inventory, and records
its arguments.

What is asserted, in order (one engine session per module; each test builds on the state the previous one left):
preview lists exactly the resources, types and parents of the plan's pulumi/lab.json; up powers every node on with a
one-time PXE boot and runs the six layers in order; a second up changes nothing; the state file holds the BMC
password only encrypted; a node powered off behind Pulumi's back shows as drift on refresh and the next up powers it
on; an image change is refused (exit 3, naming the nodes) and leaves the state as it was; deleting a protected
resource is refused by the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, stop_process

requests = pytest.importorskip("requests")
bcrypt = pytest.importorskip("bcrypt")
pytest.importorskip("pulumi.automation")

from gpucloud.stack import apply, dryrun  # noqa: E402

pytestmark = pytest.mark.integration

EMULATOR = shutil.which("sushy-emulator")
USER, PASSWORD = "admin", "bmc-engine-test-password-4f1c"
PASSPHRASE = "engine-test-passphrase"
BMC_CIDR = "127.101.0.0/22"
NODES = {"gpu01": "127.101.0.65", "gpu02": "127.101.0.66", "ctl01": "127.101.0.129", "login01": "127.101.0.193"}
LAYERS = ["common", "fabric", "storage", "slurm", "compute", "monitoring"]

STAND_IN = """#!/bin/sh
# ansible-playbook stand-in: the layer must run in the project root, with the plan's inventory on disk.
[ -f plans/lab/inventory/hosts.yml ] || { echo "no plans/lab/inventory/hosts.yml in $PWD" >&2; exit 9; }
echo "$*" >> "$GPUCLOUD_TEST_LAYER_LOG"
"""


def _engine_or_skip() -> Path:
    try:
        return apply.require_engine()
    except apply.ApplyError as exc:
        pytest.skip(f"{exc}")


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
        raise RuntimeError(f"sushy-emulator for {self.node} did not answer within 30 s")

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
        stop_process(self.proc)
        self.log.close()


class Lab:
    def __init__(self, tmp: Path, engine: Path):
        self.tmp, self.engine = tmp, engine
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
        (bin_dir / "ansible-playbook").write_text(STAND_IN)
        (bin_dir / "ansible-playbook").chmod(0o755)
        cert, key, auth = tmp / "bmc.crt", tmp / "bmc.key", tmp / "htpasswd"
        sans = ",".join(f"IP:{ip}" for ip in NODES.values())
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
            for node, ip in NODES.items():
                self.bmcs[node] = Bmc(tmp / f"bmc-{node}", node, ip, cert, key, auth)
            deadline = time.monotonic() + 30
            for bmc in self.bmcs.values():
                bmc.wait_ready(deadline)
        except Exception:
            self.stop()
            raise
        self.set_password()

    def write_spec(self, name: str, replace: dict[str, str]) -> Path:
        text = (ROOT / "clusters" / "lab.yaml").read_text()
        text = text.replace("bmc: {cidr: 10.101.0.0/22,", f"bmc: {{cidr: {BMC_CIDR},")
        text = text.replace("  password: {secret: bmc-password}",
                            f"  password: {{secret: bmc-password}}\n  ca_bundle: {self.tmp / 'bmc.crt'}")
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
        for args in (["stack", "init", "lab"], ["config", "set", "--secret", "gpucloud:bmc-password", PASSWORD]):
            subprocess.run([pulumi, *args, "--non-interactive"], cwd=self.work, env=env, check=True,
                           capture_output=True, text=True)

    def apply(self, *args: str, spec: Path | None = None) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "gpucloud", "apply", str(spec or self.spec), "--stack", "lab", *args]
        return subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=900)

    def state_file(self) -> Path:
        return self.state / ".pulumi" / "stacks" / "gpucloud" / "lab.json"

    def stop(self) -> None:
        for bmc in self.bmcs.values():
            bmc.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    engine = _engine_or_skip()
    if EMULATOR is None:
        pytest.skip("sushy-emulator is not installed (pip install sushy-tools)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    lab = Lab(tmp_path_factory.mktemp("engine"), engine)
    try:
        yield lab
    finally:
        lab.stop()


def _ok(result: subprocess.CompletedProcess) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert PASSWORD not in out
    return out


def _plan_document(spec: Path) -> dict:
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.render import render_all

    files = render_all(build_plan(check_spec(spec).spec))
    return json.loads(files["pulumi/lab.json"])


PREVIEW_STEPS = """
import json, sys
from pathlib import Path
from gpucloud.stack import apply
request = apply.Request(spec=Path(sys.argv[1]), stack="lab")
root = apply.require_engine()
stack = apply.open_stack(request, root, apply.backend_url(None))
events = []
stack.preview(on_event=events.append)
steps = []
for event in events:
    pre = event.resource_pre_event
    if pre is not None and not pre.metadata.type.startswith(("pulumi:pulumi:", "pulumi:providers:")):
        new = pre.metadata.new
        steps.append({"op": getattr(pre.metadata.op, "value", pre.metadata.op), "urn": pre.metadata.urn,
                      "type": new.type, "parent": new.parent, "inputs": new.inputs})
print(json.dumps(steps))
"""


def _name(urn: str | None) -> str | None:
    """A resource's name from its URN; the stack's root resource (every program's implicit parent) is None."""
    if not urn or "::pulumi:pulumi:Stack::" in urn:
        return None
    return urn.rsplit("::", 1)[-1]


def test_preview_lists_the_plans_resources_types_parents_and_inputs(lab):
    result = subprocess.run([sys.executable, "-c", PREVIEW_STEPS, str(lab.spec)], cwd=ROOT, env=lab.env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert PASSWORD not in result.stdout + result.stderr
    steps = json.loads(result.stdout.splitlines()[-1])
    planned = {r["name"]: r for r in _plan_document(lab.spec)["resources"]}
    assert {_name(s["urn"]) for s in steps} == set(planned)
    for step in steps:
        want = planned[_name(step["urn"])]
        assert step["op"] == "create"
        assert (step["type"], _name(step["parent"])) == (want["type"], want["parent"])
        # The same inputs, as the dry-run normalises them (secrets as [secret], nulls and the pickled provider
        # dropped); the layers' triggers hash the rendered plan, so they match too.
        assert dryrun.normalise(step["inputs"] or {}) == want["inputs"], want["name"]
    assert not lab.layer_log.exists()  # a preview runs nothing


def test_up_powers_every_node_on_and_runs_the_layers_in_order(lab):
    _ok(lab.apply())
    for node, bmc in lab.bmcs.items():
        system = bmc.system()
        assert system["PowerState"] == "On", node
        assert system["Boot"]["BootSourceOverrideTarget"] == "Pxe", node
    ran = lab.layer_log.read_text().splitlines()
    assert [line.split()[-1] for line in ran] == [f"playbooks/{layer}.yml" for layer in LAYERS]
    assert all(line.startswith("-i plans/lab/inventory/hosts.yml ") for line in ran)


def test_second_up_changes_nothing(lab):
    out = _ok(lab.apply())
    assert "unchanged" in out and "to update" not in out and "created" not in out
    assert len(lab.layer_log.read_text().splitlines()) == len(LAYERS)  # no layer ran again


def test_state_holds_the_bmc_password_only_encrypted(lab):
    text = lab.state_file().read_text()
    assert PASSWORD not in text
    state = json.loads(text)
    bmcs = [r for r in state["checkpoint"]["latest"]["resources"] if r["type"].endswith(":RedfishNode")]
    assert len(bmcs) == 4
    for r in bmcs:
        for where in ("inputs", "outputs"):
            secret = r[where]["password"]
            assert isinstance(secret, dict) and "ciphertext" in secret, (r["urn"], where)


def test_refresh_shows_a_node_powered_off_behind_pulumis_back_and_up_powers_it_on(lab):
    lab.bmcs["gpu02"].force_off()
    out = _ok(lab.apply("--refresh", "--preview"))
    refresh = out[: out.index("Previewing update")]
    assert "gpu02-bmc" in refresh and '"Off"' in refresh  # refresh read the drift back
    assert "1 to update" in out[out.index("Previewing update"):]  # and the preview will repair it
    assert lab.bmcs["gpu02"].system()["PowerState"] == "Off"  # refresh and preview change nothing
    _ok(lab.apply())
    assert lab.bmcs["gpu02"].system()["PowerState"] == "On"


def test_an_image_change_is_refused_before_anything_changes(lab):
    before = lab.state_file().read_bytes()
    moved = lab.write_spec("lab-new-image.yaml", {"image: ubuntu-22.04-gpu": "image: ubuntu-24.04-gpu"})
    result = lab.apply(spec=moved)
    out = result.stdout + result.stderr
    assert result.returncode == apply.EXIT_REFUSED, out[-4000:]
    assert "refused" in out and "gpu01, gpu02" in out and "--allow-replace" in out
    assert lab.state_file().read_bytes() == before
    assert all(bmc.system()["PowerState"] == "On" for bmc in lab.bmcs.values())


def test_deleting_a_protected_filesystem_is_refused_by_the_engine(lab):
    before = lab.state_file().read_bytes()
    home = ("  - {name: home, kind: nfs, server: 10.100.0.10, export: /export/home, mount: /home, version: \"4.2\", "
            "capacity: 20TiB}\n")
    gone = lab.write_spec("lab-no-home.yaml", {home: ""})
    result = lab.apply(spec=gone)
    out = result.stdout + result.stderr
    assert result.returncode == apply.EXIT_FAILED, out[-4000:]
    assert "lab-storage-home" in out and "protect" in out
    assert PASSWORD not in out
    assert lab.state_file().read_bytes() == before
