"""Rollout batches: which nodes `gpucloud apply --allow-replace` takes out of service together.

- Each pool has a budget, ``node_pools[].rollout.max_unavailable``: a count, or a percentage of the pool's built
  hosts (rounded down, at least 1). Without one, 10 % (so 1 for pools of up to 19 hosts, 25 for 250).
- A batch holds nodes of one pool only, at most the pool's budget, in the order the plan lists the pool's hosts
  (index order), so the same change always rolls the same way.
- Pools roll one after another, in spec order; nodes the plan no longer has (a pool shrunk or removed) come after
  the replaced ones of their pool, by name; nodes of a pool the spec no longer has roll last, one at a time.

Pure and linear in the nodes to roll: the stack's executor (gpucloud.stack.rollout) drains, replaces, converges,
checks and resumes one batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

DEFAULT_PERCENT = 10
DEFAULT_DRAIN_TIMEOUT = 3600


@dataclass(frozen=True)
class Batch:
    number: int  # 1-based, in rollout order
    pool: str  # "" when the node's pool is no longer in the spec
    nodes: tuple[str, ...]
    budget: int


def budget(max_unavailable: int | str | None, pool_size: int) -> int:
    """Nodes of a pool of ``pool_size`` hosts that may be out of service at once."""
    if max_unavailable is None:
        max_unavailable = f"{DEFAULT_PERCENT}%"
    if isinstance(max_unavailable, str):
        return max(1, pool_size * int(max_unavailable.rstrip("%")) // 100)
    return max(1, max_unavailable)


def batches(nodes: Iterable[str], pools: Sequence[tuple[str, Sequence[str], int]],
            gone: Mapping[str, str] | None = None) -> list[Batch]:
    """Ordered batches for ``nodes`` (the nodes the update replaces or deletes).

    ``pools``: (pool name, its hosts in plan order, its budget) in spec order. ``gone``: node -> pool name for
    nodes the plan no longer has (their pool may be gone too)."""
    wanted = set(nodes)
    gone = dict(gone or {})
    out: list[Batch] = []
    placed: set[str] = set()

    def cut(pool: str, members: list[str], size: int) -> None:
        for start in range(0, len(members), size):
            out.append(Batch(len(out) + 1, pool, tuple(members[start:start + size]), size))
        placed.update(members)

    for name, hosts, size in pools:
        members = [h for h in hosts if h in wanted and h not in gone]
        members += sorted(n for n, p in gone.items() if p == name and n in wanted)
        cut(name, members, size)
    orphans = sorted(n for n in wanted if n not in placed)
    for node in orphans:
        cut(gone.get(node, ""), [node], 1)
    return out


def pools_of(plan) -> list[tuple[str, list[str], int]]:
    """(pool, its hosts in plan order, its budget) for every pool of a Plan, in spec order."""
    out = []
    for planned in plan.pools:
        hosts = [h.name for h in planned.hosts]
        out.append((planned.pool.name, hosts, budget(planned.pool.rollout.max_unavailable, len(hosts))))
    return out


def drain_timeout(plan, pool: str) -> int:
    for planned in plan.pools:
        if planned.pool.name == pool:
            return planned.pool.rollout.drain_timeout
    return DEFAULT_DRAIN_TIMEOUT
