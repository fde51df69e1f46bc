"""Checks: tenants. Partition keys, dedicated pools, and GPU limits against what a tenant can reach."""

from __future__ import annotations

from gpucloud.checks import built_hosts, check
from gpucloud.findings import Finding


@check("tenant-duplicate-pkey")
def pkeys(spec):
    """Two tenants with the same InfiniBand partition key would share a partition."""
    first: dict[int, str] = {}
    for tenant in spec.tenants:
        if tenant.pkey is None:
            continue
        if tenant.pkey in first:
            yield Finding("tenant-duplicate-pkey", "error", (*tenant.path, "pkey"),
                          f"tenant {tenant.name} has partition key 0x{tenant.pkey:04x}, already used by tenant "
                          f"{first[tenant.pkey]}", "give every tenant its own pkey; they isolate tenants on the fabric")
        else:
            first[tenant.pkey] = tenant.name


@check("tenant-pool-shared")
def dedicated(spec):
    """A dedicated pool claimed by two tenants."""
    owner: dict[str, str] = {}
    for tenant in spec.tenants:
        for j, pool in enumerate(tenant.pools):
            if pool in owner and owner[pool] != tenant.name:
                yield Finding("tenant-pool-shared", "error", (*tenant.path, "pools", j),
                              f"pool {pool} is dedicated to tenant {owner[pool]} and to tenant {tenant.name}",
                              "dedicate a pool to one tenant; share it through a partition in 'partitions'")
            owner.setdefault(pool, tenant.name)


def _pool_gpus(spec) -> dict[str, int | None]:
    """GPUs per pool; None where the pool's hardware did not resolve (the catalog checks report that)."""
    return {pool.name: built_hosts(pool) * pool.hardware.gpus if pool.hardware else None for pool in spec.pools}


@check("tenant-gpu-limit")
def gpu_limit(spec):
    """A tenant's gpu_limit above the GPUs of every pool it can reach."""
    gpus = _pool_gpus(spec)
    partitions = {p.name: p.pools for p in spec.slurm.partitions}
    for tenant in spec.tenants:
        reach = set(tenant.pools)
        for part in tenant.partitions:
            reach.update(partitions.get(part, ()))
        if any(gpus.get(p, 0) is None for p in reach):
            continue  # a pool of unknown hardware: no figure to compare with
        total = sum(gpus.get(p, 0) for p in reach)
        if reach and tenant.gpu_limit is not None and tenant.gpu_limit > total:
            yield Finding("tenant-gpu-limit", "warning", (*tenant.path, "gpu_limit"),
                          f"tenant {tenant.name} may hold {tenant.gpu_limit} GPUs but its pools and partitions "
                          f"have {total}", f"lower gpu_limit to {total} or give the tenant more pools")


@check("tenant-no-access")
def no_access(spec):
    """A tenant with neither dedicated pools nor partitions cannot run anything."""
    for tenant in spec.tenants:
        if not tenant.pools and not tenant.partitions:
            yield Finding("tenant-no-access", "warning", (*tenant.path, "name"),
                          f"tenant {tenant.name} has neither dedicated pools nor partitions",
                          "add 'pools' or 'partitions' so its users can run jobs")
