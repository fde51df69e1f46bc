"""A pinned version is the installed version: real apt, a real signed repository, the real roles and verify.

Stand-in packages of the driver (``nvidia-driver-550-server`` and ``nvidia-utils-550-server``, in two versions,
``550.90.07-0ubuntu1`` and ``550.127.08-0ubuntu1``) are built with dpkg-deb, indexed with apt-ftparchive, signed
with a throwaway OpenPGP key and served over HTTP on 127.0.0.1. The spec lists that repository under
``software.repositories``; the inventory renderer turns it into the ``repositories`` role's variables, and the
roles run with ansible-playbook.

Where it runs: a host of its own, in a mount namespace with overlays on /etc and /var (as the converge rig's hosts
have), so apt's sources, lists and dpkg's database are the namespace's: the machine's real packages and sources
are never touched, and the packages carry no files (only their dpkg record), so nothing lands in /usr either.
Inside, Debian's own sources are removed so that apt sees only the test repository.

What it shows: the converge installs the pinned version (not merely "some version") and holds it, so that an
``apt-get upgrade`` on the node keeps it back though the repository has a newer one; the driver's pending check
(compute.yml's drain trigger) reports a change exactly when the pin moves; bumping the pin upgrades through the hold;
a lower pin is refused without ``gpucloud_allow_downgrade`` and honoured with it; verify's package collector over the same host
reports the mismatch before each converge and nothing after.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from conftest import CLUSTERS, ROOT, stop_process
from gpucloud.plan import build_plan
from gpucloud.render.inventory import all_vars
from gpucloud.spec import load
from gpucloud.verify import collect, compare, expect

pytestmark = pytest.mark.integration

OLD, NEW = "550.90.07", "550.127.08"
PACKAGES = ("nvidia-driver-550-server", "nvidia-utils-550-server")
KEYRING = "/etc/apt/keyrings/gpucloud-standin.gpg"  # on the node: inside the namespace's /etc
_SIBLING = Path(sys.executable).parent / "ansible-playbook"
ANSIBLE_PLAYBOOK = str(_SIBLING) if _SIBLING.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")

# Keeps a mount namespace with its own /etc and /var alive until killed (as converge_rig's hosts do).
_HOLDER = r'''
set -e
r="$1"
for d in etc var; do
  mkdir -p "$r/upper/$d" "$r/work/$d"
  mount -t overlay "gpucloud-pins-$d" -o "lowerdir=/$d,upperdir=$r/upper/$d,workdir=$r/work/$d" "/$d"
done
echo ready > "$r/ready"
exec sleep 100000
'''


def _need() -> None:
    if os.geteuid() != 0:
        pytest.skip("the throwaway root needs mount namespaces (root)")
    missing = [t for t in ("dpkg-deb", "apt-ftparchive", "gpg", "unshare", "nsenter", "apt-get") if not shutil.which(t)]
    if not Path(ANSIBLE_PLAYBOOK).exists() and not shutil.which(ANSIBLE_PLAYBOOK):
        missing.append("ansible-playbook")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them)")
    if subprocess.run(["/usr/bin/python3", "-c", "import apt_pkg"], capture_output=True).returncode != 0:
        pytest.skip("python3-apt is not installed (Ansible's apt module needs it)")


def _run(*argv: str, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    assert res.returncode == 0, f"{argv}: {res.stdout}\n{res.stderr}"
    return res


def _build_repository(folder: Path, gnupg: Path) -> None:
    """Two versions of each stand-in package, a flat repository index, and an InRelease signed by a fresh key."""
    folder.mkdir()
    for version in (OLD, NEW):
        for name in PACKAGES:
            pkg = folder.parent / "build" / f"{name}-{version}"
            (pkg / "DEBIAN").mkdir(parents=True)
            (pkg / "DEBIAN" / "control").write_text(
                f"Package: {name}\nVersion: {version}-0ubuntu1\nArchitecture: all\nMaintainer: gpucloud tests <t@t>\n"
                f"Description: stand-in for the NVIDIA driver package (no files)\n")
            _run("dpkg-deb", "--root-owner-group", "--build", str(pkg), str(folder / f"{name}_{version}_all.deb"))
    packages = _run("apt-ftparchive", "packages", ".", cwd=folder).stdout
    (folder / "Packages").write_text(packages)
    release = _run("apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=gpucloud-tests", "release", ".",
                   cwd=folder).stdout
    (folder / "Release").write_text(release)
    gnupg.mkdir(mode=0o700)
    _run("gpg", "--batch", "--homedir", str(gnupg), "--passphrase", "", "--quick-gen-key",
         "gpucloud test repository <t@t>", "ed25519", "sign", "never")
    _run("gpg", "--batch", "--homedir", str(gnupg), "--clearsign", "-o", str(folder / "InRelease"),
         str(folder / "Release"))
    (folder.parent / "keyring.gpg").write_bytes(
        subprocess.run(["gpg", "--batch", "--homedir", str(gnupg), "--export"], capture_output=True,
                       check=True).stdout)


class Node:
    """The throwaway root: commands run in the holder's mount namespace."""

    def __init__(self, root: Path):
        self.root = root
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", _HOLDER,
                                        "holder", str(root)], stdin=subprocess.DEVNULL,
                                       stdout=open(root / "holder.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not (root / "ready").exists():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("test root not ready: " + (root / "holder.log").read_text())
            time.sleep(0.1)

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "--target", str(self.holder.pid), "--mount", "--", *argv],
                              capture_output=True, text=True, **kw)

    def stop(self) -> None:
        stop_process(self.holder)


