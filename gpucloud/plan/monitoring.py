"""Monitoring planner: what Prometheus scrapes, with which labels, and what each pool is expected to report.

The model (docs/monitoring.md has the operator's side):

* hosts of pools with the ``monitoring`` role run Prometheus and Alertmanager; every Prometheus sends its alerts to
  every Alertmanager, which de-duplicate among themselves
  (https://prometheus.io/docs/alerting/latest/alertmanager/#high-availability);
* exporters: node_exporter (port 9100, with its default ``infiniband`` collector, node_infiniband_*) on every host;
  dcgm-exporter (9400, https://github.com/NVIDIA/dcgm-exporter) on pools with NVIDIA GPUs; Rivos'
  prometheus-slurm-exporter (9092, https://github.com/rivosinc/prometheus-slurm-exporter, ``-slurm.cli-fallback``:
  it reads sinfo/squeue, so any Slurm version; slurm_node_count_per_state{state}) on the Slurm controllers;
  node_exporter's ``systemd`` collector on controllers and accounting hosts watches slurmctld and slurmdbd
  (node_systemd_unit_state);
* targets are grouped per pool into one file_sd file per (exporter, pool), one target group per (rack, SU), so the
  file grows linearly with the pool and a scrape job exists per (exporter, pool), never per host;
* labels from the plan: ``pool``, ``rack``, ``su`` (the compute fabric's scalable unit of a host placed slot by slot,
  as gpucloud.plan.fabric numbers them) and ``rail`` (the compute HCA ``mlx5_<offset + r>`` is rail ``r``; set by
  metric relabelling, as it belongs to a port, not a host);
* the planned link rate of a pool's compute HCAs, in bytes per second as node_exporter reports it (sysfs
  ``rate`` "400 Gb/sec (4X NDR)" -> 400e9 / 8 = 5e10), so an alert can say a link trained below plan.

Per-job GPU views use dcgm-exporter's HPC job mapping (``--hpc-job-mapping-dir``: a Slurm prolog writes the job id
into a file named after each GPU index of the job, and the exporter adds ``hpc_job`` only to that GPU's series), so
no series is labelled with a job id by Prometheus and no job list is planned here.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from gpucloud import catalog
from gpucloud.plan.hosts import PoolPlan
from gpucloud.spec.model import Spec

NODE_EXPORTER_PORT = 9100
DCGM_EXPORTER_PORT = 9400
SLURM_EXPORTER_PORT = 9092
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CLUSTER_PORT = 9094


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """One file_sd target group: hosts sharing rack and SU."""

    rack: str
    su: int  # 0: not placed by SU (service hosts, pools off the compute fabric)
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ScrapePool:
    """One scrape job: an exporter on the hosts of one pool."""

    exporter: str  # node | dcgm | slurm
    pool: str
    port: int
    groups: tuple[TargetGroup, ...]
    rails: int  # compute HCAs of the pool (0 off the compute fabric)
    rail_offset: int  # mlx5 device number of rail 0
    railed: bool  # placed slot by slot: HCA r is on the rail-r leaf (service hosts take free ports: no rail)

    @property
    def job_name(self) -> str:
        return f"{self.exporter}-{self.pool}"

    @property
    def file(self) -> str:
        """The file_sd file, relative to prometheus.yml."""
        return f"targets/{self.exporter}/{self.pool}.json"


@dataclass(frozen=True)
class PoolExpectation:
    pool: str
    gpus: int  # per host
    rails: int
    rail_offset: int
    ib_rate: str | None  # the planned rate name (NDR, NDR200, ...)
    ib_rate_bytes: int  # bytes per second as node_exporter reports it; 0 without compute HCAs


@dataclass(frozen=True)
class MonitoringPlan:
    servers: tuple[str, ...]  # hosts running Prometheus and Alertmanager
    jobs: tuple[ScrapePool, ...]
    pools: tuple[PoolExpectation, ...]
    controllers: tuple[str, ...]  # pools with slurm-controller
    dbd_pools: tuple[str, ...]  # pools with slurmdbd

    @property
    def alertmanagers(self) -> tuple[str, ...]:
        return tuple(f"{h}:{ALERTMANAGER_PORT}" for h in self.servers)


def rate_bytes(rate: str | None) -> int:
    """Bytes per second node_exporter reports for a port at ``rate`` (sysfs Gb/s x 125,000,000)."""
    if not rate or rate not in catalog.LINK_RATES_GBPS:
        return 0
    return int(catalog.LINK_RATES_GBPS[rate] * 125_000_000)


def _su_bases(spec: Spec, pools: tuple[PoolPlan, ...]) -> tuple[dict[str, int], int]:
    """First SU (0-based) of every pool placed slot by slot on the compute fabric, and the SU size (0: no SUs)."""
    fabric = spec.fabrics.get("compute")
    if fabric is None or fabric.kind != "infiniband" or fabric.topology != "rail-optimized-fat-tree":
        return {}, 0
    from gpucloud.plan.fabric import attached_pools, positioned

    su = fabric.scalable_unit
    bases: dict[str, int] = {}
    base = 0
    for pp in attached_pools(spec, pools, "compute"):
        if positioned(pp, "compute"):
            bases[pp.pool.name] = base
            base += ceil(pp.pool.count / su)
    return bases, su


def _groups(pp: PoolPlan, base: int | None, su: int) -> tuple[TargetGroup, ...]:
    out: dict[tuple[str, int], list[str]] = {}
    for h in pp.hosts:
        su_no = base + h.position // su + 1 if base is not None and su else 0
        out.setdefault((h.rack, su_no), []).append(h.name)
    return tuple(TargetGroup(rack, s, tuple(names)) for (rack, s), names in out.items())


def _port_rate(spec: Spec, pools: tuple[PoolPlan, ...]) -> str | None:
    """The compute fabric's switch port rate as the fabric planner picks it (None without a compute fabric)."""
    fabric = spec.fabrics.get("compute")
    if fabric is None or fabric.kind != "infiniband":
        return None
    from gpucloud.plan.fabric import attached_pools, fabric_rate

    return fabric_rate(fabric, attached_pools(spec, pools, "compute"), "compute")


