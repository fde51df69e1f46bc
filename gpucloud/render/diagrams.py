"""SVG diagrams for reviewers: the fabric by tier and the rack elevations.

Both aggregate so that the 100,000-GPU example reads as well as the lab: switches are drawn one by one only while a
tier has few of them, otherwise as groups (scalable units, pods, core groups); long rows keep their first and last
groups and fold the middle into one box; identical rail planes are drawn once; racks with the same layout in a row
are drawn once with their count. Plain SVG 1.1 with no scripts, fonts or external references; deterministic.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from math import log2
from xml.sax.saxutils import escape
from typing import Any

from gpucloud.plan import Plan

FABRIC_SVG = "diagrams/fabric.svg"
RACKS_SVG = "diagrams/racks.svg"
MAX_BOXES = 10  # per row before the middle is folded
SINGLE_SWITCHES = 16  # a tier with at most this many switches is drawn switch by switch
WIDTH = 1200
TIER_LABEL = {1: "leaf", 2: "spine", 3: "core"}
COLOURS = {0: "#e8f1fb", 1: "#d7ecd9", 2: "#fde7c8", 3: "#f6d5d5"}  # nodes, leaf, spine, core


class Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def rect(self, x, y, w, h, fill, stroke="#555", rx=4) -> None:
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
                          f'fill="{fill}" stroke="{stroke}"/>')

    def line(self, x1, y1, x2, y2, width=1.0, colour="#777") -> None:
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                          f'stroke-width="{width:.2f}"/>')

    def text(self, x, y, value, size=12, anchor="middle", weight="normal", colour="#222") -> None:
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                          f'font-weight="{weight}" fill="{colour}">{escape(str(value))}</text>')

    def document(self, width: int, height: int, title: str) -> bytes:
        head = (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
                f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                f'font-family="DejaVu Sans, Arial, sans-serif">\n<title>{escape(title)}</title>\n'
                f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>\n')
        return (head + "\n".join(self.parts) + "\n</svg>\n").encode("utf-8")


def fold(items: list) -> list:
    """Keep the first and last items of a long row; None marks the folded middle."""
    if len(items) <= MAX_BOXES:
        return list(items)
    return items[:MAX_BOXES - 3] + [None] + items[-2:]


# ---- fabric -------------------------------------------------------------------------------------------------------

def _group_label(tier: int, group: int, split: bool) -> str:
    if tier == 1:
        return "service leaves" if group == 0 else f"SU {group}"
    if tier == 2:
        return f"pod {group}" if group else "spines"
    return f"core group {group}"


def _fabric_rows(fp) -> tuple[list[dict], dict, str]:
    """Rows (core first) of boxes for one plane of a fabric, the switch -> box map, and a plane note."""
    switches = fp.switches
    planes = sorted({s.subnet for s in switches})
    note = ""
    chosen = set(range(len(switches)))
    if len(planes) > 1:
        chosen = {i for i, s in enumerate(switches) if s.subnet == planes[0] or s.tier == 1 and s.rail == 0}
        note = (f"one of {len(planes)} rail planes drawn: each rail is its own subnet with the same spines and "
                f"cores; leaves shown are rail 0's")
    rows: list[dict[str, Any]] = []
    box_of: dict[int, tuple[int, int]] = {}
    for tier in (3, 2, 1):
        members = [i for i in sorted(chosen) if switches[i].tier == tier]
        if not members:
            continue
        if len(members) <= SINGLE_SWITCHES:
            groups = [(switches[i].name, [i]) for i in members]
        else:
            by_group: dict[int, list[int]] = defaultdict(list)
            for i in members:
                by_group[switches[i].group].append(i)
            groups = [(_group_label(tier, g, len(planes) > 1), ids) for g, ids in sorted(by_group.items())]
        boxes: list[dict[str, Any]] = []
        for entry in fold(groups):
            if entry is None:
                hidden = groups[MAX_BOXES - 3:-2]
                ids = [i for _, g in hidden for i in g]
                boxes.append({"label": f"... {len(hidden)} more", "sub": f"{len(ids):,} switches", "ids": ids})
            else:
                label, ids = entry
                rails = {switches[i].rail for i in ids if switches[i].rail >= 0}
                sub = f"{len(ids)} switches" if len(ids) > 1 else ""
                if len(ids) > 1 and len(rails) > 1:
                    sub += f", rails {min(rails)}-{max(rails)}"
                boxes.append({"label": label, "sub": sub, "ids": ids})
        for b, box in enumerate(boxes):
            for i in box["ids"]:
                box_of[i] = (tier, b)
        rows.append({"tier": tier, "count": len(members), "boxes": boxes})
    return rows, box_of, note


def _node_row(fp, box_of: dict) -> tuple[dict, Counter]:
    """The hosts under the drawn leaves, one box per leaf box, with link counts per (leaf box)."""
    hosts: dict[tuple, set] = defaultdict(set)
    links: Counter = Counter()
    for e in fp.endpoints:
        key = box_of.get(e.leaf)
        if key is None:
            continue
        hosts[key].add(e.host)
        links[key] += 1
    return hosts, links


def _draw_fabric(svg: Svg, fp, top: int) -> int:
    rows, box_of, note = _fabric_rows(fp)
    counts = Counter(s.tier for s in fp.switches)
    cables = fp.cable_counts()
    if getattr(fp.fabric, "topology", "") == "rail-optimized-fat-tree":
        layout = f"{fp.sus} scalable unit(s) of {fp.su_size}, {fp.rails} rail(s)"
    else:
        layout = f"fat tree, up to {fp.su_size} hosts per leaf"
    title = (f"{fp.name} fabric: {fp.model.name} ({fp.rate}, radix {fp.radix}), {fp.tiers} tiers, {layout}, "
             f"{len(fp.subnets)} subnet(s)")
    svg.text(20, top + 20, title, size=15, anchor="start", weight="bold")
    totals = ", ".join(f"{counts[t]:,} {TIER_LABEL[t]}" for t in (1, 2, 3) if counts[t])
    svg.text(20, top + 40, f"switches: {totals}; cables: " +
             ", ".join(f"{k.replace('_', '-')} {v:,}" for k, v in cables.items() if v), size=12, anchor="start")
    y = top + 60
    if note:
        svg.text(20, y, note, size=11, anchor="start", colour="#555")
        y += 16
    hosts, host_links = _node_row(fp, box_of)
    leaf_row = next((r for r in rows if r["tier"] == 1), None)
    positions: dict[tuple, tuple[float, float]] = {}
    box_w, box_h, gap = 100, 40, 70
    row_y = {}
    all_rows = rows + ([{"tier": 0, "boxes": leaf_row["boxes"]}] if leaf_row else [])
    for r, row in enumerate(all_rows):
        ry: float = y + 20 + r * (box_h + gap)
        row_y[row["tier"]] = ry
        n = len(row["boxes"])
        step = (WIDTH - 200) / max(n, 1)
        label = TIER_LABEL.get(row["tier"], "hosts")
        svg.text(20, ry + 24, f"{label}" + (f" ({row['count']:,})" if row.get("count") else ""), size=13,
                 anchor="start", weight="bold")
        for b, box in enumerate(row["boxes"]):
            x: float = 160 + b * step + (step - box_w) / 2
            positions[(row["tier"], b)] = (x + box_w / 2, ry)
    # links first, so boxes are drawn over them
    pairs: Counter = Counter()
    for lo, hi in zip(fp.lo, fp.hi):
        down, up = box_of.get(lo), box_of.get(hi)
        if down is not None and up is not None:
            pairs[(down, up)] += 1
    for key, n in host_links.items():
        pairs[((0, key[1]), key)] += n
    for (a, b), n in sorted(pairs.items()):
        (x1, y1), (x2, y2) = positions[a], positions[b]
        lower_y, upper_y = (y1, y2) if y1 > y2 else (y2, y1)
        lx1, lx2 = (x1, x2) if y1 > y2 else (x2, x1)
        svg.line(lx1, lower_y, lx2, upper_y + box_h, width=0.6 + log2(1 + n) / 3)
    gaps: Counter = Counter()
    for (a, b), n in pairs.items():
        gaps[min(a[0], b[0])] += n
    for tier, n in sorted(gaps.items()):
        upper = tier + 1
        if upper in row_y:
            svg.text(20, row_y[upper] + box_h + gap / 2 + 4,
                     f"{n:,} links" + (" (this plane)" if note else ""), size=11, anchor="start", colour="#444")
    for row in all_rows:
        for b, box in enumerate(row["boxes"]):
            cx, ry = positions[(row["tier"], b)]
            x = cx - box_w / 2
            if row["tier"] == 0:
                count = len(hosts.get((1, b), ()))
                svg.rect(x, ry, box_w, box_h, COLOURS[0])
                svg.text(cx, ry + 16, box["label"] if box["label"].startswith(("SU", "...", "service")) else "hosts",
                         size=10)
                svg.text(cx, ry + 31, f"{count:,} hosts", size=10)
                continue
            svg.rect(x, ry, box_w, box_h, COLOURS[row["tier"]])
            label = box["label"] if len(box["label"]) <= 18 else box["label"][-18:]
            svg.text(cx, ry + 16, label, size=10)
            if box["sub"]:
                svg.text(cx, ry + 31, box["sub"], size=9, colour="#444")
    return y + 20 + len(all_rows) * (box_h + gap) + 10


def _row(svg: Svg, ry: float, label: str, boxes: list[tuple[str, str]], tier: int) -> list[float]:
    """One row of boxes (label, sub) with its name on the left; returns the boxes' centres."""
    box_w, box_h = 100, 40
    svg.text(20, ry + 24, label, size=13, anchor="start", weight="bold")
    step = (WIDTH - 200) / max(len(boxes), 1)
    centres = []
    for b, (name, sub) in enumerate(boxes):
        cx = 160 + b * step + step / 2
        centres.append(cx)
        svg.rect(cx - box_w / 2, ry, box_w, box_h, COLOURS[tier])
        svg.text(cx, ry + 16, name if len(name) <= 18 else name[-18:], size=10)
        if sub:
            svg.text(cx, ry + 31, sub, size=9, colour="#444")
    return centres


