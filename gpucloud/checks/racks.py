"""Checks: rack placement. Two machines in the same rack units, and hosts above the top of a standard rack.

A pool fills racks ``first .. first + ceil(count / nodes_per_rack) - 1`` with the same slot layout in every rack
(the last one maybe partly), so each pool contributes one unit interval per rack and the check is linear in racks.
"""

from __future__ import annotations

from gpucloud import catalog
from gpucloud.checks import check
from gpucloud.findings import Finding

RACK_UNITS = 48


def _layouts(spec):
    """(pool, rack name, lowest unit, highest unit) for every rack a pool uses."""
    for pool in spec.pools:
        model = catalog.SERVERS.get(pool.model)
        if model is None:
            continue
        per = pool.rack.nodes_per_rack
        racks, rest = divmod(pool.count, per)
        for r in range(racks + (1 if rest else 0)):
            in_rack = per if r < racks else rest
            lo = pool.rack.first_u
            hi = lo + in_rack * model.rack_units - 1
            yield pool, pool.rack.name.format(rack=pool.rack.first + r), lo, hi


@check("rack-collision")
def collisions(spec):
    """Two pools that put machines in the same units of the same rack."""
    order = {id(p): i for i, p in enumerate(spec.pools)}
    by_rack: dict[str, list] = {}
    for pool, rack, lo, hi in _layouts(spec):
        by_rack.setdefault(rack, []).append((lo, hi, order[id(pool)], pool))
    reported = set()
    for rack in sorted(by_rack):
        furthest = None
        for lo, hi, i, pool in sorted(by_rack[rack], key=lambda s: s[:3]):
            if furthest is not None and lo <= furthest[1] and furthest[2] != i:
                # Report once per pair of pools, at the pool listed later (usually the one just added).
                first, later = sorted((furthest, (lo, hi, i, pool)), key=lambda s: s[2])
                if (first[2], later[2]) not in reported:
                    reported.add((first[2], later[2]))
                    # A warning: the plan is still consistent, but the racks cannot be built as written.
                    yield Finding("rack-collision", "warning", (*later[3].path, "rack"),
                                  f"pools {first[3].name} and {later[3].name} both use units "
                                  f"{max(lo, furthest[0])}-{min(hi, furthest[1])} of rack {rack}",
                                  "move one pool to other racks ('rack: {first: ...}' or 'name') or other units "
                                  "('first_u')")
            if furthest is None or hi > furthest[1]:
                furthest = (lo, hi, i, pool)


@check("rack-height")
def height(spec):
    """Hosts above the top unit of a 48U rack."""
    for pool in spec.pools:
        model = catalog.SERVERS.get(pool.model)
        if model is None:
            continue
        in_rack = min(pool.rack.nodes_per_rack, pool.count)
        top = pool.rack.first_u + in_rack * model.rack_units - 1
        if top > RACK_UNITS:
            fit = max((RACK_UNITS - pool.rack.first_u + 1) // model.rack_units, 0)
            yield Finding("rack-height", "warning", (*pool.path, "rack"),
                          f"{in_rack} x {model.rack_units}U from unit {pool.rack.first_u} reach unit {top}; "
                          f"a standard rack has {RACK_UNITS}",
                          f"at most {fit} per rack from unit {pool.rack.first_u}: lower nodes_per_rack or first_u")
