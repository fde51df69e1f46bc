"""Storage planner: Lustre clients (LNet per pool, mounts, tuning), NFS mounts and exports, local NVMe scratch, and
per-tenant project directories and quotas.

Everything here is per pool or per filesystem, never per host, so a 12,500-node cluster costs the same as a lab.
The capacity and bandwidth figures of each shared filesystem (summed tenant quotas against capacity, bandwidth per
GPU, client link rates) are planned here too, so plan.json and every reader see the same numbers.
Interface names follow the network layer's convention: compute rail ``r`` is ``ib<r>``, storage HCA ``s`` is
``ib<rails + s>``.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from dataclasses import dataclass

from gpucloud.catalog import LINK_RATES_GBPS
from gpucloud.plan.hosts import PoolPlan, block_base
from gpucloud.spec.model import Filesystem, Spec, Tenant

# Lustre client mount options for large sequential I/O and checkpoints; the reason sits next to each.
LUSTRE_OPTIONS: tuple[tuple[str, str], ...] = (
    ("flock", "cluster-coherent POSIX locks: checkpoint writers and HDF5/SQLite take file locks across nodes"),
    ("lazystatfs", "statfs (df, free-space checks before a checkpoint) answers even while one OST is down"),
    ("_netdev", "mount after the network is up: the IPoIB interfaces LNet's networks= names must have addresses"),
)

# Client tunables set with lctl set_param after the mount. ``{fs}`` becomes the fsname.
LUSTRE_TUNING: tuple[tuple[str, str, str], ...] = (
    ("osc.{fs}-OST*.max_pages_per_rpc", "1024",
     "4 MiB bulk RPCs (1024 x 4 KiB pages): checkpoints and data shards move in large sequential chunks, so fewer, "
     "larger RPCs cut per-RPC overhead; the OSTs need brw_size >= 4"),
    ("osc.{fs}-OST*.max_rpcs_in_flight", "32",
     "the default 8 RPCs per OST cannot fill a 200-400 Gb/s link when a few ranks write a checkpoint"),
    ("osc.{fs}-OST*.max_dirty_mb", "256",
     "twice max_rpcs_in_flight x RPC size (2 x 32 x 4 MiB) so writers never stall waiting for dirty-page credit"),
    ("llite.{fs}-*.max_read_ahead_mb", "2048",
     "read-ahead budget shared by all files: data loaders stream many shards at once"),
    ("llite.{fs}-*.max_read_ahead_per_file_mb", "512",
     "one rank restoring a multi-GB checkpoint shard prefetches far enough ahead to keep the link busy"),
)

# o2ib LND module options for ConnectX-7 on NDR/NDR200 (modprobe.d), with reasons.
KO2IBLND_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("peer_credits", "32", "more outstanding sends per peer than the default 8: NDR links idle at 8"),
    ("peer_credits_hiw", "16", "return credits at half of peer_credits so the sender never waits for a full window"),
    ("concurrent_sends", "64", "twice peer_credits, as the LND guidance for mlx5 adapters asks"),
)

NFS_OPTIONS: tuple[tuple[str, str], ...] = (
    ("proto=tcp", "TCP: the only transport NFSv4 clients use here"),
    ("hard", "a server failover stalls I/O instead of returning EIO to running jobs"),
    ("timeo=600", "60 s before a retransmission: a server failover takes tens of seconds"),
    ("retrans=2", "two retransmissions before the kernel logs 'server not responding'"),
    ("rsize=1048576", "1 MiB reads, the largest the Linux client negotiates"),
    ("wsize=1048576", "1 MiB writes"),
    ("nconnect=4", "four TCP connections per server spread home-directory traffic over queues and CPUs"),
    ("_netdev", "mount only after the network is up"),
)

# What the NFS server should export to the clients' address blocks.
NFS_EXPORT_OPTIONS = "rw,sync,no_subtree_check,root_squash,sec=sys"

LOCAL_OPTIONS = {"xfs": "defaults,noatime,nofail,x-systemd.device-timeout=30s",
                 "ext4": "defaults,noatime,nofail,x-systemd.device-timeout=30s"}

PROJECT_ID_BASE = 100_000
PROJECT_ID_SPAN = 900_000
_BANDWIDTH = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s?([KMGT])B/s$")
_BW_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class Tuning:
    param: str
    value: str
    reason: str


@dataclass(frozen=True)
class Lnet:
    """How one pool reaches one LNet network."""

    pool: str
    net: str  # o2ib1, tcp...
    interfaces: tuple[str, ...]
    via: str  # storage | compute | ipoib

    @property
    def networks(self) -> str:
        """The lnet module's ``networks=`` value, e.g. ``o2ib1(ib8,ib9)``."""
        return f"{self.net}({','.join(self.interfaces)})"

    @property
    def multi_rail(self) -> bool:
        return len(self.interfaces) > 1


