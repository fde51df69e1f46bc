"""Fabric planner: switches, ports, cables, GUIDs and subnets of every InfiniBand fabric in the spec.

The compute fabric is a rail-optimized fat tree (docs/fabric.md has the reasoning and the sources):

* a scalable unit (SU) of ``scalable_unit`` node slots has one leaf per rail; HCA ``i`` of the node in slot ``s``
  goes to the rail-``i`` leaf of its SU on down port ``s + 1``. A node's slot is a pure function of its pool's
  first SU and its position, so growing a pool never moves a cable of an existing node;
* pools are placed in the order of their ids, never of the spec's list; a pool gets leaves for its own rails only;
* a leaf has ``ceil(SU / taper)`` uplinks on its top ports; spines are chosen so that every leaf has the same number
  of links to every spine it uses (the count divides the leaf's uplinks), and the same holds from spines to cores;
* with split host ports (NDR200 on a QM9700: 128 logical ports) the uplinks still run at the switch's own rate on
  whole ports (the first logical half of a 400G port), so a leaf needs half as many and spines and cores keep 64
  ports; host ports end at a cage boundary (a twin-port cage takes straight cables or splitters, not both);
* two tiers while a plane has at most ``k`` leaves (k^2/2 endpoints when non-blocking), else three tiers made of
  pods of ``k/2`` leaves, each pod with its own spines, and core groups joining spine ``j`` of every pod;
* when one subnet would pass the unicast LID limit, every rail becomes its own subnet with its own spines and cores.

Non-compute hosts (login, controllers, subnet managers) take the free node slots of the last SU from the top (never
ports beyond the SU's slots, so their leaf keeps the spec's taper), and spill into service leaves when those run out.
``headroom`` says how far the last compute pool grows before any existing cable moves. A ``fat-tree`` fabric (a
storage fabric) fills leaves port by port.

Everything is kept in flat tuples and ``array``s of ints: the 100,000-GPU example has ~300,000 cables.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass, replace
from functools import cached_property
from math import ceil

from gpucloud import catalog
from gpucloud.plan.hosts import PoolPlan
from gpucloud.spec.model import Fabric, Spec

LID_LIMIT = 49151  # unicast LIDs 0x0001-0xbfff
LID_WARN = 0.8
STORAGE_PKEY = 0x7FFD  # the storage partition; tenant pkeys must not use it (checks/fabric.py)
SHARED_PKEY = 0x7FFE  # compute ports that no tenant's partition key claims (partition_keys below)
DEFAULT_PKEY = 0x7FFF
# P_Key table entries per HCA port: PartitionCap of ConnectX-4 and later adapters (docs/fabric.md, "Partitions")
PKEY_TABLE_SIZE = 128
TIER_NAMES = ("node", "leaf", "spine", "core")
CABLE_TIERS = ("node_leaf", "leaf_spine", "spine_core")
FABRIC_PREFIX = {"compute": "c", "storage": "s"}
FABRIC_ID = {"compute": 0, "storage": 1}
SWITCHES_PER_RACK = 16  # spine and core racks: what the fibre of one rack's patch panels can reasonably take


@dataclass(frozen=True, slots=True)
class Switch:
    name: str
    tier: int  # 1 leaf, 2 spine, 3 core
    subnet: int
    group: int  # leaf: SU (1-based, 0 for a service leaf); spine: pod (1-based); core: spine position it joins
    rail: int  # leaf: its rail; -1 otherwise
    rack: str
    u: int
    guid: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One HCA port of a host on this fabric."""

    host: str
    pool: str
    hca: int  # the HCA's index on the host; the rail for a compute HCA
    service: bool  # placed in free ports rather than by SU slot
    rack: str
    guid: int  # node GUID; the port GUID is guid + 1
    leaf: int  # index into FabricPlan.switches
    port: int  # leaf port, 1-based
    dev: int  # the host's device number: mlx5_<dev> (storage HCAs come after the compute rails)

    @property
    def device(self) -> str:
        return f"mlx5_{self.dev}"

    @property
    def desc(self) -> str:
        """The node description rdma-core gives the HCA: '<hostname> <device>'."""
        return f"{self.host} mlx5_{self.dev}"


@dataclass(frozen=True)
class Subnet:
    index: int
    name: str  # "" for the only subnet, else "rail<N>"
    endpoints: int
    switches: int
    sm_hosts: tuple[str, ...]  # hosts with a port here that run the subnet manager, primary first

    @property
    def lids(self) -> int:
        return self.endpoints + self.switches


