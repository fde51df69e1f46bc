"""plan.md: the plan as a reviewer reads it in a pull request: the cluster at a glance, what to buy, the fabric,
Slurm, storage, Pulumi stacks and every warning. Short on purpose; the details are in the files it links to.

Every figure comes planned (Plan.figures, Plan.fabrics, the stack layout's estimates); this module only formats.
A part whose plan is empty (no fabric, no partitions, no filesystems) says so.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from functools import lru_cache
from typing import Mapping

from gpucloud import catalog
from gpucloud import markdown as md
from gpucloud.markdown import num_text
from gpucloud.hostlist import pool_hostlist
from gpucloud.plan import Plan, rollout
from gpucloud.plan.fabric import headroom
from gpucloud.plan.figures import estimate_note
from gpucloud.plan.hosts import nvlink_domains
from gpucloud.plan.stacks import estimates
from gpucloud.render import imex
from gpucloud.render.diagrams import FABRIC_SVG, RACKS_SVG
from gpucloud.render.ethernet import plan_md as ethernet_md

@lru_cache(maxsize=256)
def _hostlist(pool) -> str:
    """A pool's hostlist, computed once although the pool shows up in several tables (pools are small frozen values,
    so the cache may outlive a render)."""
    return pool_hostlist(pool)


def cell(value) -> str:
    """Any text in a table cell, spec text included: one line, markup escaped (gpucloud.markdown)."""
    return md.text(value)


def glance(plan: Plan) -> list[str]:
    """The at-a-glance table: Plan.figures' rows (the pull-request comment prints the same rows) and, with a
    training estimate, how it is made."""
    out = md.pairs(plan.figures.rows())
    if plan.figures.training_days is not None:
        out += ["", estimate_note()]
    return out


def _server_note(m: catalog.ServerModel) -> str:
    """The model's description; for a model of the spec or one with fields changed, also what it is made of."""
    if catalog.SERVERS.get(m.name) == m:
        return m.description
    gpus = f", {m.gpus} x {m.gpu.name} {m.gpu.memory_gib} GiB" if m.gpu and m.gpus else ""
    return (f"{m.description} (as planned: {m.sockets} x {m.cores_per_socket} cores, {m.memory_gib} GiB{gpus}, "
            f"{m.rack_units}U, {m.power_kw} kW)")


def _bom(plan: Plan) -> list[str]:
    servers: Counter = Counter()  # by resolved model: a pool's overrides make a different server
    hcas: Counter = Counter()
    drives: Counter = Counter()
    for pp in plan.pools:
        n = len(pp.hosts)
        servers[pp.model] += n
        for hca in pp.model.compute_hcas + pp.model.storage_hcas:
            hcas[hca.model] += n
        if pp.model.nvme_drives:
            drives[f"NVMe {pp.model.nvme_drive_tb} TB"] += n * pp.model.nvme_drives
    rows = [(f"server {m.name}", n, _server_note(m)) for m, n in sorted(servers.items(), key=lambda mn: repr(mn[0]))]
    rows += [(f"HCA {name}", n, "") for name, n in sorted(hcas.items())]
    rows += [(name, n, "") for name, n in sorted(drives.items())]
    for fp in plan.fabrics:
        rows.append((f"switch {fp.model.name} ({fp.name} fabric)", len(fp.switches), fp.model.description))
        cables = fp.cable_counts()
        rows.append((f"cables ({fp.name} fabric)", sum(cables.values()),
                     ", ".join(f"{k.replace('_', '-')} {v:,}" for k, v in cables.items() if v)))
    for efp in plan.ethernet:
        tiers = f"{efp.count(1):,} leaf, {efp.count(2):,} spine"
        rows.append((f"switch {efp.model.name} ({efp.name} fabric)", len(efp.switches),
                     f"{efp.model.description}; {tiers}"))
        rows.append((f"cables ({efp.name} fabric)", len(efp.ports) + len(efp.links),
                     f"node-leaf {len(efp.ports):,}, leaf-spine {len(efp.links):,}"))
    out = ["| item | count | notes |", "|---|---:|---|"]
    out += [f"| {cell(item)} | {n:,} | {cell(note)} |" for item, n, note in rows]
    return out


