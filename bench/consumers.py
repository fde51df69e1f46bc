"""The real consumers of a plan, timed side by side with the planner: Pulumi's mocks on one pod stack,
ansible-inventory on the generated inventory, slurmctld starting with the generated configuration, and OpenSM
routing the twin of a mid-size fabric. Each reports a figure or why it could not run; none raises.

The daemon harnesses are the integration tests' own (tests/integration), so the benchmark starts the daemons
exactly as the tests do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path


def _plan(root: Path, name: str):
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan

    checked = check_spec(root / "clusters" / f"{name}.yaml")
    return build_plan(checked.spec, tuple(checked.findings))


def pulumi_pod_stack(root: Path) -> str:
    """The real Pulumi program under set_mocks for one pod stack of colossus-100k, in a fresh process."""
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from gpucloud.pipeline import check_spec\n"
        "from gpucloud.plan import build_plan\n"
        "from gpucloud.plan import stacks as layout\nfrom gpucloud.stack import dryrun\n"
        f"plan = build_plan(check_spec({str(root / 'clusters' / 'colossus-100k.yaml')!r}).spec)\n"
        "inputs = layout.stack_inputs(plan, {})\n"
        "pod = [d for d in inputs if not d['shared']][0]\n"
        "import pulumi\n"
        "t = time.perf_counter(); doc = dryrun.mock_document(pod); dt = time.perf_counter() - t\n"
        "print(pod['stack'], dryrun.document_head(doc)['resource_count'], f'{dt:.2f}')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return "error: " + out.stderr.strip().splitlines()[-1]
    stack, count, seconds = out.stdout.split()
    return f"{seconds} s for stack {stack} ({count} resources)"


def ansible_inventory(root: Path, name: str = "colossus-100k") -> str:
    if not shutil.which("ansible-inventory"):
        return "skipped: ansible-inventory is not installed"
    from bench.bench_inventory import measure

    plan = _plan(root, name)
    ((_args, wall, _cpu, _size),) = measure(plan, [["--list"]])
    return f"{wall:.2f} s for {plan.host_count:,} hosts ({name})"


def slurmctld_startup(root: Path, name: str = "ishikari") -> str:
    sys.path.insert(0, str(root / "tests" / "integration"))
    sys.path.insert(0, str(root / "tests"))
    from slurm_harness import missing_binaries

    if os.geteuid() != 0 or missing_binaries(accounting=True):
        return "skipped: needs root, Slurm's daemons, slurmdbd and MariaDB (.ci/packages.txt)"
    from test_slurm_daemons import compute_hosts, harness_for, planned

    plan, files = planned(root / "clusters" / f"{name}.yaml")
    tmp = Path(tempfile.mkdtemp(prefix="gpucloud-bench-slurm-"))
    h = harness_for(tmp, plan, files, compute_hosts(plan))
    try:
        h.start_munge()
        h.start_mariadb()
        h.start_slurmdbd(plan.slurm.dbd_host)  # AccountingStorageEnforce: slurmctld refuses to start without it
        t = time.perf_counter()
        h.start_slurmctld()
        h.wait_for("sinfo", lambda: h.run("sinfo", "-h").returncode == 0, timeout=300)
        return f"{time.perf_counter() - t:.2f} s until sinfo answers ({plan.host_count:,} hosts, {name})"
    finally:
        h.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def opensm_twin(root: Path) -> str:
    sys.path.insert(0, str(root / "tests" / "integration"))
    sys.path.insert(0, str(root / "tests"))
    import test_fabric_twin as twin_mod

    if not (shutil.which("ibsim") and shutil.which("opensm") and os.path.exists(twin_mod.UMAD2SIM)):
        return "skipped: ibsim-utils and opensm are not installed"
    tmp = Path(tempfile.mkdtemp(prefix="gpucloud-bench-twin-"))
    try:
        plan, fabric = twin_mod._write_plan("mid", tmp)
        sm_host = next(e.desc for e in fabric.endpoints if fabric.switches[e.leaf].subnet == 0
                       and (e.host in fabric.subnets[0].sm_hosts or not fabric.subnets[0].sm_hosts))
        twin = twin_mod.Twin(tmp, tmp / "topology.net", sm_host)
        try:
            t = time.perf_counter()
            out = twin.tool("opensm", "-F", str(tmp / "opensm.conf"), "--once", check=False)
            dt = time.perf_counter() - t
            log = (tmp / "opensm.log").read_text(errors="replace") if (tmp / "opensm.log").exists() else out.stdout
            ok = "ftree tables configured on all switches" in log
            return (f"{dt:.2f} s for one sweep of the mid twin ({len(fabric.switches)} switches, "
                    f"{len(fabric.endpoints)} HCAs); ftree {'configured every switch' if ok else 'did NOT finish'}")
        finally:
            twin.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(root: Path) -> dict[str, str]:
    out = {}
    for label, fn in (("pulumi mocks, one colossus pod stack", pulumi_pod_stack),
                      ("ansible-inventory --list, colossus-100k", ansible_inventory),
                      ("slurmctld start-up, ishikari config", slurmctld_startup),
                      ("slurmctld start-up, colossus-100k config", lambda r: slurmctld_startup(r, "colossus-100k")),
                      ("opensm ftree on the mid-size twin", opensm_twin)):
        try:
            out[label] = fn(root)
        except Exception as exc:  # a benchmark reports what broke and goes on
            out[label] = f"error: {exc.__class__.__name__}: {exc}".splitlines()[0]
            traceback.print_exc(file=sys.stderr)
    return out
