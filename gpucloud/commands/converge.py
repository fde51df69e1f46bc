"""``gpucloud converge``: plan the spec (or take a plan folder) and run the playbooks over the cluster with it.

The run folder holds a plan copy and ansible-runner's env/extravars (the -e values): it is private (mkdtemp makes it
0700) and removed however the run ends, so nothing a run was given stays behind on the disk.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from gpucloud import converge


def _extravars(items: list[str]) -> tuple[dict, list[str]]:
    """KEY=VALUE pairs become extra vars; @FILE is passed to ansible-playbook as it is."""
    values, files = {}, []
    for item in items:
        if item.startswith("@"):
            files += ["-e", "@" + str(Path(item[1:]).resolve())]
        elif "=" in item:
            key, value = item.split("=", 1)
            values[key] = value
        else:
            raise ValueError(f"--extra-vars {item!r}: expected KEY=VALUE or @FILE")
    return values, files


def run_cli(spec: Path, limit, tags, check: bool, inventory: Path | None, extra_vars: list[str],
            checked_or_exit: Callable, plan: Path | None = None, known_hosts: Path | None = None) -> int:
    try:
        values, files = _extravars(extra_vars)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if inventory is not None and not Path(inventory).exists():
        print(f"error: inventory {inventory} does not exist", file=sys.stderr)
        print("  hint: write it with `gpucloud render SPEC`, or leave out --inventory to use the plan's", file=sys.stderr)
        return 2
    if known_hosts is not None and not Path(known_hosts).is_file():
        print(f"error: known_hosts file {known_hosts} does not exist", file=sys.stderr)
        print("  hint: give the file the provisioning server writes the phone-home host keys to "
              "(/var/lib/gpucloud-provision/known_hosts, copied here)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gpucloud-converge-"))
    try:
        return _converge(spec, limit, tags, check, inventory, values, files, checked_or_exit, plan, work, known_hosts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _converge(spec: Path, limit, tags, check: bool, inventory: Path | None, values: dict, files: list[str],
              checked_or_exit: Callable, plan: Path | None, work: Path, known_hosts: Path | None = None) -> int:
    from gpucloud.pipeline import plan_files
    from gpucloud.write import write_tree

    if plan is None:
        checked = checked_or_exit(spec)
        plan = work / "plan"
        write_tree(plan, plan_files(checked))
    elif not (Path(plan) / "plan.json").is_file():
        print(f"error: {plan} holds no plan (plan.json)", file=sys.stderr)
        print("  hint: write one with `gpucloud plan SPEC --out DIR`", file=sys.stderr)
        return 2
    inventory = Path(inventory) if inventory is not None else Path(plan) / "inventory"
    print(f"converging {spec} with the plan in {plan}", file=sys.stderr)
    result = converge.run(Path(plan), inventory, limit=limit, tags=tags, check=check, extravars=values,
                          extra_args=files, work=work, known_hosts=known_hosts)
    converge.summary(result, sys.stdout)
    return 0 if result.ok else 1