def _draw_ethernet(svg: Svg, fp, top: int, slurm: str | None) -> int:
    """A RoCE rail fabric: spines, one box per SU for its rail leaves, and under each the nodes it holds, which is
    the Slurm switch of that SU when topology.conf is planned (render/slurm_topology.py groups the same way)."""
    box_h, gap = 40, 70
    by_su = fp.su_hosts()
    sus = sorted({s.su for s in fp.leaves})
    spines = fp.spines
    svg.text(20, top + 20, f"{fp.name} fabric: Ethernet RoCEv2, {fp.model.name} ({fp.model.gbps}G, "
             f"{fp.model.cages} cages), 2 tiers, {fp.sus} scalable unit(s) of {fp.su_size}, {fp.rails} rail(s)",
             size=15, anchor="start", weight="bold")
    svg.text(20, top + 40, f"switches: {len(fp.leaves):,} leaf, {len(spines):,} spine; cables: node-leaf "
             f"{len(fp.ports):,}, leaf-spine {len(fp.links):,}; eBGP unnumbered, {fp.ecmp_paths} ECMP paths per leaf; "
             f"lossless priority {fp.roce.lossless_priority} (DSCP {fp.roce.dscp})", size=12, anchor="start")
    note = (f"Slurm {slurm}: one switch per SU (its nodes), 'fabric' above them (the spines)" if slurm
            else "Slurm: no topology plugin")
    svg.text(20, top + 60, note, size=11, anchor="start", colour="#555")
    y = top + 80
    if len(spines) <= SINGLE_SWITCHES:
        spine_boxes = [(s.name, f"AS {s.asn}") for s in spines]
    else:
        spine_boxes = [("spines", f"{len(spines):,} switches")]
    su_boxes = fold(sus)
    leaf_boxes, host_boxes = [], []
    for su in su_boxes:
        if su is None:
            hidden = sus[MAX_BOXES - 3:-2]
            leaf_boxes.append((f"... {len(hidden)} more", f"{len(hidden) * fp.rails:,} switches"))
            host_boxes.append((f"... {len(hidden)} more", f"{sum(len(by_su.get(u, ())) for u in hidden):,} hosts"))
            continue
        leaf_boxes.append((f"SU {su}", f"{fp.rails} leaves, rails 0-{fp.rails - 1}" if fp.rails > 1 else "1 leaf"))
        host_boxes.append((f"su{su:03}" if slurm else f"SU {su}", f"{len(by_su.get(su, ())):,} hosts"))
    rows = [("spine" + f" ({len(spines):,})", spine_boxes, 2), ("leaf" + f" ({len(fp.leaves):,})", leaf_boxes, 1),
            ("hosts" + (" = Slurm switches" if slurm else ""), host_boxes, 0)]
    ys = [y + 20 + r * (box_h + gap) for r in range(len(rows))]
    # links under the boxes: every SU's leaves reach every spine (fp.links_per_spine cables per leaf and spine)
    centres_x = []
    for (_, boxes, _), ry in zip(rows, ys):
        step = (WIDTH - 200) / max(len(boxes), 1)
        centres_x.append([160 + b * step + step / 2 for b in range(len(boxes))])
    per_su = fp.rails * fp.links_per_spine
    for x1 in centres_x[1]:
        for x2 in centres_x[0]:
            svg.line(x1, ys[1], x2, ys[0] + box_h, width=0.6 + log2(1 + per_su) / 3)
    for x1, x2 in zip(centres_x[2], centres_x[1]):
        svg.line(x1, ys[2], x2, ys[1] + box_h, width=1.5)
    svg.text(20, ys[0] + box_h + gap / 2 + 4, f"{len(fp.links):,} links ({per_su} per SU and spine)", size=11,
             anchor="start", colour="#444")
    svg.text(20, ys[1] + box_h + gap / 2 + 4, f"{len(fp.ports):,} links (one per NIC)", size=11, anchor="start",
             colour="#444")
    for (label, boxes, tier), ry in zip(rows, ys):
        _row(svg, ry, label, boxes, tier)
    return int(ys[-1] + box_h + 30)


