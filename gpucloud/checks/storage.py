"""Checks: storage. Quotas against capacity, LNet reachability, MGS NIDs, local NVMe, job scratch, project ids,
mount points and exports on system directories, filesystems mounted inside one another.

Paths are compared in the model's one spelling (``normal_path``: '/scratch/.' is '/scratch', '/x/../etc' is '/etc').
"""

from __future__ import annotations

from gpucloud.checks import check
from gpucloud.findings import Finding
from gpucloud.plan.storage import lustre_via, project_id
from gpucloud.spec.model import Filesystem


# Directories of the operating system. A mount point at or below one hides (or is hidden by) what the node needs;
# see docs/storage.md for the reasons. "/" itself is refused too.
SYSTEM_DIRS = {
    "/bin": "the operating system's programs", "/sbin": "the operating system's programs",
    "/usr": "the operating system's programs and libraries", "/lib": "the operating system's libraries",
    "/lib32": "the operating system's libraries", "/lib64": "the operating system's libraries",
    "/libx32": "the operating system's libraries", "/boot": "the kernel and the boot loader",
    "/etc": "the node's configuration", "/dev": "device files (devtmpfs)", "/proc": "the kernel's process table",
    "/sys": "the kernel's sysfs", "/run": "runtime state on a tmpfs emptied at every boot",
    "/root": "root's home, with the SSH keys that let the playbooks in",
    "/tmp": "temporary files, which systemd-tmpfiles ages out and Slurm's job_container/tmpfs replaces per job",
    "/var": "daemon state: the Slurm spool, munge, logs, container storage",
}
# An export is a path on the NFS server, which the plan does not build: data below /var (/var/nfs/home, a common
# layout) is allowed there, but not /var itself nor its system subdirectories.
EXPORT_DIRS = {**{d: why for d, why in SYSTEM_DIRS.items() if d != "/var"},
               **{d: "daemon state" for d in ("/var/cache", "/var/lib", "/var/lock", "/var/log", "/var/run",
                                                "/var/spool", "/var/tmp")}}


def system_dir(path: str, dirs: dict[str, str]) -> str | None:
    """The system directory that ``path`` (normalised) is, or lies below; "/" for the root itself."""
    if path == "/":
        return "/"
    for d in dirs:
        if path == d or path.startswith(d + "/"):
            return d
    return None


def _model(spec, pool_name):
    pool = spec.pool(pool_name)
    return (pool, pool.hardware) if pool is not None else (None, None)


