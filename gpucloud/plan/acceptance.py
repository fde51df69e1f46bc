"""Acceptance planner: which nodes are tested, with which gates, and how nodes are paired across the fabric.

* The nodes are the compute hosts of the plan (pools with the ``compute`` role), each with its pool's gates from
  ``gpucloud.catalog.acceptance`` (GPU model, node model and the link rate its HCAs run at on its fabric) and the
  spec's ``acceptance.thresholds`` on top.
* A node's scalable unit (SU) is the SU of its rail-0 leaf in the compute fabric plan: nodes of one SU share their
  leaves, so a two-node NCCL run inside an SU crosses exactly the two nodes' cables and leaf ports, one per rail.
* Multi-node NCCL runs in pairs inside each SU (``PairSchedule``), never as one ring over everything, where one
  slow cable makes every node look slow. Round 1 pairs the SU's nodes (0,1), (2,3), ...; round 2 pairs each member
  of a failed pair, and the odd node out, with a node of a passed pair (of another SU of the pool when the SU has
  none). A node fails when its run with a known-good partner fails, so one bad node or cable is named in two
  rounds, whatever the SU's size; only when no run passed yet do the suspects first pair among themselves in new
  combinations. Runs of a round are independent and go in parallel up to the command's cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from gpucloud import catalog
from gpucloud.catalog.acceptance import Thresholds, thresholds_for


@dataclass(frozen=True)
class AcceptNode:
    name: str
    pool: str
    su: int  # 0: not on a compute fabric (or a service port)
    gpus: int
    devices: tuple[str, ...]  # compute HCAs in rail order, as the kernel names them (the model's devices)
    thresholds: Thresholds
    partition: str | None  # a partition holding the node, for the test jobs


def acceptance_nodes(plan, overrides: Mapping[str, float] | None = None,
                     only: Iterable[str] | None = None) -> tuple[AcceptNode, ...]:
    """The compute hosts of ``plan`` (those named in ``only``, when given) with their gates and SU, in plan order."""
    from gpucloud.plan.fabric import port_rate

    wanted = None if only is None else set(only)
    compute = [pp for pp in plan.pools if "compute" in pp.pool.roles]
    su_of: dict[str, int] = {}
    for fp in plan.fabrics:
        if fp.name != "compute":
            continue
        sws = fp.switches
        for e in fp.endpoints:
            if e.hca == 0 and not e.service and (wanted is None or e.host in wanted):
                su_of[e.host] = sws[e.leaf].group
    partition_of: dict[str, str] = {}
    for part in sorted(plan.slurm.partitions, key=lambda p: (not p.default, p.name)) if plan.slurm else ():
        for pool in part.pools:
            partition_of.setdefault(pool, part.name)
    out = []
    for pp in compute:
        model = pp.model
        port = port_rate(plan, pp.pool.fabric) if pp.pool.fabric not in (None, "none") else None
        rates = {catalog.link_rate(h.rate, port) for h in model.compute_hcas}
        rate = min(rates, key=lambda r: catalog.LINK_RATES_GBPS[r]) if rates and port is not None else None
        gates = thresholds_for(model, rate, overrides)
        devices = model.devices("compute") if rate else ()
        for h in pp.hosts:
            if wanted is None or h.name in wanted:
                out.append(AcceptNode(h.name, pp.pool.name, su_of.get(h.name, 0), model.gpus, devices, gates,
                                      partition_of.get(pp.pool.name)))
    return tuple(out)


def by_su(nodes: Iterable[AcceptNode]) -> dict[tuple[str, int], list[str]]:
    """Nodes grouped by (pool, SU), keeping plan order; pairs never mix pools (different gates and models)."""
    groups: dict[tuple[str, int], list[str]] = {}
    for n in nodes:
        groups.setdefault((n.pool, n.su), []).append(n.name)
    return groups


@dataclass
class PairSchedule:
    """Two-node runs that name the bad nodes of one group. Drive it with ``next_round`` / ``record`` until
    ``next_round`` returns nothing; then ``bad`` maps each failed node to the run that condemned it, ``good`` lists
    the nodes that passed a run, and ``untested`` the nodes no run could judge (a lone node with no partner)."""

    nodes: list[str]
    rounds: int = 0
    good: list[str] = field(default_factory=list)
    bad: dict[str, tuple[str, str]] = field(default_factory=dict)
    untested: list[str] = field(default_factory=list)
    _suspects: dict[str, tuple[str, str] | None] = field(default_factory=dict)  # node -> its last failed run
    _tried: set[frozenset] = field(default_factory=set)
    _pending: set[tuple[str, str]] = field(default_factory=set)
    _done: bool = False

    def next_round(self, spares: Iterable[str] = ()) -> list[tuple[str, str]]:
        """The runs of the next round. ``spares``: known-good nodes outside the group (another SU of the pool) to
        pair with when the group has none of its own."""
        if self._pending:
            raise RuntimeError("record every run of a round before asking for the next")
        if self._done:
            return []
        pairs: list[tuple[str, str]] = []
        if self.rounds == 0:
            pairs = [(self.nodes[i], self.nodes[i + 1]) for i in range(0, len(self.nodes) - 1, 2)]
            if len(self.nodes) % 2:
                self._suspects[self.nodes[-1]] = None  # the odd node out is tested against a good one next
        if not pairs and self._suspects:
            partners = self.good or [s for s in spares if s not in self._suspects]
            if partners:
                # A known-good partner: one run per suspect settles it.
                pairs = [(n, partners[i % len(partners)]) for i, n in enumerate(self._suspects)]
            else:
                # Nothing known good yet (no run passed): pair suspects in combinations not tried before, until
                # one passes or none is left.
                free = list(self._suspects)
                while free:
                    a = free.pop(0)
                    b = next((x for x in free if frozenset((a, x)) not in self._tried), None)
                    if b is not None:
                        free.remove(b)
                        pairs.append((a, b))
        if not pairs:
            self._finish()
            return []
        self.rounds += 1
        self._pending = set(pairs)
        self._tried.update(frozenset(p) for p in pairs)
        return pairs

    def record(self, pair: tuple[str, str], ok: bool) -> None:
        self._pending.remove(pair)
        a, b = pair
        if ok:
            for n in pair:
                self._suspects.pop(n, None)
                if n in self.nodes and n not in self.good:
                    self.good.append(n)
        elif b in self.good or b not in self.nodes:
            self._suspects.pop(a, None)
            self.bad[a] = pair  # its partner passed a run of its own: the fault is a's
        else:
            self._suspects[a] = self._suspects[b] = pair

    def _finish(self) -> None:
        """No run can tell more: a suspect with a failed run fails with it; one that never ran is untested."""
        for n, run in self._suspects.items():
            if run is None:
                self.untested.append(n)
            else:
                self.bad[n] = run
        self._suspects = {}
        self._done = True

    def finished(self) -> bool:
        return self._done and not self._pending
