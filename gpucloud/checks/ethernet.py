"""Checks: Ethernet (RoCEv2) fabrics. Everything is computed from counts (plan.ethernet.shape)."""

from __future__ import annotations

import ipaddress
from math import ceil
from typing import Iterable

from gpucloud.catalog import ethernet as eth_catalog
from gpucloud.checks import check
from gpucloud.findings import Finding, choices_hint
from gpucloud.plan.ethernet import attached, leaf_subnet_prefix, rail_prefix, shape
from gpucloud.spec.model import Spec

IB_ONLY = ("subnet_manager", "split")


def _ethernet(spec: Spec):
    for fabric in spec.fabrics.values():
        if fabric.kind == "ethernet":
            yield fabric


@check("ethernet-switch")
def switch(spec: Spec) -> Iterable[Finding]:
    """An Ethernet fabric names an Ethernet switch from the catalog."""
    for fabric in _ethernet(spec):
        if fabric.switch not in eth_catalog.ETHERNET_SWITCHES:
            yield Finding("ethernet-switch", "error", (*fabric.path, "switch"),
                          f"unknown Ethernet switch model {fabric.switch!r}",
                          choices_hint(fabric.switch, sorted(eth_catalog.ETHERNET_SWITCHES), "Ethernet switches"))


@check("ethernet-roce")
def roce_section(spec: Spec) -> Iterable[Finding]:
    """An Ethernet fabric has its roce section (addresses, loopbacks), and an InfiniBand fabric has none."""
    for fabric in spec.fabrics.values():
        if fabric.kind == "ethernet" and fabric.roce is None:
            yield Finding("ethernet-roce", "error", fabric.path,
                          f"the {fabric.name} fabric is Ethernet but has no roce section",
                          "add roce: {cidr: <hosts' fabric network>, loopbacks: <switch loopback network>}")
        elif fabric.kind != "ethernet" and fabric.roce is not None:
            yield Finding("ethernet-roce", "error", (*fabric.path, "roce"),
                          f"the {fabric.name} fabric is {fabric.kind} but has a roce section",
                          "remove roce, or set kind: ethernet")


@check("ethernet-storage-fabric")
def storage_fabric(spec: Spec) -> Iterable[Finding]:
    """Only the compute fabric can be Ethernet so far; a storage network runs over networks.storage."""
    for fabric in _ethernet(spec):
        if fabric.name != "compute":
            yield Finding("ethernet-storage-fabric", "error", (*fabric.path, "kind"),
                          f"the {fabric.name} fabric cannot be Ethernet yet: only the compute fabric is planned as "
                          "a RoCE leaf/spine fabric",
                          "carry storage traffic on networks.storage (Lustre over tcp), or use kind: infiniband")


@check("ethernet-infiniband-field")
def infiniband_fields(spec: Spec) -> Iterable[Finding]:
    """Settings that only mean something on InfiniBand (subnet manager, LID split, IB rates)."""
    for fabric in _ethernet(spec):
        if fabric.subnet_manager.pool is not None or fabric.subnet_manager.kind != "opensm":
            yield Finding("ethernet-infiniband-field", "error", (*fabric.path, "subnet_manager"),
                          f"the {fabric.name} fabric is Ethernet: it has no subnet manager (BGP routes it)",
                          "remove subnet_manager")
        if fabric.split != "auto":
            yield Finding("ethernet-infiniband-field", "error", (*fabric.path, "split"),
                          f"the {fabric.name} fabric is Ethernet: split (InfiniBand subnets) does not apply",
                          "remove split")
        if fabric.rate is not None and fabric.rate not in eth_catalog.ETHERNET_RATES_GBPS:
            yield Finding("ethernet-infiniband-field", "error", (*fabric.path, "rate"),
                          f"{fabric.rate} is an InfiniBand rate; the {fabric.name} fabric is Ethernet",
                          "use " + ", ".join(sorted(eth_catalog.ETHERNET_RATES_GBPS)))
    for fabric in spec.fabrics.values():
        if fabric.kind != "ethernet" and fabric.rate in eth_catalog.ETHERNET_RATES_GBPS:
            yield Finding("ethernet-infiniband-field", "error", (*fabric.path, "rate"),
                          f"{fabric.rate} is an Ethernet rate; the {fabric.name} fabric is {fabric.kind}",
                          "use hdr, ndr200, ndr or xdr, or set kind: ethernet")