def _human(n: int) -> str:
    for unit, size in (("PB", 10**15), ("TB", 10**12), ("GB", 10**9)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


@check("storage-overcommit")
def overcommit(spec):
    """Summed tenant quotas above a filesystem's capacity times its allowed overcommit ratio."""
    for fs in spec.storage:
        if fs.kind == "local":
            continue
        quotas = [(t, q) for t in spec.tenants for name, q in t.storage_quota if name == fs.name]
        if not quotas:
            continue
        total = sum(q for _, q in quotas)
        if fs.capacity is None:
            yield Finding("storage-overcommit", "warning", (*fs.path, "name"),
                          f"tenants hold {_human(total)} of quota on {fs.name!r}, which has no capacity to check "
                          "them against", f"add capacity: to filesystem {fs.name}")
            continue
        ratio = float(fs.settings.get("overcommit", 1.0))
        if total > fs.capacity * ratio:
            biggest = max(quotas, key=lambda tq: tq[1])[0]
            yield Finding("storage-overcommit", "error", (*fs.path, "capacity"),
                          f"tenant quotas on {fs.name!r} add up to {_human(total)}, {total / fs.capacity:.2f} x its "
                          f"capacity of {_human(fs.capacity)}; the spec allows {ratio:g} x",
                          f"lower quotas (the largest is {biggest.name}'s) or raise overcommit: on {fs.name}")


@check("storage-quota-local")
def quota_on_local(spec):
    """Tenant quotas on node-local scratch, which has no tenant quota (jobs get it whole)."""
    local = {fs.name for fs in spec.storage if fs.kind == "local"}
    for t in spec.tenants:
        for field, quota in (("storage_quota", t.storage_quota), ("inode_quota", t.inode_quota)):
            for name, _ in quota:
                if name in local:
                    yield Finding("storage-quota-local", "error", (*t.path, field, name),
                                  f"tenant {t.name} has a quota on node-local filesystem {name!r}",
                                  "local NVMe scratch is per job and emptied by the epilog; quota a shared filesystem")


@check("storage-lnet")
def lnet(spec):
    """Lustre filesystems that a listed pool cannot reach over the chosen LNet interfaces."""
    for fs in spec.storage:
        if fs.kind != "lustre":
            continue
        via = lustre_via(spec, fs)
        nets = sorted({nid.split("@", 1)[1] for nid in fs.settings["mgs"]})
        if len(nets) > 1:
            yield Finding("storage-lnet", "error", (*fs.path, "mgs"),
                          f"MGS NIDs of {fs.name!r} are on several LNet networks ({', '.join(nets)})",
                          "list the NIDs of one network, primary MGS first then its failover partner")
        if via == "storage" and "storage" not in spec.fabrics and fs.settings.get("lnet") == "storage":
            yield Finding("storage-lnet", "info", (*fs.path, "lnet"),
                          f"{fs.name!r} is reached through the storage HCAs but the spec plans no storage fabric",
                          "add fabric.storage, or lnet: compute when the appliances hang off the compute fabric")
        for j, name in enumerate(fs.pools or ()):
            pool, model = _model(spec, name)
            if model is None:
                continue  # reference and catalog checks report it
            if via == "storage" and not model.storage_hcas:
                yield Finding("storage-lnet", "error", (*fs.path, "pools", j),
                              f"pool {name} mounts Lustre {fs.name!r} over the storage HCAs, but model "
                              f"{model.name} has none", "drop the pool from pools:, or pick a model with a storage "
                              "HCA, or set lnet: compute")
            elif via != "storage" and (pool.fabric != "compute" or not model.rails):
                yield Finding("storage-lnet", "error", (*fs.path, "pools", j),
                              f"pool {name} mounts Lustre {fs.name!r} over the compute fabric, but has no "
                              "compute-fabric HCA", "drop the pool from pools:, or set lnet: storage")


@check("storage-local-drives")
def local_drives(spec):
    """Local scratch on pools whose model has no NVMe data drive, and RAID0 over a single drive."""
    for fs in spec.storage:
        if fs.kind != "local":
            continue
        for j, name in enumerate(fs.pools or ()):
            _, model = _model(spec, name)
            if model is not None and not model.nvme_drives:
                yield Finding("storage-local-drives", "error", (*fs.path, "pools", j),
                              f"pool {name} gets local scratch {fs.name!r}, but model {model.name} has no NVMe "
                              "data drive", "drop the pool from pools:")
            elif model is not None and model.nvme_drives == 1 and fs.settings.get("raid", "raid0") == "raid0":
                yield Finding("storage-local-drives", "info", (*fs.path, "raid"),
                              f"model {model.name} of pool {name} has one NVMe drive: RAID0 is skipped and the "
                              "drive is used directly", "set raid: none to say so")


@check("storage-job-scratch")
def job_scratch(spec):
    """More than one local filesystem asks for Slurm job scratch (one prolog/epilog pair serves one)."""
    wanted = [fs for fs in spec.storage if fs.kind == "local" and fs.settings.get("job_scratch")]
    for fs in wanted[1:]:
        yield Finding("storage-job-scratch", "error", (*fs.path, "job_scratch"),
                      f"{fs.name!r} asks for job scratch, but {wanted[0].name!r} already provides it",
                      "keep job_scratch: true on one local filesystem")


@check("storage-project-id")
def project_ids(spec):
    """Two tenants with the same storage project id (their quotas would be one)."""
    seen: dict[int, str] = {}
    for t in spec.tenants:
        pid = project_id(t)
        if pid in seen:
            field = (*t.path, "project_id") if t.project_id is not None else (*t.path, "name")
            yield Finding("storage-project-id", "error", field,
                          f"tenants {seen[pid]} and {t.name} share storage project id {pid}",
                          f"set project_id: on tenant {t.name} to an unused number")
        else:
            seen[pid] = t.name


@check("storage-nfs-quota")
def nfs_quota(spec):
    """Tenant quotas on an NFS filesystem whose server does not enforce them."""
    for fs in spec.storage:
        if fs.kind != "nfs" or fs.settings.get("quotas", "none") != "none":
            continue
        holders = sorted(t.name for t in spec.tenants for name, _ in (*t.storage_quota, *t.inode_quota)
                         if name == fs.name)
        if holders:
            yield Finding("storage-nfs-quota", "info", (*fs.path, "name"),
                          f"quotas of {', '.join(sorted(set(holders)))} on NFS {fs.name!r} are reported, not enforced",
                          "set quotas: xfs-project when the server exports XFS with project quotas")


@check("storage-system-path")
def system_paths(spec):
    """Mount points or NFS exports on the root or a system directory (/etc, /var, /usr, /tmp, ...)."""
    hint = "mount it at a path of its own, e.g. /scratch, /local, /lustre/<name>, /home or /opt/<name>"
    for fs in spec.storage:
        hit = system_dir(fs.mount, SYSTEM_DIRS)
        if hit == "/":
            yield Finding("storage-system-path", "error", (*fs.path, "mount"),
                          f"{fs.name!r} would be mounted over the root filesystem", hint)
        elif hit is not None:
            where = "at" if fs.mount == hit else f"at {fs.mount}, inside"
            yield Finding("storage-system-path", "error", (*fs.path, "mount"),
                          f"{fs.name!r} would be mounted {where} {hit}, which holds {SYSTEM_DIRS[hit]}", hint)
        export = fs.settings.get("export") if fs.kind == "nfs" else None
        if export is None:
            continue
        hit = "/var" if export == "/var" else system_dir(export, EXPORT_DIRS)
        if hit is not None:
            what = "the server's root filesystem" if hit == "/" else \
                f"{export}" + ("" if export == hit else f", inside {hit}") + " of the server"
            yield Finding("storage-system-path", "error", (*fs.path, "export"),
                          f"{fs.name!r} exports {what}: every client could read (and root write) its system files",
                          "export a data directory of its own, e.g. /export/<name> or /srv/nfs/<name>")


def _mounted_by(spec, fs) -> set[str]:
    """Pools that mount ``fs``, or a superset: listed pools, else every pool (local scratch: the GPU pools whose
    model has an NVMe data drive, as the storage planner chooses them)."""
    if fs.pools is not None:
        return set(fs.pools)
    if fs.kind != "local":
        return {p.name for p in spec.pools}
    out = set()
    for pool in spec.pools:
        model = pool.hardware
        if model is None or (model.gpus and model.nvme_drives):
            out.add(pool.name)
    return out


@check("storage-mount-nested")
def nested_mounts(spec):
    """A filesystem mounted inside another one on the same nodes: the roles mount them in their own order, so the
    outer mount may hide the inner one, and the inner mount point would have to exist on the outer filesystem."""
    by_mount: dict[str, Filesystem] = {}
    for fs in spec.storage:
        by_mount.setdefault(fs.mount, fs)  # the same path twice is filesystem-duplicate-mount
    for fs in spec.storage:
        if by_mount[fs.mount] is not fs or fs.mount == "/":
            continue
        parent = fs.mount
        # Each ancestor but / (a filesystem on / is storage-system-path): linear in the depth of the path.
        while parent := parent.rsplit("/", 1)[0]:
            outer = by_mount.get(parent)
            if outer is None:
                continue
            shared = sorted(_mounted_by(spec, fs) & _mounted_by(spec, outer))
            if shared:
                more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
                yield Finding("storage-mount-nested", "error", (*fs.path, "mount"),
                              f"{fs.name!r} at {fs.mount} is inside {outer.name!r} at {outer.mount} on pool "
                              f"{shared[0]}{more}",
                              f"mount {fs.name} outside {outer.mount} (a path of its own, e.g. /scratch or "
                              "/lustre/<name>), or list pools: so that no pool mounts both")
                break
