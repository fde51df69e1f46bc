"""How storage changes are classified for the diff: a table per spec setting, and ``storage_changes`` over two
StoragePlans for what the table cannot see (pools that stop mounting, LNet interfaces, quota shrinks).

Classes are gpucloud.impact.Impact, the type every impact table shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gpucloud.impact import Impact
from gpucloud.plan.storage import LustreFs, NfsFs, StoragePlan

NONE, RECONFIGURE = Impact.NONE, Impact.RECONFIGURE
DRAIN_REBOOT, DESTROYS_DATA = Impact.DRAIN_REBOOT, Impact.DESTROYS_DATA

# Spec setting of a filesystem -> (class, why). Read by gpucloud.diff through impact_of().
IMPACT: dict[str, tuple[Impact, str]] = {
    "kind": (DESTROYS_DATA, "another kind of filesystem replaces this one: its data is no longer reachable"),
    "fsname": (DESTROYS_DATA, "another Lustre filesystem is mounted in its place"),
    "mount": (DRAIN_REBOOT, "clients unmount and mount elsewhere: drain the nodes, jobs hold open files"),
    "options": (DRAIN_REBOOT, "mount options apply at the next mount: drain and remount"),
    "mgs": (DRAIN_REBOOT, "the MGS NIDs are read at mount time: drain and remount"),
    "lnet": (DRAIN_REBOOT, "LNet moves to other interfaces: the lnet module reloads, so drain the nodes"),
    "server": (DRAIN_REBOOT, "clients mount from another server: drain and remount"),
    "export": (DRAIN_REBOOT, "clients mount another export: drain and remount"),
    "version": (DRAIN_REBOOT, "the NFS version is negotiated at mount time: drain and remount"),
    "automount": (DRAIN_REBOOT, "fstab and autofs swap: the mount is taken down and set up again"),
    "pools": (DRAIN_REBOOT, "pools that stop or start mounting it are drained and remounted"),
    "raid": (DESTROYS_DATA, "the local drives are reassembled: everything on local scratch is lost"),
    "filesystem": (DESTROYS_DATA, "local scratch is formatted again: everything on it is lost"),
    "job_scratch": (RECONFIGURE, "the prolog/epilog snippets are installed or removed; slurmd reads them per job"),
    "capacity": (NONE, "a planning figure: quota checks and the summary change, the nodes do not"),
    "bandwidth": (NONE, "a planning figure for the summary"),
    "overcommit": (NONE, "a planning figure for the quota check"),
    "quotas": (NONE, "the quota script runs on the server, live"),
}


def impact_of(key: str) -> tuple[Impact, str]:
    return IMPACT[key]


@dataclass(frozen=True)
class StorageChange:
    subject: str  # "filesystem scratch", "tenant llm-lab on scratch", "lnet of pool gpu"
    field: str
    old: object
    new: object
    impact: Impact
    why: str


def quota_change(tenant: str, fs: str, old: int | None, new: int | None,
                 used: int | None) -> StorageChange | None:
    """A tenant's block quota on ``fs`` from ``old`` to ``new`` bytes; ``used`` bytes when known, else None."""
    subject = f"tenant {tenant} on {fs}"
    if old == new:
        return None
    if new is None or (old is not None and new > old) or old is None:
        return StorageChange(subject, "quota", old, new, NONE, "quota raised, added or lifted: applied live by the "
                                                                "quota script")
    if used is not None and used <= new:
        return StorageChange(subject, "quota", old, new, NONE, f"quota lowered, still above the {used} bytes in use")
    why = ("quota lowered below what the tenant uses: its jobs fail to write until it deletes data"
           if used is not None else
           "quota lowered and current use is unknown offline: below use, the tenant's writes fail until it deletes "
           "data (the quota script refuses this without ALLOW_SHRINK=1)")
    return StorageChange(subject, "quota", old, new, DESTROYS_DATA, why)



def _shared(st: StoragePlan) -> dict[str, LustreFs | NfsFs]:
    out: dict[str, LustreFs | NfsFs] = {f.name: f for f in st.lustre}
    out.update((f.name, f) for f in st.nfs)
    return out


