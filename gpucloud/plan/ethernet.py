"""Ethernet fabric planner: a routed, rail-optimized RoCEv2 leaf/spine fabric of SONiC switches (docs/fabric.md,
"Ethernet fabrics", has the sources; SAKURAONE and NVIDIA Spectrum-X have this shape).

* a scalable unit (SU) of ``scalable_unit`` node slots has one leaf per rail; NIC ``i`` of the node in slot ``s`` goes
  to the rail-``i`` leaf of its SU on breakout port ``s`` (two 400G ports per 800G cage on a 51.2 Tb/s switch). A node's
  slot is its position in its pool and each pool starts on a fresh SU (pools in id order), so growing a pool never
  moves a host cable;
* a leaf has ``ceil(down bandwidth / (cage rate * taper))`` uplink cages at the switch's own rate, after its host
  cages; every leaf connects to every spine with the same number of parallel links, so the spine count is the
  smallest one that holds all uplinks and divides a leaf's uplinks; two tiers only (a spine tier that runs out of
  ports is a finding, not a silent third tier);
* routing follows RFC 7938: every spine shares one ASN, every leaf has its own (``leaf_asn_base`` + its position by
  SU and rail, so growth never renumbers a leaf), eBGP unnumbered (IPv6 link-local, RFC 5549 next hops) on every
  leaf-spine link, each link its own session, so a leaf reaches another leaf's hosts over all its uplinks (ECMP);
* hosts: rail ``r`` owns block ``r`` of the fabric's network (``rail_prefix``); the leaf of SU ``u`` owns subnet
  ``u`` of its rail's block, sized for the SU's slots, with the leaf's address first and the host in slot ``s`` at
  ``first + 2 + s``. Each NIC is its own routed interface on the host (per-rail policy routing, docs/fabric.md);
* loopbacks (router ids): leaves from the bottom of the loopback network by position, spines from the top.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from math import ceil

from gpucloud import catalog
from gpucloud.catalog.ethernet import ETHERNET_RATES_GBPS, EthernetSwitch, ethernet_switch
from gpucloud.plan.hosts import PoolPlan
from gpucloud.spec.model import Fabric, NodePool, Roce, Spec

PREFIX = {"compute": "c", "storage": "s"}
SPINES_PER_RACK = 16
LEAF_TIER, SPINE_TIER = 1, 2


@dataclass(frozen=True, slots=True)
class EthSwitch:
    name: str
    tier: int  # 1 leaf, 2 spine
    su: int  # leaf: its SU (1-based); spine: 0
    rail: int  # leaf: its rail; spine: -1
    position: int  # leaf: ordinal among leaves (SU, rail); spine: 0-based spine number
    asn: int
    loopback: str
    rack: str
    u: int
    subnet: str = ""  # leaf: its hosts' subnet (CIDR); the leaf holds its first address


@dataclass(frozen=True, slots=True)
class NicPort:
    """One fabric NIC port of a host."""

    host: str
    pool: str
    rail: int
    device: str  # RDMA device name (mlx5_N), from the model's rail-to-device map
    rack: str
    leaf: int  # index into EthernetFabricPlan.switches
    port: str  # SONiC interface name on the leaf
    address: str  # the host's address on this rail
    gateway: str  # the leaf's address on the subnet
    prefixlen: int


@dataclass(frozen=True, slots=True)
class Link:
    """One leaf-spine cable: its own routed interface pair and BGP session."""

    leaf: int
    leaf_port: str
    spine: int
    spine_port: str


@dataclass(frozen=True)
class EthernetFabricPlan:
    name: str
    fabric: Fabric
    roce: Roce
    model: EthernetSwitch
    host_gbps: int
    per_cage: int  # host ports per leaf cage (breakout)
    rails: int
    su_size: int
    down_cages: int
    up_cages: int  # uplinks per leaf, one per cage at the switch's rate
    sus: int
    links_per_spine: int  # parallel links between a leaf and each spine
    switches: tuple[EthSwitch, ...]
    ports: tuple[NicPort, ...]
    links: tuple[Link, ...]
    rail_blocks: tuple[str, ...]  # CIDR of each rail's block

    def count(self, tier: int) -> int:
        return sum(1 for s in self.switches if s.tier == tier)

    @property
    def leaves(self) -> tuple[EthSwitch, ...]:
        return tuple(s for s in self.switches if s.tier == LEAF_TIER)

    @property
    def spines(self) -> tuple[EthSwitch, ...]:
        return tuple(s for s in self.switches if s.tier == SPINE_TIER)

    @property
    def ecmp_paths(self) -> int:
        """Equal-cost paths from a leaf to another leaf's hosts: one per uplink (spines x parallel links)."""
        return self.up_cages if self.count(SPINE_TIER) else 0

    def su_hosts(self, pools: frozenset[str] | set[str] | None = None) -> dict[int, list[str]]:
        """Hosts by SU (1-based), in port order, of the given pools (all when None): the rail-0 NIC stands for the
        node, whose NICs all sit on the rail leaves of its own SU. Slurm's topology and plan.md group by this."""
        out: dict[int, list[str]] = {}
        for p in self.ports:
            if p.rail == 0 and (pools is None or p.pool in pools):
                out.setdefault(self.switches[p.leaf].su, []).append(p.host)
        return out

    def traffic_class(self) -> int:
        """IP traffic class of RoCE packets (NCCL_IB_TC): the DSCP in the upper six bits, ECT(0) in the ECN bits."""
        return self.roce.dscp << 2 | 2


