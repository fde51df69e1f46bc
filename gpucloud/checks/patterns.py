"""Name patterns with one numbered field ('gpu{index:03}', 'r{rack:03}'): reading a name back and telling whether
two patterns can give the same name, without listing the names. Shared by the hostname and rack checks."""

from __future__ import annotations

import re


def affixes(pattern: str, field: str) -> tuple[str, str]:
    """The literal text before and after ``{field...}`` (the whole pattern and "" when it has no such field)."""
    m = re.search(r"\{" + field + r"[^}]*\}", pattern)
    return (pattern[: m.start()], pattern[m.end():]) if m else (pattern, "")


def may_share(a: str, b: str, field: str) -> bool:
    """Whether two patterns can give one name: only if one literal prefix starts the other, and likewise suffixes."""
    (pa, sa), (pb, sb) = affixes(a, field), affixes(b, field)
    return (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa))


def parse(name: str, pattern: str, field: str) -> int | None:
    """The number that ``pattern`` turns into ``name``, or None."""
    prefix, suffix = affixes(pattern, field)
    if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) <= len(prefix) + len(suffix):
        return None
    middle = name[len(prefix): len(name) - len(suffix)]
    if not middle.isdigit() or pattern.format(**{field: int(middle)}) != name:
        return None
    return int(middle)