def render_fabric(plan: Plan) -> bytes:
    svg = Svg()
    fabrics = [fp for fp in getattr(plan, "fabrics", ()) or () if getattr(fp, "switches", None)]
    ethernet = [fp for fp in getattr(plan, "ethernet", ()) or () if fp.switches]
    y = 10
    if not fabrics and not ethernet:
        svg.text(20, 40, f"{plan.spec.name}: no InfiniBand fabric planned", size=15, anchor="start")
        return svg.document(WIDTH, 80, f"{plan.spec.name} fabric")
    for fp in fabrics:
        y = _draw_fabric(svg, fp, y) + 10
    plugin = getattr(getattr(plan, "slurm", None), "topology_plugin", None)
    for efp in ethernet:
        tree = plugin if efp.name == "compute" and plugin in ("topology/tree", "topology/block") else None
        y = _draw_ethernet(svg, efp, y, tree) + 10
    return svg.document(WIDTH, int(y), f"{plan.spec.name} fabric")


# ---- racks --------------------------------------------------------------------------------------------------------

U_PX = 9
RACK_W = 150
RACKS_PER_ROW = 8
POOL_FILL = ("#cfe2f3", "#d9ead3", "#fff2cc", "#f4cccc", "#d9d2e9", "#fce5cd", "#d0e0e3", "#ead1dc")