def storage_changes(old: StoragePlan, new: StoragePlan,
                    used: Mapping[tuple[str, str], int] | None = None) -> list[StorageChange]:
    """Changes between two storage plans. ``used`` maps (tenant, filesystem) to bytes in use, when known."""
    out: list[StorageChange] = []
    shared_old, shared_new = _shared(old), _shared(new)
    for name in sorted(set(shared_old) - set(shared_new)):
        out.append(StorageChange(f"filesystem {name}", "", shared_old[name].mount, None, DESTROYS_DATA,
                                 "removed: no node mounts it and its tenants' directories are out of reach"))
    for name in sorted(set(shared_old) & set(shared_new)):
        a, b = shared_old[name], shared_new[name]
        if a.source != b.source:
            out.append(StorageChange(f"filesystem {name}", "source", a.source, b.source, DRAIN_REBOOT,
                                     IMPACT["mgs"][1]))
        if a.options != b.options:
            out.append(StorageChange(f"filesystem {name}", "options", ",".join(a.options), ",".join(b.options),
                                     DRAIN_REBOOT, IMPACT["options"][1]))
        for pool in sorted(set(a.pools) - set(b.pools)):
            out.append(StorageChange(f"filesystem {name}", "pools", pool, None, DRAIN_REBOOT,
                                     f"pool {pool} unmounts it: drain its nodes"))
        ta, tb = getattr(a, "tuning", ()), getattr(b, "tuning", ())
        if ta != tb:
            out.append(StorageChange(f"filesystem {name}", "tuning", len(ta), len(tb), NONE,
                                     "lctl set_param applies live"))
    lnet_old = {(n.pool, n.net): n.interfaces for n in old.lnet}
    lnet_new = {(n.pool, n.net): n.interfaces for n in new.lnet}
    for key in sorted(set(lnet_old) & set(lnet_new)):
        if lnet_old[key] != lnet_new[key]:
            out.append(StorageChange(f"lnet of pool {key[0]}", key[1], ",".join(lnet_old[key]),
                                     ",".join(lnet_new[key]), DRAIN_REBOOT, IMPACT["lnet"][1]))
    local_old = {(s.name, s.pool): s for s in old.local}
    local_new = {(s.name, s.pool): s for s in new.local}
    for key in sorted(set(local_old) - set(local_new)):
        out.append(StorageChange(f"local scratch {key[0]} on pool {key[1]}", "", local_old[key].mount, None,
                                 DESTROYS_DATA, "the drives are no longer managed; what jobs left there is lost"))
    for key in sorted(set(local_old) & set(local_new)):
        la, lb = local_old[key], local_new[key]
        for field in ("raid", "filesystem", "devices"):
            if getattr(la, field) != getattr(lb, field):
                out.append(StorageChange(f"local scratch {key[0]} on pool {key[1]}", field, getattr(la, field),
                                         getattr(lb, field), DESTROYS_DATA, IMPACT["raid"][1]))
        if la.mount != lb.mount:
            out.append(StorageChange(f"local scratch {key[0]} on pool {key[1]}", "mount", la.mount, lb.mount,
                                     DRAIN_REBOOT, IMPACT["mount"][1]))
    q_old = {(p.tenant, p.filesystem): p for p in old.projects}
    q_new = {(p.tenant, p.filesystem): p for p in new.projects}
    for key in sorted(set(q_old) | set(q_new)):
        qa, qb = q_old.get(key), q_new.get(key)
        if key[1] not in shared_new:
            continue  # the filesystem's removal already says it all
        change = quota_change(key[0], key[1], qa.block_bytes if qa else None, qb.block_bytes if qb else None,
                               (used or {}).get(key))
        if change:
            out.append(change)
        if qa and qb and qa.project_id != qb.project_id:
            out.append(StorageChange(f"tenant {key[0]} on {key[1]}", "project_id", qa.project_id, qb.project_id, NONE,
                                     "every file of the tenant is re-tagged (lfs project -r), live but long"))
    return out
