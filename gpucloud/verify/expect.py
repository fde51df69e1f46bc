"""What the Plan says a host should look like, in the units the node's tools report.

Hosts, addresses and pools come from the Plan; GPU and HCA facts from the catalog; the driver version from
``software``; link rates from the fabric plan when it carries one, else from the spec's fabric, else from the HCA.
Expectations are built once per pool and shared by its hosts, so this is linear in hosts.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpucloud import catalog
from gpucloud.plan import Plan
from gpucloud.plan.fabric import port_rate
from gpucloud.plan.hosts import Host, PoolPlan
from gpucloud.plan.software import pool_pins

# nvidia-smi reports marketing memory less the driver's reservation (81559 MiB on an "80GB" H100): allow that.
GPU_MEMORY_TOLERANCE = 0.03

SLURM_ROLES = ("compute",)
MUNGE_ROLES = ("compute", "login", "slurm-controller", "slurmdbd")


@dataclass(frozen=True)
class PortExpect:
    rate_gbps: int
    width: str  # "4X"
    generation: str  # "NDR"
    fabric: str  # compute / storage

    @property
    def text(self) -> str:
        return f"{self.rate_gbps} Gb/s ({self.width} {self.generation})"


@dataclass(frozen=True)
class MountExpect:
    mount: str
    kind: str  # lustre / nfs / local
    fstypes: tuple[str, ...]
    source: str | None  # what /proc/mounts shows as the source, when the spec pins it


@dataclass(frozen=True)
class PoolExpect:
    pool: str
    gpus: int
    gpu_family: str | None  # "H100": nvidia-smi names carry it ("NVIDIA H100 80GB HBM3")
    gpu_memory_mib: int | None
    driver: str | None
    nvswitch: bool
    ports: tuple[PortExpect, ...]
    ipoib_prefix: int | None
    mounts: tuple[MountExpect, ...]
    services: tuple[str, ...]  # process names that must run
    slurm_node: bool
    packages: tuple[tuple[str, str], ...] = ()  # (Debian package, pinned upstream version), from plan/software.py


@dataclass(frozen=True)
class HostExpect:
    host: Host
    pool: PoolExpect
    address: str
    domain: str | None = None  # the management network's DNS domain

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def fqdn(self) -> str | None:
        return f"{self.host.name}.{self.domain}" if self.domain else None


def _gpu_family(gpu: catalog.GPU) -> str:
    for key, value in catalog.GPUS.items():
        if value is gpu:
            return key.split("-", 1)[0].upper()
    return gpu.name.split()[1] if gpu.name.startswith("NVIDIA ") else gpu.name


def _ports(plan: Plan, pp: PoolPlan) -> tuple[PortExpect, ...]:
    out = []
    groups = []
    if pp.pool.fabric not in (None, "none") and pp.pool.fabric in plan.spec.fabrics:
        groups.append((pp.pool.fabric, pp.model.compute_hcas))
    if "storage" in plan.spec.fabrics:
        groups.append(("storage", pp.model.storage_hcas))
    for fabric, hcas in groups:
        planned = port_rate(plan, fabric)
        for hca in hcas:
            rate = catalog.link_rate(hca.rate, planned)
            width, gen = catalog.LINK_SHAPE[rate]
            out.extend([PortExpect(catalog.LINK_RATES_GBPS[rate], width, gen, fabric)] * hca.ports)
    return tuple(out)


def _nfs_types(automount: bool) -> tuple[str, ...]:
    # An automounted export shows as an autofs trigger until first access.
    return ("nfs", "nfs4") + (("autofs",) if automount else ())


def _planned_mounts(storage, pool: str) -> list[MountExpect] | None:
    """Mounts from the storage plan, which knows which pools can reach each filesystem; None without one."""
    try:
        out = [MountExpect(fs.mount, "lustre", ("lustre",), f":/{fs.fsname}")
               for fs in storage.lustre if pool in fs.pools]
        out += [MountExpect(fs.mount, "nfs", _nfs_types(fs.automount), fs.source)
                for fs in storage.nfs if pool in fs.pools]
        out += [MountExpect(mount, "local", (s.filesystem,), None)
                for s in storage.local if s.pool == pool for _, mount in s.mounts()]
    except AttributeError:
        return None
    return out


def _mounts(plan: Plan, pp: PoolPlan) -> tuple[MountExpect, ...]:
    storage = getattr(plan, "storage", None)
    planned = _planned_mounts(storage, pp.pool.name) if storage is not None else None
    if planned is not None:
        return tuple(sorted(planned, key=lambda m: m.mount))
    out = []
    for fs in plan.spec.storage:
        if fs.pools is not None:
            if pp.pool.name not in fs.pools:
                continue
        elif fs.kind == "local" and not pp.model.gpus:
            continue
        settings = fs.settings
        if fs.kind == "nfs":
            fstypes = _nfs_types(bool(settings.get("automount")))
            source = f"{settings['server']}:{settings['export']}" if "server" in settings and "export" in settings \
                else None
        elif fs.kind == "lustre":
            fstypes = ("lustre",)
            source = f":/{settings['fsname']}" if "fsname" in settings else None  # suffix after the MGS NIDs
        else:
            fstypes = (settings["filesystem"],) if "filesystem" in settings else ("xfs", "ext4")
            source = None
        out.append(MountExpect(fs.mount, fs.kind, fstypes, source))
    return tuple(sorted(out, key=lambda m: m.mount))


def pool_expect(plan: Plan, pp: PoolPlan) -> PoolExpect:
    spec = plan.spec
    pool = pp.pool
    model = pp.model
    partition_pools = {name for part in spec.slurm.partitions for name in part.pools}
    slurm_node = pool.name in partition_pools or any(r in SLURM_ROLES for r in pool.roles)
    services = []
    if slurm_node or any(r in MUNGE_ROLES for r in pool.roles):
        services.append("munged")
    if slurm_node:
        services.append("slurmd")
    if "slurm-controller" in pool.roles:
        services.append("slurmctld")
    if "slurmdbd" in pool.roles and spec.slurm.accounting.enabled:
        services.append("slurmdbd")
    nvlink = model.nvlink is not None and "compute" in pool.roles and bool(model.gpus)
    if nvlink:
        services.append("nvidia-imex")  # the imex role runs it on every tray of an NVLink domain
    ipoib = spec.networks.get("ipoib")
    gpu = model.gpu if model.gpus else None
    ports = _ports(plan, pp)
    mounts = _mounts(plan, pp)
    return PoolExpect(
        pool=pool.name,
        gpus=model.gpus,
        gpu_family=_gpu_family(gpu) if gpu else None,
        gpu_memory_mib=gpu.memory_gib * 1024 if gpu else None,
        driver=spec.software.nvidia_driver if gpu else None,
        nvswitch=model.nvswitch,
        ports=ports,
        ipoib_prefix=ipoib.rail_prefix if ipoib is not None else None,
        mounts=mounts,
        services=tuple(services),
        slurm_node=slurm_node,
        packages=tuple(pool_pins(spec, model.gpus, model.nvswitch, len(ports), pool.roles,
                                 lustre=any(m.kind == "lustre" for m in mounts), nvlink=nvlink).items()),
    )


def expectations(plan: Plan, addresses: dict[str, str] | None = None,
                 only: set[str] | None = None) -> list[HostExpect]:
    """Every planned host (or those in ``only``) in plan order, addressed by management address unless mapped."""
    addresses = addresses or {}
    mgmt = plan.spec.networks.get("management")
    domain = mgmt.domain if mgmt is not None else None
    out = []
    for pp in plan.pools:
        pe = None
        for host in pp.hosts:
            if only is not None and host.name not in only:
                continue
            if pe is None:
                pe = pool_expect(plan, pp)
            address = addresses.get(host.name) or host.management or host.name
            out.append(HostExpect(host, pe, address, domain))
    return out
