"""Rollout batches: which nodes `gpucloud apply --allow-replace` takes out of service together.

- Each pool has a budget, ``node_pools[].rollout.max_unavailable``: a count, or a percentage of the pool's built
  hosts (rounded down, at least 1). Without one, 10 % (so 1 for pools of up to 19 hosts, 25 for 250).
- A batch holds nodes of one pool only, at most the pool's budget, in the order the plan lists the pool's hosts
  (index order), so the same change always rolls the same way.
- Pools roll one after another, in spec order; nodes the plan no longer has (a pool shrunk or removed) come after
  the replaced ones of their pool, by name; nodes of a pool the spec no longer has roll last, one at a time.
- A pool of rack-scale NVLink trays (GB200/GB300 NVL72: a rack is one NVLink domain, gpucloud.plan.hosts) rolls
  whole racks: its budget is rounded down to whole racks, and a budget smaller than one rack becomes one rack
  (``rack_budget``). A batch holds the racks, in rack order, that have a node to roll, and takes every tray of them out
  of service: the trays it does not replace (``Batch.peers``) are drained and resumed with it, because a job on them
  uses the replaced trays' GPUs over NVLink (and IMEX loses a peer). Nodes the plan no longer has are in no planned
  rack; they roll after the racks, within the budget.

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
    nodes: tuple[str, ...]  # the nodes replaced or deleted
    budget: int
    # NVLink pools: the racks (domains) of the batch, and their trays not replaced, which are drained and resumed with
    # the batch's nodes.
    racks: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()

    @property
    def held(self) -> tuple[str, ...]:
        """Every node the batch takes out of service: its nodes, then the rest of their NVLink domains."""
        return self.nodes + self.peers


@dataclass(frozen=True)
class Domain:
    """An NVLink domain as the rollout sees it: the rack's name, its planned trays in slot order, and the trays a
    full domain holds (the model's)."""

    rack: str
    hosts: tuple[str, ...]
    trays: int


def budget(max_unavailable: int | str | None, pool_size: int) -> int:
    """Nodes of a pool of ``pool_size`` hosts that may be out of service at once."""
    if max_unavailable is None:
        max_unavailable = f"{DEFAULT_PERCENT}%"
    if isinstance(max_unavailable, str):
        return max(1, pool_size * int(max_unavailable.rstrip("%")) // 100)
    return max(1, max_unavailable)


def rack_budget(size: int, trays: int) -> int:
    """Whole racks of ``trays`` an NVLink pool with a budget of ``size`` nodes rolls at once: rounded down, at least
    one (a rack is the smallest unit that can be taken out of service without breaking a job's NVLink domain)."""
    return max(1, size // trays)


def batches(nodes: Iterable[str], pools: Sequence[tuple[str, Sequence[str], int]],
            gone: Mapping[str, str] | None = None,
            domains: Mapping[str, Sequence[Domain]] | None = None) -> list[Batch]:
    """Ordered batches for ``nodes`` (the nodes the update replaces or deletes).

    ``pools``: (pool name, its hosts in plan order, its budget) in spec order. ``gone``: node -> pool name for
    nodes the plan no longer has (their pool may be gone too). ``domains``: pool -> its NVLink domains in rack order,
    for the pools of rack-scale NVLink trays; their budget is then a whole number of racks' trays (``pools_of``)."""
    wanted = set(nodes)
    gone = dict(gone or {})
    domains = domains or {}
    out: list[Batch] = []
    placed: set[str] = set()

    def cut(pool: str, members: list[str], size: int) -> None:
        for start in range(0, len(members), size):
            out.append(Batch(len(out) + 1, pool, tuple(members[start:start + size]), size))
        placed.update(members)

    def cut_racks(pool: str, doms: Sequence[Domain], size: int) -> None:
        per = max(1, size // doms[0].trays) if doms else 1
        touched = [d for d in doms if any(h in wanted and h not in gone for h in d.hosts)]
        for start in range(0, len(touched), per):
            group = touched[start:start + per]
            mine = tuple(h for d in group for h in d.hosts if h in wanted and h not in gone)
            rest = tuple(h for d in group for h in d.hosts if h not in wanted)
            out.append(Batch(len(out) + 1, pool, mine, size, tuple(d.rack for d in group), rest))
            placed.update(mine)

    for name, hosts, size in pools:
        if name in domains:
            cut_racks(name, domains[name], size)
            members = []
        else:
            members = [h for h in hosts if h in wanted and h not in gone]
        members += sorted(n for n, p in gone.items() if p == name and n in wanted)
        cut(name, members, size)
    orphans = sorted(n for n in wanted if n not in placed)
    for node in orphans:
        cut(gone.get(node, ""), [node], 1)
    return out


def pools_of(plan) -> list[tuple[str, list[str], int]]:
    """(pool, its hosts in plan order, its budget) for every pool of a Plan, in spec order. An NVLink pool's budget
    is whole racks of trays (``rack_budget``)."""
    out = []
    for planned in plan.pools:
        hosts = [h.name for h in planned.hosts]
        size = budget(planned.pool.rollout.max_unavailable, len(hosts))
        nv = planned.model.nvlink
        if nv is not None:
            size = rack_budget(size, nv.trays) * nv.trays
        out.append((planned.pool.name, hosts, size))
    return out


def domains_of(plan) -> dict[str, list[Domain]]:
    """Pool -> its NVLink domains in rack order, for every pool of rack-scale NVLink trays of a Plan."""
    from gpucloud.plan.hosts import nvlink_domains

    out: dict[str, list[Domain]] = {}
    for d in nvlink_domains(plan.pools):
        out.setdefault(d.pool, []).append(Domain(d.name, d.hosts, d.trays))
    return out


def rack_note(max_unavailable: int | str | None, pool_size: int, trays: int) -> str | None:
    """What an NVLink pool's budget became in whole racks, when that is not what the spec says; None if it is."""
    size = budget(max_unavailable, pool_size)
    racks = rack_budget(size, trays)
    if size % trays == 0:
        return None
    if max_unavailable is None:
        said = f" (the default {DEFAULT_PERCENT}%)"
    else:
        said = f" ({max_unavailable})" if isinstance(max_unavailable, str) else ""
    if size < trays:
        return (f"budget {size}{said} is less than one rack: raised to 1 rack ({trays} trays), since part of an "
                "NVLink domain cannot be taken out of service alone")
    return f"budget {size}{said} rounded down to {racks} whole racks ({racks * trays} trays)"


def nvlink_serial(plan) -> list[int]:
    """The compute layer's batch sizes (Ansible ``serial``) over the NVLink trays of compute pools, in inventory
    order (pools in spec order, racks in order): each batch is the trays of the pool's budget in whole racks, so a
    converge never takes part of an NVLink domain."""
    doms = domains_of(plan)
    sizes: list[int] = []
    for planned, (name, _hosts, size) in zip(plan.pools, pools_of(plan)):
        if name not in doms or "compute" not in planned.pool.roles:
            continue
        group = doms[name]
        per = size // group[0].trays
        sizes += [sum(len(d.hosts) for d in group[i:i + per]) for i in range(0, len(group), per)]
    return sizes


def drain_timeout(plan, pool: str) -> int:
    for planned in plan.pools:
        if planned.pool.name == pool:
            return planned.pool.rollout.drain_timeout
    return DEFAULT_DRAIN_TIMEOUT
