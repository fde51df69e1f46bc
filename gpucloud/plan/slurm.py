"""Slurm planner: node groups, GRES, partitions, controllers, tenants' accounts and QOS, sizing for large systems.

Nodes are planned per pool with the ``compute`` role, never per host, so the plan (and slurm.conf) grows with the
number of pools. Only the hostlist of a pool is computed, which costs the same for 2 hosts and 12,500.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gpucloud import catalog
from gpucloud.hostlist import compress, pool_hostlist
from gpucloud.plan import slurm_keys
from gpucloud.plan.hosts import PoolPlan, nvlink_domains
from gpucloud.spec.model import Spec, parse_duration_minutes

# Keep back for the kernel, slurmd and the page cache: a node that reports less memory than RealMemory is drained.
# Firmware and kernel already hold back part of the installed memory, so slurmd reports less than is installed;
# RealMemory is the installed memory less 5 % (at least 4 GiB), rounded down to whole GiB (docs/slurm.md).
MEMORY_RESERVE_FRACTION = 0.05
MEMORY_RESERVE_MIN_MIB = 4096
# StateSaveLocation when one controller keeps its state on its own disk (the Debian package's default).
LOCAL_STATE_SAVE = "/var/spool/slurmctld"

DEFAULT_PORTS = {"slurmctld": 6817, "slurmd": 6818, "slurmdbd": 6819}
# switch/nvidia_imex hands every job an IMEX channel of its own; slurm.conf(5), SwitchParameters imex_channel_count
# (the plugin's default, written out so that a reviewer sees it).
IMEX_CHANNELS = 2048
# topology.yaml (Slurm 25.05): several named topologies in one cluster, each partition on one of them (Topology=).
TOPOLOGY_YAML_SINCE = (25, 5)


@dataclass(frozen=True)
class NodeGroup:
    """One NodeName line: every host of a pool (all share one hardware model)."""

    pool: str
    names: str  # hostlist expression
    count: int
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    real_memory_mib: int
    gpus: int
    gpu_type: str | None
    features: tuple[str, ...]
    # (device hostlist, core range) per CPU socket the GPUs hang off, for gres.conf; the core range is "" where the
    # plan does not know the core numbering (Grace: no x86 socket-major layout is assumed)
    gpu_devices: tuple[tuple[str, str], ...]

    @property
    def cpus(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core

    @property
    def gres(self) -> str | None:
        return f"gpu:{self.gpu_type}:{self.gpus}" if self.gpus else None


@dataclass(frozen=True)
class PartitionPlan:
    name: str
    pools: tuple[str, ...]
    nodes: str  # hostlist expression
    node_count: int
    gpus: int
    default: bool
    max_time: str | None
    default_time: str | None
    priority_tier: int | None
    exclusive: bool
    allow_accounts: tuple[str, ...]  # empty: every account
    topology: str | None = None  # the named topology of topology.yaml the partition's jobs use; None: the default


@dataclass(frozen=True)
class AccountPlan:
    """A tenant as Slurm sees it: an account, a QOS of the same name, users whose default account it is."""

    name: str
    description: str
    users: tuple[str, ...]
    partitions: tuple[str, ...]
    gpu_limit: int | None
    max_wall: str | None  # as sacctmgr prints it, e.g. 2-00:00:00
    priority: int

    @property
    def qos(self) -> str:
        return self.name

    @property
    def grp_tres(self) -> str:
        return f"gres/gpu={self.gpu_limit}" if self.gpu_limit is not None else ""


@dataclass(frozen=True)
class Sizing:
    """Values SchedMD's large-cluster guide and the slurm.conf manual tie to the node count."""

    tree_width: int
    message_timeout: int
    slurmd_timeout: int
    slurmctld_timeout: int
    tcp_timeout: int
    max_job_count: int
    min_job_age: int