def _pools(plan: Plan) -> list[str]:
    out = ["| pool | hosts | model | roles | hostlist | image |", "|---|---:|---|---|---|---|"]
    for pp in plan.pools:
        p = pp.pool
        out.append(f"| {cell(p.name)} | {len(pp.hosts):,} | {cell(p.model)} | {cell(', '.join(p.roles))} | "
                   f"{md.cell_code(_hostlist(p))} | {cell(p.image or '-')} |")
    return out


def _fabric(plan: Plan) -> list[str]:
    fabrics = plan.fabrics
    if plan.ethernet:  # Ethernet (RoCE) fabrics have their own section: render/ethernet.py
        return ethernet_md(plan) + (["", *_fabric(replace(plan, ethernet=()))] if fabrics else [])
    if not fabrics:
        if not plan.spec.fabrics:
            return ["No InfiniBand fabric in this spec."]
        return [f"- {name}: {f.switch}, {f.topology}, scalable unit {f.scalable_unit} (switch plan not computed)"
                for name, f in plan.spec.fabrics.items()]
    out = ["| fabric | switch | tiers | leaf | spine | core | SUs x size | rails | split | subnets | cables |",
           "|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|"]
    for fp in fabrics:
        counts = Counter(s.tier for s in fp.switches)
        out.append(f"| {fp.name} | {fp.model.name} ({fp.rate}, radix {fp.radix}) | {fp.tiers} | {counts[1]:,} | "
                   f"{counts[2]:,} | {counts[3]:,} | {fp.sus} x {fp.su_size} | {fp.rails} | {fp.split} | "
                   f"{len(fp.subnets)} | {sum(fp.cable_counts().values()):,} |")
    out += ["", f"Cabling plan, switch lists and subnet-manager files: `fabric/`. Diagram: [{FABRIC_SVG}]({FABRIC_SVG})."]
    growth = [h for h in (headroom(plan.spec, fp.name, plan.pools, planned=fp) for fp in fabrics) if h is not None]
    if growth:
        out.append("")
    for h in growth:
        # Past this point existing cables move (hardware work on a live fabric): say so before anyone orders nodes.
        near = "**Within one scalable unit of a re-cabling.** " if h.nodes < h.su_nodes else ""
        what = f" ({', '.join(h.changes)})" if h.changes else ""
        out.append(f"- {near}{h.fabric}: pool {md.code(h.pool)} can take {h.nodes:,} more node(s) without moving an existing "
                   f"cable; one more changes the fabric{what}: {h.added:+,} switch(es), {h.moved:,} of {h.links:,} "
                   "existing links moved.")
    return out