@dataclass(frozen=True)
class FabricPlan:
    name: str
    fabric: Fabric
    model: catalog.SwitchModel
    rate: str
    radix: int
    rails: int  # leaves per SU (1 for a plain fat tree)
    su_size: int
    leaf_up: int
    leaf_down: int  # leaf ports available to hosts
    tiers: int
    split: str  # "none" or "per-rail"
    sus: int  # compute SUs (leaf groups) planned
    switches: tuple[Switch, ...]
    endpoints: tuple[Endpoint, ...]
    # switch-to-switch cables as parallel arrays: lower switch index/port, upper switch index/port, upper tier
    lo: array
    lo_port: array
    hi: array
    hi_port: array
    hi_tier: array
    subnets: tuple[Subnet, ...]
    spine_ports: int  # ports used on each spine
    core_ports: int
    step: int = 1  # logical ports per full-rate port: 2 when host ports are split (NDR200 on a QM9700)
    host_cages: tuple[tuple[int, int], ...] = ()  # (ports per cage, cages) of the hosts' adapters

    def count(self, tier: int) -> int:
        return sum(1 for s in self.switches if s.tier == tier)

    def host_cables(self) -> int:
        """Cables between hosts and leaves: one per host port, or one splitter per split switch port (a splitter
        serves the two NDR200 halves of a 400G port)."""
        if self.step == 1:
            return len(self.endpoints)
        step = self.step
        return len({(e.leaf, (e.port - 1) // step) for e in self.endpoints})

    def cable_counts(self) -> dict[str, int]:
        """Physical cables per tier, as bom.csv orders them."""
        up = self.hi_tier
        return {"node_leaf": self.host_cables(), "leaf_spine": up.count(2), "spine_core": up.count(3)}

    @property
    def lid_total(self) -> int:
        return len(self.endpoints) + len(self.switches)

    def port_label(self, port: int) -> str:
        return self.labels[port]

    @cached_property
    def labels(self) -> list[str]:
        """Front-panel label of every port, index = logical port number (0 unused)."""
        return [""] + [port_label(self.model, self.rate, p) for p in range(1, self.radix + 1)]

    @cached_property
    def full_rate_labels(self) -> list[str]:
        """Labels of switch-to-switch ports, which are never split: cage/port (a full-rate port is the first of the
        two logical halves when the host ports are split)."""
        if self.step == 1:
            return self.labels
        return [lab.rsplit("/", 1)[0] if lab else lab for lab in self.labels]


def port_label(model: catalog.SwitchModel, rate: str, port: int) -> str:
    """Logical port number -> the label printed on the front panel: cage/port, or cage/port/split when split."""
    per_cage = model.ports_per_cage if rate == model.rate else model.ports_per_cage * 2
    if per_cage == 1:
        return str(port)
    cage, sub = divmod(port - 1, per_cage)
    if per_cage == model.ports_per_cage:
        return f"{cage + 1}/{sub + 1}"
    half, split = divmod(sub, 2)
    return f"{cage + 1}/{half + 1}/{split + 1}"


def device_offset(model: catalog.ServerModel, fabric_name: str) -> int:
    """First mlx5 device number of the fabric's HCAs on a host: compute rails first, then storage HCAs."""
    return 0 if fabric_name == "compute" else model.rails


# GUIDs: 0x02 (locally administered) | fabric | class in the top 16 bits; the rest encodes what the device is, so a
# GUID never depends on enumeration order. Real GUIDs replace these after discovery.
def _guid(fabric_id: int, cls: int, value: int) -> int:
    return (0x02 << 56) | (fabric_id << 52) | (cls << 48) | value


def hca_guid(fabric_id: int, pool_id: int, index: int, hca: int) -> int:
    return _guid(fabric_id, 1, (pool_id << 32) | (index << 8) | (hca << 1))


def switch_guid(fabric_id: int, tier: int, name: str) -> int:
    """From the switch's name, so adding switches elsewhere never renumbers it."""
    return _guid(fabric_id, 1 + tier, int.from_bytes(hashlib.blake2b(name.encode(), digest_size=6).digest(), "big"))


def divisor_at_least(n: int, low: int) -> int:
    """Smallest divisor of n that is >= low (n itself at worst)."""
    for d in range(max(1, low), n + 1):
        if n % d == 0:
            return d
    return n


def host_hcas(model: catalog.ServerModel, fabric_name: str) -> int:
    return model.rails if fabric_name == "compute" else len(model.storage_hcas)


def attached_pools(spec: Spec, pools: tuple[PoolPlan, ...], fabric_name: str) -> list[PoolPlan]:
    """Pools with ports on the fabric: compute pools attached to it, or every pool with storage HCAs. Ordered by pool
    id (then name), never by where a pool sits in the spec, so that reordering the spec's pools changes nothing."""
    out = []
    for pp in pools:
        if fabric_name == "compute":
            if pp.pool.fabric == "compute" and pp.model.rails:
                out.append(pp)
        elif pp.model.storage_hcas:
            out.append(pp)
    return sorted(out, key=lambda pp: (pp.pool.id, pp.pool.name))


def positioned(pp: PoolPlan, fabric_name: str) -> bool:
    """Pools placed slot by slot; the others (service hosts) take free ports."""
    if fabric_name == "compute":
        return "compute" in pp.pool.roles
    return True


def pool_rate(pp: PoolPlan, fabric_name: str) -> str:
    hcas = pp.model.compute_hcas if fabric_name == "compute" else pp.model.storage_hcas
    return hcas[0].rate


def fabric_rate(fabric: Fabric, pools: list[PoolPlan], fabric_name: str) -> str:
    """The spec's rate, else the fastest adapter of the pools placed slot by slot (whatever their order; pools with
    other rates are refused by the fabric-mixed-rate check), else the switch's own rate."""
    if fabric.rate:
        return fabric.rate
    rates = {pool_rate(pp, fabric_name) for pp in pools if positioned(pp, fabric_name)}
    if rates:
        return max(rates, key=lambda r: (catalog.LINK_RATES_GBPS[r], r))
    return catalog.switch(fabric.switch).rate


def split_factor(model: catalog.SwitchModel, rate: str) -> int:
    """Logical ports per physical port at ``rate``: 2 when the switch's ports are split (NDR200 on a QM9700), else 1.
    Switch-to-switch links always run at the switch's own rate on whole ports; only host ports are split."""
    k = model.radix(rate)
    return max(1, k // model.ports) if rate != model.rate and k else 1


@dataclass
class _Builder:
    fabric_id: int
    prefix: str
    switches: list
    lo: array
    lo_port: array
    hi: array
    hi_port: array
    hi_tier: array

    def add(self, name: str, tier: int, subnet: int, group: int, rail: int, rack: str, u: int) -> int:
        seq = len(self.switches)
        self.switches.append(Switch(name, tier, subnet, group, rail, rack, u, switch_guid(self.fabric_id, tier, name)))
        return seq



def _rack_of(prefix: str, what: str, n: int) -> tuple[str, int]:
    rack, slot = divmod(n, SWITCHES_PER_RACK)
    return f"{prefix}-{what}{rack + 1:02}", 1 + slot * 2


def _tree(b: _Builder, leaves: list[int], subnet: int, tag: str, k: int, up: int, down: int, tiers: int,
          pod_align: int, step: int = 1) -> tuple[int, int]:
    """Spines (and cores) over ``leaves``; returns the ports used per spine and per core.

    ``k`` is the radix for switch-to-switch links (whole ports at the switch's own rate) and ``step`` the logical
    ports each of them takes: 2 when the fabric's host ports are split, since a full-rate port is the first of its
    two logical halves. Leaf uplinks sit on the top ports, above the ``down`` host ports."""
    n = len(leaves)
    if n == 0:
        return 0, 0
    up_ports = [down + 1 + j * step for j in range(up)]
    if tiers == 2:
        spines = divisor_at_least(up, ceil(n * up / k))
        m = up // spines
        ids = []
        for s in range(spines):
            rack, u = _rack_of(b.prefix + tag, "sp", s)
            ids.append(b.add(f"{b.prefix}-spine{tag}-{s + 1:03}", 2, subnet, 1, -1, rack, u))
        lo, lo_port, hi, hi_port = b.lo.extend, b.lo_port.extend, b.hi.extend, b.hi_port.extend
        targets = [ids[j % spines] for j in range(up)]
        for li, leaf in enumerate(leaves):
            lo([leaf] * up)
            lo_port(up_ports)
            hi(targets)
            hi_port([(li * m + j // spines) * step + 1 for j in range(up)])
        b.hi_tier.extend([2] * (n * up))
        return n * m, 0
    half = k // 2
    pod = leaves_per_pod(k, pod_align)
    pods = ceil(n / pod)
    spine_ids = []
    for p in range(pods):
        row = []
        for j in range(up):
            rack, u = _rack_of(b.prefix + tag, f"p{p + 1:02}sp", j)
            row.append(b.add(f"{b.prefix}-spine{tag}-p{p + 1:02}-{j + 1:02}", 2, subnet, p + 1, -1, rack, u))
        spine_ids.append(row)
        for li, leaf in enumerate(leaves[p * pod:(p + 1) * pod]):
            b.lo.extend([leaf] * up)
            b.lo_port.extend(up_ports)
            b.hi.extend(row)
            b.hi_port.extend([li * step + 1] * up)
            b.hi_tier.extend([2] * up)
    per_group = divisor_at_least(pod, ceil(pods * pod / k))
    m2 = pod // per_group
    seq = 0
    spine_up = [(half + t) * step + 1 for t in range(pod)]
    for j in range(up):
        cores = []
        for c in range(per_group):
            rack, u = _rack_of(b.prefix + tag, "co", seq)
            seq += 1
            cores.append(b.add(f"{b.prefix}-core{tag}-{j + 1:02}-{c + 1:02}", 3, subnet, j + 1, -1, rack, u))
        targets = [cores[t % per_group] for t in range(pod)]
        for p in range(pods):
            b.lo.extend([spine_ids[p][j]] * pod)
            b.lo_port.extend(spine_up)
            b.hi.extend(targets)
            b.hi_port.extend([(p * m2 + t // per_group) * step + 1 for t in range(pod)])
            b.hi_tier.extend([3] * pod)
    return pod * 2, pods * m2


def slg_key(group: int, rail: int, leaves: int) -> tuple[int, int]:
    """The spine-leaf group of a leaf: its rail within a block of ``leaves`` consecutive SUs (service leaves, SU 0,
    form groups of their own after every SU's)."""
    return (group - 1) // leaves if group else -1, rail


def slg_cores(groups: int, uplinks: int, k: int) -> int:
    """Cores in each core group over ``groups`` spines of ``uplinks`` uplinks each: the fewest whose count divides
    the uplinks (every spine has the same number of links to every core of its group)."""
    return divisor_at_least(uplinks, ceil(groups * uplinks / k))


def _slg_tree(b: _Builder, leaves: list[int], subnet: int, tag: str, k: int, up: int, down: int, step: int,
              slg: tuple[int, int]) -> tuple[int, int]:
    """Spine-leaf groups (DGX SuperPOD GB200 RA, "Compute Fabric"): the rail-r leaves of ``slg[0]`` consecutive SUs
    under ``slg[1]`` spines of their own, each leaf with up/spines links to each; the spines' uplinks (as many as
    their down links: non-blocking) go to core group j, which joins spine j of every group. Returns the ports used
    per spine and per core."""
    per_group, spines = slg
    groups: dict[tuple[int, int], list[int]] = {}
    for leaf in leaves:
        s = b.switches[leaf]
        groups.setdefault(slg_key(s.group, s.rail, per_group), []).append(leaf)
    order = sorted(groups, key=lambda g: (g[0] < 0, abs(g[0]), g[1]))
    m = up // spines  # links from a leaf to each spine of its group
    up_ports = [down + 1 + j * step for j in range(up)]
    half = k // 2
    spine_rows: list[list[int]] = []
    uplinks = 0
    for p, key in enumerate(order):
        members = groups[key]
        row = []
        for j in range(spines):
            rack, u = _rack_of(b.prefix + tag, f"p{p + 1:02}sp", j)
            row.append(b.add(f"{b.prefix}-spine{tag}-p{p + 1:02}-{j + 1:02}", 2, subnet, p + 1, -1, rack, u))
        spine_rows.append(row)
        targets = [row[j % spines] for j in range(up)]
        for li, leaf in enumerate(members):
            b.lo.extend([leaf] * up)
            b.lo_port.extend(up_ports)
            b.hi.extend(targets)
            b.hi_port.extend([(li * m + j // spines) * step + 1 for j in range(up)])
            b.hi_tier.extend([2] * up)
        uplinks = max(uplinks, len(members) * m)
    # Every spine gets as many uplinks as the largest group's spines have down links, so all groups stay alike.
    cores_per = slg_cores(len(order), uplinks, k)
    m2 = uplinks // cores_per
    spine_up = [(half + t) * step + 1 for t in range(uplinks)]
    seq = 0
    for j in range(spines):
        cores = []
        for c in range(cores_per):
            rack, u = _rack_of(b.prefix + tag, "co", seq)
            seq += 1
            cores.append(b.add(f"{b.prefix}-core{tag}-{j + 1:02}-{c + 1:02}", 3, subnet, j + 1, -1, rack, u))
        targets = [cores[t % cores_per] for t in range(uplinks)]
        for p in range(len(order)):
            b.lo.extend([spine_rows[p][j]] * uplinks)
            b.lo_port.extend(spine_up)
            b.hi.extend(targets)
            b.hi_port.extend([(p * m2 + t // cores_per) * step + 1 for t in range(uplinks)])
            b.hi_tier.extend([3] * uplinks)
    return uplinks * 2, len(order) * m2


def slg_upper(keys: set[tuple[int, int]], per_group_leaves: dict[tuple[int, int], int], up: int, k: int,
              slg: tuple[int, int]) -> tuple[int, int]:
    """Spines and cores of the spine-leaf groups ``keys`` (the same arithmetic as _slg_tree)."""
    if not keys:
        return 0, 0
    spines = slg[1]
    uplinks = max(per_group_leaves[g] for g in keys) * (up // spines)
    return len(keys) * spines, spines * slg_cores(len(keys), uplinks, k)


@dataclass(frozen=True)
class Shape:
    """The fabric's dimensions from counts alone (no cables): what checks need, and what plan_fabric builds."""

    name: str
    fabric: Fabric
    model: catalog.SwitchModel
    rate: str
    radix: int  # logical ports of a switch at the fabric's rate (128 for a QM9700 split to NDR200)
    rail_opt: bool
    rails: int
    su: int  # host slots per leaf: the SU's node slots (rail-optimized), a leaf's host ports (plain fat tree)
    up: int  # uplinks per leaf, at the switch's own rate
    down: int  # logical ports below the uplinks' cages, where hosts may go
    sus: int
    svc_ports: int
    svc_leaves: int
    endpoints: int
    split: str
    planes: tuple[int, ...]  # leaves per plane (subnet)
    tiers: int
    pod: int  # leaves per pod (three tiers)
    spines: int
    cores: int
    step: int = 1  # logical ports per full-rate port (2 when host ports are split)
    pool_sus: tuple[tuple[str, int, int], ...] = ()  # per positioned pool: (name, SUs, leaves per SU)
    svc_in_su: int = 0  # service HCA ports on the free slots of the last SU; the rest are on service leaves
    uppers: tuple[tuple[int, int], ...] = ()  # per plane: (spines, cores)

    @property
    def leaves(self) -> int:
        return sum(self.planes)

    @property
    def switch_radix(self) -> int:
        """Full-rate ports of a switch: the radix of the spine and core layers."""
        return self.radix // self.step

    def lids_per_subnet(self) -> int:
        """The largest subnet's unicast LIDs (HCA ports shared evenly between per-rail subnets)."""
        n = len(self.planes)
        return ceil(self.endpoints / n) + ceil((self.leaves + self.spines + self.cores) / n)

    def max_leaves(self) -> int:
        """Leaves one plane can hold: k with two tiers, k pods of ``pod`` leaves with three (k at full rate)."""
        k = self.switch_radix
        return k if self.tiers == 2 else k * self.pod


def leaves_per_pod(k: int, align: int) -> int:
    """Leaves per pod of a three-tier tree of radix-``k`` switches: k/2, rounded down to a multiple of ``align`` (the
    rails that share one plane, so a pod holds whole groups of rail leaves) unless ``align`` is 1 or exceeds k/2."""
    half = k // 2
    return half if align <= 1 or align > half else half // align * align


def _upper(n: int, up: int, k: int, tiers: int, pod: int) -> tuple[int, int]:
    """Spines and cores over n leaves of one plane (the same arithmetic as _tree)."""
    if n == 0:
        return 0, 0
    if tiers == 2:
        return divisor_at_least(up, ceil(n * up / k)), 0
    pods = ceil(n / pod)
    return pods * up, up * divisor_at_least(pod, ceil(pods * pod / k))


def leaf_ports(model: catalog.SwitchModel, rate: str, rail_opt: bool, su: int,
               oversubscription: tuple[int, int]) -> tuple[int, int, int, int]:
    """(radix, step, uplinks, host ports) of a leaf. Uplinks run at the switch's own rate on whole ports, so a leaf
    of NDR200 host ports needs half as many of them; host ports end at a cage boundary, because a twin-port cage
    takes one transceiver: two straight cables or two splitters, never one of each."""
    k = model.radix(rate) or model.ports
    step = split_factor(model, rate)
    per_cage = model.ports_per_cage * step
    taper = max(1, oversubscription[0] // max(1, oversubscription[1]))
    if rail_opt:
        up = ceil(su / (taper * step))
    else:
        # Uplinks rounded down to an even count, so that a small spine count divides them.
        up = max(1, (k // step) // (taper + 1) // 2 * 2)
    down = max(1, k - ceil(up * step / per_cage) * per_cage)
    return k, step, up, down


def shape(spec: Spec, name: str, pools: tuple[PoolPlan, ...] | None = None) -> Shape | None:
    """None when the fabric names a switch or a pool names a model the catalog lacks (the catalog checks say so)."""
    fabric = spec.fabrics[name]
    try:
        model = catalog.switch(fabric.switch)
    except KeyError:
        return None
    if pools is None:
        if any(p.hardware is None for p in spec.pools):
            return None
        pools = tuple(PoolPlan(p, p.hardware, ()) for p in spec.pools if p.hardware is not None)
    attached = attached_pools(spec, pools, name)
    rate = fabric_rate(fabric, attached, name)
    rail_opt = fabric.topology == "rail-optimized-fat-tree"
    pos = [pp for pp in attached if positioned(pp, name)]
    rails = max((host_hcas(pp.model, name) for pp in pos), default=1) if rail_opt else 1
    k, step, up, down = leaf_ports(model, rate, rail_opt, fabric.scalable_unit, fabric.oversubscription)
    su = fabric.scalable_unit if rail_opt else down
    kp = k // step
    endpoints = 0
    pool_sus = []
    last_used = last_lanes = 0
    for pp in pos:
        h = host_hcas(pp.model, name)
        endpoints += (pp.pool.count - len(pp.pool.exclude & set(pp.pool.indices))) * h
        slots = pp.pool.count if rail_opt else pp.pool.count * h
        lanes = h if rail_opt else 1
        n = ceil(slots / su)
        pool_sus.append((pp.pool.name, n, lanes))
        if n:
            last_used, last_lanes = slots - (n - 1) * su, lanes
    sus = sum(n for _, n, _ in pool_sus)
    svc = 0
    for pp in attached:
        if not positioned(pp, name):
            svc += (pp.pool.count - len(pp.pool.exclude & set(pp.pool.indices))) * host_hcas(pp.model, name)
    endpoints += svc
    # Service hosts share the free slots of the last SU (within its slots, so the leaf stays as blocking as the
    # spec says), and get leaves of their own only for what does not fit there.
    free = max(0, su - last_used) * last_lanes
    svc_in_su = min(svc, free)
    svc_leaves = ceil((svc - svc_in_su) / su)
    leaves = sum(n * lanes for _, n, lanes in pool_sus) + svc_leaves
    split = fabric.split
    if split == "auto":
        split = "per-rail" if rail_opt and rails > 1 and endpoints + leaves * 3 > LID_LIMIT else "none"
    if not rail_opt:
        split = "none"
    if split == "per-rail":
        planes = tuple(sum(n for _, n, lanes in pool_sus if lanes > r) + len(range(r, svc_leaves, rails))
                       for r in range(rails))
    else:
        planes = (leaves,)
    biggest = max(planes, default=0)
    if fabric.tiers in (2, 3):
        tiers = int(fabric.tiers)
    else:
        tiers = 2 if biggest <= kp else 3
    pod = leaves_per_pod(kp, 1 if split == "per-rail" else rails)
    uppers = tuple(_upper(n, up, kp, tiers, pod) for n in planes)
    slg = fabric.spine_leaf_groups if rail_opt else None
    if slg is not None and any(planes):
        tiers, pod = 3, slg[0]
        counts: list[dict[tuple[int, int], int]] = [{} for _ in planes]
        su_no = 0
        for _, n, lanes in pool_sus:
            for s in range(su_no + 1, su_no + n + 1):
                for r in range(lanes):
                    key = slg_key(s, r, slg[0])
                    plane = counts[r if split == "per-rail" else 0]
                    plane[key] = plane.get(key, 0) + 1
            su_no += n
        for n in range(svc_leaves):
            key = slg_key(0, n % rails, slg[0])  # service leaves take rails in turn (plan_fabric)
            plane = counts[n % rails if split == "per-rail" else 0]
            plane[key] = plane.get(key, 0) + 1
        uppers = tuple(slg_upper(set(c), c, up, kp, slg) for c in counts)
    spines = sum(sp for sp, _ in uppers)
    cores = sum(co for _, co in uppers)
    return Shape(name, fabric, model, rate, k, rail_opt, rails, su, up, down, sus, svc, svc_leaves, endpoints, split,
                 planes, tiers, pod, spines, cores, step, tuple(pool_sus), svc_in_su, uppers)


def plan_fabric(spec: Spec, pools: tuple[PoolPlan, ...], name: str) -> FabricPlan:
    sh = shape(spec, name, pools)
    assert sh is not None  # the catalog checks stop unknown models before planning
    fabric, model, rate, k = sh.fabric, sh.model, sh.rate, sh.radix
    rail_opt, rails, su, up, down, step = sh.rail_opt, sh.rails, sh.su, sh.up, sh.down, sh.step
    attached = attached_pools(spec, pools, name)
    fid = FABRIC_ID.get(name, 2)
    prefix = FABRIC_PREFIX.get(name, name[:1])
    pos_pools = [pp for pp in attached if positioned(pp, name)]
    svc_pools = [pp for pp in attached if not positioned(pp, name)]

    b = _Builder(fid, prefix, [], array("i"), array("i"), array("i"), array("i"), array("b"))
    endpoints: list[Endpoint] = []
    leaf_of: dict[tuple[int, int], int] = {}  # (su, rail) -> switch index
    leaf_order: list[int] = []

    def leaf(su_no: int, rail: int) -> int:
        got = leaf_of.get((su_no, rail))
        if got is None:
            if rail_opt:
                nm, rack = f"{prefix}-leaf-su{su_no:03}-r{rail}", f"{prefix}-su{su_no:03}"
                unit = 1 + rail * model.rack_units * 2
            else:
                # Plain fat tree: leaves fill switch racks like spines do, 16 to a rack.
                nm = f"{prefix}-leaf-{su_no:03}"
                rack, unit = _rack_of(prefix, "lf", su_no - 1)
            got = b.add(nm, 1, 0, su_no, rail if rail_opt else -1, rack, unit)
            leaf_of[(su_no, rail)] = got
            leaf_order.append(got)
        return got

    # Compute (positioned) pools: each starts on a fresh SU, slot = position. A pool with fewer HCAs than the
    # fabric has rails gets leaves for its own rails only.
    su_base = 0
    last_used = last_lanes = 0  # slots used in the last SU, and its leaves
    for pp in pos_pools:
        h = host_hcas(pp.model, name)
        off = device_offset(pp.model, name)
        pid = pp.pool.id
        if rail_opt:
            sus = ceil(pp.pool.count / su)
            for s in range(sus):
                for r in range(h):
                    leaf(su_base + s + 1, r)
            for host in pp.hosts:
                s_no, slot = divmod(host.position, su)
                for r in range(h):
                    endpoints.append(Endpoint(host.name, pp.pool.name, r, False, host.rack,
                                              hca_guid(fid, pid, host.index, r), leaf_of[(su_base + s_no + 1, r)],
                                              slot + 1, off + r))
            used, lanes = pp.pool.count - (sus - 1) * su, h
        else:
            sus = ceil(pp.pool.count * h / su)
            for s in range(sus):
                leaf(su_base + s + 1, 0)
            for host in pp.hosts:
                for r in range(h):
                    s_no, slot = divmod(host.position * h + r, su)
                    endpoints.append(Endpoint(host.name, pp.pool.name, r, False, host.rack,
                                              hca_guid(fid, pid, host.index, r), leaf_of[(su_base + s_no + 1, 0)],
                                              slot + 1, off + r))
            used, lanes = pp.pool.count * h - (sus - 1) * su, 1
        if sus:
            last_used, last_lanes = used, lanes
        su_base += sus
    total_sus = su_base

    # Service hosts: free slots of the last SU from its top slot down, rail by rail, then leaves of their own. The
    # compute pool's headroom stops below them, so growing within it never moves them.
    svc = [(host, pp, r) for pp in svc_pools for host in pp.hosts for r in range(host_hcas(pp.model, name))]
    free: list[tuple[int, int]] = []
    if total_sus and svc:
        for slot in range(su - 1, last_used - 1, -1):
            for r in range(last_lanes):
                free.append((leaf_of[(total_sus, r)], slot + 1))
                if len(free) >= len(svc):
                    break
            if len(free) >= len(svc):
                break
    for i, (host, pp, r) in enumerate(svc):
        if i < len(free):
            sw, port = free[i]
        else:
            j = i - len(free)
            n, port0 = divmod(j, su)
            key = (-(n + 1), 0)
            svc_leaf = leaf_of.get(key)
            if svc_leaf is None:
                rail = n % rails if rail_opt else -1
                svc_leaf = b.add(f"{prefix}-leaf-svc{n + 1:02}", 1, 0, 0, rail, f"{prefix}-svc", 1 + n * 2)
                leaf_of[key] = svc_leaf
                leaf_order.append(svc_leaf)
            sw = svc_leaf
            port = port0 + 1
        endpoints.append(Endpoint(host.name, pp.pool.name, r, True, host.rack,
                                  hca_guid(fid, pp.pool.id, host.index, r), sw, port,
                                  device_offset(pp.model, name) + r))

    # Subnets: one, or one per rail when the LIDs of one would not fit (or when asked).
    split = sh.split
    planes: list[list[int]] = []
    if split == "per-rail":
        for r in range(rails):
            planes.append([i for i in leaf_order if b.switches[i].rail == r])
    else:
        planes.append(list(leaf_order))
    # Leaves were created with subnet 0; fix them up for the per-rail split.
    if split == "per-rail":
        for r, plane in enumerate(planes):
            for i in plane:
                s = b.switches[i]
                b.switches[i] = Switch(s.name, s.tier, r, s.group, s.rail, s.rack, s.u, s.guid)
    tiers = sh.tiers
    spine_ports = core_ports = 0
    for si, plane in enumerate(planes):
        tag = f"-r{si}" if split == "per-rail" else ""
        if fabric.spine_leaf_groups is not None and rail_opt:
            sp, cp = _slg_tree(b, plane, si, tag, sh.switch_radix, up, down, step, fabric.spine_leaf_groups)
        else:
            sp, cp = _tree(b, plane, si, tag, sh.switch_radix, up, down, tiers, 1 if split == "per-rail" else rails,
                           step)
        spine_ports, core_ports = max(spine_ports, sp), max(core_ports, cp)

    switches = tuple(b.switches)
    subnet_of_switch = [s.subnet for s in switches]
    ep_count = [0] * len(planes)
    for e in endpoints:
        ep_count[subnet_of_switch[e.leaf]] += 1
    sw_count = [0] * len(planes)
    for s in switches:
        sw_count[s.subnet] += 1
    sm_hosts = _sm_hosts(spec, fabric, endpoints, subnet_of_switch, len(planes))
    subnets = tuple(Subnet(i, f"rail{i}" if split == "per-rail" else "", ep_count[i], sw_count[i], sm_hosts[i])
                    for i in range(len(planes)))
    return FabricPlan(
        name=name, fabric=fabric, model=model, rate=rate, radix=k, rails=rails, su_size=su, leaf_up=up,
        leaf_down=down, tiers=tiers, split=split, sus=total_sus, switches=switches, endpoints=tuple(endpoints),
        lo=b.lo, lo_port=b.lo_port, hi=b.hi, hi_port=b.hi_port, hi_tier=b.hi_tier, subnets=subnets,
        spine_ports=spine_ports, core_ports=core_ports, step=step, host_cages=_host_cages(pos_pools + svc_pools, name),
    )


def _host_cages(pools: list[PoolPlan], fabric_name: str) -> tuple[tuple[int, int], ...]:
    """(ports per cage, cages) over the hosts' adapters on this fabric: a DGX H100 carries its eight compute ports in
    four twin-port OSFP cages, so it takes four transceivers, not eight (catalog.HOST_PORTS_PER_CAGE)."""
    cages: dict[int, int] = {}
    for pp in pools:
        h = host_hcas(pp.model, fabric_name)
        per = catalog.host_ports_per_cage(pp.model.name, fabric_name)
        cages[per] = cages.get(per, 0) + len(pp.hosts) * ceil(h / per)
    return tuple(sorted((per, n) for per, n in cages.items() if n))


def sm_pool_names(spec: Spec, fabric: Fabric) -> list[str]:
    if fabric.subnet_manager.pool:
        return [fabric.subnet_manager.pool]
    return [p.name for p in spec.pools if "subnet-manager" in p.roles]


def _sm_hosts(spec: Spec, fabric: Fabric, endpoints: list[Endpoint], subnet_of_switch: list[int],
              planes: int) -> list[tuple[str, ...]]:
    """Per subnet, the hosts that run OpenSM there (those of the subnet-manager pools with a port in it)."""
    wanted = set(sm_pool_names(spec, fabric))
    out: list[list[str]] = [[] for _ in range(planes)]
    if fabric.subnet_manager.kind != "opensm":
        return [() for _ in range(planes)]
    for e in endpoints:
        if e.pool in wanted:
            lst = out[subnet_of_switch[e.leaf]]
            if e.host not in lst:
                lst.append(e.host)
    return [tuple(x) for x in out]


def plan_fabrics(spec: Spec, pools: tuple[PoolPlan, ...]) -> tuple[FabricPlan, ...]:
    return tuple(plan_fabric(spec, pools, name) for name in sorted(spec.fabrics)
                 if spec.fabrics[name].kind == "infiniband")


def port_rate(plan, name: str | None) -> str | None:
    """The switch port rate of fabric ``name``: the planned one (plan.fabrics) first, then the spec's; None when the
    spec has no such InfiniBand fabric or names no rate."""
    for fp in getattr(plan, "fabrics", None) or ():
        rate = getattr(fp, "rate", None)
        if getattr(fp, "name", None) == name and isinstance(rate, str) and rate in catalog.LINK_SHAPE:
            return rate
    fabric = plan.spec.fabrics.get(name)
    return fabric.rate if fabric is not None and fabric.kind == "infiniband" else None


@dataclass(frozen=True, slots=True)
class Headroom:
    """How far the last compute pool can grow without moving an existing cable, and what the next node beyond that
    does to the fabric (the cliff)."""
    fabric: str
    pool: str
    nodes: int  # more nodes that fit without moving any existing cable
    su_nodes: int  # nodes in one scalable unit (plain fat trees: one leaf's down ports over the node's HCAs)
    changes: tuple[str, ...] = ()  # what the next node changes: new SU, service hosts, spines, tiers
    added: int = 0  # switches the next node adds
    moved: int = 0  # existing links (host port or switch port pairs) the next node moves
    links: int = 0  # existing links


def _stable_key(sh: Shape, grown: str, free_to_grow: bool) -> tuple:
    """What existing cables depend on: tiers, subnets, spines (two tiers) or core groups (three), every pool's SUs,
    and where the service hosts sit. The last pool may add SUs when nothing sits behind it (no service hosts)."""
    sus = tuple((nm, None if (nm == grown and free_to_grow) else n, lanes) for nm, n, lanes in sh.pool_sus)
    upper = tuple(sp if sh.tiers == 2 else co for sp, co in sh.uppers)
    fits = max(sh.planes, default=0) <= sh.max_leaves()
    return sh.tiers, sh.split, len(sh.planes), upper, sus, sh.svc_in_su, sh.svc_leaves, fits


def headroom(spec: Spec, name: str, pools: tuple[PoolPlan, ...], cliff: bool = True,
             planned: FabricPlan | None = None) -> Headroom | None:
    """None unless the fabric has a pool placed slot by slot.

    ``nodes`` is the most the pool can take with every existing cable staying where it is: the free slots of its
    last SU below the service hosts, or more SUs while the spine count holds (a leaf's links to the spines are
    balanced, so a new spine count moves them all; with three tiers, more pods while the cores per spine group hold).
    Found with ``shape``, the planner's own arithmetic (one pass over
    the pools per size): doubling, then bisecting. With ``cliff`` the next node is planned too, to say what it adds
    and how many existing links it moves.
    """
    sh = shape(spec, name, pools)
    if sh is None or not sh.model.radix(sh.rate) or sh.su > sh.down:
        return None
    pos = [pp for pp in attached_pools(spec, pools, name) if positioned(pp, name)]
    if not pos:
        return None
    # The pool that grows: the last compute pool (on a storage fabric every pool is placed slot by slot).
    last = next((pp for pp in reversed(pos) if "compute" in pp.pool.roles), pos[-1])
    free_to_grow = last is pos[-1] and sh.svc_ports == 0
    base = _stable_key(sh, last.pool.name, free_to_grow)

    def grown(extra: int) -> tuple[PoolPlan, ...]:
        pp = PoolPlan(replace(last.pool, count=last.pool.count + extra), last.model, ())
        return tuple(pp if p is last else p for p in pools)

    def fits(extra: int) -> bool:
        # shape() is None only for an unknown switch or model, and sh above says both are known
        bigger = shape(spec, name, grown(extra))
        return bigger is not None and _stable_key(bigger, last.pool.name, free_to_grow) == base

    lo, hi = 0, 1
    while fits(hi) and hi < 1 << 24:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    su_nodes = sh.su if sh.rail_opt else max(1, sh.su // max(1, host_hcas(last.model, name)))
    room = Headroom(name, last.pool.name, lo, su_nodes)
    if not cliff:
        return room
    nxt = shape(spec, name, grown(lo + 1))
    if nxt is None:  # not reached: the same switch and models as sh
        return room
    changes = []
    if nxt.tiers != sh.tiers:
        changes.append(f"tiers {sh.tiers} -> {nxt.tiers}")
    if nxt.spines != sh.spines and nxt.tiers == sh.tiers:
        changes.append(f"spines {sh.spines} -> {nxt.spines}")
    if nxt.cores != sh.cores and nxt.tiers == sh.tiers:
        changes.append(f"cores {sh.cores} -> {nxt.cores}")
    if max(nxt.planes, default=0) > nxt.max_leaves():
        changes.append("more leaves than the switches connect (fabric-capacity)")
    if nxt.sus != sh.sus:
        changes.append("new scalable unit")
    if (nxt.svc_in_su, nxt.svc_leaves) != (sh.svc_in_su, sh.svc_leaves):
        changes.append("service hosts moved" + (" to a leaf of their own" if nxt.svc_leaves > sh.svc_leaves
                                                 else ""))
    added = (nxt.leaves + nxt.spines + nxt.cores) - (sh.leaves + sh.spines + sh.cores)
    moved, links = moved_links(spec, name, pools, last.pool.name, lo + 1, planned)
    return replace(room, changes=tuple(changes), added=added, moved=moved, links=links)


def link_set(fp: FabricPlan) -> set[tuple]:
    """Every link by its two ends (device, port), independent of switch and host order (a splitter cable carries
    two links)."""
    sws = fp.switches
    out: set[tuple] = {((e.host, e.device), (sws[e.leaf].name, e.port)) for e in fp.endpoints}
    out.update(((sws[a].name, ap), (sws[b].name, bp)) for a, ap, b, bp in zip(fp.lo, fp.lo_port, fp.hi, fp.hi_port))
    return out


def _link_codes(fp: FabricPlan, ids: dict[str, int]) -> set[int]:
    """``link_set`` as ints, for counting at scale: a host link by its HCA GUID (stable under growth) and the
    switch port, a switch link by both switch ports; switch names numbered through ``ids``, shared by both plans
    (24 bits hold a switch port of 130,000 switches at radix 128)."""
    sid = [ids.setdefault(s.name, len(ids)) for s in fp.switches]
    k = fp.radix + 1
    out = {(e.guid << 40) | (sid[e.leaf] * k + e.port) for e in fp.endpoints}
    out.update(((sid[a] * k + ap) << 24 | (sid[b] * k + bp)) for a, ap, b, bp in zip(fp.lo, fp.lo_port, fp.hi,
                                                                                    fp.hi_port))
    return out


def moved_links(spec: Spec, name: str, pools: tuple[PoolPlan, ...], pool: str, extra: int,
                planned: FabricPlan | None = None) -> tuple[int, int]:
    """(existing links that growing ``pool`` by ``extra`` nodes moves or removes, existing links); ``planned`` is the
    fabric as planned from ``pools`` when the caller has it."""
    from gpucloud.plan.hosts import plan_pool

    ids: dict[str, int] = {}
    before = _link_codes(planned if planned is not None else plan_fabric(spec, pools, name), ids)
    total = len(before)
    grown = tuple(plan_pool(spec, replace(pp.pool, count=pp.pool.count + extra)) if pp.pool.name == pool else pp
                  for pp in pools)
    before -= _link_codes(plan_fabric(spec, grown, name), ids)
    return len(before), total


def summary(fp: FabricPlan) -> dict:
    """The counts a reviewer (and the DGX SuperPOD tables) compare."""
    counts = fp.cable_counts()
    leaf_ports: dict[int, int] = {}
    for e in fp.endpoints:
        leaf_ports[e.leaf] = leaf_ports.get(e.leaf, 0) + 1
    leaves = [i for i, s in enumerate(fp.switches) if s.tier == 1]
    down_used = max((leaf_ports.get(i, 0) for i in leaves), default=0)
    return {
        "leaf": fp.count(1), "spine": fp.count(2), "core": fp.count(3),
        "cables": counts,
        # per switch (the busiest of its tier) and in total per tier
        "ports_used": {"leaf_down": down_used, "leaf_up": fp.leaf_up if fp.count(2) else 0,
                       "spine": fp.spine_ports, "core": fp.core_ports},
        "ports_in_use": {"leaf": len(fp.endpoints) + counts["leaf_spine"],
                         "spine": counts["leaf_spine"] + counts["spine_core"], "core": counts["spine_core"]},
        "radix": fp.radix, "rate": fp.rate, "switch": fp.model.name, "tiers": fp.tiers,
        "rails": fp.rails, "scalable_unit": fp.su_size, "scalable_units": fp.sus,
        "endpoints": len(fp.endpoints), "split": fp.split,
    }


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """The partitions a pool's compute-fabric ports are full members of (besides Default and storage, limited)."""

    pool: str
    tenants: tuple[tuple[str, int], ...]  # (tenant, pkey) of every tenant with a pkey that can run on the pool
    shared: bool  # also a full member of SHARED_PKEY: someone without a pkey of their own runs here

    @property
    def count(self) -> int:
        """P_Key table entries a port of the pool needs: Default, storage, its tenants' keys and shared."""
        return 2 + len(self.tenants) + int(self.shared)


def tenant_reach(spec: Spec) -> dict[str, set[str]]:
    """Tenant -> the pools its jobs can run on: its dedicated pools and the pools of its Slurm partitions."""
    part_pools = {p.name: set(p.pools) for p in spec.slurm.partitions}
    out = {}
    for t in spec.tenants:
        pools = set(t.pools)
        for part in t.partitions:
            pools |= part_pools.get(part, set())
        out[t.name] = pools
    return out


def partition_keys(spec: Spec) -> dict[str, PoolKeys]:
    """Per pool attached to the compute fabric, the partition keys its ports hold as a full member.

    A tenant with a pkey makes the pools it can run on full members of its partition. A compute pool that some job
    without a pkey of its own can reach (no tenant claims it, a tenant without a pkey runs there, or it sits in a
    Slurm partition open to every account) is also a full member of the shared partition, so those jobs have a
    partition in which two nodes can talk. Per pool, never per host.
    """
    reach = tenant_reach(spec)
    owners = {p for t in spec.tenants for p in t.pools}
    listed = {part for t in spec.tenants for part in t.partitions}
    open_pools = {name for p in spec.slurm.partitions if p.name not in listed and not owners & set(p.pools)
                  for name in p.pools}
    out = {}
    for pool in spec.pools:
        if pool.fabric != "compute":
            continue
        keyed = tuple((t.name, t.pkey) for t in spec.tenants if t.pkey is not None and pool.name in reach[t.name])
        unkeyed = any(t.pkey is None and pool.name in reach[t.name] for t in spec.tenants)
        shared = "compute" in pool.roles and (not keyed or unkeyed or pool.name in open_pools)
        if keyed or shared:
            out[pool.name] = PoolKeys(pool.name, keyed, shared)
    return out
