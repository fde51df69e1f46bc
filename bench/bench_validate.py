"""Benchmark: `gpucloud validate` on a spec with tens of thousands of findings (figures printed, nothing asserted).

    python bench/bench_validate.py [N ...]      # default: 40000 190000 findings

Each spec is the lab example with tenants holding N user names that break the schema's pattern (upper case), one
finding each: N = 190,000 makes a 3 MB spec. For text and JSON output it prints the wall time and the peak memory of
a whole `gpucloud validate` process (VmHWM, through bench/_peak.py), the bytes written, and the time per finding, so
linear behaviour shows as a constant time per finding across sizes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEAK = ROOT / "bench" / "_peak.py"
USERS_PER_TENANT = 95_000  # under the schema's maxItems for tenant users (100,000)


def spec_text(findings: int) -> str:
    lab = (ROOT / "clusters" / "lab.yaml").read_text(encoding="utf-8")
    tenants = []
    for t in range(0, findings, USERS_PER_TENANT):
        users = "".join(f"      - U{i}\n" for i in range(t, min(t + USERS_PER_TENANT, findings)))
        tenants.append(f"  - name: bulk{t // USERS_PER_TENANT}\n    partitions: [gpu]\n    users:\n{users}")
    return lab.replace("tenants:\n", "tenants:\n" + "".join(tenants), 1)


def run(spec: Path, *args: str) -> tuple[float, float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(PEAK), "validate", *args, str(spec)], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = proc.stdout.rstrip("\n").rsplit("\n", 1)
    peak = float(out[-1])
    written = len(out[0]) if len(out) > 1 else 0
    return wall, peak, written + len(proc.stderr)


def main(sizes: list[int]) -> None:
    print(f"{'findings':>9} {'spec':>8} {'output':6} {'wall':>8} {'per finding':>12} {'peak RSS':>9} {'written':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            spec = Path(tmp) / f"findings-{n}.yaml"
            spec.write_text(spec_text(n), encoding="utf-8")
            for label, args in (("text", ()), ("json", ("--output", "json"))):
                wall, peak, written = run(spec, *args)
                print(f"{n:9,} {spec.stat().st_size / 1e6:6.1f}MB {label:6} {wall:7.2f}s "
                      f"{wall / n * 1e6:9.1f} us {peak:7.0f}MB {written:11,}B")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [40_000, 190_000])