@dataclass(frozen=True)
class LustreFs:
    name: str
    fsname: str
    mount: str
    mgs: tuple[str, ...]
    net: str
    via: str
    options: tuple[str, ...]
    pools: tuple[str, ...]  # pools that mount it
    skipped: tuple[tuple[str, str], ...]  # (pool, why) for pools left out because they cannot reach it
    tuning: tuple[Tuning, ...]
    capacity: int | None
    bandwidth: int | None  # bytes/s, from the spec
    overcommit: float

    @property
    def source(self) -> str:
        """MGS NIDs joined by ':' (primary first, then failover) and the fsname."""
        return ":".join(self.mgs) + ":/" + self.fsname


@dataclass(frozen=True)
class NfsFs:
    name: str
    server: str
    export: str
    mount: str
    version: str
    options: tuple[str, ...]
    automount: bool
    pools: tuple[str, ...]
    clients: tuple[str, ...]  # address blocks the server must export to
    capacity: int | None
    overcommit: float

    @property
    def source(self) -> str:
        return f"{self.server}:{self.export}"


@dataclass(frozen=True)
class LocalScratch:
    name: str
    pool: str
    mount: str
    raid: str  # raid0 | none | per-drive
    filesystem: str
    devices: tuple[str, ...]
    drive_bytes: int
    job_scratch: bool
    options: str
    hosts: int  # hosts of the pool, each with its own scratch

    @property
    def md_device(self) -> str | None:
        return f"/dev/md/{self.name}" if self.raid == "raid0" and len(self.devices) > 1 else None

    @property
    def capacity(self) -> int:
        """Bytes per node."""
        used = self.devices if self.raid != "none" else self.devices[:1]
        return self.drive_bytes * len(used)

    @property
    def total_capacity(self) -> int:
        return self.capacity * self.hosts

    def mounts(self) -> tuple[tuple[str, str], ...]:
        """(device, mount point) pairs the role makes."""
        if self.raid == "per-drive":
            return tuple((d, f"{self.mount}/{i}") for i, d in enumerate(self.devices))
        return ((self.md_device or self.devices[0], self.mount),)


@dataclass(frozen=True)
class ProjectDir:
    tenant: str
    filesystem: str
    kind: str
    path: str
    project_id: int
    block_bytes: int | None
    inodes: int | None
    users: tuple[str, ...]


@dataclass(frozen=True)
class SharedFigures:
    """Capacity and bandwidth figures of one Lustre or NFS filesystem."""

    name: str
    hosts: int  # hosts of the pools that mount it
    quota_bytes: int  # tenants' block quotas on it, summed
    quota_ratio: float | None  # quota_bytes / capacity to three decimals; None without a capacity
    bandwidth_per_gpu: int | None  # Lustre: the spec's bytes/s shared by every GPU that mounts it
    client_links_gbps: int  # Lustre: the client links LNet uses (hosts x interfaces x link rate); 0 for NFS


@dataclass(frozen=True)
class StoragePlan:
    lustre: tuple[LustreFs, ...]
    nfs: tuple[NfsFs, ...]
    local: tuple[LocalScratch, ...]
    lnet: tuple[Lnet, ...]
    projects: tuple[ProjectDir, ...]
    figures: tuple[SharedFigures, ...]  # one per Lustre and NFS filesystem, in that order

    def lnet_for(self, pool: str) -> tuple[Lnet, ...]:
        return tuple(n for n in self.lnet if n.pool == pool)

    def figures_of(self, name: str) -> SharedFigures:
        return next(f for f in self.figures if f.name == name)

    @property
    def job_scratch(self) -> LocalScratch | None:
        return next((s for s in self.local if s.job_scratch), None)


def project_id(tenant: Tenant) -> int:
    """A tenant's project id: a pure function of its name, so reordering or adding tenants never moves one."""
    if tenant.project_id is not None:
        return tenant.project_id
    return PROJECT_ID_BASE + zlib.crc32(tenant.name.encode()) % PROJECT_ID_SPAN


def parse_bandwidth(text: str | None) -> int | None:
    if not text:
        return None
    m = _BANDWIDTH.match(text)
    return int(float(m.group(1)) * _BW_UNITS[m.group(2)]) if m else None


def lustre_net(fs: Filesystem) -> str:
    return fs.settings["mgs"][0].split("@", 1)[1]


