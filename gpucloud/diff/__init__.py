"""Diff two plans and classify every change by impact (see gpucloud.diff.impact for the classes and steps).

Both sides are plan.json documents, whether they come from a spec, a plan folder or a git revision
(gpucloud.diff.inputs), so a plan folder committed months ago diffs the same way as a spec edited a minute ago.
Every classifier works per pool or per section; hosts are matched by name through dictionaries, so the cost is
linear in the size of the plans.
"""

from __future__ import annotations

from gpucloud.diff.derived import derived_changes
from gpucloud.diff.hosts import pool_changes
from gpucloud.impact import Impact
from gpucloud.diff.inputs import comparable_stacks
from gpucloud.diff.intent import (fabric_changes, fabric_layout_changes, metadata_changes, network_changes,
                                  provider_changes, slurm_changes, software_changes, storage_changes, tenant_changes)
from gpucloud.diff.links import LINKS, link_changes
from gpucloud.diff.model import EXIT_CHANGED, EXIT_DESTROYS, EXIT_SAME, Change, Diff
from gpucloud.diff.side import EMPTY, Side

CLASSIFIERS = (pool_changes, network_changes, software_changes, fabric_changes, fabric_layout_changes, link_changes,
               slurm_changes, storage_changes, tenant_changes, provider_changes, metadata_changes)


def compare(old_doc: dict, new_doc: dict, old_label: str = "old", new_label: str = "new") -> Diff:
    comparable_stacks(old_doc, new_doc)
    old, new = Side(old_doc, old_label), Side(new_doc, new_label)
    diff = Diff(old_name=old_label, new_name=new_label)
    for side in (old, new):
        if side.doc.get("hosts") and "spec" not in side.doc:
            diff.notes.append(f"{side.label} has no 'spec' section in plan.json (written by an older gpucloud): "
                              "software, Slurm, storage and tenant settings were not compared")
    if old.pools and any((side.doc.get("fabric") or side.doc.get("ethernet"))
                         and not isinstance(side.doc.get(LINKS), dict) for side in (old, new)):
        diff.notes.append("existing fabric links were not compared: a plan folder without fabric/<name>/cabling.csv "
                          "(written by an older gpucloud)")
    if not old.pools:
        # A new cluster: every host is an addition; its settings are not changes of anything running.
        diff.notes.append(f"{old_label} holds no cluster: everything in {new_label} is new")
        diff.changes.extend(pool_changes(old, new))
        diff.derived.extend(derived_changes(old_doc, new_doc))
        return diff
    for classify in CLASSIFIERS:
        diff.changes.extend(classify(old, new))
    diff.derived.extend(derived_changes(old_doc, new_doc))
    return diff


__all__ = ["compare", "Change", "Diff", "Impact", "EMPTY", "EXIT_SAME", "EXIT_CHANGED", "EXIT_DESTROYS"]
