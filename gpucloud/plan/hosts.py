"""Host planner: names, racks, slots and one address per network for every host.

Allocation is a pure function of (pool id, host index), never of the order in which hosts are enumerated:

* every network is cut into equal blocks of ``pool_prefix``; block 0 is kept for gateways, VIPs and appliances and
  pool ``id`` owns block ``id + 1``;
* the host at position ``p = index - start`` gets address ``block + 1 + p``; on IPoIB, rail ``r`` of the host gets
  the same offset in rail ``r``'s subnet;
* it sits in rack ``first + p // nodes_per_rack``, slot ``p % nodes_per_rack``.

So growing a pool, appending a pool or excluding a broken host never moves any other host.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gpucloud import catalog
from gpucloud.spec.model import Network, NodePool, Spec


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    pool: str
    index: int
    position: int  # index - pool start
    rack: str
    rack_number: int
    slot: int
    u: int  # lowest rack unit the host occupies
    management: str | None
    bmc: str | None
    storage: str | None
    ipoib: tuple[str, ...]  # one per rail


@dataclass(frozen=True)
class PoolPlan:
    pool: NodePool
    model: catalog.ServerModel
    hosts: tuple[Host, ...]

    @property
    def gpus(self) -> int:
        return len(self.hosts) * self.model.gpus


@dataclass(frozen=True)
class NVLinkDomain:
    """One rack-scale NVLink domain (an NVL72 rack): the trays of one pool in one rack. IMEX peers, Slurm's block
    and the unit a rolling update drains are all this set of hosts, never more and never part of it."""

    name: str  # the rack's name
    pool: str
    rack_number: int
    hosts: tuple[str, ...]  # in slot order
    peers: tuple[str, ...]  # IMEX peer addresses (management address, else the host name), in slot order
    trays: int  # trays a full domain holds (the model's)
    gpus: int  # GPUs of the planned trays
    rack_power_kw: float  # the whole rack's, from the catalog
    nmx: bool  # NVLink switches managed by NMX (no Fabric Manager on the trays)

    @property
    def full(self) -> bool:
        return len(self.hosts) == self.trays


def nvlink_domains(pools: tuple[PoolPlan, ...]) -> tuple[NVLinkDomain, ...]:
    """The NVLink domains of every pool whose model has rack-scale NVLink, by pool id then rack number. Only those
    pools' hosts are visited (each once), so the cost is their host count."""
    out: list[NVLinkDomain] = []
    for pp in sorted(pools, key=lambda pp: (pp.pool.id, pp.pool.name)):
        nv = pp.model.nvlink
        if nv is None:
            continue
        racks: dict[int, list[Host]] = {}
        for h in pp.hosts:
            racks.setdefault(h.rack_number, []).append(h)
        for number in sorted(racks):
            hosts = racks[number]
            out.append(NVLinkDomain(
                name=hosts[0].rack, pool=pp.pool.name, rack_number=number, hosts=tuple(h.name for h in hosts),
                peers=tuple(h.management or h.name for h in hosts), trays=nv.trays, gpus=len(hosts) * pp.model.gpus,
                rack_power_kw=nv.rack_power_kw, nmx=nv.nmx))
    return tuple(out)


def block_base(net: Network, pool_id: int, base: int | None = None) -> int:
    """First address (as int) of pool ``pool_id``'s block in ``net`` (or in the rail subnet starting at ``base``)."""
    size = 1 << (32 - net.pool_prefix)
    start = int(net.cidr.network_address) if base is None else base
    return start + (pool_id + 1) * size


def block_capacity(net: Network) -> int:
    return (1 << (32 - net.pool_prefix)) - 2


def blocks_in(net: Network, rail: bool = False) -> int:
    """How many pool blocks fit (block 0 included) in the network, or in one rail subnet for IPoIB."""
    outer = net.rail_prefix if rail else net.cidr.prefixlen
    if net.pool_prefix < outer:
        return 0
    return 1 << (net.pool_prefix - outer)


def _ip(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def plan_pool(spec: Spec, pool: NodePool) -> PoolPlan:
    model = pool.hardware or catalog.server(pool.model)  # resolved: the spec's models and overrides applied
    nets = spec.networks
    mgmt = nets.get("management")
    bmc = nets.get("bmc")
    storage = nets.get("storage")
    ipoib = nets.get("ipoib") if pool.fabric == "compute" and model.rails else None

    mgmt_base = block_base(mgmt, pool.id) + 1 if mgmt else None
    bmc_base = block_base(bmc, pool.id) + 1 if bmc else None
    storage_base = block_base(storage, pool.id) + 1 if storage else None
    rail_bases: tuple[int, ...] = ()
    if ipoib:
        rail_size = 1 << (32 - ipoib.rail_prefix)
        net0 = int(ipoib.cidr.network_address)
        rail_bases = tuple(block_base(ipoib, pool.id, net0 + r * rail_size) + 1 for r in range(model.rails))

    rack = pool.rack
    per_rack = rack.nodes_per_rack
    height = model.rack_units
    hosts = []
    exclude = pool.exclude
    for index in pool.indices:
        if index in exclude:
            continue
        p = index - pool.start
        number = rack.first + p // per_rack
        slot = p % per_rack
        hosts.append(Host(
            name=pool.hostname_for(index), pool=pool.name, index=index, position=p,
            rack=rack.name.format(rack=number), rack_number=number, slot=slot, u=rack.first_u + slot * height,
            management=_ip(mgmt_base + p) if mgmt_base is not None else None,
            bmc=_ip(bmc_base + p) if bmc_base is not None else None,
            storage=_ip(storage_base + p) if storage_base is not None else None,
            ipoib=tuple(_ip(b + p) for b in rail_bases),
        ))
    return PoolPlan(pool=pool, model=model, hosts=tuple(hosts))


def plan_hosts(spec: Spec) -> tuple[PoolPlan, ...]:
    return tuple(plan_pool(spec, pool) for pool in spec.pools)


def gateway(net: Network) -> str:
    return str(net.gateway or ipaddress.IPv4Address(int(net.cidr.network_address) + 1))
