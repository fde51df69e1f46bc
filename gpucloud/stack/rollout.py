"""Rolling a replacement through a stack, batch by batch: drain in Slurm, replace, converge, health-check, resume.

`gpucloud apply --allow-replace` hands the nodes its preview would replace or delete to ``roll``, with the batches
``gpucloud.plan.rollout`` planned within each pool's budget. For each batch, in order:

1. drain the batch's Slurm nodes (``scontrol update ... state=drain``) and wait until none runs a job (sinfo shows
   them drained or down), at most the pool's ``rollout.drain_timeout``; on timeout the drain is undone (the nodes
   were not touched) and the rollout stops. For NVL72 trays the batch is whole racks: the trays of its NVLink
   domains that are not replaced (``Batch.peers``) are drained with it, since a job on them spans the replaced
   trays' GPUs over NVLink;
2. a targeted ``up`` of exactly the batch's node resources (the RedfishNode is powered off and PXE-installed again;
   a node removed from the spec is powered off, only now that it runs nothing);
3. converge the replaced nodes (``gpucloud converge SPEC --limit ...``), then health-check the Slurm nodes among
   them (``gpucloud accept SPEC --limit ...``, which tests held nodes as Slurm jobs);
4. resume them in Slurm, with the batch's NVLink peers (nodes removed from the spec stay drained; nodes that were
   already drained or down before the rollout are left as they were).

Any failed step stops the rollout: the batches done, the failed batch and the nodes left are printed, and the nodes
of later batches are untouched (their Pulumi state and Slurm state as before). The Slurm client, converge and
health check are injectable (``Hooks``) so tests point them at a test slurmctld and stand-ins.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from gpucloud.hostlist import compress
from gpucloud.plan.rollout import Batch

DRAIN_REASON = "gpucloud apply: replace"
# sinfo's state flags (%T): "*" not responding, "~" powered off, "#" powering up, "!" pending power down, "%"
# powering down, "$" maintenance reservation, "@" pending reboot, "^" rebooting, "-" planned.
_FLAGS = "*~#!%$@^-"


class SlurmError(RuntimeError):
    pass


class Slurm:
    """scontrol and sinfo against one cluster's controller.

    ``conf``: the slurm.conf to read (SLURM_CONF), or None for the client's default; ``prefix``: argv put before
    every command (e.g. ssh to a login node, or a test's namespace wrapper); ``env``: extra environment."""

    def __init__(self, conf: str | None = None, prefix: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 timeout: float = 60):
        self.prefix = list(prefix)
        self.env = {**os.environ, **(env or {})}
        if conf:
            self.env["SLURM_CONF"] = conf
        self.timeout = timeout

    def _run(self, argv: list[str]) -> str:
        full = self.prefix + argv
        try:
            p = subprocess.run(full, capture_output=True, text=True, env=self.env, timeout=self.timeout)
        except FileNotFoundError:
            raise SlurmError(f"{full[0]} is not installed here: run gpucloud apply where the Slurm client commands "
                             "reach the controller (a login or controller node), or set SLURM_CONF") from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{argv[0]}: no answer from the controller after {self.timeout:.0f} s") from None
        if p.returncode != 0:
            raise SlurmError(f"{' '.join(argv[:3])} failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()}")
        return p.stdout

    def states(self, nodes: Sequence[str]) -> dict[str, str]:
        """Node -> sinfo's long state (idle, draining, drained, allocated, down*, ...), for the nodes Slurm knows."""
        out = self._run(["sinfo", "-h", "-N", "-n", ",".join(nodes), "-o", "%N %T"])
        states: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in nodes:
                states[parts[0]] = parts[1]
        return states

    def drain(self, nodes: Sequence[str], reason: str = DRAIN_REASON) -> None:
        self._run(["scontrol", "update", f"nodename={','.join(nodes)}", "state=drain", f"reason={reason}"])

    def resume(self, nodes: Sequence[str]) -> None:
        self._run(["scontrol", "update", f"nodename={','.join(nodes)}", "state=resume"])


def held(state: str) -> bool:
    """Out of service and running nothing: drained (not draining), down, fail (not failing), or idle with the drain
    flag."""
    parts = state.rstrip(_FLAGS).split("+")
    return parts[0] in ("drained", "down", "fail") or (parts[0] == "idle" and "drain" in parts[1:])


def taken_out(state: str) -> bool:
    """Already out of service or on its way, by someone else's decision (an operator's drain with its reason, a
    failure): the rollout neither drains it again (its reason stays) nor resumes it."""
    return any(part in ("drained", "draining", "drain", "down", "fail", "failing", "maint")
               for part in state.rstrip(_FLAGS).split("+"))


Step = Callable[[Sequence[str]], int]  # hosts -> exit status (0: passed)


def command_step(argv: Sequence[str], echo: Callable[[str], None]) -> Step:
    """A step that runs ``argv`` followed by the hosts as one comma-separated --limit value."""
    def step(hosts: Sequence[str]) -> int:
        full = [*argv, "--limit", ",".join(hosts)]
        echo(f"$ {' '.join(full)}")
        return subprocess.run(full).returncode

    return step


@dataclass
class Hooks:
    slurm: Slurm
    converge: Step
    health: Step
    poll_interval: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep)


