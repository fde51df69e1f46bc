"""Write a plan folder atomically: everything goes into a temporary sibling folder, which then replaces the target.

A folder is only replaced when it is empty or holds an earlier plan (a plan.json written by gpucloud), so a typo in
--out cannot wipe someone's home directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

MARKER = "plan.json"


class RefusedOutput(Exception):
    """The target exists and is not an earlier plan; nothing was written."""


def is_plan_folder(path: Path) -> bool:
    marker = path / MARKER
    try:
        with marker.open("rb") as fh:
            head = json.loads(fh.read()) if marker.stat().st_size < 512 * 1024 * 1024 else {}
    except (OSError, ValueError):
        return False
    return isinstance(head, dict) and head.get("generator") == "gpucloud"


def check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RefusedOutput(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_plan_folder(out):
        raise RefusedOutput(f"{out} is not empty and holds no earlier gpucloud plan (no plan.json from gpucloud)")


def write_tree(out: Path, files: Mapping[str, bytes]) -> None:
    out = Path(out)
    check_target(out)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    try:
        for rel in sorted(files):
            target = tmp / rel
            if target.resolve().parent != tmp.resolve() and tmp.resolve() not in target.resolve().parents:
                raise ValueError(f"renderer produced a path outside the plan folder: {rel}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[rel])
            os.chmod(target, 0o644)
        for d in [tmp, *sorted(p for p in tmp.rglob("*") if p.is_dir())]:
            os.chmod(d, 0o755)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.rmdir(old)
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
