"""Hostlist expressions (gpu[0001-0250]) through ClusterShell, the library Slurm sites already use.

``pool_hostlist`` builds a pool's expression from its pattern and index range without looking at every name, so it
costs the same for 2 hosts and 12,500.
"""

from __future__ import annotations

import re
from typing import Iterable

from ClusterShell.NodeSet import NodeSet
from ClusterShell.RangeSet import RangeSet

from gpucloud.spec.model import NodePool

_FIELD = re.compile(r"\{index(?::0?([0-9]))?\}")


def compress(names: Iterable[str]) -> str:
    ns = NodeSet()
    ns.updaten(sorted(names))
    return str(ns)


def expand(expression: str) -> list[str]:
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
