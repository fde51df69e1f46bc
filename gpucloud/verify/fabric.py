"""Miswire detection: compare an ``ibnetdiscover`` dump with the planned cables of a fabric.

Devices are matched by node description, which is how operators name them: switches carry their planned name as
hostname ('MF0;<name>:MQM9700/U1' on a managed switch, or the plain name), HCAs carry rdma-core's
'<hostname> <device>' (a domain after the hostname is ignored). GUIDs in the dump are ignored, so the
plan's synthetic GUIDs never matter. Every difference is named by device and front-panel port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gpucloud.plan.fabric import FabricPlan

End = tuple[str, str]  # (device, port label)
Link = tuple[End, End]  # sorted

_HEADER = re.compile(r'^(Switch|Ca|Hca|Rt)\s+(\d+)\s+"([^"]+)"(?:\s*#\s*"([^"]*)")?')
_PORT = re.compile(r'^\[(\d+)\](?:\([0-9a-fA-F]+\))?\s*"([^"]+)"\[(\d+)\]')


@dataclass
class Dump:
    kinds: dict[str, str] = field(default_factory=dict)  # id -> "switch" | "ca"
    desc: dict[str, str] = field(default_factory=dict)  # id -> node description
    ports: list[tuple[str, int, str, int]] = field(default_factory=list)  # (id, port, peer id, peer port)


def parse_ibnetdiscover(text: str) -> Dump:
    """The records of ``ibnetdiscover`` output (or of a planned topology.net, which has the same shape)."""
    dump = Dump()
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        m = _HEADER.match(line)
        if m:
            current = m.group(3)
            dump.kinds[current] = "switch" if m.group(1) in ("Switch", "Rt") else "ca"
            dump.desc[current] = m.group(4) if m.group(4) is not None else current
            continue
        m = _PORT.match(line)
        if m and current is not None:
            dump.ports.append((current, int(m.group(1)), m.group(2), int(m.group(3))))
    return dump


_SWITCH_DESC = re.compile(r"^MF0;([^:]+):")  # what a managed NVIDIA switch reports: 'MF0;<hostname>:MQM9700/U1'


def device_name(desc: str, switch: bool) -> str:
    """The planned name behind a node description: a switch's hostname, or an HCA host's short name."""
    if switch:
        m = _SWITCH_DESC.match(desc)
        return m.group(1) if m else desc
    return desc.split(".", 1)[0]


def _link(a: End, b: End) -> Link:
    return (a, b) if a <= b else (b, a)


def dump_links(dump: Dump, label) -> set[Link]:
    def end(node: str, port: int) -> End:
        desc = dump.desc.get(node, node)
        if dump.kinds.get(node) == "ca":
            host, _, dev = desc.partition(" ")
            return device_name(host, False), dev or str(port)
        return device_name(desc, True), label(port)

    return {_link(end(a, ap), end(b, bp)) for a, ap, b, bp in dump.ports}


def planned_links(fp: FabricPlan, subnets: set[int] | None = None) -> set[Link]:
    sws = fp.switches
    label = fp.port_label
    out = set()
    for e in fp.endpoints:
        leaf = sws[e.leaf]
        if subnets is None or leaf.subnet in subnets:
            out.add(_link((e.host, e.device), (leaf.name, label(e.port))))
    for lo, lp, hi, hp in zip(fp.lo, fp.lo_port, fp.hi, fp.hi_port):
        if subnets is None or sws[lo].subnet in subnets:
            out.add(_link((sws[lo].name, label(lp)), (sws[hi].name, label(hp))))
    return out


@dataclass
class Result:
    missing: list[Link]
    unexpected: list[Link]
    swapped: list[tuple[Link, Link, Link, Link]]  # planned a, planned b, found a, found b
    absent_devices: list[tuple[str, int]]  # devices of the plan not seen at all, with their planned cable count

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.swapped)


def compare(fp: FabricPlan, text: str) -> Result:
    dump = parse_ibnetdiscover(text)
    found = dump_links(dump, fp.port_label)
    seen = {d for link in found for d, _ in link}
    # A dump covers one subnet: compare with the subnets it shows (all of them when it shows none of the plan).
    sub_of = {s.name: s.subnet for s in fp.switches}
    subnets = {sub_of[d] for d in seen if d in sub_of} or None
    planned = planned_links(fp, subnets)
    missing, unexpected = planned - found, found - planned
    at_missing: dict[End, Link] = {}
    for link in missing:
        for e in link:
            at_missing[e] = link
    swapped = []
    for u in sorted(unexpected):
        if u not in unexpected:
            continue
        a, d = u
        m1, m2 = at_missing.get(a), at_missing.get(d)
        if not m1 or not m2 or m1 == m2 or m1 not in missing or m2 not in missing:
            continue
        b = m1[1] if m1[0] == a else m1[0]
        c = m2[1] if m2[0] == d else m2[0]
        other = _link(c, b)
        if other in unexpected:
            swapped.append((m1, m2, u, other))
            missing -= {m1, m2}
            unexpected -= {u, other}
    counts: dict[str, int] = {}
    for link in planned:
        for dev, _ in link:
            counts[dev] = counts.get(dev, 0) + 1
    absent = sorted((d, n) for d, n in counts.items() if d not in seen)
    return Result(sorted(missing), sorted(unexpected), sorted(swapped), absent)


def _fmt(link: Link) -> str:
    (a, ap), (b, bp) = link
    return f"{a} {ap} <-> {b} {bp}"


def report(result: Result) -> list[str]:
    lines = []
    for dev, n in result.absent_devices:
        lines.append(f"absent: {dev} is not in the fabric ({n} planned cable(s) missing with it)")
    for m1, m2, f1, f2 in result.swapped:
        lines.append(f"swapped: planned {_fmt(m1)} and {_fmt(m2)}; cabled {_fmt(f1)} and {_fmt(f2)}")
    for link in result.missing:
        lines.append(f"missing: {_fmt(link)}")
    for link in result.unexpected:
        lines.append(f"unexpected: {_fmt(link)}")
    n = len(result.missing) + len(result.unexpected) + 2 * len(result.swapped)
    lines.append("fabric matches the plan" if result.clean else
                 f"{len(result.missing)} missing, {len(result.unexpected)} unexpected, {len(result.swapped)} swapped "
                 f"pair(s) ({n} cable(s) to fix)")
    return lines


def run_cli(spec_path, dump_path, fabric_name: str, checked_or_exit) -> int:
    """The 'gpucloud fabric verify' command: 0 when the dump matches the plan, 1 when not, 2 when it cannot run."""
    import sys

    from gpucloud.findings import choices_hint
    from gpucloud.plan.fabric import plan_fabric
    from gpucloud.plan.hosts import plan_hosts

    checked = checked_or_exit(spec_path)
    spec = checked.spec
    if fabric_name not in spec.fabrics:
        print(f"error: the spec has no {fabric_name!r} fabric; "
              f"{choices_hint(fabric_name, spec.fabrics, 'fabrics')}", file=sys.stderr)
        return 2
    try:
        text = dump_path.read_text(errors="replace")
    except OSError as exc:
        print(f"error: cannot read {dump_path}: {exc}", file=sys.stderr)
        return 2
    dump = parse_ibnetdiscover(text)
    if not dump.ports:
        print(f"error: {dump_path} holds no ibnetdiscover records (run 'ibnetdiscover > FILE' on the fabric)",
              file=sys.stderr)
        return 2
    fp = plan_fabric(spec, plan_hosts(spec), fabric_name)
    result = compare(fp, text)
    for line in report(result):
        print(line)
    return 0 if result.clean else 1
