"""Checks: names that must be unique (pools, pool ids, partitions, tenants, filesystems, mount points) and
hostnames (well-formed, unique across pools)."""

from __future__ import annotations

import bisect
import itertools
import re

from gpucloud.checks import check
from gpucloud.checks.patterns import may_share, parse
from gpucloud.findings import Finding, json_path

# A width without a leading zero pads with spaces: gpu{index:4} gives 'gpu   1'.
_SPACE_PADDED = re.compile(r"\{(index|rack):([1-9])\}")
_PADDED = re.compile(r"\{index:0([0-9])\}")
MAX_LABEL = 63  # RFC 1035 label length
MAX_NAME = 253  # RFC 1035 name length, written without the final dot


def _duplicates(items, key, path_of, check_id, what, hint):
    first: dict = {}
    for item in items:
        k = key(item)
        if k is None:
            continue
        if k in first:
            yield Finding(check_id, "error", path_of(item), f"{what} {k!r} is used twice (first at {first[k]})", hint)
        else:
            first[k] = json_path(path_of(item))


@check("pool-duplicate-name")
def pool_names(spec):
    """Two pools with the same name."""
    yield from _duplicates(spec.pools, lambda p: p.name, lambda p: (*p.path, "name"), "pool-duplicate-name",
                           "pool name", "give every pool its own name")


@check("pool-duplicate-id")
def pool_ids(spec):
    """Two pools with the same id would get the same addresses."""
    for f in _duplicates(spec.pools, lambda p: p.id, lambda p: (*p.path, "id" if p.id_explicit else "name"),
                         "pool-duplicate-id", "pool id", ""):
        yield Finding(f.check, f.level, f.path, f.message + "; the pools would share address blocks",
                      "give every pool an explicit, unique id (ids default to the position in node_pools)")


@check("partition-duplicate-name")
def partition_names(spec):
    """Two Slurm partitions with the same name."""
    yield from _duplicates(spec.slurm.partitions, lambda p: p.name, lambda p: (*p.path, "name"),
                           "partition-duplicate-name", "partition name", "give every partition its own name")


@check("tenant-duplicate-name")
def tenant_names(spec):
    """Two tenants with the same name (they would share a Slurm account)."""
    yield from _duplicates(spec.tenants, lambda t: t.name, lambda t: (*t.path, "name"), "tenant-duplicate-name",
                           "tenant name", "give every tenant its own name")


@check("filesystem-duplicate-name")
def filesystem_names(spec):
    """Two filesystems with the same name."""
    yield from _duplicates(spec.storage, lambda f: f.name, lambda f: (*f.path, "name"), "filesystem-duplicate-name",
                           "filesystem name", "give every filesystem its own name")


@check("filesystem-duplicate-mount")
def mount_points(spec):
    """Two filesystems mounted at the same place (paths compared as the model normalises them: /scratch/. is
    /scratch)."""
    yield from _duplicates(spec.storage, lambda f: f.mount, lambda f: (*f.path, "mount"),
                           "filesystem-duplicate-mount", "mount point", "mount every filesystem at its own path")


@check("hostname-format")
def hostname_format(spec):
    """Name patterns that give spaces or hostnames that are not valid DNS labels."""
    for pool in spec.pools:
        for field, pattern in (("hostname", pool.hostname), ("rack", pool.rack.name)):
            m = _SPACE_PADDED.search(pattern)
            if m:
                path = (*pool.path, "hostname") if field == "hostname" else (*pool.path, "rack", "name")
                example = pattern.format(index=1, rack=1)
                yield Finding("hostname-format", "error", path,
                              f"{{{m.group(1)}:{m.group(2)}}} pads with spaces, e.g. {example!r}",
                              f"pad with zeros: {{{m.group(1)}:0{m.group(2)}}}")
        if _SPACE_PADDED.search(pool.hostname):
            continue
        last = pool.hostname_for(pool.start + pool.count - 1)
        if len(last) > MAX_LABEL:
            yield Finding("hostname-format", "error", (*pool.path, "hostname"),
                          f"hostname {last[:20]}... is {len(last)} characters; a DNS label holds {MAX_LABEL}",
                          "use a shorter pattern")
        elif pool.hostname.endswith("-"):
            yield Finding("hostname-format", "error", (*pool.path, "hostname"),
                          f"hostnames like {last!r} end with '-', which DNS does not allow",
                          "end the pattern with a letter, a digit or the {index} field")
    # The longest full name on a network: the longest hostname (each pool's last index) plus the domain.
    names = [pool.hostname_for(pool.start + pool.count - 1) for pool in spec.pools
             if not _SPACE_PADDED.search(pool.hostname)]
    longest = max(names, key=len, default="")
    for net in spec.networks.values():
        if net.domain and longest and len(longest) + 1 + len(net.domain) > MAX_NAME:
            yield Finding("hostname-format", "error", (*net.path, "domain"),
                          f"{longest}.{net.domain[:20]}... is {len(longest) + 1 + len(net.domain)} characters; a DNS "
                          f"name holds {MAX_NAME}", f"use a domain of at most {MAX_NAME - 1 - len(longest)} characters")


