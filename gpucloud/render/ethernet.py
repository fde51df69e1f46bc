"""Ethernet fabric files under fabric/<fabric>/: cabling plan and bill of materials in the same format as an
InfiniBand fabric's, and one folder per switch with its SONiC configuration (render/sonic.py)."""

from __future__ import annotations

import csv
import io

from gpucloud.catalog.ethernet import ETHERNET_OPTICS, SWITCH_CABLE
from gpucloud.plan import Plan
from gpucloud.plan.ethernet import LEAF_TIER, SPINE_TIER, EthernetFabricPlan, summary
from gpucloud.render.fabric import CABLING_HEADER

TIER_NAMES = {LEAF_TIER: "leaf", SPINE_TIER: "spine"}


def cabling_csv(fp: EthernetFabricPlan) -> bytes:
    """One row per cable: host NIC (RDMA device name) to leaf port, then leaf to spine, by SONiC interface name."""
    host_cable = ETHERNET_OPTICS[fp.host_gbps][3] if fp.host_gbps in ETHERNET_OPTICS else ""
    sws = fp.switches
    rows = [CABLING_HEADER]
    for p in fp.ports:
        leaf = sws[p.leaf]
        rows.append(f"{p.host},{p.device},{leaf.name},{p.port},node_leaf,{p.rack},{leaf.rack},{host_cable}")
    for link in fp.links:
        a, b = sws[link.leaf], sws[link.spine]
        rows.append(f"{a.name},{link.leaf_port},{b.name},{link.spine_port},leaf_spine,{a.rack},{b.rack},{SWITCH_CABLE}")
    rows.append("")
    return "\n".join(rows).encode()


def bom_csv(fp: EthernetFabricPlan) -> bytes:
    """Switches by tier, cables by tier, transceivers: a host-facing cage takes one 2 x 400G transceiver, an uplink
    cage one 800G transceiver at each end, a NIC one transceiver."""
    down, up, nic, cable = ETHERNET_OPTICS.get(fp.host_gbps, ("", "", "", ""))
    host_cages = {(p.leaf, p.port) for p in fp.ports}
    cages = len({(leaf, _cage(fp, port)) for leaf, port in host_cages})
    rows: list[tuple] = []
    for tier in (LEAF_TIER, SPINE_TIER):
        n = fp.count(tier)
        if n:
            rows.append(("switch", f"{fp.model.name} ({fp.model.description})", TIER_NAMES[tier], n))
    rows.append(("cable", cable, "node_leaf", len(fp.ports)))
    if fp.links:
        rows.append(("cable", SWITCH_CABLE, "leaf_spine", len(fp.links)))
    rows.append(("transceiver", down, "switch cage to hosts", cages))
    if fp.links:
        rows.append(("transceiver", up, "switch cage to switches", 2 * len(fp.links)))
    rows.append(("transceiver", nic, "host adapter", len(fp.ports)))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("category", "item", "tier", "quantity"))
    writer.writerows(rows)
    return buf.getvalue().encode()


def _cage(fp: EthernetFabricPlan, port: str) -> int:
    return int(port[len("Ethernet"):]) // fp.model.lanes_per_cage


def section(plan: Plan) -> dict:
    """plan.json's ``ethernet`` section: the summary and every switch (hosts' ports are in cabling.csv)."""
    return {fp.name: {
        "summary": summary(fp),
        "switches": [{"name": s.name, "tier": TIER_NAMES[s.tier], "asn": s.asn, "loopback": s.loopback,
                      "rack": s.rack, "u": s.u, **({"subnet": s.subnet} if s.subnet else {})} for s in fp.switches],
    } for fp in plan.ethernet}


