"""gpucloud benchmarks: plan time and memory from 2 to 100,000 GPUs, scaling ratios, and the real consumers.

    python bench/run.py                 # everything; prints a table, writes bench/results/latest.json
    python bench/run.py --quick         # fewer repetitions, no external consumers
    python bench/run.py --only lab,ishikari
    python bench/run.py --quick --only lab --repeat 1   # the smallest run: one example, one repetition

These are measurements, not tests: nothing here passes or fails on a time. Targets reported against (issue text):
the full offline plan of 100,000 GPUs in <= 5 s and <= 500 MB on a 2-core machine, a 2N/N scaling ratio <= 2.1,
and validating the lab spec in <= 0.5 s as a whole process.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import consumers  # noqa: E402

EXAMPLES = ["lab", "ishikari", "abci3", "hokkaido-10k", "colossus-100k"]
TARGETS = {"plan_100k_s": 5.0, "plan_100k_mb": 500.0, "scaling_ratio": 2.1, "validate_lab_s": 0.5}
PEAK = ROOT / "bench" / "_peak.py"


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        # Start every run from a collected heap: otherwise the previous run's plan (hundreds of thousands of
        # objects for colossus) is still alive when this one starts, and its garbage collection is billed here.
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def process(args: list[str], repeat: int) -> tuple[float, float]:
    """Median wall time of a whole `python -m gpucloud ...` process, and its peak RSS in MB (via bench/_peak.py)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "gpucloud", *args], env=env, cwd=ROOT, check=False,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - t0)
        if res.returncode != 0:  # a failing command is fast, not a figure
            raise SystemExit(f"gpucloud {' '.join(args)} exited {res.returncode}:\n{res.stderr[-2000:]}")
    out = subprocess.run([sys.executable, str(PEAK), *args], env=env, cwd=ROOT, capture_output=True, text=True)
    peak = float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else float("nan")
    return statistics.median(times), peak


def stages(spec_path: Path, repeat: int) -> dict:
    """In-process timings of each stage: load+schema+model, checks, every planner, every renderer."""
    from gpucloud import plan as plan_pkg
    from gpucloud import render
    from gpucloud.checks import run_checks
    from gpucloud.spec import load

    row: dict = {}
    row["load_schema_model_s"] = median_time(lambda: load(spec_path), repeat)
    spec = load(spec_path).spec
    row["checks_s"] = median_time(lambda: run_checks(spec), repeat)
    row["plan.hosts_s"] = median_time(lambda: plan_pkg.plan_hosts(spec), repeat)
    pools = plan_pkg.plan_hosts(spec)
    for name, fn in plan_pkg.STAGES:
        row[f"plan.{name}_s"] = median_time(lambda fn=fn: fn(spec, pools), repeat)
    plan = plan_pkg.build_plan(spec)
    row["plan_total_s"] = median_time(lambda: plan_pkg.build_plan(spec), repeat)
    import importlib

    total_bytes = 0
    files: dict = {}
    # Same order as render_all: renderers that read the others' files (Pulumi triggers, plan.md) come last.
    ordered = sorted(render.RENDERERS, key=lambda mn: getattr(getattr(importlib.import_module(mn[0]), mn[1]),
                                                              "reads_rendered", False))
    for module, fn_name in ordered:
        fn = getattr(importlib.import_module(module), fn_name)
        late = getattr(fn, "reads_rendered", False)
        call = (lambda fn=fn: fn(plan, dict(files))) if late else (lambda fn=fn: fn(plan))
        short = module.rsplit(".", 1)[-1]
        row[f"render.{short}_s"] = median_time(call, repeat)
        out = call()
        files.update(out)
        total_bytes += sum(len(b) for b in out.values())
    row["output_bytes"] = total_bytes
    row["nodes"] = plan.host_count
    row["gpus"] = plan.gpu_count
    row["output_bytes_per_node"] = round(total_bytes / max(plan.host_count, 1))
    return row


def scaling(repeat: int) -> list[dict]:
    """Plan+render time of the colossus spec cut to N nodes, for N and 2N."""
    import yaml

    from gpucloud import plan as plan_pkg
    from gpucloud.render import render_all
    from gpucloud.spec.model import build

    base = yaml.safe_load((ROOT / "clusters" / "colossus-100k.yaml").read_text())

    def timed(n: int) -> float:
        data = copy.deepcopy(base)
        data["node_pools"][0]["count"] = n
        for t in data.get("tenants", []):
            t.pop("gpu_limit", None)
        spec = build(data)
        return median_time(lambda: render_all(plan_pkg.build_plan(spec)), repeat)

    rows = []
    for n in (1000, 2000, 4000, 6250):
        t1, t2 = timed(n), timed(2 * n)
        rows.append({"n": n, "t_n_s": t1, "t_2n_s": t2, "ratio": t2 / t1})
    return rows


def fmt(key: str, v) -> str:
    if key.endswith("_mb"):
        return f"{v:9.1f} MB"
    if key.endswith("_s"):
        return f"{v * 1000:9.1f} ms" if v < 1 else f"{v:9.2f} s"
    return f"{v:>12,}" if isinstance(v, int) else f"{v:>12}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions; skip external consumers")
    ap.add_argument("--only", default="", help="comma-separated example names")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"))
    ap.add_argument("--scaling-only", action="store_true", help="only the 2N/N scaling series")
    ap.add_argument("--repeat", type=int, default=0, help="repetitions per figure [default: 3 with --quick, else 5]")
    args = ap.parse_args()
    repeat = args.repeat if args.repeat > 0 else 3 if args.quick else 5
    names = [n for n in EXAMPLES if not args.only or n in args.only.split(",")]
    unknown = sorted(set(filter(None, args.only.split(","))) - set(EXAMPLES))
    if unknown:
        ap.error(f"--only: unknown example(s) {', '.join(unknown)}; choose from {', '.join(EXAMPLES)}")

    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "targets": TARGETS, "examples": {}, "scaling": [], "consumers": {},
    }
    for name in ([] if args.scaling_only else names):
        spec = ROOT / "clusters" / f"{name}.yaml"
        row = stages(spec, repeat)
        row["validate_process_s"], row["validate_peak_mb"] = process(["validate", str(spec)], repeat)
        with tempfile.TemporaryDirectory() as tmp:
            row["plan_process_s"], row["plan_peak_mb"] = process(["plan", str(spec), "--out", f"{tmp}/p"], repeat)
        result["examples"][name] = row
        print(f"\n== {name}: {row['nodes']:,} nodes, {row['gpus']:,} GPUs")
        for key, value in row.items():
            print(f"  {key:32} {fmt(key, value)}")

    if not args.only:
        result["scaling"] = scaling(args.repeat if args.repeat > 0 else 2 if args.quick else 3)
        print("\n== scaling (plan + render, colossus spec cut to N nodes)")
        for r in result["scaling"]:
            print(f"  N={r['n']:>6}  t(N)={fmt('_s', r['t_n_s'])}  t(2N)={fmt('_s', r['t_2n_s'])}  ratio={r['ratio']:.2f}")
    if not args.quick and not args.scaling_only:
        result["consumers"] = consumers.run_all(ROOT)
        print("\n== real consumers")
        for key, value in result["consumers"].items():
            print(f"  {key:40} {value}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