def _nvlink(plan: Plan) -> list[str]:
    """Rack-scale NVLink: the domains per pool, what Slurm and IMEX make of them, and how a rack is taken down."""
    doms = nvlink_domains(plan.pools)
    by_pool: dict[str, list] = {}
    for d in doms:
        by_pool.setdefault(d.pool, []).append(d)
    out = ["| pool | model | racks (domains) | trays per rack | GPUs per domain | partial racks | rack power | "
           "NVLink switches |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for pp in plan.pools:
        ds = by_pool.get(pp.pool.name)
        if not ds or pp.model.nvlink is None:
            continue
        nv = pp.model.nvlink
        out.append(f"| {cell(pp.pool.name)} | {cell(pp.model.name)} | {len(ds):,} | {nv.trays} | "
                   f"{nv.trays * pp.model.gpus} | {sum(1 for d in ds if not d.full)} | {num_text(nv.rack_power_kw)} kW | "
                   f"{nv.switch_trays} switch trays, {'NMX (no Fabric Manager on the trays)' if nv.nmx else 'Fabric Manager'} |")
    sp = plan.slurm
    if sp.topology_yaml:
        on_blocks = [p.name for p in sp.partitions if p.topology]
        where = (f"`slurm/topology.yaml` (Slurm 25.05+): topology/block with one block per NVLink domain (base block "
                 f"{sp.block_size} trays) for partitions {', '.join(on_blocks) or '(none)'} (`Topology=nvlink`), "
                 "topology/tree over the compute fabric for the others (the cluster default)")
    else:
        where = (f"{sp.topology_plugin or 'no topology plugin'}, one block per NVLink domain "
                 f"(base block {sp.block_size} trays)")
    out += ["", f"- Slurm: {where}; every job gets an IMEX channel (switch/nvidia_imex, "
            f"{sp.imex_channels:,} channels).",
            "- IMEX: one peer list per domain, holding only that rack's trays: `imex/<rack>/nodes_config.cfg`; "
            "the domains as data: `imex/domains.json`.",
            "- Maintenance: drain a rack as a unit (`scontrol update nodename=<the rack's hostlist> state=drain`): "
            "a job inside a domain uses every tray it holds over NVLink, so taking part of a rack takes its jobs."]
    tenants, owners = imex.domain_tenants(plan), imex.domain_owners(plan)
    for pp, (_name, _hosts, size) in zip(plan.pools, rollout.pools_of(plan)):
        domain = pp.model.nvlink
        if domain is None or not by_pool.get(pp.pool.name):
            continue
        note = rollout.rack_note(pp.pool.rollout.max_unavailable, len(pp.hosts), domain.trays)
        who = tenants.get(pp.pool.name, [])
        owner = owners.get(pp.pool.name)
        out.append(f"- Tenants on pool {md.code(pp.pool.name)}'s domains: "
                   + (f"{cell(owner)} alone (each domain its whole NVLink partition)" if owner
                      else ", ".join(cell(t) for t in who) + " (shared)" if who else "none")
                   + "; planned data in `imex/domains.json`, not applied to NMX by any tool yet.")
        out.append(f"- Rolling updates of pool {md.code(pp.pool.name)} (`gpucloud apply --allow-replace`, "
                   f"`gpucloud converge`): {size // domain.trays:,} whole rack(s) ({size:,} trays) at a time; an "
                   f"apply batch drains every tray of its racks, replaced or not, a converge batch the trays with a "
                   f"disruptive change pending{f' ({note})' if note else ''}.")
    return out


def _slurm(plan: Plan) -> list[str]:
    s = plan.spec.slurm
    if not s.partitions:
        return ["No Slurm partitions."]
    out = ["| partition | nodes | default | MaxTime | DefaultTime | exclusive |", "|---|---|---|---|---|---|"]
    for p in s.partitions:
        nodes = ", ".join(md.cell_code(_hostlist(plan.spec.pool(n))) for n in p.pools if plan.spec.pool(n))
        out.append(f"| {cell(p.name)} | {nodes} | {'yes' if p.default else ''} | {cell(p.max_time or 'UNLIMITED')} | "
                   f"{cell(p.default_time or '-')} | {'yes' if p.exclusive else ''} |")
    if plan.spec.tenants:
        out += ["", "| tenant | partitions | users | GPU limit | MaxTime | IB pkey | storage quota |",
                "|---|---|---:|---:|---|---|---|"]
        for t in plan.spec.tenants:
            quota = ", ".join(f"{fs} {md.size_text(b)}" for fs, b in t.storage_quota) or "-"
            out.append(f"| {cell(t.name)} | {cell(', '.join(t.partitions or t.pools))} | {len(t.users)} | "
                       f"{f'{t.gpu_limit:,}' if t.gpu_limit is not None else '-'} | {cell(t.max_time or '-')} | "
                       f"{f'0x{t.pkey:04x}' if t.pkey is not None else '-'} | {cell(quota)} |")
    out += ["", "Configuration: `slurm/`."]
    return out


def _storage(plan: Plan) -> list[str]:
    if not plan.spec.storage:
        return ["No filesystems."]
    out = ["| filesystem | kind | mount | capacity | mounted by |", "|---|---|---|---:|---|"]
    gpu_pools = [pp.pool.name for pp in plan.pools if pp.model.gpus]
    for fs in plan.spec.storage:
        pools = fs.pools if fs.pools is not None else (gpu_pools if fs.kind == "local" else "all pools")
        pools = ", ".join(pools) if not isinstance(pools, str) else pools
        out.append(f"| {cell(fs.name)} | {cell(fs.kind)} | {cell(fs.mount)} | {md.size_text(fs.capacity)} | "
                   f"{cell(pools)} |")
    return out


def _stacks(plan: Plan, files: Mapping[str, bytes]) -> tuple[list[dict], str]:
    """Stacks with the resource counts of the Pulumi dry run when it ran, else the layout's estimate."""
    raw = files.get("pulumi/stacks.json")
    if raw is not None:
        stacks = json.loads(raw).get("stacks", [])
        if stacks and all("resources" in s for s in stacks):
            return stacks, "resources"
    stacks = estimates(plan)
    return (stacks, "resources (estimate)") if stacks else ([], "")


def _pulumi(plan: Plan, files: Mapping[str, bytes]) -> list[str]:
    stacks, what = _stacks(plan, files)
    if not stacks:
        return ["Pulumi stacks are not planned by this version."]
    out = [f"| stack | hosts | {what} |", "|---|---:|---:|"]
    shown = stacks if len(stacks) <= 12 else stacks[:10]
    out += [f"| {cell(s['stack'])} | {s['hosts']:,} | {s['resources']:,} |" for s in shown]
    if len(shown) < len(stacks):
        rest = stacks[10:]
        out.append(f"| ... {len(rest)} more stacks | {sum(s['hosts'] for s in rest):,} | "
                   f"{sum(s['resources'] for s in rest):,} |")
    out.append(f"| **total: {len(stacks)} stack(s)** | {sum(s['hosts'] for s in stacks):,} | "
               f"{sum(s['resources'] for s in stacks):,} |")
    out += ["", "Every stack's resources: `pulumi/`."]
    return out


def _warnings(plan: Plan) -> list[str]:
    shown = [f for f in plan.findings if f.level in ("warning", "info")]
    if not shown:
        return ["None."]
    out = []
    for f in shown:
        where = f"line {f.line}, " if f.line else ""
        hint = f" Hint: {md.text(f.hint)}" if f.hint else ""
        out.append(f"- **{f.level}** {md.code(f.check)} {where}{md.code(f.json_path)}: {md.text(f.message)}.{hint}")
    return out


FOLDERS = {"fabric": "cabling plan, switch lists, subnet-manager configuration",
           "slurm": "slurm.conf and the files beside it", "storage": "mounts, exports, quotas",
           "inventory": "Ansible inventory and variables", "pulumi": "every stack's resources",
           "diagrams": "fabric and rack diagrams",
           "monitoring": "Prometheus targets and rules, Alertmanager routing, Grafana dashboards",
           "provision": "DHCP reservations, iPXE scripts and install data per host",
           "imex": "the IMEX peer list of every NVLink domain, and the domains as data"}


def _files(files: Mapping[str, bytes]) -> list[str]:
    present = sorted({p.split("/", 1)[0] for p in files if "/" in p} | {FABRIC_SVG.split("/")[0]})
    out = ["- `plan.json`: every host, address and planned record"]
    for folder in present:
        out.append(f"- `{folder}/`: {FOLDERS.get(folder, 'rendered files')}")
    out.append(f"- diagrams: [{FABRIC_SVG}]({FABRIC_SVG}), [{RACKS_SVG}]({RACKS_SVG})")
    return out


def render_text(plan: Plan, files: Mapping[str, bytes] | None = None) -> str:
    files = files or {}
    spec = plan.spec
    out = [f"# Plan: {md.text(spec.name)}", ""]
    if spec.metadata.get("description"):
        out += [md.paragraph(spec.metadata["description"]), ""]
    parts = [("At a glance", glance(plan)), ("Bill of materials", _bom(plan)), ("Node pools", _pools(plan)),
             ("Fabric", _fabric(plan)),
             *([("NVLink domains", _nvlink(plan))] if plan.slurm.nvlink_blocks or plan.figures.nvlink_domains else []),
             ("Slurm", _slurm(plan)), ("Storage", _storage(plan)),
             ("Pulumi stacks", _pulumi(plan, files)), ("Warnings", _warnings(plan)), ("Files", _files(files))]
    for title, lines in parts:
        out += [f"## {title}", "", *lines, ""]
    return "\n".join(out).rstrip("\n") + "\n"


def render(plan: Plan, files: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    return {"plan.md": render_text(plan, files).encode("utf-8")}


render.reads_rendered = True  # type: ignore[attr-defined]
