"""The imex role on an NVL72 tray: real apt from a real signed repository, the real role with ansible-playbook.

A stand-in ``nvidia-imex-570`` package (570.133.20-1, the example's driver) is built with dpkg-deb the way NVIDIA's
CUDA repository ships it: ``/etc/nvidia-imex/config.cfg`` with IMEX's documented defaults and the systemd unit
``nvidia-imex.service`` (here under /etc, since the throwaway root overlays only /etc and /var; the real package puts
it under /lib and its program under /usr/bin). It is served over HTTP like test_package_pins' repository and
installed in the same kind of mount namespace.

The test host has no systemd, so the service runs the way such hosts run every daemon (gpucloud_service_manager
direct: start-stop-daemon and a pid file), with a compiled stand-in program that records its arguments and stays up.
What is asserted: the pinned package is installed; the node's peer list is byte for byte the plan's list of the
tray's own rack (and only that rack's trays); config.cfg carries the keys the plan needs and keeps the package's
others; the unit file is there and the service runs; a second converge changes nothing and keeps the same process;
a tray moved to another domain gets that domain's list, the change is reported as pending (the drain trigger) and
IMEX restarts; a plan without the domain's list fails the role naming the file. That the unit is enabled at boot
cannot be shown without systemd: the role passes ``enabled: true`` to the service module there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import imex
from gpucloud.render.inventory import all_vars, pool_vars
from test_package_pins import KEYRING, _need, _run, converge_role, pending, repository_and_node

pytestmark = pytest.mark.integration

VERSION = "570.133.20"
PACKAGE = "nvidia-imex-570"
CONFIG = """\
# stand-in of the packaged /etc/nvidia-imex/config.cfg (IMEX Service User Guide, "IMEX Service Config Options")
DAEMONIZE=1
BIND_INTERFACE_IP=
SERVER_PORT=50000
IMEX_NODE_CONFIG_FILE=/etc/nvidia-imex/nodes_config.cfg
IMEX_WAIT_FOR_QUORUM=RECOVERY
"""
UNIT = """\
[Unit]
Description=NVIDIA IMEX service (stand-in)
[Service]
Type=forking
ExecStart=/usr/bin/nvidia-imex -c /etc/nvidia-imex/config.cfg
[Install]
WantedBy=multi-user.target
"""
# Records its arguments next to itself and stays up until stopped, as the daemon does with DAEMONIZE=0.
PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    FILE *f = fopen(ARGS_FILE, "w");
    for (int i = 1; i < argc; i++) fprintf(f, "%s\n", argv[i]);
    fclose(f);
    for (;;) pause();
}
"""


def _build(folder: Path, gnupg: Path) -> None:
    folder.mkdir()
    pkg = folder.parent / "build" / PACKAGE
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {VERSION}-1\nArchitecture: all\nMaintainer: gpucloud tests <t@t>\n"
        "Description: stand-in for NVIDIA IMEX (its configuration and unit only)\n")
    (pkg / "DEBIAN" / "conffiles").write_text("/etc/nvidia-imex/config.cfg\n")
    (pkg / "etc" / "nvidia-imex").mkdir(parents=True)
    (pkg / "etc" / "nvidia-imex" / "config.cfg").write_text(CONFIG)
    (pkg / "etc" / "systemd" / "system").mkdir(parents=True)
    (pkg / "etc" / "systemd" / "system" / "nvidia-imex.service").write_text(UNIT)
    _run("dpkg-deb", "--root-owner-group", "--build", str(pkg), str(folder / f"{PACKAGE}_{VERSION}_all.deb"))
    (folder / "Packages").write_text(_run("apt-ftparchive", "packages", ".", cwd=folder).stdout)
    (folder / "Release").write_text(_run("apt-ftparchive", "release", ".", cwd=folder).stdout)
    gnupg.mkdir(mode=0o700)
    _run("gpg", "--batch", "--homedir", str(gnupg), "--passphrase", "", "--quick-gen-key",
         "gpucloud test repository <t@t>", "ed25519", "sign", "never")
    _run("gpg", "--batch", "--homedir", str(gnupg), "--clearsign", "-o", str(folder / "InRelease"),
         str(folder / "Release"))
    (folder.parent / "keyring.gpg").write_bytes(subprocess.run(
        ["gpg", "--batch", "--homedir", str(gnupg), "--export"], capture_output=True, check=True).stdout)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    _need()
    compiler = shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler for the stand-in IMEX program (.ci/packages.txt installs gcc)")
    base = tmp_path_factory.mktemp("imex")
    _build(base / "repo", base / "gnupg")
    (base / "bin").mkdir()
    (base / "imex.c").write_text(PROGRAM)
    _run(compiler, f'-DARGS_FILE="{base / "imex-args"}"', "-o", str(base / "bin" / "nvidia-imex"),
         str(base / "imex.c"))
    with repository_and_node(base) as (port, node):
        try:
            yield {"base": base, "port": port, "node": node}
        finally:
            # The stand-in daemon runs in the namespace; stop it by its pid file before the namespace goes.
            node.run(["start-stop-daemon", "--stop", "--quiet", "--pidfile", str(base / "imex.pid"), "--retry", "5"])


