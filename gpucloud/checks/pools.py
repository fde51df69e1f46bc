"""Checks: a pool's own index range and exclusions."""

from __future__ import annotations

from gpucloud.checks import built_hosts, check
from gpucloud.findings import Finding


@check("pool-empty")
def empty(spec):
    """A pool whose every index is excluded."""
    for pool in spec.pools:
        if built_hosts(pool) == 0:
            yield Finding("pool-empty", "error", (*pool.path, "exclude"),
                          f"every host of pool {pool.name} is excluded; the pool would have no hosts",
                          "remove the pool (give the remaining pools explicit ids first) or un-exclude a host")


@check("pool-exclude-range")
def exclude_range(spec):
    """Excluded indices outside the pool's index range (probably a typo)."""
    for pool in spec.pools:
        outside = sorted(i for i in pool.exclude if not pool.start <= i < pool.start + pool.count)
        if outside:
            shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
            yield Finding("pool-exclude-range", "warning", (*pool.path, "exclude"),
                          f"pool {pool.name} excludes {shown}, outside its indices "
                          f"{pool.start}-{pool.start + pool.count - 1}",
                          "exclude indices of the pool itself (index = start .. start + count - 1)")


@check("pool-rollout-budget")
def rollout_budget(spec):
    """A rollout budget larger than the pool: the first batch would take the whole pool out, and the number is
    probably meant for another pool (or as a percentage)."""
    for pool in spec.pools:
        budget = pool.rollout.max_unavailable
        hosts = built_hosts(pool)
        if isinstance(budget, int) and budget > hosts:
            yield Finding("pool-rollout-budget", "error", (*pool.path, "rollout", "max_unavailable"),
                          f"pool {pool.name} allows {budget} nodes out of service at once but has {hosts} "
                          f"host{'s' if hosts != 1 else ''}",
                          f"set max_unavailable to {hosts} or less (or a percentage such as \"10%\")")