@dataclass(frozen=True)
class Shape:
    """The sizes of an Ethernet fabric, from counts alone (checks use it without wiring anything)."""

    fabric: Fabric
    model: EthernetSwitch
    host_gbps: int
    per_cage: int
    rails: int
    su: int
    down_cages: int
    up_cages: int
    sus: int
    leaves: int
    spines: int  # 0 when the spine tier cannot hold the leaves' uplinks


def attached(spec: Spec, name: str) -> list[NodePool]:
    """Pools with NIC ports on the fabric, by pool id (then name): never the order of the spec's list."""
    return sorted((p for p in spec.pools if p.hardware is not None and p.fabric == name and p.hardware.rails),
                  key=lambda p: (p.id, p.name))


def attached_plans(pools: tuple[PoolPlan, ...], name: str) -> list[PoolPlan]:
    return sorted((pp for pp in pools if pp.pool.fabric == name and pp.model.rails),
                  key=lambda pp: (pp.pool.id, pp.pool.name))


def nic_gbps(hw: catalog.ServerModel) -> int:
    return catalog.LINK_RATES_GBPS[hw.compute_hcas[0].rate]


def spine_count(leaves: int, up: int, cages: int) -> int:
    """Smallest spine count that holds ``leaves * up`` uplinks and divides ``up``; 0 when none does."""
    if leaves == 0 or up == 0:
        return 0
    for s in range(max(1, ceil(leaves * up / cages)), up + 1):
        if up % s == 0 and leaves * (up // s) <= cages:
            return s
    return 0


def shape(spec: Spec, name: str) -> Shape | None:
    fabric = spec.fabrics.get(name)
    if fabric is None or fabric.kind != "ethernet" or fabric.switch not in _switches():
        return None
    if fabric.rate is not None and fabric.rate not in ETHERNET_RATES_GBPS:
        return None  # an InfiniBand rate: ethernet-infiniband-field reports it
    model = ethernet_switch(fabric.switch)
    pools = attached(spec, name)
    rails = max((p.hardware.rails for p in pools if p.hardware), default=0)
    if fabric.rate:
        host_gbps = ETHERNET_RATES_GBPS[fabric.rate]
    else:
        host_gbps = max((nic_gbps(p.hardware) for p in pools if p.hardware), default=model.gbps)
    per_cage = model.per_cage(host_gbps)
    su = fabric.scalable_unit
    down = ceil(su / per_cage) if per_cage else 0
    up = ceil(down * per_cage * host_gbps / (model.gbps * fabric.oversubscription[0]))
    sus = sum(ceil(p.count / su) for p in pools)
    leaves = sum(ceil(p.count / su) * p.hardware.rails for p in pools if p.hardware)
    return Shape(fabric, model, host_gbps, per_cage, rails, su, down, up, sus, leaves,
                 spine_count(leaves, up, model.cages))


def _switches() -> dict:
    from gpucloud.catalog import ethernet

    return ethernet.ETHERNET_SWITCHES


def _ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def leaf_subnet_prefix(su: int) -> int:
    """Prefix of a leaf's host subnet: the SU's slots, the leaf's address, the network and broadcast addresses."""
    return 32 - (su + 2).bit_length()


def rail_prefix(roce: Roce) -> int:
    return roce.rail_prefix or ipaddress.IPv4Network(roce.cidr, strict=False).prefixlen + 3


def plan_ethernet(spec: Spec, pools: tuple[PoolPlan, ...]) -> tuple[EthernetFabricPlan, ...]:
    return tuple(p for p in (plan_fabric(spec, pools, name) for name in sorted(spec.fabrics)
                             if spec.fabrics[name].kind == "ethernet") if p is not None)


def plan_fabric(spec: Spec, pools: tuple[PoolPlan, ...], name: str) -> EthernetFabricPlan | None:
    sh = shape(spec, name)
    fabric = spec.fabrics[name]
    roce = fabric.roce
    if sh is None or roce is None or not sh.per_cage:
        return None  # the ethernet checks report why
    model, prefix = sh.model, PREFIX.get(name, name[:1])
    net = ipaddress.IPv4Network(roce.cidr, strict=False)
    rp = rail_prefix(roce)
    rail_size = 1 << (32 - rp)
    lp = leaf_subnet_prefix(sh.su)
    leaf_size = 1 << (32 - lp)
    lo_net = ipaddress.IPv4Network(roce.loopbacks, strict=False)
    lo_base, lo_top = int(lo_net.network_address), int(lo_net.broadcast_address)

    switches: list[EthSwitch] = []
    ports: list[NicPort] = []
    leaf_of: dict[tuple[int, int], int] = {}
    su_base = 0
    rails = sh.rails
    for pp in attached_plans(pools, name):
        pool_sus = ceil(pp.pool.count / sh.su)
        devices = pp.model.devices("compute")
        for u in range(su_base + 1, su_base + pool_sus + 1):
            for r in range(pp.model.rails):
                pos = len(leaf_of)
                sub = int(net.network_address) + r * rail_size + (u - 1) * leaf_size
                leaf_of[(u, r)] = len(switches)
                switches.append(EthSwitch(
                    name=f"{prefix}-leaf-su{u:03}-r{r}", tier=LEAF_TIER, su=u, rail=r, position=pos,
                    asn=roce.leaf_asn_base + (u - 1) * rails + r, loopback=_ip(lo_base + 1 + (u - 1) * rails + r),
                    rack=f"{prefix}-su{u:03}", u=1 + r * model.rack_units, subnet=f"{_ip(sub)}/{lp}"))
        for h in pp.hosts:
            u = su_base + 1 + h.position // sh.su
            slot = h.position % sh.su
            cage, sub_port = 1 + slot // sh.per_cage, slot % sh.per_cage
            for r in range(pp.model.rails):
                leaf = leaf_of[(u, r)]
                first = int(net.network_address) + r * rail_size + (u - 1) * leaf_size
                ports.append(NicPort(
                    host=h.name, pool=pp.pool.name, rail=r, device=devices[r], rack=h.rack, leaf=leaf,
                    port=model.port_name(cage, sub_port, sh.per_cage), address=_ip(first + 2 + slot),
                    gateway=_ip(first + 1), prefixlen=lp))
        su_base += pool_sus

    leaf_ids = list(range(len(switches)))
    n_spines = sh.spines
    per = sh.up_cages // n_spines if n_spines else 0
    spine_ids = []
    for s in range(n_spines):
        rack, slot = divmod(s, SPINES_PER_RACK)
        spine_ids.append(len(switches))
        switches.append(EthSwitch(
            name=f"{prefix}-spine-{s + 1:03}", tier=SPINE_TIER, su=0, rail=-1, position=s, asn=roce.spine_asn,
            loopback=_ip(lo_top - 1 - s), rack=f"{prefix}-spine{rack + 1:02}", u=1 + slot * model.rack_units))
    links = []
    for ordinal, li in enumerate(leaf_ids):
        for j in range(sh.up_cages if n_spines else 0):
            s, k = divmod(j, per)
            links.append(Link(leaf=li, leaf_port=model.port_name(sh.down_cages + 1 + j), spine=spine_ids[s],
                              spine_port=model.port_name(ordinal * per + k + 1)))
    return EthernetFabricPlan(
        name=name, fabric=fabric, roce=roce, model=model, host_gbps=sh.host_gbps, per_cage=sh.per_cage,
        rails=rails, su_size=sh.su, down_cages=sh.down_cages, up_cages=sh.up_cages, sus=su_base,
        links_per_spine=per, switches=tuple(switches), ports=tuple(ports), links=tuple(links),
        rail_blocks=tuple(f"{_ip(int(net.network_address) + r * rail_size)}/{rp}" for r in range(rails)))


def summary(fp: EthernetFabricPlan) -> dict:
    return {
        "switch": fp.model.name, "host_gbps": fp.host_gbps, "rails": fp.rails, "scalable_unit": fp.su_size,
        "scalable_units": fp.sus, "leaves": fp.count(LEAF_TIER), "spines": fp.count(SPINE_TIER),
        "uplinks_per_leaf": fp.up_cages, "links_per_spine": fp.links_per_spine, "host_ports": len(fp.ports),
        "leaf_spine_links": len(fp.links), "ecmp_paths": fp.ecmp_paths, "spine_asn": fp.roce.spine_asn,
        "lossless_priority": fp.roce.lossless_priority, "dscp": fp.roce.dscp,
        "traffic_class": fp.traffic_class(), "rail_blocks": list(fp.rail_blocks),
    }