def plan_md(plan: Plan) -> list[str]:
    from gpucloud.render.sonic import port_mtu

    """plan.md's lines for the Ethernet fabrics: switch counts, ECMP, routing and the lossless class."""
    out = ["| fabric | switch | leaf | spine | SUs x size | rails | host ports | uplinks/leaf | ECMP | cables |",
           "|---|---|---:|---:|---|---:|---|---:|---:|---:|"]
    for fp in plan.ethernet:
        out.append(f"| {fp.name} (Ethernet, RoCEv2) | {fp.model.name} ({fp.model.gbps}G, {fp.model.cages} cages) | "
                   f"{fp.count(LEAF_TIER):,} | {fp.count(SPINE_TIER):,} | {fp.sus} x {fp.su_size} | {fp.rails} | "
                   f"{len(fp.ports):,} x {fp.host_gbps}G | {fp.up_cages} x {fp.model.gbps}G | {fp.ecmp_paths} | "
                   f"{len(fp.ports) + len(fp.links):,} |")
    for fp in plan.ethernet:
        r = fp.roce
        out += ["", f"- {fp.name}: eBGP unnumbered on every leaf-spine cable; spines share AS {r.spine_asn}, leaves "
                f"take AS {r.leaf_asn_base} + position; hosts' subnets per rail in {r.cidr} "
                f"({', '.join(fp.rail_blocks[:2])}{', ...' if fp.rails > 2 else ''}), loopbacks in {r.loopbacks}.",
                f"- {fp.name}: RoCE lossless on priority {r.lossless_priority} (DSCP {r.dscp}, traffic class "
                f"{fp.traffic_class()}), PFC and ECN on that queue only, CNPs on priority {r.cnp_priority} "
                f"(DSCP {r.cnp_dscp}); hosts and switches read the same settings. ECN marks from "
                f"{_bytes(r.ecn_min_bytes)} to {_bytes(r.ecn_max_bytes)} of queue ({r.ecn_probability}% at the top); "
                f"the PFC watchdog acts ({r.pfcwd_action}) on a queue paused {r.pfcwd_detection_ms} ms; MTU {r.mtu} "
                f"on the hosts, {port_mtu(r)} on the switch ports.",
                f"- {fp.name}: every leaf has {fp.up_cages} x {fp.model.gbps}G uplinks, {fp.links_per_spine} to each "
                f"spine; spine ports in use {len(fp.links):,} of {fp.count(SPINE_TIER) * fp.model.cages:,}"
                f"{_spine_note(fp)}.",
                f"- Cabling plan, bill of materials and each switch's SONiC config_db.json and frr.conf: "
                f"`fabric/{fp.name}/`."]
        out += ["", *_sus_md(plan, fp)]
    return out


def _bytes(n: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def _spine_note(fp: EthernetFabricPlan) -> str:
    if fp.count(SPINE_TIER) and len(fp.links) == fp.count(SPINE_TIER) * fp.model.cages:
        return (" (full: another SU's leaves need more spines, and then existing leaf-spine cables move to new spine "
                "ports)")
    return ""


MAX_SU_ROWS = 8  # SUs listed one by one; more fold into one row (12,500 nodes are ~200 SUs)


def _sus_md(plan: Plan, fp: EthernetFabricPlan) -> list[str]:
    """The SUs: their nodes, free slots, leaves and ASNs, and the Slurm switch each becomes (render/slurm_topology.py
    reads the same grouping)."""
    from gpucloud.hostlist import compress

    by_su = fp.su_hosts()
    leaves: dict[int, list] = {}
    for s in fp.leaves:
        leaves.setdefault(s.su, []).append(s)
    plugin = plan.slurm.topology_plugin if fp.name == "compute" else None
    slurm = plugin in ("topology/tree", "topology/block")
    out = [f"| SU | {'Slurm switch | ' if slurm else ''}nodes | free slots | leaves (one per rail) | leaf ASNs |",
           f"|---:|{'---|' if slurm else ''}---|---:|---|---|"]
    sus = sorted(leaves)
    shown = sus if len(sus) <= MAX_SU_ROWS else sus[:MAX_SU_ROWS - 2] + [0] + sus[-1:]
    for su in shown:
        if su == 0:
            hidden = sus[MAX_SU_ROWS - 2:-1]
            out.append(f"| ... {len(hidden)} more | {'| ' if slurm else ''}"
                       f"{sum(len(by_su.get(u, ())) for u in hidden):,} nodes | | | |")
            continue
        ls, hosts = leaves[su], by_su.get(su, [])
        out.append(f"| {su} | {f'`su{su:03}` | ' if slurm else ''}`{compress(hosts) if hosts else '-'}` | "
                   f"{fp.su_size - len(hosts)} | `{compress(s.name for s in ls)}` | {ls[0].asn}-{ls[-1].asn} |")
    if slurm:
        top = "one top switch `fabric` (the spines)" if plugin == "topology/tree" else "no switch above them"
        out += ["", f"- Slurm ({plugin}): one switch per SU holding its nodes, {top}; a job inside one SU talks "
                f"leaf-local on every rail, one across SUs crosses the spines (`slurm/topology.conf`)."]
    elif fp.name == "compute":
        out += ["", "- Slurm: no topology plugin (`slurm.topology: none`), so jobs are not packed into SUs; "
                "`topology: tree` makes one switch per SU."]
    return out


def render(plan: Plan) -> dict[str, bytes]:
    from gpucloud.render import sonic

    files: dict[str, bytes] = {}
    for fp in plan.ethernet:
        base = f"fabric/{fp.name}/"
        files[base + "cabling.csv"] = cabling_csv(fp)
        files[base + "bom.csv"] = bom_csv(fp)
        files.update(sonic.render_fabric(fp, base))
    return files
