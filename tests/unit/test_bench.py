"""Every benchmark runs as its docstring says, `python bench/X.py` from the repository root, and prints its figures.

Each runs in its smallest mode, in a plain process: no PYTHONPATH and nothing of pytest's sys.path, as a person
would start it. Only that it runs and prints figures is asserted, never a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

BENCH = ROOT / "bench"
# Imported by the benchmarks, not run on their own.
HELPERS = {"__init__.py", "_peak.py", "consumers.py"}

# script -> (smallest arguments, a line its figures must match, marks)
RUNS = {
    # Starts kea-dhcp4 on a loopback port: a daemon test, under the integration lock.
    "bench_dhcp.py": (["--example", "lab", "--clients", "3"], r"leases/s\s+[\d,]+", (pytest.mark.integration,)),
    "bench_diff.py": (["clusters/lab.yaml"], r"whole process gpucloud diff\s+\d+\.\d+ s \(exit 1\)", ()),
    "bench_validate.py": (["2000"], r"2,000\s+\S+MB text\s+\d+\.\d+s", ()),
    "bench_fabric.py": (["clusters/lab.yaml"], r"compute: \d+ leaf .* plan \d+\.\d+ s CPU", ()),
    "bench_ethernet.py": (["--nodes", "64"], r"ethernet: 64 nodes, 8 leaf, 4 spine, .* plan \d+\.\d+ s CPU",
                          ()),
    "bench_inventory.py": (["--quick", "clusters/lab.yaml"], r"ansible-inventory --graph\s+wall\s+\d+\.\d+ s", ()),
    "run.py": (["--quick", "--only", "lab", "--repeat", "1", "--json", "{tmp}/latest.json"],
               r"plan_process_s\s+\d+\.\d+ m?s", ()),
    # Starts sshd on loopback aliases: a daemon test, under the integration lock.
    "bench_verify.py": (["--hosts", "4", "--parallel", "4", "--no-floor"], r"verify --parallel 4: 4 hosts in \d+\.\d+ s",
                        (pytest.mark.integration,)),
    # Starts sushy-emulator BMCs and runs the Pulumi engine that scripts/build-pulumi.sh builds; the pod mode (a
    # colossus-100k pod stack cut to 4 nodes) runs the same steps as the lab's.
    "bench_pulumi_engine.py": (["--pod", "4"], r"up \(no changes\)\s+\d+\.\d+", (pytest.mark.integration,)),
}


def test_every_benchmark_is_run_here():
    scripts = {p.name for p in BENCH.glob("*.py")} - HELPERS
    assert scripts == set(RUNS), "add the new benchmark's smallest run to RUNS"


@pytest.mark.slow
@pytest.mark.parametrize("script", [pytest.param(s, marks=RUNS[s][2]) for s in sorted(RUNS)])
def test_benchmark_runs_as_documented(script, tmp_path):
    args, figures, _marks = RUNS[script]
    doc = (BENCH / script).read_text().split('"""')[1]
    assert f"python bench/{script}" in doc, "the docstring says how to run it"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, f"bench/{script}", *[a.format(tmp=tmp_path) for a in args]], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert re.search(figures, res.stdout), res.stdout[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