def default_hooks(spec: Path, echo: Callable[[str], None]) -> Hooks:
    """The real ones: the Slurm client as configured here, `gpucloud converge` and `gpucloud accept`."""
    me = [sys.executable, "-m", "gpucloud"]
    return Hooks(slurm=Slurm(), converge=command_step([*me, "converge", str(spec)], echo),
                 health=command_step([*me, "accept", str(spec)], echo))


@dataclass(frozen=True)
class NodeSteps:
    """One node's resources in a preview: what a targeted up names, and whether the node goes away."""

    urns: tuple[str, ...]
    deleted: bool
    pool: str  # the pool the node belonged to (for a deleted node: from its old parent)


class RolloutFailed(Exception):
    pass


def describe(batches: Sequence[Batch], notes: Mapping[str, str] | None = None) -> list[str]:
    """One line per batch; for NVLink pools also its racks and the trays drained with it, and ``notes`` (pool ->
    what its budget became in whole racks) once per pool."""
    out: list[str] = []
    noted: set[str] = set()
    for b in batches:
        if notes and b.pool in notes and b.pool not in noted:
            noted.add(b.pool)
            out.append(f"  pool {b.pool}: {notes[b.pool]}")
        line = (f"  batch {b.number}/{len(batches)}: pool {b.pool or '(removed)'}, {len(b.nodes)} node(s) "
                f"(budget {b.budget}): {', '.join(b.nodes)}")
        if b.racks:
            line += f"; whole NVLink domain(s) {', '.join(b.racks)}"
            if b.peers:
                line += f", drained with them: {compress(b.peers)}"
        out.append(line)
    return out


def _drain(batch: Batch, slurm_nodes: list[str], before: dict[str, str], hooks: Hooks, timeout: float,
           echo: Callable[[str], None]) -> None:
    """Drain the nodes not already taken out, then wait until every one of them (those too) runs nothing."""
    if not slurm_nodes:
        return
    fresh = [n for n in slurm_nodes if not taken_out(before.get(n, ""))]
    if fresh:
        hooks.slurm.drain(fresh)
    kept = [n for n in slurm_nodes if n not in fresh]
    echo(f"batch {batch.number}: drained {', '.join(fresh) or 'nothing'} in Slurm"
         f"{' (' + ', '.join(kept) + ' already out of service: left as they are)' if kept else ''}; waiting up to "
         f"{timeout:.0f} s for their jobs to end")
    waited = 0.0
    while True:
        states = hooks.slurm.states(slurm_nodes)
        busy = {n: s for n, s in states.items() if not held(s)}
        if not busy:
            return
        if waited >= timeout:
            # Nothing was replaced: give the nodes back to Slurm as they were.
            back = [n for n in slurm_nodes if not taken_out(before.get(n, ""))]
            if back:
                hooks.slurm.resume(back)
            shown = ", ".join(f"{n} ({s})" for n, s in sorted(busy.items()))
            raise RolloutFailed(f"{shown} still run jobs after {timeout:.0f} s of draining (the pool's "
                                f"rollout.drain_timeout); no node of this batch was powered off or replaced, "
                                f"and the drain was undone. Let the jobs finish or cancel them, then run again")
        hooks.sleep(hooks.poll_interval)
        waited += hooks.poll_interval