@dataclass(frozen=True)
class SlurmPlan:
    cluster_name: str
    version: str | None
    controllers: tuple[str, ...]  # first is the primary
    dbd_host: str | None
    accounting: bool
    database_password: str | None  # the secret's name
    retention_months: int
    nodes: tuple[NodeGroup, ...]
    partitions: tuple[PartitionPlan, ...]
    accounts: tuple[AccountPlan, ...]
    topology_plugin: str | None  # topology/tree, topology/block or None
    gres_autodetect: bool
    pyxis: bool
    enroot: bool
    health_check_interval: int
    sizing: Sizing
    # topology/block: one block per NVLink domain of a compute pool (name, hostlist), in pool then rack order, and
    # the base block size: the smallest domain's trays (slurmctld refuses a block smaller than the base); empty
    # without rack-scale NVLink
    nvlink_blocks: tuple[tuple[str, str], ...] = ()
    block_size: int = 0
    # switch/nvidia_imex with this many IMEX channels where a compute pool has rack-scale NVLink; 0: no switch plugin
    imex_channels: int = 0
    # Slurm 25.05+ with NVL72 racks beside other GPU pools on the compute fabric: topology.yaml instead of
    # topology.conf, a block topology over the NVLink domains (partitions of NVL72 pools only) and a tree over the
    # fabric (the cluster default)
    topology_yaml: bool = False
    ports: tuple[tuple[str, int], ...] = tuple(sorted(DEFAULT_PORTS.items()))
    state_save: str = LOCAL_STATE_SAVE  # StateSaveLocation
    state_save_mount: str | None = None  # mount point of the shared filesystem it lives on; None: local disk
    # The spec's site settings for slurm.conf and slurmdbd.conf, (key as Slurm spells it, value), sorted by key:
    # the renderer replaces the plan's line of the same key in place and adds the others in a site section.
    settings: tuple[tuple[str, str], ...] = ()
    dbd_settings: tuple[tuple[str, str], ...] = ()

    @property
    def node_count(self) -> int:
        return sum(g.count for g in self.nodes)

    @property
    def gpu_count(self) -> int:
        return sum(g.count * g.gpus for g in self.nodes)

    @property
    def gres_types(self) -> tuple[str, ...]:
        return ("gpu",) if any(g.gpus for g in self.nodes) else ()

    def port(self, daemon: str) -> int:
        return dict(self.ports)[daemon]


def gpu_type(catalog_key: str) -> str:
    """Slurm GRES type from the catalog key of a GPU: 'h100-sxm5-80gb' -> 'h100' (what users type in --gres)."""
    return catalog_key.split("-", 1)[0]


def size_for(nodes: int) -> Sizing:
    # TreeWidth: square root of the node count up to 2,500 nodes, cube root above (slurm.conf(5), TreeWidth).
    root = math.sqrt(nodes) if nodes <= 2500 else nodes ** (1 / 3)
    tree_width = max(2, min(65533, math.ceil(root - 1e-9)))
    # Bigger fan-outs and bursts of RPCs need longer timeouts; SchedMD's guide raises them for >1,024 nodes.
    if nodes <= 1024:
        return Sizing(tree_width, 10, 300, 120, 2, 10000, 300)
    if nodes <= 4096:
        return Sizing(tree_width, 30, 600, 300, 5, 50000, 300)
    return Sizing(tree_width, 60, 900, 300, 10, 200000, 300)


def max_wall(text: str | None) -> str | None:
    """A Slurm time limit as sacctmgr prints MaxWall, so the tenant script can compare without parsing."""
    if text is None:
        return None
    minutes = parse_duration_minutes(text)
    if minutes is None:
        return None
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02}:{mins:02}:00" if days else f"{hours:02}:{mins:02}:00"


def _gpu_devices(pp: PoolPlan) -> tuple[tuple[str, str], ...]:
    m = pp.model
    if not m.gpus:
        return ()
    sockets = m.gpu_socket or (0,) * m.gpus
    if m.cpu_arch != "x86_64":
        # On Grace, first = socket x cores_per_socket is an x86 assumption the plan cannot check: list the devices
        # without Cores= (every core may drive every GPU) rather than bind jobs to a guessed range.
        return ((f"/dev/nvidia[0-{m.gpus - 1}]" if m.gpus > 1 else "/dev/nvidia0", ""),)
    out = []
    for socket in sorted(set(sockets)):
        idx = [i for i, s in enumerate(sockets) if s == socket]
        devices = ",".join(str(i) for i in idx)
        if idx == list(range(idx[0], idx[-1] + 1)):
            devices = f"{idx[0]}-{idx[-1]}" if len(idx) > 1 else str(idx[0])
        first = socket * m.cores_per_socket
        out.append((f"/dev/nvidia[{devices}]" if len(idx) > 1 else f"/dev/nvidia{devices}",
                    f"{first}-{first + m.cores_per_socket - 1}"))
    return tuple(out)


def real_memory_mib(memory_gib: int) -> int:
    """slurm.conf RealMemory of a node with ``memory_gib`` installed: less the reserve, in whole GiB."""
    mem = memory_gib * 1024
    reserve = max(MEMORY_RESERVE_MIN_MIB, int(mem * MEMORY_RESERVE_FRACTION))
    return (mem - reserve) // 1024 * 1024


def _node_group(pp: PoolPlan) -> NodeGroup:
    m = pp.model  # the resolved model: the spec's own models and the pool's overrides applied
    real = real_memory_mib(m.memory_gib)
    gtype = gpu_type(_gpu_key(m.gpu)) if m.gpus and m.gpu else None
    features = [pp.pool.name]
    if gtype and gtype != pp.pool.name:
        features.append(gtype)
    features.extend(f for f in pp.pool.features if f not in features)
    return NodeGroup(
        pool=pp.pool.name, names=pool_hostlist(pp.pool), count=len(pp.hosts), sockets=m.sockets,
        cores_per_socket=m.cores_per_socket, threads_per_core=m.threads_per_core, real_memory_mib=real,
        gpus=m.gpus, gpu_type=gtype, features=tuple(features), gpu_devices=_gpu_devices(pp),
    )


