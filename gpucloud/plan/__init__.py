"""Stage 3: pure, deterministic planners. ``build_plan(spec)`` returns one Plan; plan.json is its serialisation.

Each planner lives in its own module and reads the spec and the parts of the plan planned before it; nothing here
does I/O. Add a planner by adding a field to Plan and one line to ``build_plan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from gpucloud.findings import Finding
from gpucloud.plan.hosts import Host, PoolPlan, plan_hosts
from gpucloud.spec.model import Spec

if TYPE_CHECKING:  # the planners import this package's hosts module; at run time they are imported by the stages
    from gpucloud.plan.ethernet import EthernetFabricPlan
    from gpucloud.plan.fabric import FabricPlan
    from gpucloud.plan.figures import Figures
    from gpucloud.plan.monitoring import MonitoringPlan
    from gpucloud.plan.provision import ProvisionPlan
    from gpucloud.plan.slurm import SlurmPlan
    from gpucloud.plan.storage import StoragePlan


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Every planner's output. ``build_plan`` fills every field; a test that needs a Plan builds it the same way."""

    spec: Spec
    pools: tuple[PoolPlan, ...]
    fabrics: tuple[FabricPlan, ...]  # one per InfiniBand fabric, empty without one
    ethernet: tuple[EthernetFabricPlan, ...]  # one per Ethernet (RoCE) fabric, empty without one
    storage: StoragePlan
    slurm: SlurmPlan
    provision: ProvisionPlan | None  # None without a provisioner
    monitoring: MonitoringPlan
    figures: Figures  # the at-a-glance numbers and the training estimate (plan.md, plan.json, pr-comment)
    findings: tuple[Finding, ...] = ()  # warnings from checks, carried into plan.md

    def hosts(self) -> Iterator[Host]:
        for pool in self.pools:
            yield from pool.hosts

    @property
    def host_count(self) -> int:
        return sum(len(p.hosts) for p in self.pools)

    @property
    def gpu_count(self) -> int:
        return sum(p.gpus for p in self.pools)

    def pool(self, name: str) -> PoolPlan:
        for p in self.pools:
            if p.pool.name == name:
                return p
        raise KeyError(name)


def _fabrics(spec: Spec, pools: tuple[PoolPlan, ...]) -> tuple[FabricPlan, ...]:
    from gpucloud.plan.fabric import plan_fabrics

    return plan_fabrics(spec, pools)


def _ethernet(spec: Spec, pools: tuple[PoolPlan, ...]) -> tuple[EthernetFabricPlan, ...]:
    from gpucloud.plan.ethernet import plan_ethernet

    return plan_ethernet(spec, pools)


def _storage(spec: Spec, pools: tuple[PoolPlan, ...]) -> StoragePlan:
    from gpucloud.plan.storage import plan_storage

    return plan_storage(spec, pools)


def _slurm(spec: Spec, pools: tuple[PoolPlan, ...]) -> SlurmPlan:
    from gpucloud.plan.slurm import plan_slurm

    return plan_slurm(spec, pools)


def _provision(spec: Spec, pools: tuple[PoolPlan, ...]) -> ProvisionPlan | None:
    from gpucloud.plan.provision import plan_provision

    return plan_provision(spec, pools)


def _monitoring(spec: Spec, pools: tuple[PoolPlan, ...]) -> MonitoringPlan:
    from gpucloud.plan.monitoring import plan_monitoring

    return plan_monitoring(spec, pools)


def _figures(spec: Spec, pools: tuple[PoolPlan, ...]) -> Figures:
    from gpucloud.plan.figures import plan_figures

    return plan_figures(spec, pools)


# The planners after the host planner, in order: (Plan field, planner(spec, pools)). Each reads the spec and the
# planned hosts only, so they can be timed (bench/run.py) and tested one by one.
STAGES: tuple[tuple[str, Callable[[Spec, tuple[PoolPlan, ...]], Any]], ...] = (
    ("fabrics", _fabrics), ("ethernet", _ethernet), ("storage", _storage), ("slurm", _slurm), ("provision", _provision),
    ("monitoring", _monitoring), ("figures", _figures))


def build_plan(spec: Spec, findings: tuple[Finding, ...] = ()) -> Plan:
    pools = plan_hosts(spec)
    return Plan(spec=spec, pools=pools, findings=findings, **{name: fn(spec, pools) for name, fn in STAGES})


__all__ = ["Plan", "Host", "PoolPlan", "build_plan"]