def _rack_contents(plan: Plan) -> tuple[list[str], dict[str, list[tuple]]]:
    """Racks in plan order and what each holds: (u, height, label, kind) with kind a pool name or 'switch'."""
    order: list[str] = []
    contents: dict[str, list[tuple]] = defaultdict(list)
    for pp in plan.pools:
        height = pp.model.rack_units
        for h in pp.hosts:
            if h.rack not in contents:
                order.append(h.rack)
            contents[h.rack].append((h.u, height, h.name, f"{pp.pool.name} ({pp.model.name}, {height}U)"))
    for fp in getattr(plan, "fabrics", ()) or ():
        height = fp.model.rack_units
        for s in getattr(fp, "switches", ()):
            if s.rack not in contents:
                order.append(s.rack)
            contents[s.rack].append((s.u, height, s.name, f"{TIER_LABEL.get(s.tier, 'switch')} ({fp.model.name}, "
                                                          f"{height}U)"))
    for efp in getattr(plan, "ethernet", ()) or ():
        height = efp.model.rack_units
        for s in efp.switches:
            if s.rack not in contents:
                order.append(s.rack)
            contents[s.rack].append((s.u, height, s.name, f"{TIER_LABEL.get(s.tier, 'switch')} ({efp.model.name}, "
                                                          f"{height}U)"))
    return order, contents


