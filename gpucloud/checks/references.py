"""Checks: names that refer to something defined elsewhere in the spec (pools, partitions, filesystems, fabrics)."""

from __future__ import annotations

from gpucloud.checks import check
from gpucloud.findings import Finding, choices_hint


def _unknown(check_id, names, known, path, what, owner):
    for j, name in enumerate(names):
        if name not in known:
            yield Finding(check_id, "error", (*path, j), f"{owner} names unknown {what} {name!r}",
                          choices_hint(name, known, f"{what}s"))


@check("reference-pool")
def pools(spec):
    """Partitions, tenants, filesystems and subnet managers that name a pool that does not exist."""
    known = [p.name for p in spec.pools]
    for part in spec.slurm.partitions:
        yield from _unknown("reference-pool", part.pools, known, (*part.path, "pools"), "pool",
                            f"partition {part.name}")
    for tenant in spec.tenants:
        yield from _unknown("reference-pool", tenant.pools, known, (*tenant.path, "pools"), "pool",
                            f"tenant {tenant.name}")
    for fs in spec.storage:
        yield from _unknown("reference-pool", fs.pools or (), known, (*fs.path, "pools"), "pool",
                            f"filesystem {fs.name}")
    for fabric in spec.fabrics.values():
        pool = fabric.subnet_manager.pool
        if pool is not None and pool not in known:
            yield Finding("reference-pool", "error", (*fabric.path, "subnet_manager", "pool"),
                          f"the {fabric.name} fabric's subnet manager runs on unknown pool {pool!r}",
                          choices_hint(pool, known, "pools"))


@check("reference-partition")
def partitions(spec):
    """Tenants that name a partition that does not exist."""
    known = [p.name for p in spec.slurm.partitions]
    for tenant in spec.tenants:
        yield from _unknown("reference-partition", tenant.partitions, known, (*tenant.path, "partitions"),
                            "partition", f"tenant {tenant.name}")


@check("reference-filesystem")
def filesystems(spec):
    """Tenant quotas on a filesystem that does not exist."""
    known = [f.name for f in spec.storage]
    for tenant in spec.tenants:
        for field, quota in (("storage_quota", tenant.storage_quota), ("inode_quota", tenant.inode_quota)):
            for name, _ in quota:
                if name not in known:
                    yield Finding("reference-filesystem", "error", (*tenant.path, field, name),
                                  f"tenant {tenant.name} has a quota on unknown filesystem {name!r}",
                                  choices_hint(name, known, "filesystems"))


@check("reference-fabric")
def fabrics(spec):
    """Pools attached to a fabric the spec does not define."""
    for pool in spec.pools:
        if pool.fabric != "none" and pool.fabric not in spec.fabrics:
            yield Finding("reference-fabric", "error", (*pool.path, "fabric"),
                          f"pool {pool.name} attaches to fabric {pool.fabric!r}, which the spec does not define",
                          f"define fabric.{pool.fabric} (switch, scalable_unit, ...) or set fabric: none")
