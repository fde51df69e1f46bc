"""``gpucloud fabric lldp``: compare the LLDP neighbour tables of an Ethernet fabric's switches with its planned
cables (gpucloud.verify.lldp)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from gpucloud.findings import choices_hint
from gpucloud.plan import build_plan
from gpucloud.render.ethernet import cabling_csv
from gpucloud.verify.lldp import compare


def run_cli(spec_path, tables_dir: Path, fabric_name: str, checked_or_exit: Callable) -> int:
    """0 when every given switch's neighbours match the plan, 1 when a cable differs, 2 when it cannot run.
    ``tables_dir`` holds ``<switch>.json``: ``lldpcli show neighbors -f json`` of each switch."""
    def fail(message: str, hint: str = "") -> int:
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
        return 2

    checked = checked_or_exit(spec_path)
    plan = build_plan(checked.spec)
    fp = next((f for f in plan.ethernet if f.name == fabric_name), None)
    if fp is None:
        names = [f.name for f in plan.ethernet]
        return fail(f"the spec has no Ethernet fabric {fabric_name!r}", choices_hint(fabric_name, names, "fabrics"))
    if not Path(tables_dir).is_dir():
        return fail(f"{tables_dir} is not a folder", "give a folder of <switch>.json files from "
                    "'lldpcli show neighbors -f json'")
    switches = {s.name for s in fp.switches}
    tables: dict[str, dict] = {}
    for path in sorted(Path(tables_dir).glob("*.json")):
        if path.stem not in switches:
            return fail(f"{path.name}: the plan has no switch {path.stem!r}",
                        choices_hint(path.stem, sorted(switches), "switches"))
        try:
            tables[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return fail(f"{path}: not lldpcli JSON ({exc})", "save 'lldpcli show neighbors -f json' per switch")
    if not tables:
        return fail(f"{tables_dir} holds no <switch>.json file", "save 'lldpcli show neighbors -f json' per switch")
    found = compare(cabling_csv(fp).decode(), tables)
    for m in found:
        print(m.describe())
    print(f"{len(tables)} of {len(switches)} switch(es) checked; {len(found)} difference(s)")
    return 1 if found else 0
