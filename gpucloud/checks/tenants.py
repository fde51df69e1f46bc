"""Checks: tenants. Partition keys, dedicated pools, and GPU limits against what a tenant can reach."""

from __future__ import annotations

from gpucloud.checks import built_hosts, check
from gpucloud.findings import Finding
from gpucloud.plan.fabric import PKEY_TABLE_SIZE, partition_keys


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
        counts = [gpus.get(p, 0) for p in reach]
        known = [n for n in counts if n is not None]
        if len(known) < len(counts):
            continue  # a pool of unknown hardware: no figure to compare with
        total = sum(known)
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


def _keyed(spec) -> dict:
    """partition_keys of the compute fabric, or {} when the spec has none (no partition keys are programmed)."""
    fabric = spec.fabrics.get("compute")
    return partition_keys(spec) if fabric is not None and fabric.kind == "infiniband" else {}


@check("tenant-pkey-limit")
def pkey_limit(spec):
    """An HCA port holds at most 128 partition keys: Default, storage, shared and one per tenant that runs there."""
    for name, keys in _keyed(spec).items():
        if keys.count > PKEY_TABLE_SIZE:
            pool = spec.pool(name)
            yield Finding("tenant-pkey-limit", "error", (*pool.path, "name"),
                          f"the ports of pool {name} would hold {keys.count} partition keys ({len(keys.tenants)} "
                          f"tenants run there) but an HCA port's P_Key table has {PKEY_TABLE_SIZE} entries",
                          "give fewer tenants with a pkey access to this pool (dedicated pools, or partitions over "
                          "other pools); tenants sharing nodes are not isolated by their keys anyway")


@check("tenant-pkey-shared")
def pkey_shared(spec):
    """Tenants with partition keys that share nodes: the keys cannot isolate them from each other there."""
    for name, keys in _keyed(spec).items():
        if len(keys.tenants) > 1:
            names = [t for t, _ in keys.tenants]
            first = next(t for t in spec.tenants if t.name == names[0])
            yield Finding("tenant-pkey-shared", "info", (*first.path, "pkey"),
                          f"tenants {', '.join(names)} all run on pool {name}: its nodes are full members of every "
                          "one of their InfiniBand partitions, so the partition keys do not isolate these tenants "
                          "from each other (a job can use any key the node holds)",
                          "give tenants that must be isolated from each other pools of their own ('pools'); "
                          "tenants that share a pool share its network")
