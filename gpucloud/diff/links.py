"""Fabric links of both sides, so the diff can tell new cables from existing cables that move.

Growing a pool is meant to add cables only, but the planner may still move existing ones: a pool that fills the
last scalable unit pushes the service hosts (login, controllers) that sat on its free ports to a new leaf, and
more leaves can rebalance every leaf's uplinks. Each moved cable is work in the data hall on a running cluster, so
it is its own change, counted and named, never folded into "new hosts".

A link is one string ``"dev<TAB>port<TAB>dev<TAB>port"`` with its ends sorted (the shape gpucloud.verify.fabric
compares with ibnetdiscover), kept in the diff document under ``LINKS`` (never written to plan.json). A spec's
links come from its fabric plan; a plan folder's from its ``fabric/<name>/cabling.csv``. Both are one pass over the
cables, and the comparison is set arithmetic: linear in cables.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gpucloud.impact import Impact
from gpucloud.diff.model import Change
from gpucloud.hostlist import compress

LINKS = "_links"  # diff-document key: {fabric name: set of link strings}
SHOWN = 6  # moved links named in the note; cabling.csv has them all


def _key(a: str, ap: str, b: str, bp: str) -> str:
    return f"{a}\t{ap}\t{b}\t{bp}" if (a, ap) <= (b, bp) else f"{b}\t{bp}\t{a}\t{ap}"


def of_plan(plan) -> dict[str, set[str]]:
    """The same links gpucloud.verify.fabric.planned_links gives, built straight into strings (port labels looked up
    once per port number): 306,612 cables of the 100,000-GPU example in well under a second."""
    out = {}
    for fp in getattr(plan, "fabrics", ()) or ():
        names = [s.name for s in fp.switches]
        labels: dict[int, str] = {}

        def label(port: int) -> str:
            text = labels.get(port)
            if text is None:
                text = labels[port] = fp.port_label(port)
            return text

        links = {_key(e.host, e.device, names[e.leaf], label(e.port)) for e in fp.endpoints}
        links.update(_key(names[lo], label(lp), names[hi], label(hp))
                     for lo, lp, hi, hp in zip(fp.lo, fp.lo_port, fp.hi, fp.hi_port))
        out[fp.name] = links
    for efp in getattr(plan, "ethernet", ()) or ():
        # a RoCE fabric's cables as its cabling.csv lists them: NIC (RDMA device) to leaf port, leaf to spine port
        names = [s.name for s in efp.switches]
        links = {_key(p.host, p.device, names[p.leaf], p.port) for p in efp.ports}
        links.update(_key(names[k.leaf], k.leaf_port, names[k.spine], k.spine_port) for k in efp.links)
        out[efp.name] = links
    return out


def of_folder(folder: Path, fabrics) -> dict[str, set[str]] | None:
    """The links of a plan folder's cabling plans; None when a fabric has none (a folder from an older gpucloud)."""
    out = {}
    for name in fabrics:
        try:
            with (folder / "fabric" / name / "cabling.csv").open(newline="", encoding="utf-8") as fh:
                out[name] = {_key(r["a_device"], r["a_port"], r["b_device"], r["b_port"]) for r in csv.DictReader(fh)}
        except (OSError, KeyError, csv.Error, UnicodeDecodeError):
            return None
    return out


def _moved(old: dict, new: dict, removed: frozenset[str] = frozenset()
           ) -> dict[str, tuple[list[str], dict[tuple[str, str], str]]]:
    """Per fabric: the old links that are gone while one of their devices is still in the fabric (the cable is moved,
    or pulled from a switch that goes away), and where each of their ends is cabled now. A link of a ``removed``
    host goes with the host and is not counted here."""
    out = {}
    for name in sorted(set(old) & set(new)):
        o, n = old[name], new[name]
        gone = o - n
        if not gone:
            continue
        devices = set()
        for link in n:
            a, _, b, _ = link.split("\t")
            devices.add(a)
            devices.add(b)
        moved: list[str] = []
        ends: set[tuple[str, str]] = set()
        for link in sorted(gone):
            a, ap, b, bp = link.split("\t")
            if (a in devices or b in devices) and a not in removed and b not in removed:
                moved.append(link)
                ends.update(((a, ap), (b, bp)))
        if not moved:
            continue
        now: dict[tuple[str, str], str] = {}
        for link in n - o:
            a, ap, b, bp = link.split("\t")
            if (a, ap) in ends:
                now[(a, ap)] = f"{b} {bp}"
            if (b, bp) in ends:
                now[(b, bp)] = f"{a} {ap}"
        out[name] = (moved, now)
    return out


