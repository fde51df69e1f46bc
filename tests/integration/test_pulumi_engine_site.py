"""`gpucloud apply SPEC --stack lab` end to end: the real Pulumi engine, sushy-emulator BMCs, and the configuration
layers running the real playbooks over SSH against the loopback test hosts of converge_rig, ending with a Slurm job.

The BMCs are pulumi_harness.Lab's (one emulator per node on its planned BMC address); the machines behind them are
converge_rig's hosts (one sshd, a mount and UTS namespace per host), set up for the lab exactly as
test_converge.py sets them up (converge_rig.lab_settings). Between the engine and the hosts stands only
configuration: the ansible-playbook first on PATH (WRAPPER below) runs the real one with the test machine's extra
variables (how to reach the loopback hosts, Debian's Slurm version, test-only secrets, stand-in hardware) and gives
each slurmd its own port in the plan's slurm.conf (converge_rig.node_ports: the hosts share one network stack).
Each node exporter listens on its host's own address for the same reason. The lab's NFS home is left out of the
spec: no NFS server runs on the test machine.

Asserted, in order: one `apply` powers every node on, runs the six layers (their real playbooks) in order, and leaves
munge, MariaDB, slurmdbd, slurmctld and both slurmd running on the hosts the plan gives them, with both GPU nodes idle
in Slurm; a second `apply` reports no changes and runs no playbook; an interactive srun from the login node runs a
GPU step on both GPU nodes and a batch job submitted with sbatch completes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("requests")
pytest.importorskip("bcrypt")
pytest.importorskip("pulumi.automation")

import converge_rig  # noqa: E402
from pulumi_harness import LAYERS, PASSWORD, Lab, engine_or_skip  # noqa: E402

pytestmark = pytest.mark.integration

HOSTS = converge_rig.LAB_HOSTS
DAEMONS = {"ctl01": ["munged", "mariadbd", "slurmdbd", "slurmctld"], "gpu01": ["munged", "slurmd"],
           "gpu02": ["munged", "slurmd"], "login01": ["munged"]}

# The ansible-playbook the layers find first on PATH: each slurmd its own port in the plan's slurm.conf (the
# program has just written the plan), a line in the layer log, then the real ansible-playbook with the test
# machine's variables; its output goes to the layer's log too.
WRAPPER = '''#!{python}
import json, subprocess, sys
from pathlib import Path
sys.path[:0] = {paths!r}
import converge_rig
cfg = json.loads(Path({config!r}).read_text())
converge_rig.node_ports(Path("plans/lab/slurm/slurm.conf"), cfg["slurmd_ports"])
with open(cfg["log"], "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
proc = subprocess.run([cfg["ansible_playbook"], *sys.argv[1:], "-e", "@" + cfg["vars"]], stdin=subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
with open(cfg["output"], "a") as fh:
    fh.write(proc.stdout)
sys.stdout.write(proc.stdout)
sys.exit(proc.returncode)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    engine = engine_or_skip()
    if os.geteuid() != 0:
        pytest.skip("the loopback hosts need root (mount namespaces, overlays, sshd)")
    missing = converge_rig.missing()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them)")
    tmp = tmp_path_factory.mktemp("site")
    rig = converge_rig.Rig(tmp / "hosts", HOSTS)
    lab = None
    try:
        rig.start()
        settings = converge_rig.lab_settings(rig)
        spec = dict(settings.spec)
        spec["storage"] = [fs for fs in spec["storage"] if fs["kind"] != "nfs"]
        test_vars = {
            **settings.test_vars,
            # The inventory has the planned management addresses; the test hosts answer on loopback.
            "gpucloud_test_hosts": {name: addr for name, (addr, _g) in HOSTS.items()},
            "ansible_host": "{{ gpucloud_test_hosts[inventory_hostname] }}",
            "monitoring_node_exporter_listen": "{{ ansible_host }}:9100",
        }
        (tmp / "test-vars.yml").write_text(yaml.safe_dump(test_vars))
        config = tmp / "wrapper.json"
        config.write_text(json.dumps({
            "vars": str(tmp / "test-vars.yml"), "slurmd_ports": settings.slurmd_ports, "log": str(tmp / "layers.log"),
            "output": str(tmp / "ansible.log"), "ansible_playbook": shutil.which("ansible-playbook")}))
        here = Path(__file__).parent
        wrapper = WRAPPER.format(python=sys.executable, paths=[str(here.parent), str(here)], config=str(config))
        (tmp / "engine").mkdir()
        lab = Lab(tmp / "engine", engine, base=spec, playbook=wrapper)
        lab.layer_log = tmp / "layers.log"
        yield rig, lab
    finally:
        if lab is not None:
            lab.stop()
        rig.stop()


def _ok(result) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert PASSWORD not in out
    return out


def _node_state(rig, node: str) -> str:
    res = rig.ssh("ctl01", f"scontrol --oneliner show node {node}")
    m = re.search(r"\bState=(\S+)", res.stdout)
    return m.group(1) if m else f"? {res.stdout.strip()} {res.stderr.strip()}"


def test_apply_powers_the_nodes_on_and_the_layers_bring_up_slurm(site):
    rig, lab = site
    _ok(lab.apply(timeout=2400))
    for node, bmc in lab.bmcs.items():
        assert bmc.system()["PowerState"] == "On", node
    ran = lab.layer_log.read_text().splitlines()
    assert [line.split()[2] for line in ran] == [f"playbooks/{layer}.yml" for layer in LAYERS]
    for host, daemons in DAEMONS.items():
        names = {Path(os.readlink(f"/proc/{pid}/exe")).name for pid in rig.pids_in(host)
                 if os.path.exists(f"/proc/{pid}/exe")}
        # Debian installs slurmctld as slurmctld-wlm behind a link.
        assert all(any(n.startswith(d) for n in names) for d in daemons), f"{host}: {names}"
    accounts = rig.ssh("ctl01", "sacctmgr -nP show account format=account").stdout.split()
    assert {"research", "teaching"} <= set(accounts)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {n: _node_state(rig, n) for n in ("gpu01", "gpu02")}
        if all(s == "IDLE" for s in states.values()):
            break
        time.sleep(1)
    assert states == {"gpu01": "IDLE", "gpu02": "IDLE"}, states


def test_second_apply_reports_no_changes(site):
    _rig, lab = site
    before = lab.layer_log.read_text()
    out = _ok(lab.apply(timeout=900))
    assert "unchanged" in out and "to update" not in out and "to create" not in out and "to replace" not in out
    assert lab.layer_log.read_text() == before  # no playbook ran again


def test_slurm_runs_jobs_on_the_gpu_nodes(site):
    """An interactive srun from login01 (one task per GPU node, 4 fake GPUs each), then a batch job. Last, so that
    a job problem does not hide the results above."""
    rig, _lab = site
    assert rig.ssh("ctl01", "sacctmgr -i add user root account=research").returncode == 0
    job = rig.ssh("login01", "timeout 200 srun --immediate=120 -A research -p debug -N2 -w gpu01,gpu02 "
                             "--ntasks-per-node=1 --gres=gpu:4 -t 5 sh -c 'echo $(hostname) $CUDA_VISIBLE_DEVICES'",
                  timeout=240)
    if job.returncode != 0:
        why = rig.ssh("ctl01", "squeue -o '%i %T %r'; scontrol show node gpu01; tail -30 /var/log/slurm/slurmctld.log")
        pytest.fail(f"job failed: {job.stdout} {job.stderr}\n{why.stdout}")
    assert sorted(job.stdout.splitlines()) == ["gpu01 0,1,2,3", "gpu02 0,1,2,3"], (job.stdout, job.stderr)
    batch = rig.ssh("login01", "sbatch --parsable -A research -p debug -N1 --gres=gpu:2 -t 5 -o /dev/null "
                               "--wrap 'test -n \"$CUDA_VISIBLE_DEVICES\"'")
    assert batch.returncode == 0, batch.stderr
    job_id = batch.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        state = rig.ssh("ctl01", f"sacct -nX -P -j {job_id} -o State").stdout.strip()
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            break
        time.sleep(1)
    assert state == "COMPLETED", rig.ssh("ctl01", f"scontrol show job {job_id}; sacct -j {job_id}").stdout
