#!/usr/bin/env python3
"""Sampled mutation testing: does the fast test suite notice a plausible one-line bug?

Each entry of MUTANTS is one bug a person could plausibly write (an off-by-one comparison, a dropped default, a
min that became max, a missing sort). The script copies the working tree to a temporary folder, applies one mutant
at a time there (the working tree is never touched), runs the fast tests of that mutant's area with ``-x`` and
records whether a test failed (killed) or all passed (survived). A survivor is a missing test.

    nice -n 19 python scripts/mutants.py            # every mutant, the score at the end; exit 1 below --min
    python scripts/mutants.py --list                # the sample, and whether each line still exists
    python scripts/mutants.py slurm-realmemory-floor verify-drain-flag   # some mutants only
    python scripts/mutants.py --all-tests ...       # every fast test for each mutant (slower)
    python scripts/mutants.py --tests tests/unit/test_x.py ID ...   # does this file alone kill these mutants?

A mutant whose original line is no longer in its file is reported as stale and fails the run: edit its entry when
the code it mutates changes. The script lowers its own priority and runs one pytest at a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The fast tests (no daemons) that cover each area; tests/unit/test_survivors_*.py hold the tests this sample asked for.
AREAS = {
    "hosts": ["tests/unit/test_hosts.py", "tests/unit/test_checks.py"],
    "checks": ["tests/unit/test_checks.py", "tests/unit/test_survivors_checks.py"],
    "slurm": ["tests/unit/test_slurm_plan.py", "tests/golden/test_slurm_golden.py", "tests/unit/test_slurm_impact.py",
              "tests/unit/test_survivors_slurm.py", "tests/unit/test_slurm_settings.py"],
    "slurm-checks": ["tests/unit/test_checks.py", "tests/unit/test_slurm_plan.py",
                     "tests/unit/test_survivors_slurm.py", "tests/unit/test_slurm_settings.py"],
    "fabric": ["tests/unit/test_fabric_plan.py", "tests/unit/test_fabric_render.py",
               "tests/unit/test_survivors_fabric.py"],
    "fabric-checks": ["tests/unit/test_checks.py", "tests/unit/test_fabric_plan.py",
                      "tests/unit/test_survivors_fabric.py"],
    "storage": ["tests/unit/test_storage_plan.py", "tests/golden/storage/test_storage_golden.py",
                "tests/unit/test_storage_impact.py", "tests/unit/test_survivors_storage.py"],
    "storage-checks": ["tests/unit/test_checks.py", "tests/unit/test_storage_plan.py",
                       "tests/unit/test_survivors_storage.py"],
    "review": ["tests/unit/test_plan_md.py", "tests/unit/test_diagrams.py", "tests/golden/review/test_review_golden.py",
               "tests/unit/test_survivors_fabric.py"],
    "diff": ["tests/unit/test_diff.py", "tests/unit/test_survivors_diff.py"],
    "nvlink": ["tests/unit/test_nvl72.py", "tests/golden/test_slurm_golden.py"],
    "verify": ["tests/unit/test_verify_compare.py", "tests/unit/test_verify_parse.py",
               "tests/unit/test_survivors_verify.py"],
    "rollout": ["tests/unit/test_rollout_plan.py", "tests/unit/test_rollout_steps.py"],
}
# --all-tests: every fast test file except the property tests (minutes of random specs per mutant).
FAST = ["tests/unit", "tests/golden", "--deselect", "tests/unit/test_properties.py"]

# (id, file, original text (must occur exactly once), mutated text, area)
MUTANTS: list[tuple[str, str, str, str, str]] = [
    # plan/hosts.py
    ("hosts-rack-number", "gpucloud/plan/hosts.py", "number = rack.first + p // per_rack",
     "number = rack.first + p % per_rack", "hosts"),
    ("hosts-slot", "gpucloud/plan/hosts.py", "slot = p % per_rack", "slot = p // per_rack", "hosts"),
    ("hosts-rack-unit", "gpucloud/plan/hosts.py", "u=rack.first_u + slot * height", "u=rack.first_u + slot", "hosts"),
    ("hosts-block-zero", "gpucloud/plan/hosts.py", "return start + (pool_id + 1) * size",
     "return start + pool_id * size", "hosts"),
    ("hosts-block-capacity", "gpucloud/plan/hosts.py", "return (1 << (32 - net.pool_prefix)) - 2",
     "return (1 << (32 - net.pool_prefix)) - 1", "hosts"),
    # plan/slurm.py and its rendering
    ("slurm-realmemory-floor", "gpucloud/plan/slurm.py",
     "reserve = max(MEMORY_RESERVE_MIN_MIB, int(mem * MEMORY_RESERVE_FRACTION))",
     "reserve = int(mem * MEMORY_RESERVE_FRACTION)", "slurm"),
    ("slurm-realmemory-round", "gpucloud/plan/slurm.py", "return (mem - reserve) // 1024 * 1024",
     "return mem - reserve", "slurm"),
    ("slurm-allow-owners", "gpucloud/plan/slurm.py", "allowed = {o for name in p.pools for o in owners.get(name, ())}",
     "allowed: set[str] = set()", "slurm"),
    ("slurm-partition-gpus", "gpucloud/plan/slurm.py", "gpus=sum(g.count * g.gpus for g in members)",
     "gpus=sum(g.gpus for g in members)", "slurm"),
    ("slurm-accounts-sorted", "gpucloud/plan/slurm.py", "return tuple(sorted(out, key=lambda a: a.name))",
     "return tuple(out)", "slurm"),
    ("slurm-block-plugin", "gpucloud/plan/slurm.py", '"block": "topology/block"}', '"block": "topology/tree"}',
     "slurm"),
    # rack-scale NVLink (NVL72)
    ("nvlink-domain-per-rack", "gpucloud/plan/hosts.py", "racks.setdefault(h.rack_number, []).append(h)",
     "racks.setdefault(0, []).append(h)", "nvlink"),
    ("nvlink-block-base-min", "gpucloud/render/slurm_topology.py", "base = min([sp.block_size,",
     "base = max([sp.block_size,", "nvlink"),
    ("nvlink-gres-grace", "gpucloud/plan/slurm.py", 'if m.cpu_arch != "x86_64":', 'if m.cpu_arch == "aarch32":',
     "nvlink"),
    ("nvlink-slg-spine-uplinks", "gpucloud/plan/fabric.py", "uplinks = max(uplinks, len(members) * m)",
     "uplinks = max(uplinks, len(members))", "nvlink"),
    ("nvlink-rack-domain-check", "gpucloud/checks/nvlink.py", "if pool.rack.nodes_per_rack != trays:",
     "if pool.rack.nodes_per_rack > trays:", "nvlink"),
    ("slurm-defcpu-min", "gpucloud/render/slurm.py", "DefCpuPerGPU={min(", "DefCpuPerGPU={max(", "slurm"),
    ("slurm-defmem-min", "gpucloud/render/slurm.py", "DefMemPerGPU={min(", "DefMemPerGPU={max(", "slurm"),
    ("slurm-setting-case", "gpucloud/render/slurm.py", "lower = key.lower()", "lower = key", "slurm"),
    ("slurm-setting-impact-case", "gpucloud/plan/slurm_impact.py", "name = _BY_LOWER.get(key.lower())",
     "name = _BY_LOWER.get(key)", "slurm"),
    # checks/slurm.py
    ("slurm-default-time-equal", "gpucloud/checks/slurm.py", "(d is None or d > m)", "(d is None or d >= m)",
     "slurm-checks"),
    ("slurm-block-version", "gpucloud/checks/slurm.py", "v < BLOCK_TOPOLOGY_SINCE", "v <= BLOCK_TOPOLOGY_SINCE",
     "slurm-checks"),
    ("slurm-tree-no-fabric", "gpucloud/checks/slurm.py", 'if s.topology == "tree" and not spec.fabrics:',
     'if s.topology == "block" and not spec.fabrics:', "slurm-checks"),
    ("slurm-setting-owned-case", "gpucloud/checks/slurm_settings.py", "if key.lower() in table:",
     "if key in table:", "slurm-checks"),
    # checks/racks.py
    ("racks-top-unit", "gpucloud/checks/racks.py", "if top > RACK_UNITS:", "if top >= RACK_UNITS:", "checks"),
    ("racks-clash-touching", "gpucloud/checks/racks.py", "return (lo, hi) if lo <= hi else None",
     "return (lo, hi) if lo < hi else None", "checks"),
    ("racks-full-tail", "gpucloud/checks/racks.py", "tail = rest or per", "tail = rest", "checks"),
    # checks/networks.py, pools.py, tenants.py, names.py
    ("networks-overlap-edge", "gpucloud/checks/networks.py",
     "if furthest is not None and int(net.cidr.network_address) <= int(furthest.cidr.broadcast_address):",
     "if furthest is not None and int(net.cidr.network_address) < int(furthest.cidr.broadcast_address):", "checks"),
    ("networks-overlap-furthest", "gpucloud/checks/networks.py",
     "if furthest is None or int(net.cidr.broadcast_address) > int(furthest.cidr.broadcast_address):",
     "if furthest is None:", "checks"),
    ("networks-last-block", "gpucloud/checks/networks.py", "if pool.id + 1 >= blocks:", "if pool.id + 1 > blocks:",
     "checks"),
    ("networks-block-full", "gpucloud/checks/networks.py", "elif pool.count > capacity:",
     "elif pool.count >= capacity:", "checks"),
    ("pools-exclude-end", "gpucloud/checks/pools.py", "if not pool.start <= i < pool.start + pool.count)",
     "if not pool.start <= i <= pool.start + pool.count)", "checks"),
    ("tenants-gpu-limit-equal", "gpucloud/checks/tenants.py", "tenant.gpu_limit > total:",
     "tenant.gpu_limit >= total:", "checks"),
    ("tenants-partition-reach", "gpucloud/checks/tenants.py", "counts = [gpus.get(p, 0) for p in reach]",
     "counts = [gpus.get(p, 0) for p in tenant.pools]", "checks"),
    ("names-label-length", "gpucloud/checks/names.py", "if len(last) > MAX_LABEL:", "if len(last) >= MAX_LABEL:",
     "checks"),
    # plan/fabric.py, checks/fabric.py, render/fabric.py, the spec's fabric order
    ("fabric-uplinks-ceil", "gpucloud/plan/fabric.py", "up = ceil(su / (taper * step))", "up = su // (taper * step)", "fabric"),
    ("fabric-two-tiers-edge", "gpucloud/plan/fabric.py", "tiers = 2 if biggest <= kp else 3",
     "tiers = 2 if biggest < kp else 3", "fabric"),
    ("fabric-rail-of-port", "gpucloud/plan/fabric.py", "rail = n % rails if rail_opt else -1",
     "rail = n // rails if rail_opt else -1", "fabric"),
    ("fabric-divisor-range", "gpucloud/plan/fabric.py", "for d in range(max(1, low), n + 1):",
     "for d in range(max(1, low) + 1, n + 1):", "fabric"),
    ("fabric-default-pkey", "gpucloud/plan/fabric.py", "DEFAULT_PKEY = 0x7FFF", "DEFAULT_PKEY = 0xFFFF", "fabric"),
    ("fabric-pkey-membership-bit", "gpucloud/checks/fabric.py",
     "if tenant.pkey is not None and (tenant.pkey & 0x7FFF) in reserved:",
     "if tenant.pkey is not None and tenant.pkey in reserved:", "fabric-checks"),
    ("fabric-su-radix-edge", "gpucloud/checks/fabric.py", "if sh.su > sh.down:",
     "if sh.su >= sh.down:", "fabric-checks"),
    ("fabric-partition-name", "gpucloud/render/fabric.py", 'c.isalnum() or c == "_" else "_"',
     'c.isalnum() or c in "_-" else "_"', "fabric"),
    ("fabric-spec-order", "gpucloud/plan/fabric.py", "for name in sorted(spec.fabrics)", "for name in spec.fabrics",
     "review"),
    # plan/storage.py, checks/storage.py
    ("storage-raid-default", "gpucloud/plan/storage.py", 'raid=fs.settings.get("raid", "raid0")',
     'raid=fs.settings.get("raid", "none")', "storage"),
    ("storage-md-one-drive", "gpucloud/plan/storage.py", 'if self.raid == "raid0" and len(self.devices) > 1',
     'if self.raid == "raid0" and len(self.devices) >= 1', "storage"),
    ("storage-capacity-none", "gpucloud/plan/storage.py",
     'used = self.devices if self.raid != "none" else self.devices[:1]', "used = self.devices", "storage"),
    ("storage-lnet-default", "gpucloud/plan/storage.py",
     '("storage" if "storage" in spec.fabrics else "compute")', '"compute"', "storage"),
    ("storage-local-drives-default", "gpucloud/checks/storage.py", 'fs.settings.get("raid", "raid0") == "raid0"',
     'fs.settings.get("raid") == "raid0"', "storage-checks"),
    ("storage-overcommit-equal", "gpucloud/checks/storage.py", "if total > fs.capacity * ratio:",
     "if total >= fs.capacity * ratio:", "storage-checks"),
    # diff/intent.py: impact classes
    ("diff-cluster-name", "gpucloud/diff/intent.py", '"cluster_name": (Impact.DESTROYS_DATA, _CTL,',
     '"cluster_name": (Impact.RESTART, _CTL,', "diff"),
    ("diff-mtu", "gpucloud/diff/intent.py", '"mtu": (Impact.DRAIN_REBOOT, _ALL,', '"mtu": (Impact.RESTART, _ALL,',
     "diff"),
    ("diff-vlan", "gpucloud/diff/intent.py", '"vlan": (Impact.DRAIN_REBOOT, _ALL,',
     '"vlan": (Impact.RECONFIGURE, _ALL,', "diff"),
    ("diff-ipoib-mode", "gpucloud/diff/intent.py", '"mode": (Impact.DRAIN_REBOOT, _ALL,',
     '"mode": (Impact.RESTART, _ALL,', "diff"),
    # verify/compare.py
    ("verify-drain-flag", "gpucloud/verify/compare.py", 'BAD_SLURM_STATES = ("DOWN", "DRAIN", "DRAINED",',
     'BAD_SLURM_STATES = ("DOWN", "DRAINED",', "verify"),
    ("verify-state-flags", "gpucloud/verify/compare.py", '.split("+") if s in BAD_SLURM_STATES]',
     '.split("+")[:1] if s in BAD_SLURM_STATES]', "verify"),
    ("verify-hostname-fqdn", "gpucloud/verify/compare.py", 'answered = sec.out.strip().split(".")[0]',
     "answered = sec.out.strip()", "verify"),
    # plan/rollout.py: the batches `apply --allow-replace` takes out of service together
    ("rollout-budget-floor", "gpucloud/plan/rollout.py",
     'return max(1, pool_size * int(max_unavailable.rstrip("%")) // 100)',
     'return pool_size * int(max_unavailable.rstrip("%")) // 100', "rollout"),
    ("rollout-budget-round-up", "gpucloud/plan/rollout.py",
     'return max(1, pool_size * int(max_unavailable.rstrip("%")) // 100)',
     'return max(1, -(-pool_size * int(max_unavailable.rstrip("%")) // 100))', "rollout"),
    ("rollout-default-percent", "gpucloud/plan/rollout.py", "DEFAULT_PERCENT = 10", "DEFAULT_PERCENT = 20", "rollout"),
    ("rollout-batch-number", "gpucloud/plan/rollout.py",
     "out.append(Batch(len(out) + 1, pool, tuple(members[start:start + size]), size))",
     "out.append(Batch(len(out), pool, tuple(members[start:start + size]), size))", "rollout"),
    ("rollout-batch-overlap", "gpucloud/plan/rollout.py", "tuple(members[start:start + size])",
     "tuple(members[start:start + size + 1])", "rollout"),
    ("rollout-gone-sorted", "gpucloud/plan/rollout.py",
     "members += sorted(n for n, p in gone.items() if p == name and n in wanted)",
     "members += [n for n, p in gone.items() if p == name and n in wanted]", "rollout"),
    ("rollout-orphans-sorted", "gpucloud/plan/rollout.py", "orphans = sorted(n for n in wanted if n not in placed)",
     "orphans = [n for n in wanted if n not in placed]", "rollout"),
    ("rollout-pool-budget", "gpucloud/plan/rollout.py",
     "budget(planned.pool.rollout.max_unavailable, len(hosts))", "budget(None, len(hosts))", "rollout"),
    ("rollout-rack-budget-floor", "gpucloud/plan/rollout.py", "return max(1, size // trays)",
     "return size // trays", "rollout"),
    ("rollout-rack-budget-round-up", "gpucloud/plan/rollout.py", "return max(1, size // trays)",
     "return max(1, -(-size // trays))", "rollout"),
    ("rollout-rack-peers", "gpucloud/plan/rollout.py",
     "rest = tuple(h for d in group for h in d.hosts if h not in wanted)", "rest = ()", "rollout"),
    ("rollout-racks-per-batch", "gpucloud/plan/rollout.py", "per = max(1, size // doms[0].trays) if doms else 1",
     "per = max(1, size // doms[0].trays + 1) if doms else 1", "rollout"),
    ("rollout-resume-peers", "gpucloud/stack/rollout.py",
     "back = [n for n in slurm_nodes if (n in kept or n in batch.peers) and not taken_out(before.get(n, \"\"))]",
     "back = [n for n in slurm_nodes if n in kept and not taken_out(before.get(n, \"\"))]", "rollout"),
    ("rollout-redrain-taken-out", "gpucloud/stack/rollout.py",
     "fresh = [n for n in slurm_nodes if not taken_out(before.get(n, \"\"))]", "fresh = list(slurm_nodes)", "rollout"),
    ("rollout-serial-sizes", "gpucloud/plan/rollout.py",
     "sizes += [sum(len(d.hosts) for d in group[i:i + per]) for i in range(0, len(group), per)]",
     "sizes += [per * group[0].trays for i in range(0, len(group), per)]", "rollout"),
]


def tree_files() -> list[str]:
    """Tracked files and untracked ones git does not ignore: what a fresh checkout plus new work holds."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode()
    return [p for p in out.split("\0") if p and (ROOT / p).is_file()]


