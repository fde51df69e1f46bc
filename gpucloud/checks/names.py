"""Checks: names that must be unique (pools, pool ids, partitions, tenants, filesystems, mount points) and
hostnames (well-formed, unique across pools)."""

from __future__ import annotations

import re

from gpucloud.checks import check
from gpucloud.findings import Finding

# A width without a leading zero pads with spaces: gpu{index:4} gives 'gpu   1'.
_SPACE_PADDED = re.compile(r"\{(index|rack):([1-9])\}")
_PADDED = re.compile(r"\{index:0?([0-9])\}")
MAX_LABEL = 63  # RFC 1035 label length


def _duplicates(items, key, path_of, check_id, what, hint):
    first: dict = {}
    for item in items:
        k = key(item)
        if k is None:
            continue
        if k in first:
            yield Finding(check_id, "error", path_of(item), f"{what} {k!r} is used twice (first at {first[k]})", hint)
        else:
            first[k] = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path_of(item)).replace(".[", "[")


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
    """Two filesystems mounted at the same place."""
    yield from _duplicates(spec.storage, lambda f: f.mount.rstrip("/") or "/", lambda f: (*f.path, "mount"),
                           "filesystem-duplicate-mount", "mount point", "mount every filesystem at its own path")


@check("hostname-format")
def hostname_format(spec):
    """Name patterns that give spaces or hostnames that are not valid DNS labels."""
    for pool in spec.pools:
        for field, pattern in (("hostname", pool.hostname), ("rack", pool.rack.name)):
            m = _SPACE_PADDED.search(pattern)
            if m:
                path = (*pool.path, "hostname") if field == "hostname" else (*pool.path, "rack", "name")
                yield Finding("hostname-format", "error", path,
                              f"{{{m.group(1)}:{m.group(2)}}} pads with spaces, e.g. {pattern.format(index=1, rack=1)!r}",
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


def _affixes(pattern: str) -> tuple[str, str]:
    m = re.search(r"\{index[^}]*\}", pattern)
    return (pattern[: m.start()], pattern[m.end():]) if m else (pattern, "")


def _may_collide(a: str, b: str) -> bool:
    """Whether two patterns can give one name: only if one literal prefix starts the other, and likewise suffixes."""
    (pa, sa), (pb, sb) = _affixes(a), _affixes(b)
    return (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa))


@check("hostname-collision")
def hostname_collision(spec):
    """Two hosts (in different pools) with the same name."""
    pools = [p for p in spec.pools if not _SPACE_PADDED.search(p.hostname)]
    # Only pools whose patterns could overlap are expanded, so gpu/login/ctl pools of 12,500 hosts cost nothing.
    suspects = {i for i, a in enumerate(pools) for j, b in enumerate(pools) if i != j and _may_collide(a.hostname,
                                                                                                      b.hostname)}
    owner: dict[str, int] = {}
    reported: set[tuple[int, int]] = set()
    for i in sorted(suspects):
        pool = pools[i]
        fmt = pool.hostname.format
        for index in pool.indices:
            if index in pool.exclude:
                continue
            name = fmt(index=index)
            j = owner.setdefault(name, i)
            if j != i and (j, i) not in reported:
                reported.add((j, i))
                yield Finding("hostname-collision", "error", (*pool.path, "hostname"),
                              f"host {name} of pool {pool.name} has the same name as a host of pool {pools[j].name}",
                              "change one pattern, or move one pool's indices with 'start'")
