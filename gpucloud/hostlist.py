"""Hostlist expressions (gpu[0001-0250]) through ClusterShell, the library Slurm sites already use.

``pool_hostlist`` builds a pool's expression from its pattern and index range without looking at every name, so it
costs the same for 2 hosts and 12,500. ``expand`` counts the names an expression stands for before it expands it, so
a typed expression such as ``gpu[0-99999999999]`` is refused instead of filling memory.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from ClusterShell.NodeSet import NodeSet
from ClusterShell.RangeSet import RangeSet

if TYPE_CHECKING:  # a leaf module: the spec model only for the annotation
    from gpucloud.spec.model import NodePool

_FIELD = re.compile(r"\{index(?::0?([0-9]))?\}")


def compress(names: Iterable[str]) -> str:
    ns = NodeSet()
    ns.updaten(sorted(names))
    return str(ns)


# Far above any plan (12,500 nodes at 100,000 GPUs); a million names still expand in about a second.
MAX_EXPANDED = 1_000_000
MAX_EXPRESSION = 1024 * 1024  # rendered Nodes= lines with many excluded hosts run to tens of KiB

_TOP_LEVEL = re.compile(r"[,!&^](?![^\[]*\])")  # NodeSet's operators outside brackets
_BRACKET = re.compile(r"\[([^\]]*)\]")
_RANGE = re.compile(r"\s*(\d+)(?:-(\d+))?(?:/(\d+))?\s*")


class HostlistTooLarge(ValueError):
    """An expression that names more hosts than MAX_EXPANDED (or is longer than MAX_EXPRESSION characters)."""


def expanded_size(expression: str) -> int:
    """An upper bound of the names ``expression`` expands to, from its bracket ranges alone (nothing is expanded):
    the sum over its comma-separated parts of the product of their bracket sizes. Malformed ranges count as one
    name; NodeSet reports them when the expression is expanded."""
    total = 0
    for part in _TOP_LEVEL.split(expression):
        n = 1
        for group in _BRACKET.findall(part):
            k = 0
            for r in group.split(","):
                m = _RANGE.fullmatch(r)
                if m is None:
                    k += 1
                    continue
                lo, hi, step = int(m.group(1)), int(m.group(2) or m.group(1)), int(m.group(3) or 1)
                k += max(0, (hi - lo) // max(step, 1) + 1)
            n *= max(k, 1)
        total += n
    return total


def expand(expression: str, limit: int = MAX_EXPANDED) -> list[str]:
    """The names of a hostlist expression; HostlistTooLarge when it stands for more than ``limit`` names."""
    if len(expression) > MAX_EXPRESSION:
        raise HostlistTooLarge(f"the expression is {len(expression):,} characters long, more than "
                               f"{MAX_EXPRESSION:,}")
    size = expanded_size(expression)
    if size > limit:
        raise HostlistTooLarge(f"the expression names {size:,} hosts, more than {limit:,}")
    return list(NodeSet(expression))


def pool_hostlist(pool: NodePool) -> str:
    m = _FIELD.search(pool.hostname)
    assert m is not None  # the schema requires an {index} field
    prefix, suffix = pool.hostname[: m.start()], pool.hostname[m.end():]
    pad = int(m.group(1) or 0)
    width = max(pad, len(str(pool.start)))
    last = pool.start + pool.count - 1
    if pad == 0 or len(str(last)) > pad:
        # Names without zero padding (or that outgrow it) are compressed name by name; ClusterShell handles widths.
        return compress(pool.hostname_for(i) for i in pool.indices if i not in pool.exclude)
    ranges = RangeSet()
    ranges.add_range(pool.start, last + 1, pad=width)
    if pool.exclude:
        ranges.difference_update(RangeSet.fromlist([str(i).zfill(width) for i in sorted(pool.exclude)]))
    if len(ranges) == 0:
        return ""
    if len(ranges) == 1:
        return f"{prefix}{ranges}{suffix}"
    return f"{prefix}[{ranges}]{suffix}"