def copy_tree(dest: Path) -> None:
    for rel in tree_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)


def stale(mutant) -> str | None:
    _, path, old, _, area = mutant
    if area not in AREAS:
        return f"unknown area {area!r}"
    file = ROOT / path
    if not file.is_file():
        return f"{path} does not exist"
    n = file.read_text().count(old)
    return None if n == 1 else f"{path} holds the original text {n} times (needs exactly 1)"


def run_tests(tree: Path, tests: list[str], timeout: int) -> tuple[bool, str]:
    """(passed, last lines of output) of pytest on ``tests`` inside ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    env.pop("GPUCLOUD_UPDATE_GOLDEN", None)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=",
           *tests]
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout}s"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    return proc.returncode == 0, "\n".join(lines[-3:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ids", nargs="*", help="mutant ids to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the sample and check every original line exists")
    ap.add_argument("--all-tests", action="store_true", help="run every fast test for each mutant, not its area's")
    ap.add_argument("--tests", action="append", metavar="PATH",
                    help="run this test file for every mutant instead of its area's (repeatable)")
    ap.add_argument("--min", type=float, default=90.0, help="lowest acceptable score in percent (default 90)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per mutant before it counts as killed")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run of the unmutated tests")
    ap.add_argument("-v", "--verbose", action="store_true", help="print pytest's last lines for every mutant")
    args = ap.parse_args(argv)

    known = {m[0] for m in MUTANTS}
    unknown = [i for i in args.ids if i not in known]
    if unknown:
        print(f"unknown mutant id(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if not args.ids or m[0] in args.ids]
    problems = {m[0]: stale(m) for m in chosen}
    if args.list:
        for mid, path, old, new, area in chosen:
            print(f"{mid:30} {area:15} {path}  {'STALE: ' + problems[mid] if problems[mid] else ''}")
        return 1 if any(problems.values()) else 0
    for mid, why in problems.items():
        if why:
            print(f"stale mutant {mid}: {why}", file=sys.stderr)
    if any(problems.values()):
        return 2

    try:
        os.nice(19)  # mutation runs are background work on a shared machine
    except OSError:
        pass
    with tempfile.TemporaryDirectory(prefix="gpucloud-mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)

        def tests_of(area: str) -> list[str]:
            if args.tests:
                return args.tests
            return FAST if args.all_tests else [t for t in AREAS[area] if (tree / t.split("::")[0]).exists()]

        if not args.no_baseline:
            union = sorted({t for m in chosen for t in tests_of(m[4])}) if not args.all_tests or args.tests else FAST
            ok, tail = run_tests(tree, union, args.timeout * 2)
            if not ok:
                print(f"the unmutated tests fail, so no mutant can be judged:\n{tail}", file=sys.stderr)
                return 2
        survivors = []
        for mid, path, old, new, area in chosen:
            file = tree / path
            original = file.read_text()
            file.write_text(original.replace(old, new, 1))
            start = time.monotonic()
            try:
                passed, tail = run_tests(tree, tests_of(area), args.timeout)
            finally:
                file.write_text(original)
            verdict = "SURVIVED" if passed else "killed"
            print(f"{verdict:8} {mid:30} {time.monotonic() - start:6.1f}s", flush=True)
            if args.verbose or passed:
                print("         " + tail.replace("\n", "\n         "), flush=True)
            if passed:
                survivors.append(mid)
    killed = len(chosen) - len(survivors)
    score = 100.0 * killed / len(chosen) if chosen else 100.0
    print(f"\nkilled {killed} of {len(chosen)} mutants: {score:.0f}%"
          + (f"; survivors: {', '.join(survivors)}" if survivors else ""))
    return 0 if score >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