def moved_links(old_side, new_side) -> dict[str, tuple[list[str], dict[tuple[str, str], str]]]:
    """Cached on the new side: the pool and fabric classifiers both ask."""
    cache = new_side.__dict__.setdefault("_moved_links", {})
    key = id(old_side)
    if key not in cache:
        o, n = old_side.doc.get(LINKS), new_side.doc.get(LINKS)
        removed = frozenset({h["name"] for h in old_side.doc.get("hosts", ())}
                            - {h["name"] for h in new_side.doc.get("hosts", ())})
        cache[key] = _moved(o, n, removed) if isinstance(o, dict) and isinstance(n, dict) else {}
    return cache[key]


def recabled_count(old_side, new_side) -> int:
    return sum(len(moved) for moved, _ in moved_links(old_side, new_side).values())


def _describe(link: str, now: dict[tuple[str, str], str], hosts) -> str:
    a, ap, b, bp = link.split("\t")
    # Name the move from the host's HCA when the link has one (the cable follows the host: "ctl01 mlx5_0:
    # leaf-a 31/2 -> leaf-b 31/2"), else from whichever switch port is cabled elsewhere now.
    ends = (((a, ap), (b, bp)), ((b, bp), (a, ap)))
    for (dev, port), (other, oport) in sorted(ends, key=lambda e: e[0][0] not in hosts):
        if (dev, port) in now:
            return f"{dev} {port}: {other} {oport} -> {now[(dev, port)]}"
    return f"{a} {ap} <-> {b} {bp} removed"


def link_changes(old_side, new_side):
    """One hardware change per fabric whose existing links move."""
    hosts_new = {h["name"]: h.get("pool") for h in new_side.doc.get("hosts", ())}
    for name, (moved, now) in moved_links(old_side, new_side).items():
        shown = "; ".join(_describe(link, now, hosts_new) for link in moved[:SHOWN])
        more = f"; {len(moved) - SHOWN:,} more in fabric/{name}/cabling.csv" if len(moved) > SHOWN else ""
        touched = sorted({d for link in moved for d in link.split("\t")[0::2] if d in hosts_new})
        behind = ""
        if name in (new_side.doc.get("ethernet") or {}):
            existing = {h["name"] for h in old_side.doc.get("hosts", ())}
            touched, behind = _behind_leaves(new_side.doc[LINKS][name], moved, hosts_new, existing, touched)
        yield Change("fabric", f"fabric {name}", "change", Impact.HARDWARE, field="existing links",
                     old=f"{len(old_side.doc[LINKS][name]):,} links", new=f"{len(new_side.doc[LINKS][name]):,} links",
                     hosts=compress(touched), host_count=len(touched),
                     note=f"recables {len(moved):,} existing link(s): {shown}{more}; a moved cable is down while it "
                          "moves: drain the listed hosts first, and move switch-to-switch cables one at a time"
                          f"{behind}")


def _behind_leaves(links: set[str], moved: list[str], hosts: dict, existing: set[str], cabled: list[str]
                   ) -> tuple[list[str], str]:
    """A RoCE fabric's moved leaf-spine cables reach the existing nodes behind those leaves: their traffic to other
    leaves shares the leaf's remaining uplinks (ECMP) while a cable moves. Those nodes, with the ones whose own cable
    moves, and the note that says so. One pass over the new links."""
    ends = [link.split("\t")[0::2] for link in moved]
    leaves = {d for pair in ends if not (set(pair) & hosts.keys()) for d in pair}  # switch-to-switch cables only
    if not leaves:
        return cabled, ""
    behind = set()
    switches_with_hosts = set()
    for link in links:
        a, _, b, _ = link.split("\t")
        if a in leaves and b in hosts:
            behind.add(b)
            switches_with_hosts.add(a)
        elif b in leaves and a in hosts:
            behind.add(a)
            switches_with_hosts.add(b)
    behind = (behind & existing) - set(cabled)
    movers = sum(1 for d in leaves if d in switches_with_hosts)
    note = (f"; the {len(behind):,} node(s) behind the {movers:,} leaves whose uplinks move keep their "
            "traffic on the other uplinks (ECMP) with less bandwidth while a cable moves: one cable per leaf at a "
            "time, or drain them for the window")
    return sorted(set(cabled) | behind), note
