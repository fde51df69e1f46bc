"""Storage files under storage/ in the plan folder, and the storage section of plan.json.

* ``storage/vars/<pool>.yml``: variables of the lustre_client, nfs_client and local_scratch roles for each pool;
* ``storage/lnet/<pool>.conf``: the modprobe.d file that configures LNet on the pool (the role installs these bytes);
* ``storage/nfs/exports``: what the NFS servers must export, one line per filesystem and client block;
* ``storage/quota/<fs>.sh``: tenant project directories and quotas, an idempotent script;
* ``storage/slurm/{prolog,epilog}.d/50-local-scratch``: per-job directories on local NVMe scratch.
"""

from __future__ import annotations

import yaml

from gpucloud.plan import Plan
from gpucloud.plan.storage import (
    KO2IBLND_OPTIONS, LUSTRE_OPTIONS, NFS_EXPORT_OPTIONS, NFS_OPTIONS, LocalScratch, Lnet, NfsFs, ProjectDir,
)
from gpucloud.spec.model import SIZE_UNITS

HEADER = "# Rendered by gpucloud from the plan of cluster {name}; edit the spec, not this file.\n"


def lnet_conf(cluster: str, pool: str, nets: tuple[Lnet, ...]) -> str:
    lines = [HEADER.format(name=cluster).rstrip("\n"), f"# LNet for pool {pool}."]
    for net in nets:
        kind = "multi-rail over " if net.multi_rail else "on "
        lines.append(f"# {net.net}: {kind}{', '.join(net.interfaces)} ({net.via} HCAs)")
    lines.append(f'options lnet networks="{",".join(n.networks for n in nets)}"')
    if any(n.net.startswith("o2ib") for n in nets):
        for name, value, why in KO2IBLND_OPTIONS:
            lines.append(f"# {name}={value}: {why}")
        lines.append("options ko2iblnd " + " ".join(f"{n}={v}" for n, v, _ in KO2IBLND_OPTIONS))
    return "\n".join(lines) + "\n"


def _local_vars(s: LocalScratch) -> dict:
    return {
        "local_scratch_name": s.name,
        "local_scratch_devices": list(s.devices),
        "local_scratch_raid": s.raid,
        "local_scratch_md_device": s.md_device or "",
        "local_scratch_filesystem": s.filesystem,
        "local_scratch_label": f"{s.name}"[:12],
        "local_scratch_mounts": [{"device": d, "path": p} for d, p in s.mounts()],
        "local_scratch_options": s.options,
        "local_scratch_job_scratch": s.job_scratch,
    }


def pool_vars(plan: Plan, pool: str) -> dict:
    st = plan.storage
    nets = st.lnet_for(pool)
    lustre = [f for f in st.lustre if pool in f.pools]
    out: dict = {
        "lustre_client_lnet_conf": lnet_conf(plan.spec.name, pool, nets) if nets and lustre else "",
        "lustre_client_interfaces": sorted({i for n in nets for i in n.interfaces}) if lustre else [],
        "lustre_client_filesystems": [
            {"name": f.name, "fsname": f.fsname, "source": f.source, "path": f.mount, "options": ",".join(f.options),
             "tuning": [{"param": t.param, "value": t.value, "reason": t.reason} for t in f.tuning]}
            for f in lustre
        ],
        "nfs_client_mounts": [
            {"name": f.name, "source": f.source, "path": f.mount, "options": ",".join(f.options),
             "automount": f.automount}
            for f in st.nfs if pool in f.pools
        ],
    }
    local = [s for s in st.local if s.pool == pool]
    if local:
        out.update(_local_vars(local[0]))
        if local[0].md_device:  # the Debian family (every software.os the schema accepts) reads this one
            out["local_scratch_mdadm_conf"] = "/etc/mdadm/mdadm.conf"
        if local[0].job_scratch:
            scripts = job_scratch_scripts(plan)
            out.update({"local_scratch_prolog": scripts[PROLOG].decode(), "local_scratch_epilog": scripts[EPILOG].decode(),
                        "local_scratch_prolog_path": NODE_PROLOG, "local_scratch_epilog_path": NODE_EPILOG})
    else:
        out.update({"local_scratch_devices": [], "local_scratch_mounts": []})
    return out


