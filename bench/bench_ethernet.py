"""Ethernet (RoCE) fabric: planner and SONiC renderer time for a SAKURAONE-shaped spec of any size, and optionally the
FRR twin (one namespace per switch) with its convergence time and memory.

    python bench/bench_ethernet.py --nodes 512                 # plan + render only
    flock /tmp/gpucloud-integration.lock python bench/bench_ethernet.py --nodes 256 --twin   # root, apt: frr lldpd

The twin raises net.ipv4/ipv6.neigh.default.gc_thresh* to fit its cables while it runs; ~150 switches is the memory ceiling
of a 24 GiB machine. Nothing here is asserted; figures go to docs/fabric.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from gpucloud.pipeline import check_spec  # noqa: E402
from gpucloud.plan import build_plan  # noqa: E402
from gpucloud.render import ethernet  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--twin", action="store_true", help="also run the FRR twin (root, frr, lldpd)")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    spec = check_spec(ROOT / "clusters" / "sakuraone.yaml").spec
    spec = dataclasses.replace(spec, pools=tuple(dataclasses.replace(p, count=args.nodes) if p.name == "gpu" else p
                                                 for p in spec.pools))
    t0 = time.process_time()
    plan = build_plan(spec)
    t1 = time.process_time()
    files = ethernet.render(plan)
    t2 = time.process_time()
    if not plan.ethernet:
        print(f"ethernet: {args.nodes} nodes: no fabric planned (run gpucloud validate on the spec)")
        return 1
    fp = plan.ethernet[0]
    print(f"ethernet: {args.nodes} nodes, {fp.count(1)} leaf, {fp.count(2)} spine, {len(fp.links)} leaf-spine cables; "
          f"plan {t1 - t0:.2f} s CPU, render {t2 - t1:.2f} s CPU, {len(files)} files, "
          f"{sum(map(len, files.values())) / 1e6:.1f} MB")
    if not args.twin:
        return 0
    from ethernet_twin import Twin, available

    why = available()
    if why:
        print(f"twin: skipped: {why}")
        return 1
    twin = Twin(fp, files)
    ok = False
    try:
        start = time.monotonic()
        twin.start()
        leaves = [s for s in fp.switches if s.tier == 1]

        def converged() -> bool:
            for leaf in leaves:
                routes = twin.ecmp(leaf.name)  # one vtysh call per leaf
                if any(routes.get(o.subnet, (0, 0))[0] != fp.ecmp_paths for o in leaves if o is not leaf):
                    return False
            return True

        ok = twin.wait(converged, timeout=args.timeout, step=1)
        print(f"twin: {len(fp.switches)} switches {'converged to full ECMP' if ok else 'did NOT converge'} in "
              f"{time.monotonic() - start:.1f} s; daemons' RSS {twin.memory_kib() / 1024:.0f} MiB")
        return 0 if ok else 1
    finally:
        twin.stop(keep_logs=not ok)
        if not ok:
            print(f"twin: daemons' logs kept in {twin.root}")


if __name__ == "__main__":
    sys.exit(main())
