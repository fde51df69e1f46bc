"""Checks: rack placement. Two machines in the same rack units, and hosts above the top of a standard rack; both
are errors, since the racks could not be built as planned.

A pool fills racks ``first .. first + ceil(count / nodes_per_rack) - 1`` with the same slot layout in every rack but
the last (maybe partly filled), so two pools are compared by their rack-number ranges, not rack by rack.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpucloud.checks import check
from gpucloud.checks.patterns import may_share, parse
from gpucloud.findings import Finding
from gpucloud.spec.model import Rack

RACK_UNITS = 48


@dataclass(frozen=True)
class _Layout:
    pool: object
    order: int
    pattern: str
    first: int
    last: int
    full: tuple[int, int]  # units of a full rack
    tail: tuple[int, int]  # units of the last rack

    def units(self, number: int) -> tuple[int, int]:
        return self.tail if number == self.last else self.full

    def name(self, number: int) -> str:
        return self.pattern.format(rack=number)


def _layouts(spec) -> list[_Layout]:
    out = []
    for order, pool in enumerate(spec.pools):
        model = pool.hardware
        if model is None:
            continue
        per, h, lo = pool.rack.nodes_per_rack, model.rack_units, pool.rack.first_u
        racks, rest = divmod(pool.count, per)
        last = pool.rack.first + racks - (0 if rest else 1)
        tail = rest or per
        out.append(_Layout(pool, order, pool.rack.name, pool.rack.first, last, (lo, lo + min(per, pool.count) * h - 1),
                           (lo, lo + tail * h - 1)))
    return out


def _clash(a: _Layout, n: int, b: _Layout, m: int) -> tuple[int, int] | None:
    (alo, ahi), (blo, bhi) = a.units(n), b.units(m)
    lo, hi = max(alo, blo), min(ahi, bhi)
    return (lo, hi) if lo <= hi else None


def _same_pattern(layouts: list[_Layout]):
    """Shared rack numbers are a range; only its ends, the pools' last racks and one rack in between can differ."""
    layouts = sorted(layouts, key=lambda x: (x.first, x.order))
    for i, a in enumerate(layouts):
        for b in layouts[i + 1:]:
            if b.first > a.last:
                break
            lo, hi = b.first, min(a.last, b.last)
            for n in sorted({lo, lo + 1, lo + 2, hi, a.last, b.last}):
                units = _clash(a, n, b, n) if lo <= n <= hi else None
                if units:
                    yield a, b, a.name(n), units
                    break


def _across_patterns(small: list[_Layout], large: list[_Layout]):
    """Rack names of one pattern read back through the other; only patterns whose literal parts fit are compared."""
    for a in small:
        for n in range(a.first, a.last + 1):
            m = parse(a.name(n), large[0].pattern, "rack")
            if m is None:
                continue
            for b in large:
                units = _clash(a, n, b, m) if b.first <= m <= b.last else None
                if units:
                    yield a, b, a.name(n), units


@check("rack-collision")
def collisions(spec):
    """Two pools that put machines in the same units of the same rack."""
    groups: dict[str, list[_Layout]] = {}
    for layout in _layouts(spec):
        groups.setdefault(layout.pattern, []).append(layout)
    patterns = sorted(groups)
    clashes = [c for p in patterns for c in _same_pattern(groups[p])]
    for i, p in enumerate(patterns):
        for q in patterns[i + 1:]:
            if may_share(p, q, "rack"):
                small, large = sorted((groups[p], groups[q]), key=lambda g: sum(x.last - x.first + 1 for x in g))
                clashes.extend(_across_patterns(small, large))
    reported = set()
    for a, b, rack, (lo, hi) in clashes:
        first, later = sorted((a, b), key=lambda x: x.order)
        if (first.order, later.order) in reported:
            continue
        reported.add((first.order, later.order))
        # An error: the plan gives two machines one place, so the racks cannot be built or cabled as written.
        hint = "move one pool to other racks ('rack: {first: ...}' or 'name') or other units ('first_u')"
        if first.pool.rack == later.pool.rack == Rack():
            # Neither pool says where it stands: every such pool starts at the same place by default.
            hint = (f"pools without a 'rack:' layout all start at unit {Rack().first_u} of rack {rack}; give "
                    f"{later.pool.name} racks of its own, e.g. rack: {{name: \"{later.pool.name}{{rack:02}}\"}}")
        yield Finding("rack-collision", "error", (*later.pool.path, "rack"),
                      f"pools {first.pool.name} and {later.pool.name} both use units {lo}-{hi} of rack {rack}", hint)


@check("rack-height")
def height(spec):
    """Hosts above the top unit of a 48U rack."""
    for pool in spec.pools:
        model = pool.hardware
        if model is None:
            continue
        in_rack = min(pool.rack.nodes_per_rack, pool.count)
        top = pool.rack.first_u + in_rack * model.rack_units - 1
        if top > RACK_UNITS:
            fit = max((RACK_UNITS - pool.rack.first_u + 1) // model.rack_units, 0)
            # An error like a collision: the plan places machines in units that do not exist. A site with taller
            # racks skips the check by name (--ignore rack-height).
            yield Finding("rack-height", "error", (*pool.path, "rack"),
                          f"{in_rack} x {model.rack_units}U from unit {pool.rack.first_u} reach unit {top}; "
                          f"a standard rack has {RACK_UNITS}",
                          f"at most {fit} per rack from unit {pool.rack.first_u}: lower nodes_per_rack or first_u "
                          "(racks taller than 48U: --ignore rack-height)")