def _gpu_key(gpu: catalog.GPU) -> str:
    if gpu.key:
        return gpu.key
    for key, value in catalog.GPUS.items():
        if value == gpu:
            return key
    return gpu.name.lower().split()[1]  # 'NVIDIA H100 SXM5 80GB' -> 'h100'


def _hosts_with_role(pools: tuple[PoolPlan, ...], role: str) -> tuple[str, ...]:
    return tuple(h.name for pp in pools if role in pp.pool.roles for h in pp.hosts)


def slurm_release(text: str | None) -> tuple[int, int] | None:
    """A Slurm version as (major, minor), e.g. (24, 11) for "24.11.5"; None when the spec names none."""
    m = re.match(r"^(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


# The names of the two topologies of topology.yaml.
NVLINK_TOPOLOGY = "nvlink"
FABRIC_TOPOLOGY = "fabric"


def uses_topology_yaml(spec: Spec) -> bool:
    """topology/block with NVL72 racks and other GPU pools on the compute fabric, on a Slurm that reads
    topology.yaml: the other pools get a tree of their own instead of blocks the size of a scalable unit (and compute
    pools off the fabric sit on the tree's ``nofabric`` switch, so they are schedulable too)."""
    if spec.slurm.topology != "block":
        return False
    v = slurm_release(spec.software.slurm)
    if v is None or v < TOPOLOGY_YAML_SINCE:
        return False
    compute = [p for p in spec.pools if "compute" in p.roles and p.count and p.hardware is not None]
    return any(p.hardware.nvlink is not None for p in compute if p.hardware) and any(
        p.hardware.nvlink is None and p.fabric == "compute" and p.hardware.gpus for p in compute if p.hardware)


def _partitions(spec: Spec, groups: dict[str, NodeGroup], nvlink_pools: frozenset[str] = frozenset()) \
        -> tuple[PartitionPlan, ...]:
    owners: dict[str, list[str]] = {}
    users_of: dict[str, list[str]] = {}
    for t in spec.tenants:
        for pool in t.pools:
            owners.setdefault(pool, []).append(t.name)
        for part in t.partitions:
            users_of.setdefault(part, []).append(t.name)
    out = []
    for p in spec.slurm.partitions:
        members = [groups[name] for name in p.pools if name in groups]
        # Dedicated pools admit only their owners; a partition tenants list is closed to the others.
        allowed = {o for name in p.pools for o in owners.get(name, ())}
        if allowed or p.name in users_of:
            allowed.update(users_of.get(p.name, ()))
        out.append(PartitionPlan(
            name=p.name, pools=p.pools, nodes=",".join(g.names for g in members if g.names),
            node_count=sum(g.count for g in members), gpus=sum(g.count * g.gpus for g in members),
            default=p.default, max_time=p.max_time, default_time=p.default_time, priority_tier=p.priority_tier,
            exclusive=p.exclusive, allow_accounts=tuple(sorted(allowed)),
            topology=NVLINK_TOPOLOGY if nvlink_pools and members and all(n in nvlink_pools for n in p.pools)
            else None,
        ))
    return tuple(out)


def _accounts(spec: Spec) -> tuple[AccountPlan, ...]:
    by_pool: dict[str, list[str]] = {}
    for p in spec.slurm.partitions:
        for pool in p.pools:
            by_pool.setdefault(pool, []).append(p.name)
    out = []
    for t in spec.tenants:
        parts = list(t.partitions)
        for pool in t.pools:
            parts.extend(x for x in by_pool.get(pool, ()) if x not in parts)
        out.append(AccountPlan(
            name=t.name, description=t.description or t.name, users=tuple(sorted(t.users)),
            partitions=tuple(sorted(parts)), gpu_limit=t.gpu_limit, max_wall=max_wall(t.max_time),
            priority=t.priority or 0,
        ))
    return tuple(sorted(out, key=lambda a: a.name))


def _spelled(settings: tuple[tuple[str, str], ...], known) -> tuple[tuple[str, str], ...]:
    return tuple((slurm_keys.spelling(k, known), v) for k, v in settings)


def _ports(settings: tuple[tuple[str, str], ...], dbd_settings: tuple[tuple[str, str], ...]) \
        -> tuple[tuple[str, int], ...]:
    """The daemons' ports, as the settings give them: SlurmctldPort and SlurmdPort (when one port, not a range), and
    DbdPort of slurm.dbd_settings, which moves slurm.conf's AccountingStoragePort with it (the checks refuse a
    DbdPort that is not one port number)."""
    ports = dict(DEFAULT_PORTS)
    conf = {k.lower(): v for k, v in settings}
    dbd = {k.lower(): v for k, v in dbd_settings}
    for daemon, value in (("slurmctld", conf.get("slurmctldport", "")), ("slurmd", conf.get("slurmdport", "")),
                          ("slurmdbd", dbd.get("dbdport", ""))):
        if value.isdigit():
            ports[daemon] = int(value)
    return tuple(sorted(ports.items()))


def plan_slurm(spec: Spec, pools: tuple[PoolPlan, ...]) -> SlurmPlan:
    groups = {pp.pool.name: _node_group(pp) for pp in pools if "compute" in pp.pool.roles and pp.hosts}
    s = spec.slurm
    controllers = _hosts_with_role(pools, "slurm-controller")
    dbd = _hosts_with_role(pools, "slurmdbd")
    topology = {"tree": "topology/tree", "block": "topology/block"}.get(s.topology)
    state, mount = LOCAL_STATE_SAVE, None
    fs = next((f for f in spec.storage if s.state_save and f.name == s.state_save.filesystem), None)
    if fs is not None and s.state_save is not None:  # on a filesystem every controller mounts: a backup takes over
        mount = fs.mount
        state = fs.mount.rstrip("/") + "/" + s.state_save.directory
    domains = nvlink_domains(tuple(pp for pp in pools if pp.pool.name in groups))
    named = bool(domains) and uses_topology_yaml(spec)
    nvlink_pools = frozenset(pp.pool.name for pp in pools if pp.model.nvlink is not None) if named else frozenset()
    return SlurmPlan(
        cluster_name=s.cluster_name, version=spec.software.slurm, controllers=controllers,
        dbd_host=dbd[0] if dbd else None, accounting=s.accounting.enabled,
        database_password=s.accounting.database_password, retention_months=s.accounting.retention_months,
        nodes=tuple(groups.values()), partitions=_partitions(spec, groups, nvlink_pools), accounts=_accounts(spec),
        topology_plugin=topology, gres_autodetect=s.gres_autodetect, pyxis=s.pyxis, enroot=s.enroot,
        health_check_interval=s.health_check_interval,
        sizing=size_for(sum(g.count for g in groups.values())),
        state_save=state, state_save_mount=mount, ports=_ports(s.settings, s.dbd_settings),
        settings=_spelled(s.settings, slurm_keys.KNOWN), dbd_settings=_spelled(s.dbd_settings, slurm_keys.DBD_KNOWN),
        nvlink_blocks=tuple((d.name, compress(d.hosts)) for d in domains),
        block_size=min((len(d.hosts) for d in domains), default=0), imex_channels=IMEX_CHANNELS if domains else 0,
        topology_yaml=named,
    )


def section(plan) -> dict:
    """plan.json's ``slurm`` section."""
    sp: SlurmPlan = plan.slurm
    return {
        "cluster_name": sp.cluster_name,
        "version": sp.version,
        "controllers": list(sp.controllers),
        "state_save": sp.state_save,
        "dbd_host": sp.dbd_host,
        "accounting": sp.accounting,
        "topology_plugin": sp.topology_plugin,
        **({"nvlink_blocks": [{"name": name, "nodes": nodes} for name, nodes in sp.nvlink_blocks],
            "block_size": sp.block_size, "imex_channels": sp.imex_channels} if sp.nvlink_blocks else {}),
        **({"topology_file": "topology.yaml"} if sp.topology_yaml else {}),
        "nodes": sp.node_count,
        "gpus": sp.gpu_count,
        "node_groups": [
            {"pool": g.pool, "nodes": g.names, "count": g.count, "cpus": g.cpus, "real_memory_mib": g.real_memory_mib,
             "gres": g.gres, "features": list(g.features)} for g in sp.nodes
        ],
        "partitions": [
            {"name": p.name, "nodes": p.nodes, "node_count": p.node_count, "gpus": p.gpus, "default": p.default,
             "max_time": p.max_time, "allow_accounts": list(p.allow_accounts),
             **({"topology": p.topology} if p.topology else {})} for p in sp.partitions
        ],
        "accounts": [
            {"name": a.name, "qos": a.qos, "users": list(a.users), "partitions": list(a.partitions),
             "gpu_limit": a.gpu_limit, "max_wall": a.max_wall, "priority": a.priority} for a in sp.accounts
        ],
        "sizing": {"tree_width": sp.sizing.tree_width, "message_timeout": sp.sizing.message_timeout,
                   "slurmd_timeout": sp.sizing.slurmd_timeout, "slurmctld_timeout": sp.sizing.slurmctld_timeout},
    }