@check("ethernet-rate")
def rate(spec: Spec) -> Iterable[Finding]:
    """The host port rate is one the switch gives, natively or by breaking a cage out."""
    for fabric in _ethernet(spec):
        sh = shape(spec, fabric.name)
        if sh is None or sh.per_cage:
            continue
        rates = sorted({sh.model.gbps, *sh.model.breakouts})
        where = (*fabric.path, "rate") if fabric.rate else (*fabric.path, "switch")
        yield Finding("ethernet-rate", "error", where,
                      f"the {sh.model.name} switch has no {sh.host_gbps}G ports (it offers "
                      f"{', '.join(f'{r}G' for r in rates)})",
                      "set rate to one of " + ", ".join(f"{r}gbe" for r in rates
                                                        if f"{r}gbe" in eth_catalog.ETHERNET_RATES_GBPS))


@check("ethernet-scalable-unit")
def scalable_unit(spec: Spec) -> Iterable[Finding]:
    """A scalable unit fits on one leaf per rail: host cages plus uplink cages within the switch's cages."""
    for fabric in _ethernet(spec):
        sh = shape(spec, fabric.name)
        if sh is None or not sh.per_cage or sh.down_cages + sh.up_cages <= sh.model.cages:
            continue
        best = max((n for n in range(1, sh.model.cages * sh.per_cage + 1)
                    if ceil(n / sh.per_cage) + ceil(ceil(n / sh.per_cage) * sh.per_cage * sh.host_gbps /
                                                    (sh.model.gbps * fabric.oversubscription[0]))
                    <= sh.model.cages), default=0)
        yield Finding("ethernet-scalable-unit", "error", (*fabric.path, "scalable_unit"),
                      f"a scalable unit of {sh.su} nodes needs {sh.down_cages} host cages and {sh.up_cages} uplink "
                      f"cages on each leaf, but the {sh.model.name} has {sh.model.cages}",
                      f"set scalable_unit to {best} or less, or raise the oversubscription")


@check("ethernet-spines")
def spines(spec: Spec) -> Iterable[Finding]:
    """The leaves' uplinks fit a single spine tier (two tiers; no third tier is planned for Ethernet yet)."""
    for fabric in _ethernet(spec):
        sh = shape(spec, fabric.name)
        if sh is None or not sh.per_cage or sh.down_cages + sh.up_cages > sh.model.cages or not sh.leaves:
            continue
        if sh.spines == 0:
            yield Finding("ethernet-spines", "error", (*fabric.path, "scalable_unit"),
                          f"{sh.leaves} leaves with {sh.up_cages} uplinks each need more than one tier of "
                          f"{sh.model.name} spines ({sh.model.cages} ports each, every leaf on every spine)",
                          "raise the oversubscription, or split the nodes over more fabrics; three-tier Ethernet "
                          "fabrics are not planned yet")


@check("ethernet-addresses")
def addresses(spec: Spec) -> Iterable[Finding]:
    """Every rail's block holds a subnet per SU, the rails fit the network, and the loopbacks hold every switch."""
    for fabric in _ethernet(spec):
        roce = fabric.roce
        sh = shape(spec, fabric.name)
        if roce is None or sh is None:
            continue
        path = (*fabric.path, "roce")
        try:
            net = ipaddress.IPv4Network(roce.cidr)
        except ValueError as exc:
            yield Finding("ethernet-addresses", "error", (*path, "cidr"), f"{roce.cidr}: {exc}",
                          "give the network address with host bits zero, e.g. 10.64.0.0/13")
            continue
        try:
            lo = ipaddress.IPv4Network(roce.loopbacks)
        except ValueError as exc:
            yield Finding("ethernet-addresses", "error", (*path, "loopbacks"), f"{roce.loopbacks}: {exc}",
                          "give the network address with host bits zero, e.g. 10.63.255.0/24")
            continue
        rp = rail_prefix(roce)
        if rp < net.prefixlen or sh.rails > 1 << (rp - net.prefixlen):
            yield Finding("ethernet-addresses", "error", (*path, "rail_prefix"),
                          f"{roce.cidr} holds {1 << max(0, rp - net.prefixlen)} rail block(s) of /{rp} but the "
                          f"fabric has {sh.rails} rails",
                          f"widen cidr to /{rp - (sh.rails - 1).bit_length()} or lengthen rail_prefix")
        lp = leaf_subnet_prefix(sh.su)
        if lp < rp or sh.sus > 1 << (lp - rp):
            yield Finding("ethernet-addresses", "error", (*path, "rail_prefix"),
                          f"a /{rp} rail block holds {1 << max(0, lp - rp)} leaf subnet(s) of /{lp} (scalable units "
                          f"of {sh.su} nodes) but the fabric has {sh.sus} scalable units",
                          f"set rail_prefix to {lp - (sh.sus - 1).bit_length()} or less (and widen cidr to match)")
        switches = sh.leaves + sh.spines
        if switches + 2 > lo.num_addresses:
            yield Finding("ethernet-addresses", "error", (*path, "loopbacks"),
                          f"{roce.loopbacks} has {max(0, lo.num_addresses - 2)} loopback addresses for "
                          f"{switches} switches",
                          f"widen loopbacks to /{32 - (switches + 2).bit_length()}")
        for name, other in spec.networks.items():
            for mine, key in ((net, "cidr"), (lo, "loopbacks")):
                if mine.overlaps(other.cidr):
                    yield Finding("ethernet-addresses", "error", (*path, key),
                                  f"{mine} overlaps networks.{name} ({other.cidr})",
                                  "give the fabric's addresses a range of their own")
        if net.overlaps(lo):
            yield Finding("ethernet-addresses", "error", (*path, "loopbacks"),
                          f"loopbacks {lo} overlap the hosts' fabric network {net}",
                          "take the loopbacks from outside cidr")


