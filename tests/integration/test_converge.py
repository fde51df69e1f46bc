"""A real converge of the lab cluster over SSH, through `gpucloud converge`, against loopback test hosts.

The playbooks alone bring up munge, MariaDB + slurmdbd, slurmctld and two slurmd with fake GPUs; an interactive
`srun` from the login node runs a GPU step on both GPU nodes; a second run changes nothing; a disruptive change (the
plan's gres.conf) drains each GPU node, restarts slurmd and resumes the node after its health check, while an
unreachable node in the same batch is reported by name without stopping the others.

What differs from a real cluster is only configuration: the Slurm side in the spec's own settings (slurm.settings,
slurm.dbd_settings: free ports instead of Slurm's fixed ones, no cgroup hierarchy of our own, a small VM claiming to
be an HGX node with SlurmdParameters=config_overrides, a stand-in health check), no pyxis (not packaged), and the
rest in one extra-vars file (no systemd: daemons started directly). The test hosts share one network stack, so the
two slurmd cannot share a port: the test rewrites the plan's node line once per GPU node with a port of its own
(`Port=`, Slurm's way of running several slurmd on one machine), the one edit of a plan file that no spec could
want. The Slurm daemons and srun then listen on all addresses, Slurm's default
and what a real cluster does. That matters for srun: a connection between two test hosts leaves from 127.0.0.1, not
from the sender's 127.0.0.x, and slurmd connects back to srun (task I/O, step messages) at the address that srun's
launch request came from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

import converge_rig
from conftest import ROOT, run_cli

pytestmark = pytest.mark.integration

HOSTS = converge_rig.LAB_HOSTS
TAGS = "common,slurm,compute"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    cr = converge_rig
    if os.geteuid() != 0:
        pytest.skip("the loopback hosts need root (mount namespaces, overlays, sshd)")
    missing = cr.missing()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them)")
    r = cr.Rig(tmp_path_factory.mktemp("converge"), cr.LAB_HOSTS)
    try:
        r.start()
        yield r
    finally:
        r.stop()


def _summary(stdout: str) -> dict[str, dict[str, int]]:
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
        if m:
            rows[m.group(1)] = dict(zip(("ok", "changed", "failed", "unreachable", "skipped"),
                                        map(int, m.groups()[1:])))
    return rows


@pytest.fixture(scope="module")
def setup(rig):
    return prepare(rig)


def prepare(rig):
    """The lab spec with the test machine's Slurm settings (converge_rig.lab_settings), its plan, an inventory of the
    loopback hosts (plus one that is down) and the test machine's vars."""
    cr = converge_rig
    root = rig.root
    plan = root / "plan"
    lab = cr.lab_settings(rig)
    spec = root / "lab.yaml"
    spec.write_text(yaml.safe_dump(lab.spec, sort_keys=False))
    res = run_cli("plan", str(spec), "--out", str(plan))
    assert res.returncode == 0, res.stderr
    cr.node_ports(plan / "slurm" / "slurm.conf", lab.slurmd_ports)
    inv = root / "inventory"
    shutil.copytree(plan / "inventory", inv)
    # The planned addresses, but the test host listens on loopback: a host_vars file outranks the host's variables
    # inline in hosts.yml, which still give it the rest (its BMC and IPoIB addresses).
    (inv / "host_vars").mkdir()
    for name, (addr, _gpus) in HOSTS.items():
        (inv / "host_vars" / f"{name}.json").write_text(json.dumps({"ansible_host": addr}))
    # A third GPU node whose machine is down: nothing listens on its port.
    (inv / "down.yml").write_text(yaml.safe_dump({"all": {"children": {"pool_gpu": {"hosts": {
        "gpu03": {"ansible_host": "127.0.0.6", "ansible_port": cr.free_port()}}}}}}))
    (root / "test-vars.yml").write_text(yaml.safe_dump(lab.test_vars))
    return spec, plan, inv, root / "test-vars.yml"


def _why(res: subprocess.CompletedProcess) -> str:
    """The summary and every failure line of a converge, for assertion messages."""
    failures = [line for line in res.stderr.splitlines() if "FAILED" in line or "UNREACHABLE" in line]
    return res.stdout + "\n".join(failures[:40]) + "\n" + res.stderr[-1500:]


def _converge(setup, *args: str) -> subprocess.CompletedProcess:
    spec, plan, inv, test_vars = setup
    return run_cli("converge", str(spec), "--plan", str(plan), "-i", str(inv),
                   "-e", f"@{test_vars}", *args, timeout=900)


def _node_state(rig, node: str) -> str:
    res = rig.ssh("ctl01", f"scontrol --oneliner show node {node}")
    m = re.search(r"\bState=(\S+)", res.stdout)
    return m.group(1) if m else f"? {res.stdout.strip()} {res.stderr.strip()}"


def test_check_mode_changes_nothing(rig, setup):
    res = _converge(setup, "--check", "--tags", "common,slurm", "--limit", "ctl01,gpu01")
    assert res.returncode == 0, _why(res)
    rows = _summary(res.stdout)
    assert set(rows) == {"ctl01", "gpu01"}
    assert all(r["changed"] > 0 for r in rows.values())  # a bare host: everything would change
    for host, path in (("ctl01", "/etc/slurm/slurm.conf"), ("gpu01", "/etc/security/limits.d/90-gpucloud-rdma.conf")):
        probe = rig.ssh(host, f"test -e {path} && echo present || echo absent")
        assert probe.stdout.strip() == "absent", f"{host}:{path}: {probe.stdout} {probe.stderr}"