def roll(stack, batches: Sequence[Batch], nodes: Mapping[str, NodeSteps], timeouts: Mapping[str, float],
         slurm_pools: set[str], hooks: Hooks, echo: Callable[[str], None], up: Callable[..., object]) -> None:
    """Run the batches in order; raise RolloutFailed naming what is done and what is left when a step fails.

    ``slurm_pools``: pools whose nodes are Slurm nodes (a node of another pool is never drained); a deleted node
    of a pool no longer in the spec is asked about (Slurm may still know it). ``up(stack, urns)``: the targeted
    update (raises the Automation API's CommandError when Pulumi fails)."""
    from pulumi import automation as auto

    for batch in batches:
        gone = [n for n in batch.nodes if nodes[n].deleted]
        kept = [n for n in batch.nodes if not nodes[n].deleted]
        step = "drain"
        slurm_nodes: list[str] = []
        try:
            candidates = [n for n in batch.held if batch.pool in slurm_pools or (n in nodes and nodes[n].deleted)]
            before = hooks.slurm.states(candidates) if candidates else {}
            slurm_nodes = [n for n in candidates if n in before]
            _drain(batch, slurm_nodes, before, hooks, timeouts.get(batch.pool, 3600), echo)
            step = "replace" if kept else "power off"
            urns = [u for n in batch.nodes for u in nodes[n].urns]
            echo(f"batch {batch.number}: {'replacing ' + ', '.join(kept) if kept else ''}"
                 f"{'; ' if kept and gone else ''}{'powering off ' + ', '.join(gone) if gone else ''}")
            up(stack, urns)
            if kept:
                step = "converge"
                rc = hooks.converge(kept)
                if rc != 0:
                    raise RolloutFailed(f"converge of {', '.join(kept)} failed (exit {rc})")
                # The health check runs as Slurm jobs on the held nodes: nodes outside Slurm have none.
                checked = [n for n in kept if n in slurm_nodes]
                step = "health check"
                rc = hooks.health(checked) if checked else 0
                if rc != 0:
                    raise RolloutFailed(f"health check of {', '.join(checked)} failed (exit {rc})")
            step = "resume"
            back = [n for n in slurm_nodes if (n in kept or n in batch.peers) and not taken_out(before.get(n, ""))]
            if back:
                hooks.slurm.resume(back)
            echo(f"batch {batch.number}/{len(batches)} done: {', '.join(batch.nodes)}"
                 f"{' (with the rest of ' + ', '.join(batch.racks) + ')' if batch.peers else ''}"
                 f"{' resumed in Slurm' if back else ''}")
        except (RolloutFailed, SlurmError, auto.errors.CommandError) as exc:
            done = [b for b in batches if b.number < batch.number]
            left = [n for b in batches if b.number > batch.number for n in b.nodes]
            text = str(exc).strip()[-3000:]
            raise RolloutFailed(
                f"the rollout stopped at batch {batch.number}/{len(batches)} ({', '.join(batch.nodes)}), step "
                f"{step}: {text}\n"
                f"  batches done: {', '.join(str(b.number) for b in done) or 'none'}"
                f"{' (' + ', '.join(n for b in done for n in b.nodes) + ')' if done else ''}\n"
                f"  nodes left untouched: {', '.join(left) or 'none'}\n"
                + (f"  {', '.join(slurm_nodes)} stay drained in Slurm until they pass; resume them with "
                   f"`scontrol update nodename={','.join(slurm_nodes)} state=resume`"
                   if step in ("converge", "health check", "resume") and slurm_nodes else "")) from None