@check("ethernet-qos")
def qos(spec: Spec) -> Iterable[Finding]:
    """Lossless RoCE and the congestion notifications travel in different classes; ECN marks before the queue ends."""
    for fabric in _ethernet(spec):
        roce = fabric.roce
        if roce is None:
            continue
        path = (*fabric.path, "roce")
        if roce.cnp_priority == roce.lossless_priority:
            yield Finding("ethernet-qos", "error", (*path, "cnp_priority"),
                          f"CNPs and RoCE data share priority {roce.lossless_priority}: a paused lossless queue "
                          "would hold back the notifications that end the congestion",
                          "give CNPs their own strict priority (6 is usual)")
        if roce.cnp_dscp == roce.dscp:
            yield Finding("ethernet-qos", "error", (*path, "cnp_dscp"),
                          f"CNPs and RoCE data share DSCP {roce.dscp}, so the switch cannot tell them apart",
                          "use DSCP 48 for CNPs")
        if roce.ecn_min_bytes >= roce.ecn_max_bytes:
            yield Finding("ethernet-qos", "error", (*path, "ecn"),
                          f"ECN marking starts at {roce.ecn_min_bytes} bytes but ends at {roce.ecn_max_bytes}",
                          "set min_bytes below max_bytes")


@check("ethernet-rails")
def rails(spec: Spec) -> Iterable[Finding]:
    """Pools on an Ethernet fabric have as many NICs as the fabric has rails (leaves are planned per rail)."""
    for fabric in _ethernet(spec):
        sh = shape(spec, fabric.name)
        if sh is None:
            continue
        for pool in attached(spec, fabric.name):
            if pool.hardware is not None and pool.hardware.rails != sh.rails:
                yield Finding("ethernet-rails", "warning", (*pool.path, "model"),
                              f"pool {pool.name} has {pool.hardware.rails} fabric NIC(s) but the {fabric.name} "
                              f"fabric has {sh.rails} rails; its scalable units get leaves for its own rails only",
                              "put pools with different NIC counts on separate fabrics, or use the same server model")


@check("ethernet-lustre")
def lustre(spec: Spec) -> Iterable[Finding]:
    """Lustre reached over an Ethernet compute fabric: LNet would be planned on IPoIB interfaces it does not have."""
    from gpucloud.plan.storage import lustre_via

    for fs in spec.storage:
        if fs.kind != "lustre":
            continue
        via = lustre_via(spec, fs)
        fabric = spec.fabrics.get(via)
        if fabric is not None and fabric.kind == "ethernet":
            yield Finding("ethernet-lustre", "error", fs.path,
                          f"Lustre {fs.name!r} would be reached over the Ethernet {via} fabric; LNet over RoCE "
                          "(o2ib on the rail NICs) or tcp is not planned yet",
                          "leave the filesystem out of the spec for now, or reach it through an InfiniBand "
                          "storage fabric (lnet: storage)")