def lustre_via(spec: Spec, fs: Filesystem) -> str:
    return fs.settings.get("lnet") or ("storage" if "storage" in spec.fabrics else "compute")


def lnet_interfaces(pp: PoolPlan, via: str) -> tuple[str, ...]:
    """IPoIB interfaces of a pool that carry LNet for ``via``; empty when the pool cannot."""
    model = pp.model
    rails = model.rails
    if via == "storage":
        return tuple(f"ib{rails + s}" for s in range(len(model.storage_hcas)))
    if pp.pool.fabric != "compute" or not rails:
        return ()
    if via == "compute":
        return tuple(f"ib{r}" for r in range(rails))
    return ("ib0",)  # ipoib: one NI on the first rail


def _why_not(pp: PoolPlan, via: str) -> str:
    if via == "storage":
        return f"model {pp.model.name} has no storage HCA"
    return f"pool {pp.pool.name} has no compute-fabric HCA"


def _pools_for(spec: Spec, fs: Filesystem, can) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Pools that mount ``fs``: the listed ones, or by default every pool ``can`` accepts (the rest are skipped)."""
    names = [p.name for p in spec.pools]
    if fs.pools is not None:
        return tuple(n for n in names if n in fs.pools), ()
    chosen, skipped = [], []
    for n in names:
        why = can(n)
        if why:
            skipped.append((n, why))
        else:
            chosen.append(n)
    return tuple(chosen), tuple(skipped)


def _lustre(spec: Spec, fs: Filesystem, by_pool: dict[str, PoolPlan], lnets: dict) -> LustreFs:
    via = lustre_via(spec, fs)
    net = lustre_net(fs)

    def can(name: str) -> str:
        pp = by_pool[name]
        return "" if lnet_interfaces(pp, via) else _why_not(pp, via)

    pools, skipped = _pools_for(spec, fs, can)
    for name in pools:
        ifaces = lnet_interfaces(by_pool[name], via)
        if ifaces:
            lnets.setdefault((name, net), Lnet(name, net, ifaces, via))
    fsname = fs.settings["fsname"]
    return LustreFs(
        name=fs.name, fsname=fsname, mount=fs.mount, mgs=tuple(fs.settings["mgs"]), net=net, via=via,
        options=tuple(o for o, _ in LUSTRE_OPTIONS) + fs.options, pools=pools, skipped=skipped,
        tuning=tuple(Tuning(p.format(fs=fsname), v, r) for p, v, r in LUSTRE_TUNING),
        capacity=fs.capacity, bandwidth=parse_bandwidth(fs.settings.get("bandwidth")),
        overcommit=float(fs.settings.get("overcommit", 1.0)),
    )


def nfs_network(spec: Spec, server: str):
    """The network that holds the NFS server's address, else storage, else management."""
    try:
        addr = ipaddress.IPv4Address(server)
    except ValueError:
        addr = None
    for net in spec.networks.values():
        if addr is not None and net.name != "ipoib" and addr in net.cidr:
            return net
    return spec.networks.get("storage") or spec.networks["management"]


def _nfs(spec: Spec, fs: Filesystem, by_pool: dict[str, PoolPlan]) -> NfsFs:
    pools, _ = _pools_for(spec, fs, lambda name: "")
    net = nfs_network(spec, fs.settings["server"])
    clients = []
    for name in pools:
        pool = by_pool[name].pool
        base = block_base(net, pool.id)
        clients.append(str(ipaddress.IPv4Network((base, net.pool_prefix))))
    version = str(fs.settings.get("version", "4.2"))
    return NfsFs(
        name=fs.name, server=fs.settings["server"], export=fs.settings["export"], mount=fs.mount,
        version=version, options=(f"vers={version}",) + tuple(o for o, _ in NFS_OPTIONS) + fs.options,
        automount=bool(fs.settings.get("automount", False)), pools=pools, clients=tuple(clients),
        capacity=fs.capacity, overcommit=float(fs.settings.get("overcommit", 1.0)),
    )


def nvme_devices(pp: PoolPlan) -> tuple[str, ...]:
    first = pp.model.nvme_first
    return tuple(f"/dev/nvme{first + i}n1" for i in range(pp.model.nvme_drives))


