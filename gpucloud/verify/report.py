"""Verify results as a table of problems (hosts grouped, hostlist-compressed) or as JSON with every finding.

Both read the same records and are byte-deterministic for the same results: groups and hosts are sorted, and
nothing depends on the order in which hosts answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from gpucloud import jsonout
from gpucloud.hostlist import compress
from gpucloud.verify.model import HINTS, HostFinding, HostResult

DETAILS_PER_GROUP = 8
STATUSES = ("conforming", "warning", "nonconforming", "timeout", "unreachable", "refused", "auth-failed")


@dataclass(frozen=True)
class Group:
    check: str
    level: str
    message: str
    findings: tuple[HostFinding, ...]

    @property
    def hosts(self) -> str:
        return compress(f.host for f in self.findings)

    @property
    def count(self) -> int:
        return len({f.host for f in self.findings})


def groups(results: list[HostResult]) -> list[Group]:
    by: dict[tuple[str, str], list[HostFinding]] = {}
    for r in results:
        for f in r.findings:
            by.setdefault((f.check, f.message), []).append(f)
    out = [Group(check, fs[0].level, message, tuple(fs)) for (check, message), fs in by.items()]
    # Errors first, then the problems that hit the most hosts.
    out.sort(key=lambda g: (g.level != "error", -g.count, g.check, g.message))
    return out


def summary(results: list[HostResult]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return {"hosts": len(results), **counts}


def conforms(results: list[HostResult]) -> bool:
    return all(r.status in ("conforming", "warning") for r in results)


def summary_line(cluster: str, results: list[HostResult]) -> str:
    s = summary(results)
    parts = [f"{s[k]} {k}" for k in STATUSES if s[k]]
    return f"verify {cluster}: {s['hosts']} host(s): " + (", ".join(parts) or "none")


def text(cluster: str, results: list[HostResult], out: TextIO) -> None:
    gs = groups(results)
    if gs:
        width = max(len(g.check) for g in gs)
        host_width = min(max(len(g.hosts) for g in gs), 40)
        out.write(f"{'CHECK':{width}}  {'HOSTS':>5}  {'HOSTLIST':{host_width}}  PROBLEM\n")
        for g in gs:
            out.write(f"{g.check:{width}}  {g.count:>5}  {g.hosts:{host_width}}  {g.message}"
                      f"{' (warning)' if g.level == 'warning' else ''}\n")
        out.write("\n")
        for g in gs:
            shown = [f for f in g.findings if f.detail][:DETAILS_PER_GROUP]
            if not shown and not g.findings[0].hint:
                continue
            out.write(f"{g.check}: {g.message}\n")
            for f in shown:
                out.write(f"  {f.host}: {f.detail}\n")
            extra = sum(1 for f in g.findings if f.detail) - len(shown)
            if extra > 0:
                out.write(f"  ... and {extra} more (--output json lists every finding)\n")
            if HINTS.get(g.check):
                out.write(f"  hint: {HINTS[g.check]}\n")
    out.write(summary_line(cluster, results) + "\n")


def document(cluster: str, spec_file: str, results: list[HostResult]) -> dict:
    return {
        "cluster": cluster,
        "spec": spec_file,
        "conforms": conforms(results),
        "summary": summary(results),
        "problems": [{"check": g.check, "level": g.level, "message": g.message, "count": g.count,
                      "hosts": g.hosts, "hint": HINTS.get(g.check, "")} for g in groups(results)],
        "hosts": [{"host": r.host, "pool": r.pool, "address": r.address, "status": r.status,
                   "kernel": r.kernel, "hca_firmware": list(r.firmware)} for r in results],
        "findings": [f.as_dict(r.address) for r in results for f in r.findings],
    }


def as_json(cluster: str, spec_file: str, results: list[HostResult], out: TextIO) -> None:
    out.write(jsonout.dumps(document(cluster, spec_file, results)))
