"""``gpucloud render``: plan a spec and write only its Ansible inventory into ``OUT/<cluster>/``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def run_cli(spec: Path, out: Path, checked_or_exit: Callable) -> int:
    from gpucloud.plan import build_plan
    from gpucloud.render.inventory import render
    from gpucloud.write import INVENTORY, RefusedOutput, write_tree

    checked = checked_or_exit(spec)
    plan = build_plan(checked.spec, tuple(checked.findings))
    files = {rel[len("inventory/"):]: data for rel, data in render(plan).items()}
    target = Path(out) / plan.spec.name
    try:
        write_tree(target, files, INVENTORY)
    except (RefusedOutput, OSError) as exc:
        print(f"error: could not write {target}: {exc}", file=sys.stderr)
        print(f"  hint: {exc.hint if isinstance(exc, RefusedOutput) else INVENTORY.hint}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} file(s), {sum(len(b) for b in files.values()):,} bytes, to {target}")
    return 0