def _local(spec: Spec, fs: Filesystem, by_pool: dict[str, PoolPlan]) -> list[LocalScratch]:
    def can(name: str) -> str:
        model = by_pool[name].model
        if not model.gpus:
            return "not a GPU pool"
        return "" if model.nvme_drives else f"model {model.name} has no NVMe data drive"

    pools, _ = _pools_for(spec, fs, can)
    out = []
    fstype = fs.settings.get("filesystem", "xfs")
    options = ",".join([LOCAL_OPTIONS[fstype], *fs.options])
    for name in pools:
        pp = by_pool[name]
        if not pp.model.nvme_drives:
            continue  # a finding says so; nothing to assemble
        out.append(LocalScratch(
            name=fs.name, pool=name, mount=fs.mount, raid=fs.settings.get("raid", "raid0"), filesystem=fstype,
            devices=nvme_devices(pp), drive_bytes=int(pp.model.nvme_drive_tb * 10**12),
            job_scratch=bool(fs.settings.get("job_scratch", False)), options=options, hosts=len(pp.hosts),
        ))
    return out


def _projects(spec: Spec, lustre: tuple[LustreFs, ...], nfs: tuple[NfsFs, ...]) -> tuple[ProjectDir, ...]:
    shared = {f.name: (f.mount, "lustre") for f in lustre}
    shared.update({f.name: (f.mount, "nfs") for f in nfs})
    out = []
    for tenant in sorted(spec.tenants, key=lambda t: t.name):
        blocks, inodes = dict(tenant.storage_quota), dict(tenant.inode_quota)
        for fs_name in sorted(set(blocks) | set(inodes)):
            if fs_name not in shared:
                continue  # local scratch has no tenant quota; a check reports it
            mount, kind = shared[fs_name]
            out.append(ProjectDir(
                tenant=tenant.name, filesystem=fs_name, kind=kind, path=f"{mount.rstrip('/')}/{tenant.name}",
                project_id=project_id(tenant), block_bytes=blocks.get(fs_name), inodes=inodes.get(fs_name),
                users=tuple(sorted(tenant.users)),
            ))
    return tuple(out)


def plan_storage(spec: Spec, pools: tuple[PoolPlan, ...]) -> StoragePlan:
    by_pool = {pp.pool.name: pp for pp in pools}
    lnets: dict[tuple[str, str], Lnet] = {}
    lustre, nfs, local = [], [], []
    for fs in spec.storage:
        if fs.kind == "lustre":
            lustre.append(_lustre(spec, fs, by_pool, lnets))
        elif fs.kind == "nfs":
            nfs.append(_nfs(spec, fs, by_pool))
        else:
            local.extend(_local(spec, fs, by_pool))
    order = {pp.pool.name: i for i, pp in enumerate(pools)}
    lnet = tuple(sorted(lnets.values(), key=lambda n: (order[n.pool], n.net)))
    projects = _projects(spec, tuple(lustre), tuple(nfs))
    return StoragePlan(
        lustre=tuple(lustre), nfs=tuple(nfs), local=tuple(local), lnet=lnet, projects=projects,
        figures=_figures(lustre, nfs, lnet, projects, by_pool),
    )


def link_gbps(pp: PoolPlan, via: str) -> int:
    """Rate of one of the pool's HCAs that carry ``via`` (storage HCAs, else compute rails)."""
    hcas = pp.model.storage_hcas if via == "storage" else pp.model.compute_hcas
    return LINK_RATES_GBPS[hcas[0].rate] if hcas else 0


def _figures(lustre: list[LustreFs], nfs: list[NfsFs], lnet: tuple[Lnet, ...], projects: tuple[ProjectDir, ...],
             by_pool: dict[str, PoolPlan]) -> tuple[SharedFigures, ...]:
    quotas: dict[str, int] = {}
    for p in projects:
        quotas[p.filesystem] = quotas.get(p.filesystem, 0) + (p.block_bytes or 0)

    def ratio(name: str, capacity: int | None) -> float | None:
        return round(quotas.get(name, 0) / capacity, 3) if capacity else None

    out = []
    for f in lustre:
        gpus = sum(by_pool[p].gpus for p in f.pools)
        links = sum(len(by_pool[n.pool].hosts) * len(n.interfaces) * link_gbps(by_pool[n.pool], n.via)
                    for n in lnet if n.pool in f.pools and n.net == f.net)
        out.append(SharedFigures(
            name=f.name, hosts=sum(len(by_pool[p].hosts) for p in f.pools), quota_bytes=quotas.get(f.name, 0),
            quota_ratio=ratio(f.name, f.capacity),
            bandwidth_per_gpu=f.bandwidth // gpus if f.bandwidth and gpus else None, client_links_gbps=links))
    for n in nfs:
        out.append(SharedFigures(
            name=n.name, hosts=sum(len(by_pool[p].hosts) for p in n.pools), quota_bytes=quotas.get(n.name, 0),
            quota_ratio=ratio(n.name, n.capacity), bandwidth_per_gpu=None, client_links_gbps=0))
    return tuple(out)
