"""One side of a diff: a plan.json document, with the questions the classifiers ask of it ("which hosts are GPU
nodes?", "which pools mount this filesystem?") answered per pool from the catalog, never host by host."""

from __future__ import annotations

from functools import cached_property
from typing import Iterable

from ClusterShell.NodeSet import NodeSet

from gpucloud import catalog

EMPTY = {"generator": "gpucloud", "cluster": {"name": "(none)", "pools": [], "nodes": 0, "gpus": 0},
         "networks": {}, "hosts": [], "spec": {}}


def join_hostlists(expressions: Iterable[str]) -> str:
    """Pools' hostlist expressions joined into one (each already compressed): the cost grows with pools, not hosts.
    Expressions are only merged through NodeSet when they are small enough for that to be cheap."""
    exprs = sorted({e for e in expressions if e})
    if len(exprs) <= 1 or sum(len(e) for e in exprs) > 2000:
        return ",".join(exprs)
    ns = NodeSet()
    for expr in exprs:
        ns.update(expr)
    if len(ns) > 4096:
        return ",".join(exprs)
    return str(ns)


class Side:
    def __init__(self, doc: dict, label: str) -> None:
        self.doc = doc
        self.label = label

    @property
    def name(self) -> str:
        return self.doc.get("cluster", {}).get("name", "(none)")

    @cached_property
    def pools(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.doc.get("cluster", {}).get("pools", ())}

    @property
    def spec(self) -> dict:
        return self.doc.get("spec") or {}

    def model(self, pool: str):
        return catalog.SERVERS.get(self.pools[pool].get("model", ""))

    # Pool selectors: which pools run what.
    def gpu_pools(self) -> list[str]:
        return [n for n, p in self.pools.items() if p.get("gpus", 0) > 0 or (self.model(n) and self.model(n).gpus)]

    def nvswitch_pools(self) -> list[str]:
        return [n for n in self.gpu_pools() if self.model(n) is not None and self.model(n).nvswitch]

    def hca_pools(self) -> list[str]:
        return [n for n in self.pools if self.model(n) is not None and
                (self.model(n).compute_hcas or self.model(n).storage_hcas)]

    def fabric_pools(self, fabric: str) -> list[str]:
        """Pools with ports on the named fabric (plan.json records each pool's fabric and rail count)."""
        return [n for n, p in self.pools.items() if p.get("fabric") == fabric and p.get("rails")]

    def role_pools(self, *roles: str) -> list[str]:
        return [n for n, p in self.pools.items() if set(roles) & set(p.get("roles", ()))]

    def partition_pools(self) -> list[str]:
        parts = self.spec.get("slurm", {}).get("partitions", {})
        named = {pool for part in parts.values() for pool in part.get("pools", ())}
        return [n for n in self.pools if n in named] or self.role_pools("compute")

    def slurm_pools(self) -> list[str]:
        """Every pool with a Slurm daemon or client: nodes, controllers, slurmdbd and login hosts."""
        return sorted(set(self.partition_pools()) | set(self.role_pools("slurm-controller", "slurmdbd", "login")))

    def mount_pools(self, fs: dict) -> list[str]:
        """Pools that mount a filesystem record of the spec section (local defaults to the GPU pools)."""
        if fs.get("pools") is not None:
            return [n for n in fs["pools"] if n in self.pools]
        if fs.get("kind") == "local":
            return self.gpu_pools()
        return list(self.pools)

    def sm_pools(self, fabric: dict | None = None) -> list[str]:
        pool = ((fabric or {}).get("subnet_manager") or {}).get("pool")
        if pool and pool in self.pools:
            return [pool]
        return self.role_pools("subnet-manager")

    def hosts_of(self, pools: Iterable[str]) -> tuple[str, int]:
        names = sorted(set(pools))
        return (join_hostlists(self.pools[n].get("hostlist", "") for n in names if n in self.pools),
                sum(self.pools[n].get("hosts", 0) for n in names if n in self.pools))

    def all_pools(self) -> list[str]:
        return list(self.pools)
