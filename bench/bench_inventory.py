"""How long Ansible takes to load a generated inventory (a measurement, not a test).

    python bench/bench_inventory.py                       # colossus-100k (12,520 hosts)
    python bench/bench_inventory.py clusters/ishikari.yaml
    python bench/bench_inventory.py --quick clusters/lab.yaml   # only `--graph`: the smallest run
    python bench/bench_inventory.py --repeat 3            # each command three times, then the median

Renders the spec's inventory into a temporary folder, then times `ansible-inventory --graph`, `--list --export`
and `--list` with the repository's ansible.cfg, printing wall and CPU seconds (children's rusage) of each run and,
with --repeat, the median of the runs. It also prints how many variables and values (list items counted one by
one: Ansible's time goes per value and host) the first host of the largest pool gets.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# The interpreter's own ansible-inventory when the virtual environment is not activated (`.venv/bin/python bench/...`).
_SIBLING = Path(sys.executable).parent / "ansible-inventory"
ANSIBLE_INVENTORY = str(_SIBLING) if _SIBLING.exists() else (shutil.which("ansible-inventory") or "ansible-inventory")


def _timed(argv: list[str], env: dict) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(res.stdout)


def measure(plan, commands: list[list[str]], repeat: int = 1) -> list[tuple[list[str], float, float, int]]:
    """Write the plan's inventory to a temporary folder once and time each ``ansible-inventory`` command on it with
    the repository's ansible.cfg, ``repeat`` times in turn: (arguments, wall s, CPU s, output bytes) per run."""
    from gpucloud.render import inventory
    from gpucloud.write import INVENTORY, write_tree

    files = inventory.render(plan)
    tmp = Path(tempfile.mkdtemp(prefix="gpucloud-bench-inv-"))
    try:
        write_tree(tmp / plan.spec.name, {k[len("inventory/"):]: v for k, v in files.items()}, INVENTORY)
        hosts = str(tmp / plan.spec.name / "hosts.yml")
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_HOME": str(tmp / "ah")}
        return [(args, *_timed([ANSIBLE_INVENTORY, "-i", hosts, *args], env))
                for _ in range(repeat) for args in commands]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.render import inventory

    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", type=Path, default=ROOT / "clusters" / "colossus-100k.yaml")
    ap.add_argument("--quick", action="store_true", help="time only `ansible-inventory --graph`")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command (the median is printed too)")
    args = ap.parse_args()
    spec = args.spec
    start = time.perf_counter()
    checked = check_spec(spec)
    if checked.spec is None:
        sys.exit(f"{spec}: not a valid spec; run: gpucloud validate {spec}")
    plan = build_plan(checked.spec)
    files = inventory.render(plan)
    print(f"{spec.name}: {plan.host_count:,} hosts; plan + render {time.perf_counter() - start:.2f} s; "
          f"{len(files):,} files, hosts.yml {len(files['inventory/hosts.yml']):,} bytes")
    names, values = per_host(plan, files)
    print(f"  a host of the largest pool gets {names} variables, {values} values")
    commands = [["--graph"]] if args.quick else [["--graph"], ["--list", "--export"], ["--list"]]
    runs = measure(plan, commands, args.repeat)
    for argv, wall, cpu, size in runs:
        print(f"  ansible-inventory {' '.join(argv):16} wall {wall:6.1f} s  cpu {cpu:6.1f} s  output {size:,} bytes")
    if args.repeat > 1:
        for argv in commands:
            mine = [r for r in runs if r[0] == argv]
            print(f"  median of {len(mine)}: ansible-inventory {' '.join(argv):16} "
                  f"wall {statistics.median(r[1] for r in mine):6.1f} s  "
                  f"cpu {statistics.median(r[2] for r in mine):6.1f} s")


def per_host(plan, files: dict[str, bytes]) -> tuple[int, int]:
    """Variables and values (a list's items one by one) the first host of the largest pool gets from the groups
    ``all`` and its pool and from its own line."""
    from gpucloud.plan.groups import group_name
    from gpucloud.plan.layers import INVENTORY, inventory_variables

    pp = max(plan.pools, key=lambda p: len(p.hosts))
    groups, own = inventory_variables(files[INVENTORY])
    merged = {**groups.get("all", {}), **groups.get(group_name("pool", pp.pool.name), {}),
              **own.get(pp.hosts[0].name, {})}
    return len(merged), sum(len(v) if isinstance(v, (list, dict)) else 1 for v in merged.values())


if __name__ == "__main__":
    main()