def _runs(order: list[str], contents: dict) -> list[tuple[list[str], list[tuple]]]:
    """Consecutive racks with the same layout (positions, heights and kinds; not names) become one run."""
    runs: list[tuple[list[str], list[tuple]]] = []
    last = None
    for rack in order:
        items = sorted(contents[rack])
        shape = tuple((u, h, kind) for u, h, _, kind in items)
        if runs and shape == last:
            runs[-1][0].append(rack)
        else:
            runs.append(([rack], items))
            last = shape
    return runs


def render_racks(plan: Plan) -> bytes:
    order, contents = _rack_contents(plan)
    runs = _runs(order, contents)
    shown = fold(runs)
    kinds = sorted({kind for items in contents.values() for *_, kind in items})
    fill = {k: POOL_FILL[i % len(POOL_FILL)] for i, k in enumerate(kinds)}
    top_u = max((u + h - 1 for items in contents.values() for u, h, *_ in items), default=42)
    rack_u = 42 if top_u <= 42 else 48 if top_u <= 48 else top_u
    svg = Svg()
    svg.text(20, 26, f"{plan.spec.name}: rack elevations, front view ({len(order):,} racks; neighbours with the "
                     f"same layout drawn once, with the first rack's names)", size=15, anchor="start", weight="bold")
    rack_h = rack_u * U_PX
    for c, run in enumerate(shown):
        x = 20 + (c % RACKS_PER_ROW) * (RACK_W + 20)
        top = 70 + (c // RACKS_PER_ROW) * (rack_h + 60)
        if run is None:
            hidden = runs[MAX_BOXES - 3:-2]
            svg.text(x + RACK_W / 2, top + rack_h / 2, f"... {len(hidden)} more layouts", size=12)
            svg.text(x + RACK_W / 2, top + rack_h / 2 + 16, f"{sum(len(r[0]) for r in hidden):,} racks", size=11)
            continue
        racks, items = run
        name = racks[0] if len(racks) == 1 else f"{racks[0]} ... {racks[-1]}"
        svg.text(x + RACK_W / 2, top - 22, name, size=11, weight="bold")
        svg.text(x + RACK_W / 2, top - 8, f"x {len(racks):,} racks" if len(racks) > 1 else "", size=10)
        svg.rect(x, top, RACK_W, rack_h, "#f7f7f7", rx=0)
        for u, h, label, kind in items:
            y = top + (rack_u - (u + h - 1)) * U_PX  # U1 at the bottom, as on a real rack
            svg.rect(x + 4, y + 0.5, RACK_W - 8, h * U_PX - 1, fill[kind], rx=1)
            svg.text(x + RACK_W / 2, y + min(h * U_PX, 18) / 2 + 3.5, label[:26], size=8 if h == 1 else 9)
    rows = (len(shown) + RACKS_PER_ROW - 1) // RACKS_PER_ROW
    legend_y = 70 + rows * (rack_h + 60) - 30
    for i, kind in enumerate(kinds):
        lx = 20 + i % 4 * 250
        ly = legend_y + i // 4 * 20
        svg.rect(lx, ly, 14, 14, fill[kind], rx=1)
        svg.text(lx + 20, ly + 11, kind, size=11, anchor="start")
    width = max(20 + min(len(shown), RACKS_PER_ROW) * (RACK_W + 20), 20 + min(len(kinds), 4) * 250, 760)
    return svg.document(int(width), int(legend_y + 20 * ((len(kinds) + 3) // 4) + 20), f"{plan.spec.name} racks")


def render(plan: Plan) -> dict[str, bytes]:
    return {FABRIC_SVG: render_fabric(plan), RACKS_SVG: render_racks(plan)}