@contextlib.contextmanager
def repository_and_node(base: Path) -> Iterator[tuple[int, Node]]:
    """The test repository in ``base/repo`` served over HTTP on a free loopback port, and a node (its own mount
    namespace, ``base/node``) that trusts the test key and sees no repository but the test's: (port, node)."""
    probe = __import__("socket").socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                               "--directory", str(base / "repo")], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (base / "node").mkdir()
    node = Node(base / "node")
    try:
        script = (f"mkdir -p /etc/apt/keyrings && cp {base / 'keyring.gpg'} {KEYRING} && chmod 644 {KEYRING} && "
                  "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* && rm -rf /var/lib/apt/lists/*")
        res = node.run(["sh", "-c", script])
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 20
        while subprocess.run(["python3", "-c", f"import urllib.request; urllib.request.urlopen("
                              f"'http://127.0.0.1:{port}/Release')"], capture_output=True).returncode:
            assert time.monotonic() < deadline and server.poll() is None, "the test repository did not start"
            time.sleep(0.2)
        yield port, node
    finally:
        node.stop()
        stop_process(server)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    _need()
    base = tmp_path_factory.mktemp("pins")
    _build_repository(base / "repo", base / "gnupg")
    # A fake PCI tree with one NVIDIA GPU, so the driver role does its work.
    gpu = base / "pci" / "0000:17:00.0"
    gpu.mkdir(parents=True)
    (gpu / "vendor").write_text("0x10de\n")
    (gpu / "class").write_text("0x030200\n")
    with repository_and_node(base) as (port, node):
        yield {"base": base, "port": port, "node": node}


def _spec(rig, driver: str, tmp: Path):
    """The lab spec with the driver pin and the test repository under software.repositories."""
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["software"]["nvidia_driver"] = driver
    data["software"]["repositories"] = [{
        "name": "standin", "url": f"http://127.0.0.1:{rig['port']}/", "suite": "./", "key": KEYRING,
        "packages": list(PACKAGES)}]
    path = tmp / f"lab-{driver}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load(path)
    assert loaded.spec is not None, [f.message for f in loaded.findings]
    return build_plan(loaded.spec)


def converge_role(node: Node, work: Path, role: str, flag: str, variables: dict) -> subprocess.CompletedProcess:
    """On the node, over a local connection: the repositories role, ``role``'s pending check (compute.yml's drain
    trigger, which sets the fact ``flag``) printed as PENDING=..., then the role itself."""
    work.mkdir()
    (work / "play.yml").write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        "  pre_tasks:\n"
        "    - {name: Refresh the sources, ansible.builtin.include_role: {name: repositories}}\n"
        f"    - {{name: Pending change, ansible.builtin.include_role: {{name: {role}, tasks_from: pending.yml}}}}\n"
        f"    - {{name: Report it, ansible.builtin.debug: {{msg: 'PENDING={{{{ {flag} }}}}'}}}}\n"
        f"  roles:\n    - role: {role}\n")
    (work / "vars.json").write_text(json.dumps({"ansible_python_interpreter": "/usr/bin/python3", **variables}))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "playbooks" / "roles"), "ANSIBLE_HOME": str(work / "home"),
           "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_REMOTE_TMP": str(work / "rtmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_STDOUT_CALLBACK": "default"}
    return node.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(work / "play.yml"), "-e", f"@{work / 'vars.json'}"],
                    env=env, timeout=600)


def pending(res: subprocess.CompletedProcess) -> bool:
    """Whether converge_role's run reported its change as pending (and succeeded)."""
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    return '"msg": "PENDING=True"' in res.stdout


def _converge(rig, plan, tmp: Path, name: str, **extra) -> subprocess.CompletedProcess:
    """repositories + the driver role on the node, preceded by compute.yml's pending check (its drain trigger)."""
    variables = {**all_vars(plan), "nvidia_driver_pci_dir": str(rig["base"] / "pci"), "nvidia_driver_expected_gpus": 1,
                 "nvidia_driver_persistence_mode": False, **extra}
    return converge_role(rig["node"], tmp / name, "nvidia_driver", "nvidia_driver_disruptive_pending", variables)