def _link_rate(pp: PoolPlan, port: str | None) -> str | None:
    if port is None or pp.pool.fabric != "compute" or not pp.model.rails:
        return None
    from gpucloud.plan.fabric import pool_rate

    # A link trains to the slower end: an NDR adapter on NDR200 (split) switch ports runs at NDR200.
    return catalog.link_rate(pool_rate(pp, "compute"), port if port in catalog.LINK_RATES_GBPS else None)


def plan_monitoring(spec: Spec, pools: tuple[PoolPlan, ...]) -> MonitoringPlan:
    bases, su = _su_bases(spec, pools)
    port = _port_rate(spec, pools)
    jobs: list[ScrapePool] = []
    expectations: list[PoolExpectation] = []
    for pp in sorted(pools, key=lambda p: (p.pool.id, p.pool.name)):
        name = pp.pool.name
        rate = _link_rate(pp, port)
        rails = pp.model.rails if rate else 0
        offset = 0
        if rails:
            from gpucloud.plan.fabric import device_offset

            offset = device_offset(pp.model, "compute")
        groups = _groups(pp, bases.get(name), su)
        expectations.append(PoolExpectation(name, pp.model.gpus, rails, offset, rate, rate_bytes(rate)))
        railed = bool(rails) and su > 0 and name in bases
        jobs.append(ScrapePool("node", name, NODE_EXPORTER_PORT, groups, rails, offset, railed))
        if pp.model.gpus:
            jobs.append(ScrapePool("dcgm", name, DCGM_EXPORTER_PORT, groups, 0, 0, False))
        if "slurm-controller" in pp.pool.roles:
            jobs.append(ScrapePool("slurm", name, SLURM_EXPORTER_PORT, groups, 0, 0, False))
    servers = tuple(h.name for pp in pools if "monitoring" in pp.pool.roles for h in pp.hosts)
    return MonitoringPlan(
        servers=servers,
        jobs=tuple(jobs),
        pools=tuple(expectations),
        controllers=tuple(pp.pool.name for pp in pools if "slurm-controller" in pp.pool.roles),
        dbd_pools=tuple(pp.pool.name for pp in pools if "slurmdbd" in pp.pool.roles),
    )
