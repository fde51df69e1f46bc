"""Benchmark: `gpucloud diff` on the 100,000-GPU example with one pool grown by a scalable unit (figures printed,
nothing asserted).

    python bench/bench_diff.py [spec]      # default: clusters/colossus-100k.yaml

Prints the time of each stage (plan both sides, compare, Markdown, JSON), the number of changes, and the whole
`python -m gpucloud diff OLD NEW` process, so linear behaviour can be checked against the plan time itself.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpucloud.diff import compare, report  # noqa: E402
from gpucloud.diff.inputs import document_of  # noqa: E402
from gpucloud.pipeline import check_spec  # noqa: E402


def timed(label: str, fn):
    t0 = time.perf_counter()
    value = fn()
    print(f"  {label:34} {time.perf_counter() - t0:7.2f} s")
    return value


def main(spec: Path) -> None:
    data = yaml.safe_load(spec.read_text())
    grown = next(p for p in data["node_pools"] if "compute" in p.get("roles", ["compute"]))
    su = next(iter(data.get("fabric", {}).values()), {}).get("scalable_unit", 32)
    grown["count"] += su
    with tempfile.TemporaryDirectory() as tmp:
        new = Path(tmp) / spec.name
        new.write_text(yaml.safe_dump(data, sort_keys=False))
        print(f"{spec.name}: pool {grown['name']} grown by {su} to {grown['count']:,} hosts")
        old_doc = timed("check + plan + plan.json (old)", lambda: document_of(check_spec(spec)))
        new_doc = timed("check + plan + plan.json (new)", lambda: document_of(check_spec(new)))
        diff = timed("compare", lambda: compare(old_doc, new_doc, "old", "new"))
        md = timed("markdown", lambda: report.markdown(diff))
        js = timed("json", lambda: report.as_json(diff))
        print(f"  changes {len(diff.changes)}, derived {len(diff.derived)}, exit {diff.exit_code}, "
              f"markdown {len(md):,} B, json {len(js):,} B, hosts compared {len(new_doc['hosts']):,}")
        print(f"  peak memory (this process)          {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MB")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "gpucloud", "diff", str(spec), str(new)], env=env,
                              capture_output=True, text=True)
        print(f"  whole process gpucloud diff        {time.perf_counter() - t0:7.2f} s (exit {proc.returncode})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "clusters" / "colossus-100k.yaml")
