"""Benchmark: fabric planning and rendering for the example specs (figures printed, nothing asserted).

    python bench/bench_fabric.py [spec ...]      # default: clusters/colossus-100k.yaml

Reports, per fabric: switches, cables, endpoints, plan time, render time (cabling.csv, topology.net, ...), bytes
written, the growth headroom plan.md shows (two-tier fabrics: a search with the planner's arithmetic, then the next
node planned to count the cables it moves), and the process's peak memory.
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpucloud.plan.fabric import headroom, plan_fabric, summary  # noqa: E402
from gpucloud.plan.hosts import plan_hosts  # noqa: E402
from gpucloud.render import fabric as render_fabric  # noqa: E402
from gpucloud.render import slurm_topology  # noqa: E402
from gpucloud.spec import load  # noqa: E402


@contextmanager
def timed(out: dict, key: str):
    """Wall and CPU seconds of a block: on a shared machine the CPU figure is the one to compare."""
    w, c = time.perf_counter(), time.process_time()
    yield
    out[key] = f"{time.process_time() - c:.2f} s CPU / {time.perf_counter() - w:.2f} s wall"


def bench(path: Path) -> None:
    t: dict[str, str] = {}
    with timed(t, "load"):
        spec = load(path).spec
    with timed(t, "hosts"):
        pools = plan_hosts(spec)
    print(f"{path.name}: load {t['load']}, hosts {t['hosts']}")
    for name in sorted(spec.fabrics):
        with timed(t, "plan"):
            fp = plan_fabric(spec, pools, name)
        s = summary(fp)
        cables = sum(s["cables"].values())
        print(f"  {name}: {s['leaf']} leaf + {s['spine']} spine + {s['core']} core switches, {cables:,} cables, "
              f"{s['endpoints']:,} HCA ports, {len(fp.subnets)} subnet(s), {s['tiers']} tiers: plan {t['plan']}")

        class _Plan:  # the renderers read only these attributes
            pass

        plan = _Plan()
        plan.spec, plan.pools, plan.fabrics = spec, pools, (fp,)
        with timed(t, "render"):
            files = render_fabric.render(plan)
        size = sum(len(v) for v in files.values())
        print(f"    render {t['render']}: {len(files)} files, {size / 1e6:.1f} MB "
              f"(cabling.csv {len(files[f'fabric/{name}/cabling.csv']) / 1e6:.1f} MB)")
        with timed(t, "headroom"):
            room = headroom(spec, name, pools, planned=fp)
        if room is not None:
            print(f"    headroom {t['headroom']}: pool {room.pool} takes {room.nodes:,} more node(s); the next moves "
                  f"{room.moved:,} of {room.links:,} links")
        if name == "compute":
            with timed(t, "topology"):
                topo = slurm_topology.topology_conf(plan)
            print(f"    topology.conf {t['topology']}, {len(topo.splitlines())} lines")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"  peak RSS {usage.ru_maxrss / 1024:.0f} MB, process CPU so far {usage.ru_utime + usage.ru_stime:.2f} s")


if __name__ == "__main__":
    for arg in sys.argv[1:] or [str(ROOT / "clusters" / "colossus-100k.yaml")]:
        bench(Path(arg))
