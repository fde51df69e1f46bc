"""Benchmark: fabric planning and rendering for the example specs (figures printed, nothing asserted).

    python bench/bench_fabric.py [spec ...]      # default: clusters/colossus-100k.yaml

Reports, per fabric: switches, cables, endpoints, plan time, render time (cabling.csv, topology.net, ...), bytes
written, and the process's peak memory.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpucloud.plan.fabric import plan_fabric, summary  # noqa: E402
from gpucloud.plan.hosts import plan_hosts  # noqa: E402
from gpucloud.render import fabric as render_fabric  # noqa: E402
from gpucloud.render import slurm_topology  # noqa: E402
from gpucloud.spec import load  # noqa: E402


def bench(path: Path) -> None:
    t0 = time.perf_counter()
    spec = load(path).spec
    t1 = time.perf_counter()
    pools = plan_hosts(spec)
    t2 = time.perf_counter()
    print(f"{path.name}: load {t1 - t0:.2f} s, hosts {t2 - t1:.2f} s")
    for name in sorted(spec.fabrics):
        t3 = time.perf_counter()
        fp = plan_fabric(spec, pools, name)
        t4 = time.perf_counter()
        s = summary(fp)
        cables = sum(s["cables"].values())
        print(f"  {name}: {s['leaf']} leaf + {s['spine']} spine + {s['core']} core switches, {cables:,} cables, "
              f"{s['endpoints']:,} HCA ports, {len(fp.subnets)} subnet(s), {s['tiers']} tiers: plan {t4 - t3:.2f} s")

        class _Plan:  # the renderers read only these attributes
            pass

        plan = _Plan()
        plan.spec, plan.pools, plan.fabrics = spec, pools, (fp,)
        t5 = time.perf_counter()
        files = render_fabric.render(plan)
        t6 = time.perf_counter()
        size = sum(len(v) for v in files.values())
        print(f"    render {t6 - t5:.2f} s: {len(files)} files, {size / 1e6:.1f} MB "
              f"(cabling.csv {len(files[f'fabric/{name}/cabling.csv']) / 1e6:.1f} MB)")
        if name == "compute":
            t7 = time.perf_counter()
            topo = slurm_topology.topology_conf(plan)
            print(f"    topology.conf {time.perf_counter() - t7:.2f} s, {len(topo.splitlines())} lines")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"  peak RSS {usage.ru_maxrss / 1024:.0f} MB, CPU {usage.ru_utime + usage.ru_stime:.2f} s "
          f"(wall times above include waiting for a busy machine)")


if __name__ == "__main__":
    for arg in sys.argv[1:] or [str(ROOT / "clusters" / "colossus-100k.yaml")]:
        bench(Path(arg))
