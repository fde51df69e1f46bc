"""Sections of plan.json that the planners add (fabric, slurm, storage, inventory, pulumi, ...), compared without
knowing their layout: lists of records are matched by an identity field, nested objects by key, so the cost stays
linear in the size of the section. These changes follow from the spec changes classified elsewhere; they are
listed so a reviewer sees the consequences (switches, cables, resources) with counts."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterator

from gpucloud.impact import Impact
from gpucloud.diff.model import Change

# Sections the diff reads itself (or that are not plan content; figures sums up cluster and hosts).
OWN = {"generator", "format", "cluster", "networks", "hosts", "findings", "spec", "_links", "figures"}
# Records of these sections are hardware: adding or removing one is work in the data hall.
HARDWARE_SECTIONS = {"fabric", "fabrics", "racks", "cabling", "ethernet"}
_IDS = ("name", "stack", "pool", "id", "guid", "key", "path", "host", "urn")
MAX_ITEMS = 6  # details per group in the note; plan.json has them all


def _identity(records: list) -> str | None:
    if not records or not all(isinstance(r, dict) for r in records):
        return None
    for key in _IDS:
        if all(key in r for r in records):
            return key
    return None


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _list_delta(old: list, new: list) -> tuple[int, int, int]:
    """(added, removed, changed) records; matched by identity when the records have one, else as a multiset."""
    key = _identity(old + new) if len(old) + len(new) else None
    if key is not None:
        o = {_canon(r[key]): r for r in old}
        n = {_canon(r[key]): r for r in new}
        added = sum(1 for k in n if k not in o)
        removed = sum(1 for k in o if k not in n)
        changed = sum(1 for k, r in n.items() if k in o and o[k] != r)
        return added, removed, changed
    co, cn = Counter(map(_canon, old)), Counter(map(_canon, new))
    return sum((cn - co).values()), sum((co - cn).values()), 0


def _walk(path: str, old: Any, new: Any) -> Iterator[tuple[str, str, Any, Any, str]]:
    """(path, action, old, new, note) for every difference, recursing into objects, summarising lists."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}"
            if key not in old:
                yield sub, "add", None, _short(new[key]), ""
            elif key not in new:
                yield sub, "remove", _short(old[key]), None, ""
            else:
                yield from _walk(sub, old[key], new[key])
        return
    if isinstance(old, list) and isinstance(new, list) and not all(isinstance(v, (str, int, float)) for v in old + new):
        added, removed, changed = _list_delta(old, new)
        action = "add" if added and not (removed or changed) else "remove" if removed and not (added or changed) \
            else "change"
        counts = ", ".join(f"{n:,} {word}" for n, word in ((added, "added"), (removed, "removed"),
                                                           (changed, "changed")) if n)
        yield path, action, len(old), len(new), counts or "reordered"
        return
    yield path, "change", _short(old), _short(new), ""


def _short(value: Any) -> Any:
    if isinstance(value, list):
        return value if len(value) <= 8 and all(isinstance(v, (str, int, float)) for v in value) \
            else f"{len(value)} items"
    if isinstance(value, dict):
        return f"{len(value)} entries"
    return value


def _group(path: str) -> str:
    """Changes are reported per second-level key (fabric.compute, slurm.partitions), not per leaf."""
    return ".".join(path.split(".")[:2])


def _item(path: str, group: str, action: str, old, new, note: str) -> str:
    name = path[len(group) + 1:] or path.rsplit(".", 1)[-1]
    if note:
        return f"{name}: {note}"
    if action == "add":
        return f"{name} added"
    if action == "remove":
        return f"{name} removed"
    return f"{name} {old} -> {new}"


def derived_changes(old_doc: dict, new_doc: dict) -> Iterator[Change]:
    for section in sorted((set(old_doc) | set(new_doc)) - OWN):
        groups: dict[str, list] = {}
        for found in _walk(section, old_doc.get(section), new_doc.get(section)):
            groups.setdefault(_group(found[0]), []).append(found)
        for group, records in groups.items():
            records.sort(key=lambda f: not f[4])  # record lists (switches, cables, stacks) before single values
            lists = [f for f in records if f[4]]
            hardware = section in HARDWARE_SECTIONS and any("added" in f[4] or "removed" in f[4] for f in lists)
            actions = {f[1] for f in records}
            action = actions.pop() if len(actions) == 1 else "change"
            shown = [_item(f[0], group, f[1], f[2], f[3], f[4]) for f in records[:MAX_ITEMS]]
            more = f"; {len(records) - MAX_ITEMS} more" if len(records) > MAX_ITEMS else ""
            yield Change("plan", group, action, Impact.HARDWARE if hardware else Impact.NONE,
                         note="; ".join(shown) + more)