def exports(plan: Plan) -> str:
    st = plan.storage
    lines = [HEADER.format(name=plan.spec.name).rstrip("\n"),
             "# Exports the NFS servers must offer: each filesystem to the address blocks of the pools that mount it.",
             f"# Options: {NFS_EXPORT_OPTIONS}"]
    for f in st.nfs:
        lines.append(f"# {f.name}: server {f.server}, mounted at {f.mount} by {', '.join(f.pools)}")
        clients = " ".join(f"{c}({NFS_EXPORT_OPTIONS})" for c in f.clients)
        lines.append(f"{f.export} {clients}")
    return "\n".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (whole files) as literal blocks, so the vars read like the files they install."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def _dump(data: dict) -> bytes:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=120,
                     allow_unicode=True).encode()


def render(plan: Plan) -> dict[str, bytes]:
    st = plan.storage
    name = plan.spec.name
    files: dict[str, bytes] = {}
    for pp in plan.pools:
        pool = pp.pool.name
        head = HEADER.format(name=name) + f"# Storage role variables of pool {pool}: load them as the pool group's vars.\n"
        files[f"storage/vars/{pool}.yml"] = head.encode() + _dump(pool_vars(plan, pool))
        nets = st.lnet_for(pool)
        if nets and any(pool in f.pools for f in st.lustre):
            files[f"storage/lnet/{pool}.conf"] = lnet_conf(name, pool, nets).encode()
    if st.nfs:
        files["storage/nfs/exports"] = exports(plan).encode()
    files.update(quota_scripts(plan))
    files.update(job_scratch_scripts(plan))
    return files