def _plan(rig, tmp: Path):
    """Two NVL72 racks of the example, the driver pinned, the test repository as software.repositories."""
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text())
    data["node_pools"][0].update(count=36, rollout={"max_unavailable": 18})
    data["software"]["nvidia_driver"] = VERSION
    data["software"]["repositories"] = [{"name": "standin", "url": f"http://127.0.0.1:{rig['port']}/",
                                         "suite": "./", "key": KEYRING, "packages": [PACKAGE]}]
    path = tmp / "nvl72.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings if f.level == "error"]
    plan = build_plan(checked.spec, tuple(checked.findings))
    plan_dir = tmp / "plan"
    for rel, body in imex.render(plan).items():
        (plan_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (plan_dir / rel).write_bytes(body)
    return plan, plan_dir


def _converge(rig, plan, plan_dir: Path, tmp: Path, name: str, domain: str,
              extra: dict | None = None) -> subprocess.CompletedProcess:
    """The compute layer's IMEX steps for one tray: the pending check (its drain trigger), then the role."""
    pp = plan.pools[0]
    variables = {**all_vars(plan), **pool_vars(plan, pp), "gpucloud_plan_dir": str(plan_dir),
                 "gpucloud_nvlink_domain": domain, "gpucloud_service_manager": "direct",
                 "imex_exec": str(rig["base"] / "bin" / "nvidia-imex"), "imex_pidfile": str(rig["base"] / "imex.pid"),
                 **(extra or {})}
    return converge_role(rig["node"], tmp / name, "imex", "imex_disruptive_pending", variables)


def _pid(rig) -> int:
    pid = int((rig["base"] / "imex.pid").read_text())
    assert Path(f"/proc/{pid}").exists(), "IMEX is not running"
    return pid


def test_the_tray_gets_its_racks_peer_list_and_runs_imex(rig, tmp_path):
    plan, plan_dir = _plan(rig, tmp_path)
    node = rig["node"]
    racks = {h.rack: [x.management for x in plan.pools[0].hosts if x.rack == h.rack] for h in plan.pools[0].hosts}
    assert sorted(racks) == ["nvl01", "nvl02"]

    res = _converge(rig, plan, plan_dir, tmp_path, "first", "nvl02")
    assert pending(res)  # a bare tray: the package and the peer list are new, so compute.yml drains it first
    installed = node.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE]).stdout
    assert installed == f"{VERSION}-1"
    assert node.run(["apt-mark", "showhold"]).stdout.split() == [PACKAGE]  # an apt upgrade leaves it at the pin
    peers = node.run(["cat", "/etc/nvidia-imex/nodes_config.cfg"]).stdout
    assert peers.encode() == (plan_dir / "imex" / "nvl02" / "nodes_config.cfg").read_bytes()
    assert peers.split() == racks["nvl02"] and not set(peers.split()) & set(racks["nvl01"])
    config = node.run(["cat", "/etc/nvidia-imex/config.cfg"]).stdout.splitlines()
    assert "IMEX_NODE_CONFIG_FILE=/etc/nvidia-imex/nodes_config.cfg" in config and "SERVER_PORT=50000" in config
    assert "DAEMONIZE=0" in config and "DAEMONIZE=1" not in config  # no systemd: start-stop-daemon tracks it
    assert "IMEX_WAIT_FOR_QUORUM=RECOVERY" in config  # the package's other settings are kept
    assert node.run(["test", "-f", "/etc/systemd/system/nvidia-imex.service"]).returncode == 0
    first = _pid(rig)
    assert (rig["base"] / "imex-args").read_text().split() == ["-c", "/etc/nvidia-imex/config.cfg"]

    # Nothing new: no change, no drain, the same process.
    res = _converge(rig, plan, plan_dir, tmp_path, "again", "nvl02")
    assert not pending(res)
    assert "changed=0" in res.stdout, res.stdout[-3000:]
    assert _pid(rig) == first

    # The tray in another domain: that domain's list, reported as pending, and IMEX restarted to read it.
    res = _converge(rig, plan, plan_dir, tmp_path, "moved", "nvl01")
    assert pending(res)
    assert node.run(["cat", "/etc/nvidia-imex/nodes_config.cfg"]).stdout.split() == racks["nvl01"]
    moved = _pid(rig)
    assert moved != first

    # A new port restarts IMEX too, so it is pending (the tray drains first).
    loaded = tmp_path / "nvidia-version"
    loaded.write_text(f"NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  {VERSION}  Release Build\n")
    res = _converge(rig, plan, plan_dir, tmp_path, "port", "nvl01",
                    {"imex_server_port": 50001, "imex_driver_proc": str(loaded)})
    assert pending(res)
    assert "SERVER_PORT=50001" in node.run(["cat", "/etc/nvidia-imex/config.cfg"]).stdout.splitlines()
    ported = _pid(rig)
    assert ported != moved

    # The loaded module is another version than the pin (a driver bump waits for its reboot): IMEX, which would
    # refuse to start against it, is not restarted, and the role says why.
    loaded.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  565.57.01  Release Build\n")
    removed = node.run(["apt-get", "remove", "-y", "-q", "--allow-change-held-packages", PACKAGE])  # held at its pin
    assert removed.returncode == 0, removed.stdout + removed.stderr
    res = _converge(rig, plan, plan_dir, tmp_path, "module", "nvl01",
                    {"imex_server_port": 50001, "imex_driver_proc": str(loaded)})
    assert pending(res)
    assert "the loaded kernel module is 565.57.01" in res.stdout, res.stdout[-3000:]
    assert _pid(rig) == ported


def test_a_plan_without_the_domains_peer_list_fails_naming_the_file(rig, tmp_path):
    plan, plan_dir = _plan(rig, tmp_path)
    (plan_dir / "imex" / "nvl02" / "nodes_config.cfg").unlink()
    res = _converge(rig, plan, plan_dir, tmp_path, "missing", "nvl02")
    assert res.returncode != 0
    assert f"{plan_dir}/imex/nvl02/nodes_config.cfg is missing" in res.stdout, res.stdout[-3000:]