@check("hostname-width")
def hostname_width(spec):
    """Zero padding that the pool's indices outgrow (gpu99, gpu100 sort out of order)."""
    for pool in spec.pools:
        m = _PADDED.search(pool.hostname)
        if not m or not m.group(1) or int(m.group(1)) < 2:
            continue
        width = int(m.group(1))
        last = pool.start + pool.count - 1
        if len(str(last)) > width:
            yield Finding("hostname-width", "warning", (*pool.path, "hostname"),
                          f"index {last} has {len(str(last))} digits but the pattern pads to {width}",
                          f"pad to {len(str(last))} digits before the pool is built: {{index:0{len(str(last))}}}")


class _Group:
    """Pools sharing one hostname pattern, ordered by their first index, for index -> pools lookups.

    Pools of one pattern may overlap (that is a collision of its own, reported by _same_pattern), so the pool that
    starts last at or before an index is not the only candidate: every earlier pool whose range still reaches the
    index is one too. ``reach[i]`` is the largest end among pools[0..i], so the walk back stops at the first pool
    whose predecessors all end before the index; without overlaps that is one step."""

    def __init__(self, pattern: str, pools: list) -> None:
        self.pattern = pattern
        self.pools = sorted(pools, key=lambda p: (p.start, p.path))
        self.starts = [p.start for p in self.pools]
        self.reach = list(itertools.accumulate((p.start + p.count for p in self.pools), max))
        self.hosts = sum(p.count for p in pools)

    def owners(self, index: int):
        """Every pool of the group that builds ``index``."""
        i = bisect.bisect_right(self.starts, index) - 1
        while i >= 0 and self.reach[i] > index:
            pool = self.pools[i]
            if index < pool.start + pool.count and index not in pool.exclude:
                yield pool
            i -= 1

    def names(self):
        for pool in self.pools:
            for index in pool.indices:
                if index not in pool.exclude:
                    yield pool, self.pattern.format(index=index)


def _same_pattern(group: _Group):
    """Pools with one pattern collide exactly where their index ranges overlap, less exclusions. Sorted by start,
    each pool is compared only with the pools that start inside its range (at most 256 pools in a spec)."""
    pools = group.pools
    for i, a in enumerate(pools):
        end = a.start + a.count
        for b in pools[i + 1:]:
            if b.start >= end:
                break
            for index in range(b.start, min(end, b.start + b.count)):  # stops at the first index both build
                if index not in a.exclude and index not in b.exclude:
                    yield a, b, group.pattern.format(index=index)
                    break


def _across_patterns(a: _Group, b: _Group):
    """Names of the smaller group parsed back through the other pattern: linear in the smaller group's hosts."""
    small, large = (a, b) if a.hosts <= b.hosts else (b, a)
    seen = set()
    for pool, name in small.names():
        index = parse(name, large.pattern, "index")
        for other in large.owners(index) if index is not None else ():
            if (id(pool), id(other)) not in seen:
                seen.add((id(pool), id(other)))
                yield pool, other, name


@check("hostname-collision")
def hostname_collision(spec):
    """Two hosts (in different pools) with the same name."""
    by_pattern: dict[str, list] = {}
    for pool in spec.pools:
        if not _SPACE_PADDED.search(pool.hostname):
            by_pattern.setdefault(pool.hostname, []).append(pool)
    groups = [_Group(pattern, pools) for pattern, pools in sorted(by_pattern.items())]
    pairs = [pair for g in groups for pair in _same_pattern(g)]
    # Patterns whose literal prefixes and suffixes cannot fit together (gpu.., login.., ctl..) are never expanded.
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            if may_share(a.pattern, b.pattern, "index"):
                pairs.extend(_across_patterns(a, b))
    order = {id(p): n for n, p in enumerate(spec.pools)}
    reported = set()
    for x, y, name in pairs:
        earlier, later = sorted((x, y), key=lambda p: order[id(p)])
        if (id(earlier), id(later)) in reported:
            continue
        reported.add((id(earlier), id(later)))
        yield Finding("hostname-collision", "error", (*later.path, "hostname"),
                      f"host {name} of pool {later.name} has the same name as a host of pool {earlier.name}",
                      "change one pattern, or move one pool's indices with 'start'")
