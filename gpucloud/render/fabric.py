"""Fabric files under fabric/<fabric>/: cabling plan, bill of materials, OpenSM configuration and the twin's net file.

Per-subnet files (opensm.conf, GUID lists, partitions.conf, topology.net) sit in the fabric's folder, or in one
folder per rail (fabric/compute/rail0/...) when the fabric is split into one subnet per rail.
"""

from __future__ import annotations

import csv
import io
from gpucloud import catalog
from gpucloud.plan import Plan
from gpucloud.plan.fabric import (DEFAULT_PKEY, SHARED_PKEY, STORAGE_PKEY, TIER_NAMES, FabricPlan, partition_keys,
                                  summary)

CABLING_HEADER = "a_device,a_port,b_device,b_port,tier,a_rack,b_rack,cable"
SM_PRIORITY_PRIMARY = 15
ETC = "/etc/opensm"


def _hex(guid: int) -> str:
    return "0x%016x" % guid


def section(plan: Plan) -> dict:
    out = {}
    for fp in plan.fabrics:
        out[fp.name] = {
            "summary": summary(fp),
            "subnets": [{"name": s.name or fp.name, "endpoints": s.endpoints, "switches": s.switches,
                         "lids": s.lids, "sm_hosts": list(s.sm_hosts)} for s in fp.subnets],
            "switches": [{"name": s.name, "tier": TIER_NAMES[s.tier], "subnet": s.subnet, "rack": s.rack, "u": s.u,
                          "guid": _hex(s.guid)} for s in fp.switches],
        }
    return out


def cabling_csv(fp: FabricPlan) -> bytes:
    """One row per link. With split host ports each host link is one leg of a splitter: the legs on the same switch
    port (``cage/port`` of ``cage/port/leg``) are one cable, which is how bom.csv counts them."""
    opt = catalog.OPTICS.get(fp.rate)
    host_cable = opt.host_cable if opt else ""
    sw_cable = opt.switch_cable if opt else ""
    sws = fp.switches
    label = fp.labels
    rows = [CABLING_HEADER]
    if fp.step > 1 and host_cable:
        legs = [""] + [f"{host_cable} leg {(p - 1) % fp.step + 1} of {fp.step}" for p in range(1, fp.radix + 1)]
    else:
        legs = [host_cable] * (fp.radix + 1)
    for e in fp.endpoints:
        leaf = sws[e.leaf]
        rows.append(f"{e.host},{e.device},{leaf.name},{label[e.port]},node_leaf,{e.rack},{leaf.rack},{legs[e.port]}")
    tiers = ("", "", "leaf_spine", "spine_core")
    full = fp.full_rate_labels
    for lo, lp, hi, hp, t in zip(fp.lo, fp.lo_port, fp.hi, fp.hi_port, fp.hi_tier):
        a, b = sws[lo], sws[hi]
        rows.append(f"{a.name},{full[lp]},{b.name},{full[hp]},{tiers[t]},{a.rack},{b.rack},{sw_cable}")
    rows.append("")
    return "\n".join(rows).encode()