def _verify(rig, plan) -> list[tuple[str, str]]:
    """verify's own collector script and comparison over the node, for the GPU pool's package pins only."""
    pp = next(p for p in plan.pools if p.model.gpus)
    he = expect.expectations(plan, only={pp.hosts[0].name})[0]
    # The driver's pins as the plan gives them (the pool's other pins, DCGM, Slurm, ..., have no stand-ins here).
    pins = tuple((name, v) for name, v in he.pool.packages if name in PACKAGES)
    assert [name for name, _ in pins] == list(PACKAGES), he.pool.packages
    pe = replace(he.pool, gpus=0, ports=(), mounts=(), services=(), slurm_node=False, ipoib_prefix=None,
                 packages=pins)
    he = replace(he, pool=pe)
    res = rig["node"].run(["sh", "-s"], input=collect.script(pe, he.name, 20), timeout=60)
    sections = collect.split(res.stdout, res.stderr)
    found = compare.compare(he, collect.Collected(sections)).findings
    return sorted((f.check, f.message) for f in found if f.check.startswith("package"))


def _installed(rig) -> dict[str, str]:
    res = rig["node"].run(["dpkg-query", "-W", "-f=${Package} ${Version}\n", *PACKAGES])
    return dict(line.split() for line in res.stdout.splitlines() if line.split()[1:])


def _held(rig) -> list[str]:
    return sorted(rig["node"].run(["apt-mark", "showhold"]).stdout.split())


def test_pins_install_upgrade_and_refuse_downgrade(rig, tmp_path):
    old, new = _spec(rig, OLD, tmp_path), _spec(rig, NEW, tmp_path)
    sources = "/etc/apt/sources.list.d/gpucloud-standin.sources"

    # A bare node: verify reports the packages missing; the converge installs the pinned (older) version, though
    # a newer one is in the repository.
    assert ("package-missing", f"{PACKAGES[0]} not installed, pinned {OLD}") in _verify(rig, old)
    res = _converge(rig, old, tmp_path, "first")
    assert pending(res)
    assert _installed(rig) == dict.fromkeys(PACKAGES, f"{OLD}-0ubuntu1")
    text = rig["node"].run(["cat", sources]).stdout
    assert f"Signed-By: {KEYRING}\n" in text and f"URIs: http://127.0.0.1:{rig['port']}/\n" in text, text
    assert _verify(rig, old) == []

    # The pinned packages are held: an operator's `apt-get upgrade` (or unattended-upgrades) keeps them back although
    # the repository has a newer version; only a converge with a new pin moves them.
    assert _held(rig) == sorted(PACKAGES)
    upgrade = rig["node"].run(["apt-get", "-y", "upgrade"], timeout=120)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "kept back" in upgrade.stdout and _installed(rig) == dict.fromkeys(PACKAGES, f"{OLD}-0ubuntu1"), \
        upgrade.stdout

    # Converging again changes nothing and asks for no drain.
    res = _converge(rig, old, tmp_path, "again")
    assert not pending(res)
    assert "changed=0" in res.stdout, res.stdout[-3000:]

    # A bumped pin: verify sees the old version, the pending check asks for the drain, the converge upgrades.
    assert _verify(rig, new) == sorted(("package-version", f"{p} {OLD}, pinned {NEW}") for p in PACKAGES)
    res = _converge(rig, new, tmp_path, "bump")
    assert pending(res)
    assert _installed(rig) == dict.fromkeys(PACKAGES, f"{NEW}-0ubuntu1")
    assert _verify(rig, new) == []
    assert _held(rig) == sorted(PACKAGES)  # moved through the hold, and held again at the new pin

    # Back to the older pin: refused without the flag (the node keeps what it has), done with it.
    res = _converge(rig, old, tmp_path, "down-refused")
    assert res.returncode != 0
    assert _installed(rig) == dict.fromkeys(PACKAGES, f"{NEW}-0ubuntu1")
    res = _converge(rig, old, tmp_path, "down", gpucloud_allow_downgrade=True)
    assert pending(res)
    assert _installed(rig) == dict.fromkeys(PACKAGES, f"{OLD}-0ubuntu1")
    assert _verify(rig, old) == [] and _held(rig) == sorted(PACKAGES)


def test_an_unsigned_repository_is_not_used(rig, tmp_path):
    """The signature is checked: a sources entry whose Signed-By names another key gets no package lists."""
    plan = _spec(rig, OLD, tmp_path)
    variables = all_vars(plan)
    variables["repositories_list"][0]["signed_by"] = "/usr/share/keyrings/debian-archive-keyring.gpg"
    # One try: the refresh is meant to fail, retrying only makes the test slower.
    res = _converge(rig, plan, tmp_path, "wrong-key", repositories_list=variables["repositories_list"],
                    repositories_refresh_retries=1)
    assert res.returncode != 0
    assert "Failed to update apt cache" in res.stdout, res.stdout[-3000:]
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" in rig["node"].run(
        ["cat", "/etc/apt/sources.list.d/gpucloud-standin.sources"]).stdout
    # apt's own words for why: the repository's key is not the one the sources name, so its new index is not used
    # (apt-get itself only warns and keeps the lists it had; the role fails the host).
    update = rig["node"].run(["apt-get", "update"])
    assert "NO_PUBKEY" in update.stdout + update.stderr and "The repository is not updated" in update.stderr, \
        update.stdout + update.stderr