def _size(n: int | None) -> str | None:
    """Bytes as written in specs: an exact binary unit (200 TiB), else a decimal one to three digits (3.84 TB)."""
    if n is None:
        return None
    for unit in ("Ei", "Pi", "Ti", "Gi"):
        if n >= SIZE_UNITS[unit] and n % (SIZE_UNITS[unit] // 1024) == 0 and n % 10**9:
            return f"{n / SIZE_UNITS[unit]:g} {unit}B"
    for unit in ("E", "P", "T", "G", "M", "K"):
        if n >= SIZE_UNITS[unit]:
            return f"{n / SIZE_UNITS[unit]:.3g} {unit}B"
    return f"{n} B"


def section(plan: Plan) -> dict:
    """Capacity per filesystem and tenant, bandwidth figures (all planned in StoragePlan.figures) and the client
    configuration summary."""
    st = plan.storage
    filesystems: list[dict] = []
    for f in st.lustre:
        fig = st.figures_of(f.name)
        filesystems.append({
            "name": f.name, "kind": "lustre", "mount": f.mount, "source": f.source, "lnet": f.net, "via": f.via,
            "pools": list(f.pools), "skipped": {p: why for p, why in f.skipped}, "hosts": fig.hosts,
            "capacity": _size(f.capacity), "capacity_bytes": f.capacity,
            "quota": _size(fig.quota_bytes), "quota_bytes": fig.quota_bytes, "quota_ratio": fig.quota_ratio,
            "overcommit": f.overcommit,
            "bandwidth": f"{_size(f.bandwidth)}/s" if f.bandwidth else None,
            "bandwidth_per_gpu": f"{_size(fig.bandwidth_per_gpu)}/s" if fig.bandwidth_per_gpu is not None else None,
            "client_links_gbps": fig.client_links_gbps,
            "options": ",".join(f.options),
        })
    for n in st.nfs:
        fig = st.figures_of(n.name)
        filesystems.append({
            "name": n.name, "kind": "nfs", "mount": n.mount, "source": n.source, "pools": list(n.pools),
            "hosts": fig.hosts, "automount": n.automount,
            "capacity": _size(n.capacity), "capacity_bytes": n.capacity,
            "quota": _size(fig.quota_bytes), "quota_bytes": fig.quota_bytes, "quota_ratio": fig.quota_ratio,
            "overcommit": n.overcommit, "exported_to": list(n.clients), "options": ",".join(n.options),
        })
    for s in st.local:
        filesystems.append({
            "name": s.name, "kind": "local", "mount": s.mount, "pools": [s.pool], "hosts": s.hosts, "raid": s.raid,
            "drives": len(s.devices), "filesystem": s.filesystem, "job_scratch": s.job_scratch,
            "capacity_per_node": _size(s.capacity), "capacity_bytes": s.total_capacity,
            "capacity": _size(s.total_capacity),
        })
    tenants: dict[str, dict] = {}
    for p in st.projects:
        t = tenants.setdefault(p.tenant, {"project_id": p.project_id, "quotas": {}})
        t["quotas"][p.filesystem] = {"path": p.path, "block": _size(p.block_bytes), "block_bytes": p.block_bytes,
                                     "inodes": p.inodes}
    return {
        "filesystems": filesystems,
        "tenants": tenants,
        "lnet": [{"pool": n.pool, "net": n.net, "interfaces": list(n.interfaces), "multi_rail": n.multi_rail,
                  "via": n.via} for n in st.lnet],
        "mount_options": {"lustre": {o: why for o, why in LUSTRE_OPTIONS}, "nfs": {o: why for o, why in NFS_OPTIONS}},
        "job_scratch": job_scratch_summary(plan),
    }


# Where the Slurm engineer's slurm.conf finds the snippets: Prolog=/etc/slurm/prolog.d/* and Epilog=/etc/slurm/epilog.d/*
PROLOG = "storage/slurm/prolog.d/50-local-scratch"
EPILOG = "storage/slurm/epilog.d/50-local-scratch"
NODE_PROLOG = "/etc/slurm/prolog.d/50-local-scratch"
NODE_EPILOG = "/etc/slurm/epilog.d/50-local-scratch"


def _scratch_base(s: LocalScratch) -> str:
    return s.mounts()[0][1]


def job_scratch_summary(plan: Plan) -> dict | None:
    s = plan.storage.job_scratch
    if s is None:
        return None
    return {"filesystem": s.name, "directory": f"{_scratch_base(s)}/job_<SLURM_JOB_ID>",
            "prolog": NODE_PROLOG, "epilog": NODE_EPILOG}


def job_scratch_scripts(plan: Plan) -> dict[str, bytes]:
    s = plan.storage.job_scratch
    if s is None:
        return {}
    base = _scratch_base(s)
    head = HEADER.format(name=plan.spec.name)
    prolog = f"""#!/bin/sh
{head}# Slurm prolog (runs as root on every node of a job before it starts): the job's private directory on local
# NVMe scratch, {base}/job_$SLURM_JOB_ID, owned by the job's user. slurm.conf: Prolog=/etc/slurm/prolog.d/*
set -eu
base={base}
case "${{SLURM_JOB_ID:-}}" in ''|*[!0-9]*) echo "prolog: no numeric SLURM_JOB_ID" >&2; exit 1 ;; esac
# A node whose scratch is not mounted must not run jobs that would fill its root disk: failing drains it.
if ! mountpoint -q "$base"; then echo "prolog: local scratch $base is not mounted" >&2; exit 1; fi
gid=${{SLURM_JOB_GID:-$(id -g "$SLURM_JOB_UID")}}
install -d -m 0700 -o "$SLURM_JOB_UID" -g "$gid" "$base/job_$SLURM_JOB_ID"
"""
    epilog = f"""#!/bin/sh
{head}# Slurm epilog (runs as root on every node of a job after it ends): removes the job's scratch directory.
# slurm.conf: Epilog=/etc/slurm/epilog.d/*
set -eu
base={base}
case "${{SLURM_JOB_ID:-}}" in ''|*[!0-9]*) exit 0 ;; esac
dir="$base/job_$SLURM_JOB_ID"
[ -d "$dir" ] || exit 0
# --one-file-system: never follow a bind or mount a job left behind into another filesystem.
rm -rf --one-file-system -- "$dir"
"""
    return {PROLOG: prolog.encode(), EPILOG: epilog.encode()}


# The tenant's directory tree, the same on Lustre and on an XFS-backed NFS export: one group-owned setgid directory
# per tenant and one per user inside it. ${ROOT} is replaced by the shell variable holding the filesystem's path.
_TENANT_TREE = """    name=$1 id=$2 kib=$3 inodes=$4
    shift 4
    dir="${ROOT}/$name"
    if [ ! -d "$dir" ]; then mkdir -p "$dir" && echo "created $dir"; fi
    if getent group "$name" >/dev/null 2>&1; then chgrp "$name" "$dir"; fi
    chmod 2770 "$dir"
    for user in "$@"; do
        if [ ! -d "$dir/$user" ]; then mkdir "$dir/$user" && echo "created $dir/$user"; fi
        if getent passwd "$user" >/dev/null 2>&1; then chown "$user" "$dir/$user"; fi
    done"""


LUSTRE_QUOTA = """#!/bin/sh
{head}# Tenant project directories and quotas on Lustre filesystem {name} (fsname {fsname}, mounted at {mount}).
# Run as root on a client that mounts it. Safe to run again: it reads the current state with lfs and changes only
# what differs from the plan. Limits: block hard limits in KiB, inode hard limits; 0 means none.
#   MOUNT=<path>    the filesystem is mounted somewhere else on this host
#   LFS=<path>      another lfs binary
#   ALLOW_SHRINK=1  set a block limit below what a project already uses (refused otherwise: writes would fail)
set -eu
MOUNT=${{MOUNT:-{mount}}}
LFS=${{LFS:-lfs}}
ALLOW_SHRINK=${{ALLOW_SHRINK:-0}}
failed=0

# tenant NAME PROJECT_ID BLOCK_KIB INODES USER...
tenant() {{
{tree_mount}
    # 'lfs project -d DIR' prints: PROJID FLAG DIR (FLAG P = new files inherit the project).
    current=$("$LFS" project -d "$dir" | awk '{{print $1 " " $2}}')
    if [ "$current" != "$id P" ]; then
        "$LFS" project -p "$id" -s -r "$dir" && echo "project $id set on $dir"
    fi
    # 'lfs quota -q -p ID MOUNT' prints: FS KBYTES QUOTA LIMIT GRACE FILES QUOTA LIMIT GRACE ('*' marks excess).
    set -- $("$LFS" quota -q -p "$id" "$MOUNT" | tr -d '*')
    used=$2 bhard=$4 ihard=$8
    if [ "$bhard" = "$kib" ] && [ "$ihard" = "$inodes" ]; then return 0; fi
    if [ "$kib" != 0 ] && [ "$used" -gt "$kib" ] && [ "$ALLOW_SHRINK" != 1 ]; then
        echo "refused: project $id ($name) uses $used KiB, more than the new limit $kib KiB; set ALLOW_SHRINK=1" >&2
        failed=1
        return 0
    fi
    "$LFS" setquota -p "$id" -b 0 -B "$kib" -i 0 -I "$inodes" "$MOUNT" && echo "quota of project $id: $kib KiB, $inodes inodes"
}}

{calls}
exit $failed
"""

XFS_QUOTA = """#!/bin/sh
{head}# Tenant project directories and XFS project quotas for NFS filesystem {name} ({server}:{export}).
# Run as root on the NFS server, where {export} is an XFS filesystem (or a directory of one) mounted with prjquota.
# Safe to run again: project tags are only set where missing, and xfs_quota limit rewrites the same values.
#   EXPORT=<path>   the export lives elsewhere on this host
#   XFS_QUOTA=<path>, XFS_IO=<path>  other binaries
set -eu
EXPORT=${{EXPORT:-{export}}}
XFS_QUOTA=${{XFS_QUOTA:-xfs_quota}}
XFS_IO=${{XFS_IO:-xfs_io}}
fsroot=$(df --output=target "$EXPORT" | tail -n 1)

# tenant NAME PROJECT_ID BLOCK_KIB INODES USER...
tenant() {{
{tree_export}
    # lsproj prints 'projid = N'; project -s tags the tree and sets the inherit flag.
    if [ "$("$XFS_IO" -c lsproj "$dir" | awk '{{print $3}}')" != "$id" ]; then
        "$XFS_QUOTA" -x -c "project -s -p $dir $id" "$fsroot" >/dev/null && echo "project $id set on $dir"
    fi
    "$XFS_QUOTA" -x -c "limit -p bsoft=0 bhard=${{kib}}k isoft=0 ihard=$inodes $id" "$fsroot"
}}

{calls}
"""


def _calls(projects: list[ProjectDir]) -> str:
    lines = []
    for p in projects:
        kib = (p.block_bytes or 0) // 1024
        users = " ".join(p.users)
        lines.append(f"tenant {p.tenant} {p.project_id} {kib} {p.inodes or 0}" + (f" {users}" if users else ""))
    return "\n".join(lines)


def quota_scripts(plan: Plan) -> dict[str, bytes]:
    st = plan.storage
    head = HEADER.format(name=plan.spec.name)
    out = {}
    for f in st.lustre:
        projects = [p for p in st.projects if p.filesystem == f.name]
        if projects:
            text = LUSTRE_QUOTA.format(head=head, name=f.name, fsname=f.fsname, mount=f.mount, calls=_calls(projects),
                                       tree_mount=_TENANT_TREE.replace("${ROOT}", "$MOUNT"))
            out[f"storage/quota/{f.name}.sh"] = text.encode()
    nfs_by_name: dict[str, NfsFs] = {f.name: f for f in st.nfs}
    for fs in plan.spec.storage:
        if fs.kind != "nfs" or fs.settings.get("quotas", "none") != "xfs-project":
            continue
        n = nfs_by_name[fs.name]
        projects = [p for p in st.projects if p.filesystem == n.name]
        if projects:
            text = XFS_QUOTA.format(head=head, name=n.name, server=n.server, export=n.export, calls=_calls(projects),
                                    tree_export=_TENANT_TREE.replace("${ROOT}", "$EXPORT"))
            out[f"storage/quota/{n.name}.sh"] = text.encode()
    return out