def test_converge_brings_up_munge_mariadb_and_slurm(rig, setup):
    res = _converge(setup, "--tags", TAGS, "--limit", "all:!gpu03")
    assert res.returncode == 0, _why(res)
    rows = _summary(res.stdout)
    assert set(rows) == set(HOSTS) and all(r["failed"] == 0 and r["unreachable"] == 0 for r in rows.values())
    assert "converge ok" in res.stdout
    # The daemons run in the hosts the roles put them on.
    for host, daemons in {"ctl01": ["munged", "mariadbd", "slurmdbd", "slurmctld"], "gpu01": ["munged", "slurmd"],
                          "gpu02": ["munged", "slurmd"], "login01": ["munged"]}.items():
        names = {Path(os.readlink(f"/proc/{pid}/exe")).name for pid in rig.pids_in(host)
                 if os.path.exists(f"/proc/{pid}/exe")}
        # Debian installs slurmctld as slurmctld-wlm behind a link.
        assert all(any(n.startswith(d) for n in names) for d in daemons), f"{host}: {names}"
    # slurmdbd.conf carries the Vault password, readable by SlurmUser only.
    mode = rig.ssh("ctl01", "stat -c '%a %U' /etc/slurm/slurmdbd.conf").stdout.split()
    assert mode == ["600", "slurm"]
    # Accounting knows the plan's tenants (applied by the controller role through the plan's tenants.sh).
    accounts = rig.ssh("ctl01", "sacctmgr -nP show account format=account").stdout.split()
    assert {"research", "teaching"} <= set(accounts)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {n: _node_state(rig, n) for n in ("gpu01", "gpu02")}
        if all(s.startswith("IDLE") and "DRAIN" not in s for s in states.values()):
            break
        time.sleep(1)
    assert all(s == "IDLE" for s in states.values()), states


def test_second_converge_changes_nothing(rig, setup):
    res = _converge(setup, "--tags", TAGS, "--limit", "all:!gpu03")
    assert res.returncode == 0, _why(res)
    rows = _summary(res.stdout)
    assert set(rows) == set(HOSTS)
    assert {h: r["changed"] for h, r in rows.items()} == dict.fromkeys(HOSTS, 0), res.stdout


def test_disruptive_change_drains_and_resumes_and_skips_the_unreachable_node(rig, setup):
    _spec, plan, _inv, _vars = setup
    gres = plan / "slurm" / "gres.conf"
    gres.write_text(gres.read_text() + "# re-planned: same devices, new revision\n")
    seen: dict[str, set[str]] = {"gpu01": set(), "gpu02": set()}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for node in seen:
                seen[node].add(_node_state(rig, node))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        res = _converge(setup, "--tags", "compute")
    finally:
        stop.set()
        watcher.join(30)
    rows = _summary(res.stdout)
    assert res.returncode == 1, res.stdout  # gpu03 is down
    assert "UNREACHABLE gpu03" in res.stdout
    assert rows["gpu03"]["unreachable"] == 1
    for node in ("gpu01", "gpu02"):
        assert rows[node]["failed"] == 0 and rows[node]["unreachable"] == 0, res.stdout
        assert rig.ssh(node, "tail -1 /etc/slurm/gres.conf").stdout.startswith("# re-planned")
        assert any("DRAIN" in s for s in seen[node]), f"{node} was never drained: {seen[node]}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {n: _node_state(rig, n) for n in seen}
        if all(s == "IDLE" for s in states.values()):
            break
        time.sleep(1)
    assert states == {"gpu01": "IDLE", "gpu02": "IDLE"}, states
    # the resume gate installed and ran the acceptance checks (they passed: the nodes are idle again)
    assert (rig.root / "gpucloud-accept-node").read_bytes() == (ROOT / "gpucloud" / "accept" / "node.py").read_bytes()


def test_a_gpu_job_runs_from_the_login_node(rig, setup):
    """An interactive srun from login01: one task on each GPU node, with 4 (fake) GPUs each, output back in srun.

    Last, so that a job problem does not hide the idempotence and rolling-change results above."""
    # root submits for the research tenant (GrpTRES gres/gpu=8 from the plan).
    assert rig.ssh("ctl01", "sacctmgr -i add user root account=research").returncode == 0
    job = rig.ssh("login01", "timeout 200 srun --immediate=120 -A research -p debug -N2 -w gpu01,gpu02 "
                             "--ntasks-per-node=1 --gres=gpu:4 -t 5 sh -c 'echo $(hostname) $CUDA_VISIBLE_DEVICES'",
                  timeout=240)
    if job.returncode != 0:
        why = rig.ssh("ctl01", "squeue -o '%i %T %r'; scontrol show node gpu01; tail -30 /var/log/slurm/slurmctld.log")
        pytest.fail(f"job failed: {job.stdout} {job.stderr}\n{why.stdout}")
    assert sorted(job.stdout.splitlines()) == ["gpu01 0,1,2,3", "gpu02 0,1,2,3"], (job.stdout, job.stderr)
