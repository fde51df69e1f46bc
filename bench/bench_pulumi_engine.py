"""Benchmark: `gpucloud apply` of the lab stack with the real Pulumi engine; prints times, asserts nothing.

The lab runs against one sushy-emulator per node (tests/integration/pulumi_harness.py) with the recording stand-in
for ansible-playbook, so the figures are the engine, the program and the Redfish calls, not the playbooks. For each
step: our wall time (the whole `python -m gpucloud apply` process: spec, plan, the inline program, the engine) and,
for updates, the engine's own time as it records it in the stack's history (start to end of the update).

The first up includes the emulators' power-on delay (the fake driver applies a power change 1-11 s after accepting
it) and the provider's 5 s polling, so it measures the BMCs as much as the engine.

Run under the integration lock (it starts daemons):
    flock /tmp/gpucloud-integration.lock python bench/bench_pulumi_engine.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from gpucloud.stack import apply  # noqa: E402
from pulumi_harness import Lab  # noqa: E402


def engine_seconds(lab: Lab) -> float | None:
    """The latest update's duration as the engine recorded it in the file backend's history."""
    history = sorted((lab.state / ".pulumi" / "history" / "gpucloud" / "lab").glob("*.history.json"))
    if not history:
        return None
    info = json.loads(history[-1].read_text())
    return float(info["endTime"] - info["startTime"])


def step(lab: Lab, label: str, *args: str, engine: bool = True) -> dict:
    t0 = time.perf_counter()
    result = lab.apply(*args)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{label}: exit {result.returncode}\n{(result.stdout + result.stderr)[-3000:]}")
    row = {"step": label, "wall_s": round(wall, 2)}
    if engine:
        row["engine_s"] = engine_seconds(lab)
    return row


def main() -> None:
    try:
        root = apply.require_engine()
    except apply.ApplyError as exc:
        raise SystemExit(f"bench_pulumi_engine: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="bench-pulumi-") as tmp:
        lab = Lab(Path(tmp), root)
        try:
            rows = [
                step(lab, "preview (empty stack, 23 resources to create)", "--preview", engine=False),
                step(lab, "up (create: 4 nodes powered on, 6 layers)"),
                step(lab, "up (no changes)"),
                step(lab, "refresh + preview (no changes)", "--refresh", "--preview", engine=False),
            ]
        finally:
            lab.stop()
    print(f"{'step':<50} {'ours (s)':>9} {'engine (s)':>11}")
    for row in rows:
        engine = row.get("engine_s")
        print(f"{row['step']:<50} {row['wall_s']:>9.2f} {'' if engine is None else f'{engine:>11.0f}'}")


if __name__ == "__main__":
    main()
