"""Benchmark: `gpucloud apply` with the real Pulumi engine; prints times, asserts nothing.

Two modes, each against sushy-emulator BMCs (one emulator per node, tests/integration/pulumi_harness.py) with the
recording stand-in for ansible-playbook, so the figures are the engine, the program and the Redfish calls, not the
playbooks:

    python bench/bench_pulumi_engine.py                 # the lab stack (4 nodes)
    python bench/bench_pulumi_engine.py --pod 4         # pod000 of colossus-100k.yaml, its GPU pool cut to 4 nodes
    python bench/bench_pulumi_engine.py --pod full      # the first pod stack of the 12,500-node spec, whole

For each step: our wall time (the whole `python -m gpucloud apply` process: spec, plan, the inline program, the
engine) and, for updates, the engine's own time as it records it in the stack's history (start to end of the
update), both also per resource of the stack. With ``--pod full`` every program run plans and renders the whole
100,000-GPU cluster before declaring its one pod; with a count the spec is that small cluster, so the figures are
the engine's and the BMCs' per-resource cost, not the planning.

The first up includes the emulators' power-on delay (the fake driver applies a power change 1-11 s after accepting
it) and the provider's 5 s polling, so it measures the BMCs as much as the engine.

Run under the integration lock (it starts daemons):
    flock /tmp/gpucloud-integration.lock python bench/bench_pulumi_engine.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from gpucloud.stack import apply  # noqa: E402
from pulumi_harness import USER, Lab  # noqa: E402

POD_SPEC = ROOT / "clusters" / "colossus-100k.yaml"
POD_BMC = ("bmc: {cidr: 10.16.0.0/12,", "bmc: {cidr: 127.16.0.0/12,")  # the BMC network on loopback
POD_CA = ("pod_size: 4}", "pod_size: 4, ca_bundle: @CA_BUNDLE@}")
POD_USER = ("username: gpucloud,", f"username: {USER},")  # the emulators' user
POD_COUNT = "count: 12500,"


def engine_seconds(lab: Lab) -> float | None:
    """The latest update's duration as the engine recorded it in the file backend's history."""
    history = sorted((lab.state / ".pulumi" / "history" / "gpucloud" / lab.stacks[0]).glob("*.history.json"))
    if not history:
        return None
    info = json.loads(history[-1].read_text())
    return float(info["endTime"] - info["startTime"])


def resources(lab: Lab) -> int:
    """Resources in the stack's state, the stack itself and its providers left out."""
    if not lab.state_file().exists():
        return 0
    state = json.loads(lab.state_file().read_text())["checkpoint"].get("latest") or {}
    return sum(1 for r in state.get("resources") or ()
               if not r["type"].startswith(("pulumi:pulumi:", "pulumi:providers:")))


def step(lab: Lab, label: str, *args: str, engine: bool = True) -> dict:
    t0 = time.perf_counter()
    result = lab.apply(*args, timeout=3600)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{label}: exit {result.returncode}\n{(result.stdout + result.stderr)[-3000:]}")
    row = {"step": label, "wall_s": round(wall, 2)}
    if engine:
        row["engine_s"] = engine_seconds(lab)
    return row


def pod_spec(count: int | None) -> str:
    text = POD_SPEC.read_text()
    for old, new in (POD_BMC, POD_CA, POD_USER) + (((POD_COUNT, f"count: {count},"),) if count else ()):
        assert old in text, f"{POD_SPEC} no longer has {old!r}: update bench_pulumi_engine.py"
        text = text.replace(old, new)
    return text


def pod_nodes(text: str, tmp: Path) -> tuple[str, dict[str, str]]:
    """The first pod stack's name and its nodes' BMC addresses, from the plan of ``text``."""
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.plan import stacks as layout

    path = tmp / "pod-plan.yaml"
    path.write_text(text.replace("@CA_BUNDLE@", str(tmp / "bmc.crt")))
    checked = check_spec(path)
    plan = build_plan(checked.spec, tuple(checked.findings))
    part = next(p for p in layout.split(plan) if not p.shared)
    nodes = {h.name: h.bmc for m in part.members for h in m.pool.hosts[m.first:m.stop] if h.bmc}
    return part.stack_name, nodes


def run_lab(root: Path, tmp: Path) -> tuple[list[dict], int]:
    lab = Lab(tmp, root)
    try:
        rows = [
            step(lab, "preview (empty stack, 23 resources to create)", "--preview", engine=False),
            step(lab, "up (create: 4 nodes powered on, 6 layers)"),
            step(lab, "up (no changes)"),
            step(lab, "refresh + preview (no changes)", "--refresh", "--preview", engine=False),
        ]
        return rows, resources(lab)
    finally:
        lab.stop()


def run_pod(root: Path, tmp: Path, count: int | None) -> tuple[list[dict], int]:
    text = pod_spec(count)
    stack, nodes = pod_nodes(text, tmp)
    print(f"{stack}: {len(nodes)} nodes, one BMC emulator each"
          + ("" if count else " (the whole 12,500-node spec is planned by every program run)"), flush=True)
    lab_dir = tmp / "pod"
    lab_dir.mkdir()
    lab = Lab(lab_dir, root, stacks=(stack,), nodes=nodes, spec_text=text)
    try:
        rows = [
            step(lab, "preview (empty stack)", "--preview", engine=False),
            step(lab, f"up (create: {len(nodes)} nodes powered on, 6 layers)"),
            step(lab, "up (no changes)"),
            step(lab, "refresh + preview (no changes)", "--refresh", "--preview", engine=False),
        ]
        return rows, resources(lab)
    finally:
        lab.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pod", metavar="NODES|full",
                        help="the first pod stack of colossus-100k: its GPU pool cut to NODES, or the full spec")
    args = parser.parse_args()
    count = None
    if args.pod is not None and args.pod != "full":
        if not args.pod.isdigit() or int(args.pod) < 1:
            parser.error("--pod takes a node count (at least 1) or 'full'")
        count = int(args.pod)
    try:
        root = apply.require_engine()
    except apply.ApplyError as exc:
        raise SystemExit(f"bench_pulumi_engine: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="bench-pulumi-") as tmp:
        rows, total = run_pod(root, Path(tmp), count) if args.pod else run_lab(root, Path(tmp))
    print(f"{total} resources in the stack")
    print(f"{'step':<50} {'ours (s)':>9} {'engine (s)':>11} {'ours/res (s)':>13} {'engine/res (s)':>15}")
    for row in rows:
        engine = row.get("engine_s")
        per = row["wall_s"] / total if total else 0.0
        print(f"{row['step']:<50} {row['wall_s']:>9.2f} {'' if engine is None else f'{engine:>11.0f}':>11} "
              f"{per:>13.3f} {'' if engine is None or not total else f'{engine / total:>15.3f}':>15}")


if __name__ == "__main__":
    main()