def bom_csv(fp: FabricPlan) -> bytes:
    """Switches by model, cables and transceivers by type. A twin-port switch cage takes one transceiver, facing hosts
    or facing switches (never both); host transceivers are counted per host cage (catalog.HOST_PORTS_PER_CAGE)."""
    model = fp.model
    opt = catalog.OPTICS.get(fp.rate)
    per_cage = model.ports_per_cage * fp.step
    stride = model.cages + 1
    host_cages = {e.leaf * stride + (e.port - 1) // per_cage for e in fp.endpoints}
    up_cages = {s * stride + (p - 1) // per_cage for s, p in zip(fp.lo, fp.lo_port)}
    up_cages.update(s * stride + (p - 1) // per_cage for s, p in zip(fp.hi, fp.hi_port))
    host_cages -= up_cages
    counts = fp.cable_counts()
    rows: list[tuple] = []
    for tier in (1, 2, 3):
        n = fp.count(tier)
        if n:
            rows.append(("switch", f"{model.name} ({model.description})", TIER_NAMES[tier], n))
    if opt:
        rows.append(("cable", opt.host_cable, "node_leaf", counts["node_leaf"]))
        if counts["leaf_spine"]:
            rows.append(("cable", opt.switch_cable, "leaf_spine", counts["leaf_spine"]))
        if counts["spine_core"]:
            rows.append(("cable", opt.switch_cable, "spine_core", counts["spine_core"]))
        rows.append(("transceiver", opt.switch_down, "switch cage to hosts", len(host_cages)))
        if up_cages:
            rows.append(("transceiver", opt.switch_up, "switch cage to switches", len(up_cages)))
        for per, n in fp.host_cages or ((1, len(fp.endpoints)),):
            item = opt.hca if per == 1 else catalog.HOST_TWIN_OPTICS.get(fp.rate, opt.hca)
            rows.append(("transceiver", item, "host adapter" if per == 1 else "host cage", n))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("category", "item", "tier", "quantity"))
    writer.writerows(rows)
    return buf.getvalue().encode()


def _subnet_dir(fp: FabricPlan, subnet) -> str:
    base = f"fabric/{fp.name}/"
    return base + (f"{subnet.name}/" if subnet.name else "")


def opensm_conf(plan: Plan, fp: FabricPlan, subnet, host: str | None = None, priority: int = 0,
                port_guid: int | None = None) -> bytes:
    sm = fp.fabric.subnet_manager
    where = f"subnet {subnet.name} of " if subnet.name else ""
    lines = [
        f"# OpenSM for {where}the {fp.name} fabric of cluster {plan.spec.name}, rendered by gpucloud.",
        f"# {subnet.endpoints} HCA ports + {subnet.switches} switches = {subnet.lids} unicast LIDs of 49151.",
    ]
    if sm.kind == "ufm":
        lines.append("# Managed by UFM: merge these settings into UFM's opensm.conf.")
    elif not subnet.sm_hosts:
        tops = [x.name for x in fp.switches if x.subnet == subnet.index and x.tier > 1][:2]
        lines.append("# No host with a port here has the subnet-manager role: run the switch-embedded subnet manager "
                     f"(HA pair) on {' and '.join(tops) or 'two switches'} with these settings.")
    if host:
        lines.append(f"# Subnet manager on {host}: the highest priority is master, the others stand by.")
        lines.append(f"guid {_hex(port_guid or 0)}")
        lines.append(f"sm_priority {priority}")
    lines += [
        "subnet_prefix 0xfe80000000000000",
        "lmc 0",
        f"routing_engine {sm.routing_engine}",
        f"root_guid_file {ETC}/root_guids.txt",
    ]
    if sm.routing_engine in ("ftree", "ar_ftree"):
        lines.append(f"cn_guid_file {ETC}/cn_guids.txt")
        if subnet_has_io(fp, subnet):
            # only with I/O nodes: ftree gives up (falls back to minhop) on an empty I/O GUID file
            lines.append(f"io_guid_file {ETC}/io_guids.txt")
    lines += [
        f"partition_config_file {ETC}/partitions.conf",
        "no_partition_enforcement FALSE",
        "sweep_interval 10",
        "log_file /var/log/opensm.log",
        "",
    ]
    return "\n".join(lines).encode()


def subnet_has_io(fp: FabricPlan, subnet) -> bool:
    sws = fp.switches
    return any(e.service and sws[e.leaf].subnet == subnet.index for e in fp.endpoints)


# OpenSM reads partitions.conf with fgets into a 4,096-byte buffer: a longer line is cut, often inside a GUID, the
# whole file is rejected ("bad PortGUID") and every port falls back to full membership of the default partition.
# A definition may span lines (it ends at ';'), so member lists are wrapped, a few GUIDs to a line.
MEMBERS_PER_LINE = 4


def _definition(header: str, members: list[str]) -> list[str]:
    """``header :`` then the members, MEMBERS_PER_LINE to a line, each line ending in ',' and the last in ';'."""
    if not members:
        return [header + " : ;"]
    rows = [", ".join(members[i:i + MEMBERS_PER_LINE]) for i in range(0, len(members), MEMBERS_PER_LINE)]
    return [header + " :"] + [f"  {r}," for r in rows[:-1]] + [f"  {rows[-1]};"]


def partitions_conf(plan: Plan, fp: FabricPlan, subnet, endpoints=None) -> bytes:
    """Default, storage, one partition per tenant key and the shared one; docs/fabric.md ("Partitions") says why."""
    if endpoints is None:
        endpoints = [e for e in fp.endpoints if fp.switches[e.leaf].subnet == subnet.index]
    spec = plan.spec
    sm = set(subnet.sm_hosts)
    servers = {p.name for p in spec.pools if "storage-server" in p.roles}
    lines = [
        f"# Partitions of the {fp.name} fabric ({subnet.name or 'single subnet'}), cluster {spec.name}, rendered by "
        "gpucloud.",
        "# Limited members of a partition cannot talk to each other, only to its full members. Jobs use the",
        "# partition of their tenant (slurm/task_prolog.sh exports NCCL_IB_PKEY and UCX_IB_PKEY for it).",
        "#",
        "# Default: every HCA port limited, so it reaches the subnet administrator; switches and subnet managers full.",
    ]
    lines += _definition(f"Default={DEFAULT_PKEY:#06x}, ipoib, defmember=limited",
                         ["ALL_CAS=limited", "ALL_SWITCHES=full", "SELF=full"]
                         + [_hex(e.guid + 1) + "=full" for e in endpoints if e.host in sm])
    lines += ["# storage: at P_Key index 0, so the IPoIB interfaces (and LNet over them) use it; storage servers full,",
              "# every other port limited: all nodes reach the servers, no two clients reach each other."]
    lines += _definition(f"storage={STORAGE_PKEY:#06x}, ipoib, indx0, defmember=limited",
                         ["ALL_CAS=limited"] + [_hex(e.guid + 1) + "=full" for e in endpoints if e.pool in servers])
    if fp.name != "compute":
        lines.append("")
        return "\n".join(lines).encode()
    keys = partition_keys(spec)
    by_pool: dict[str, list[str]] = {}
    for e in endpoints:
        if e.pool in keys:
            by_pool.setdefault(e.pool, []).append(_hex(e.guid + 1) + "=full")
    for t in spec.tenants:
        if t.pkey is None:
            continue
        pools = [name for name, k in keys.items() if any(n == t.name for n, _ in k.tenants)]
        members = [g for name in pools for g in by_pool.get(name, ())]
        if not members:
            lines.append(f"# tenant {t.name} ({t.pkey:#06x}) has no ports on this subnet")
            continue
        shared_with = sorted({n for name in pools for n, _ in keys[name].tenants} - {t.name})
        note = f"; shares nodes with {', '.join(shared_with)}, so it is not isolated from them" if shared_with else ""
        lines.append(f"# tenant {t.name} (pools {', '.join(pools)}): its nodes are full members{note}")
        lines += _definition(f"{_pname(t.name)}={t.pkey:#06x}, ipoib, defmember=full", members)
    shared = [g for name, k in keys.items() if k.shared for g in by_pool.get(name, ())]
    if shared:
        names = ", ".join(name for name, k in keys.items() if k.shared)
        lines.append(f"# shared: compute ports that jobs without a tenant key of their own run on (pools {names})")
        lines += _definition(f"shared={SHARED_PKEY:#06x}, ipoib, defmember=full", shared)
    lines.append("")
    return "\n".join(lines).encode()


def _pname(name: str) -> str:
    """OpenSM partition names are plain words."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def topology_net(fp: FabricPlan, subnet, endpoints, cables) -> bytes:
    """The subnet in ibnetdiscover's format, with the switchguid=/caguid= lines ibsim needs."""
    sws = fp.switches
    names = [s.name for s in sws]
    k = fp.radix
    # one slot per port, filled in place: the port order comes for free
    ports: dict[int, list] = {i: [None] * (k + 1) for i, s in enumerate(sws) if s.subnet == subnet.index}
    ca_lines = []
    for e in endpoints:
        desc = e.desc
        ports[e.leaf][e.port] = f'[{e.port}]\t"{desc}"[1]'
        ca_lines.append(f'caguid=0x{e.guid:016x}\nCa\t1 "{desc}"\n[1]({e.guid + 1:x})\t"{names[e.leaf]}"[{e.port}]\n')
    lo, lo_port, hi, hi_port = fp.lo, fp.lo_port, fp.hi, fp.hi_port
    for c in cables:
        a, ap, b, bp = lo[c], lo_port[c], hi[c], hi_port[c]
        ports[a][ap] = f'[{ap}]\t"{names[b]}"[{bp}]'
        ports[b][bp] = f'[{bp}]\t"{names[a]}"[{ap}]'
    out = [f"# {fp.name} fabric{' ' + subnet.name if subnet.name else ''}: planned topology in ibnetdiscover format\n"]
    for i in sorted(ports, key=lambda i: (-sws[i].tier, names[i])):
        body = "\n".join(filter(None, ports[i]))
        out.append(f'switchguid=0x{sws[i].guid:016x}\nSwitch\t{k} "{names[i]}"\n{body}\n')
    out.extend(ca_lines)
    return "\n".join(out).encode()


def _guid_lines(guids) -> bytes:
    return "".join(f"{_hex(g)}\n" for g in guids).encode()


def _by_subnet(fp: FabricPlan):
    """Endpoints and switch-cable indices of every subnet, in one pass over each."""
    sub = [s.subnet for s in fp.switches]
    eps: list[list] = [[] for _ in fp.subnets]
    for e in fp.endpoints:
        eps[sub[e.leaf]].append(e)
    cables: list[list[int]] = [[] for _ in fp.subnets]
    for c, lo in enumerate(fp.lo):
        cables[sub[lo]].append(c)
    return eps, cables


def render(plan: Plan) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for fp in plan.fabrics:
        base = f"fabric/{fp.name}/"
        files[base + "cabling.csv"] = cabling_csv(fp)
        files[base + "bom.csv"] = bom_csv(fp)
        top = max((s.tier for s in fp.switches), default=1)
        eps, cables = _by_subnet(fp)
        for sub in fp.subnets:
            d = _subnet_dir(fp, sub)
            in_sub = eps[sub.index]
            files[d + "opensm.conf"] = opensm_conf(plan, fp, sub)
            port_guid = {e.host: e.guid + 1 for e in reversed(in_sub)}
            for rank, host in enumerate(sub.sm_hosts):
                files[d + f"opensm-{host}.conf"] = opensm_conf(plan, fp, sub, host, max(0, SM_PRIORITY_PRIMARY - rank),
                                                               port_guid[host])
            files[d + "root_guids.txt"] = _guid_lines(s.guid for s in fp.switches
                                                      if s.tier == top and s.subnet == sub.index)
            files[d + "cn_guids.txt"] = _guid_lines(e.guid + 1 for e in in_sub if not e.service)
            io = [e.guid + 1 for e in in_sub if e.service]
            if io:
                files[d + "io_guids.txt"] = _guid_lines(io)
            files[d + "partitions.conf"] = partitions_conf(plan, fp, sub, in_sub)
            files[d + "topology.net"] = topology_net(fp, sub, in_sub, cables[sub.index])
    return files
