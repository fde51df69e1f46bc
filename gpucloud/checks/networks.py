"""Checks: IP networks. Overlaps, and whether every pool's block exists and holds the pool.

Addresses are ``block(pool id) + 1 + position`` (see gpucloud.plan.hosts), so a pool fits when its block lies inside
the network and ``count`` positions fit in the block; excluded hosts keep their positions and still count.
"""

from __future__ import annotations

from gpucloud.checks import check
from gpucloud.findings import Finding
from gpucloud.plan.hosts import block_capacity, blocks_in


@check("network-overlap")
def overlapping(spec):
    """Two networks share addresses."""
    nets = sorted(spec.networks.values(), key=lambda n: (int(n.cidr.network_address), -n.cidr.prefixlen, n.name))
    # Sorted by start, a network overlaps an earlier one exactly when it starts before the furthest end seen so far.
    furthest = None
    for net in nets:
        if furthest is not None and int(net.cidr.network_address) <= int(furthest.cidr.broadcast_address):
            yield Finding("network-overlap", "error", (*net.path, "cidr"),
                          f"network {net.name} ({net.cidr}) overlaps {furthest.name} ({furthest.cidr})",
                          "give every network its own address range")
        if furthest is None or int(net.cidr.broadcast_address) > int(furthest.cidr.broadcast_address):
            furthest = net


def _ipoib_pools(spec):
    for pool in spec.pools:
        model = pool.hardware
        if model is not None and model.rails and pool.fabric == "compute":
            yield pool, model


@check("network-prefix")
def prefixes(spec):
    """pool_prefix / rail_prefix that cannot be cut out of the network."""
    for net in spec.networks.values():
        if net.name == "ipoib":
            if net.rail_prefix < net.cidr.prefixlen:
                yield Finding("network-prefix", "error", (*net.path, "rail_prefix"),
                              f"rail_prefix /{net.rail_prefix} is larger than the network {net.cidr} itself",
                              f"use a rail_prefix of at least {net.cidr.prefixlen}")
                continue
            if net.pool_prefix < net.rail_prefix:
                yield Finding("network-prefix", "error", (*net.path, "pool_prefix"),
                              f"pool_prefix /{net.pool_prefix} is larger than a rail subnet (/{net.rail_prefix})",
                              f"use a pool_prefix of at least {net.rail_prefix}")
        elif net.pool_prefix < net.cidr.prefixlen:
            yield Finding("network-prefix", "error", (*net.path, "pool_prefix"),
                          f"pool_prefix /{net.pool_prefix} is larger than the network {net.cidr} itself",
                          f"use a pool_prefix of at least {net.cidr.prefixlen}, e.g. {min(net.cidr.prefixlen + 4, 30)}")


def _fits(spec, net, pools, rail: bool):
    blocks = blocks_in(net, rail=rail)
    if blocks == 0:
        return  # reported by network-prefix
    capacity = block_capacity(net)
    where = "each rail subnet" if rail else str(net.cidr)
    for pool in pools:
        if pool.id + 1 >= blocks:
            hint = (f"{where} has {blocks - 1} pool block(s) of /{net.pool_prefix} (ids 0-{blocks - 2})"
                    if blocks > 1 else f"{where} has no room for pool blocks at /{net.pool_prefix}")
            yield Finding("network-pool-blocks", "error", (*pool.path, "id" if pool.id_explicit else "name"),
                          f"pool {pool.name} (id {pool.id}) has no address block in network {net.name}",
                          hint + "; use a longer pool_prefix or a larger network")
        elif pool.count > capacity:
            yield Finding("network-pool-capacity", "error", (*pool.path, "count"),
                          f"pool {pool.name} has {pool.count} host positions but its /{net.pool_prefix} block in "
                          f"network {net.name} holds {capacity}",
                          f"use a shorter pool_prefix on {net.name} (e.g. /{_prefix_for(pool.count)}) "
                          "before the cluster is built; it moves every address")


def _prefix_for(count: int) -> int:
    bits = (count + 2 - 1).bit_length()
    return max(32 - bits, 0)


def _all_fits(spec):
    for net in spec.networks.values():
        if net.name == "ipoib":
            yield from _fits(spec, net, [p for p, _ in _ipoib_pools(spec)], rail=True)
        else:
            yield from _fits(spec, net, spec.pools, rail=False)


@check("network-pool-blocks")
def blocks(spec):
    """A pool id beyond the number of address blocks of a network."""
    return [f for f in _all_fits(spec) if f.check == "network-pool-blocks"]


@check("network-pool-capacity")
def capacity(spec):
    """A pool with more hosts than its address block holds."""
    return [f for f in _all_fits(spec) if f.check == "network-pool-capacity"]


@check("network-ipoib-rails")
def rails(spec):
    """A node with more compute HCAs than the IPoIB network has rail subnets."""
    net = spec.networks.get("ipoib")
    if net is None or net.rail_prefix < net.cidr.prefixlen:
        return
    subnets = 1 << (net.rail_prefix - net.cidr.prefixlen)
    for pool, model in _ipoib_pools(spec):
        if model.rails > subnets:
            yield Finding("network-ipoib-rails", "error", ("networks", "ipoib", "rail_prefix"),
                          f"pool {pool.name} ({model.name}) has {model.rails} rails but {net.cidr} split at "
                          f"/{net.rail_prefix} gives {subnets} rail subnet(s)",
                          f"use rail_prefix {net.cidr.prefixlen + (model.rails - 1).bit_length()} or a larger network")
            return


@check("network-gateway")
def gateway_in_pool_block(spec):
    """A gateway that lands on a host address."""
    for net in spec.networks.values():
        if net.gateway is None or net.name == "ipoib" or net.pool_prefix < net.cidr.prefixlen:
            continue
        size = 1 << (32 - net.pool_prefix)
        offset = int(net.gateway) - int(net.cidr.network_address)
        block, within = divmod(offset, size)
        for pool in spec.pools:
            if pool.id + 1 == block and 1 <= within <= pool.count:
                yield Finding("network-gateway", "error", (*net.path, "gateway"),
                              f"gateway {net.gateway} is the address of host position {within - 1} of pool "
                              f"{pool.name}", "put gateways in block 0 (the first pool_prefix block of the network)")
