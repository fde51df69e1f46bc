"""Miswire detection: compare an ``ibnetdiscover`` dump with the planned cables of a fabric.

Devices are matched by node description, which is how operators name them: switches carry their planned name as
hostname ('MF0;<name>:MQM9700/U1' on a managed switch, or the plain name), HCAs carry rdma-core's
'<hostname> <device>' (a domain after the hostname is ignored). GUIDs in the dump are ignored, so the
plan's synthetic GUIDs never matter. Every difference is named by device and front-panel port.

A fabric split into per-rail subnets is discovered one subnet at a time (ibnetdiscover sees the subnet of the port it
runs on), so a dump is compared with the subnets whose switches it shows, and the report names the subnets it checked
and those it could not. A check that leaves subnets out is not a match unless the operator scoped it on purpose
(``--subnet``/``--rail``); then the named subnets are the whole check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

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


def parse_ibnetdiscover(text: str | Iterable[str]) -> Dump:
    """The records of ``ibnetdiscover`` output (or of a planned topology.net, which has the same shape), from the
    whole text or from its lines one at a time (gpucloud.verify.inputs.lines streams a file within limits)."""
    dump = Dump()
    current = None
    for raw in (text.splitlines() if isinstance(text, str) else text):
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
    checked: list[str] = field(default_factory=list)  # names of the subnets compared ("" for a single subnet)
    unchecked: list[str] = field(default_factory=list)  # subnets of the plan the comparison left out
    scoped: bool = False  # the operator named the subnets to check (--subnet/--rail)

    @property
    def clean(self) -> bool:
        """No difference in the subnets checked."""
        return not (self.missing or self.unexpected or self.swapped)

    @property
    def complete(self) -> bool:
        """Every subnet of the plan was checked, or the operator limited the check to the ones checked."""
        return self.scoped or not self.unchecked

    @property
    def matches(self) -> bool:
        return self.clean and self.complete


def subnet_names(fp: FabricPlan) -> list[str]:
    return [s.name for s in fp.subnets]


def compare(fp: FabricPlan, text: "str | Iterable[str] | Dump", scope: set[int] | None = None) -> Result:
    """Compare a dump with the plan. ``scope``: the subnet indexes the operator asked for; None: the subnets whose
    switches the dump shows (all of them when it shows none of the plan's switches)."""
    dump = text if isinstance(text, Dump) else parse_ibnetdiscover(text)
    found = dump_links(dump, fp.port_label)
    seen = {d for link in found for d, _ in link}
    sub_of = {s.name: s.subnet for s in fp.switches}
    if scope is not None:
        subnets = set(scope)
    else:
        subnets = {sub_of[d] for d in seen if d in sub_of} or set(range(len(fp.subnets)))
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
    names = subnet_names(fp)
    return Result(sorted(missing), sorted(unexpected), sorted(swapped), absent,
                  checked=[names[i] for i in sorted(subnets)],
                  unchecked=[n for i, n in enumerate(names) if i not in subnets], scoped=scope is not None)


def _fmt(link: Link) -> str:
    (a, ap), (b, bp) = link
    return f"{a} {ap} <-> {b} {bp}"


def _names(names: list[str]) -> str:
    from gpucloud.hostlist import compress

    return compress(names) if all(names) else ", ".join(n or "(the only subnet)" for n in names)


def report(result: Result) -> list[str]:
    lines = []
    split = result.checked and any(result.checked + result.unchecked)  # several named subnets
    if split:
        total = len(result.checked) + len(result.unchecked)
        lines.append(f"checked: {len(result.checked)} of {total} subnet(s): {_names(result.checked)}")
        if result.unchecked:
            why = "left out with --subnet/--rail" if result.scoped else "the dump shows none of their switches"
            lines.append(f"not checked: {len(result.unchecked)} subnet(s): {_names(result.unchecked)} ({why})")
    for dev, n in result.absent_devices:
        lines.append(f"absent: {dev} is not in the fabric ({n} planned cable(s) missing with it)")
    for m1, m2, f1, f2 in result.swapped:
        lines.append(f"swapped: planned {_fmt(m1)} and {_fmt(m2)}; cabled {_fmt(f1)} and {_fmt(f2)}")
    for link in result.missing:
        lines.append(f"missing: {_fmt(link)}")
    for link in result.unexpected:
        lines.append(f"unexpected: {_fmt(link)}")
    n = len(result.missing) + len(result.unexpected) + 2 * len(result.swapped)
    if not result.clean:
        lines.append(f"{len(result.missing)} missing, {len(result.unexpected)} unexpected, {len(result.swapped)} "
                     f"swapped pair(s) ({n} cable(s) to fix)")
    elif not split or (not result.unchecked):
        lines.append("fabric matches the plan")
    elif result.scoped:
        lines.append(f"subnet(s) {_names(result.checked)} match the plan (the check was limited to them)")
    else:
        lines.append(f"partial check: subnet(s) {_names(result.checked)} match the plan, {len(result.unchecked)} "
                     f"subnet(s) were not checked; dump each subnet (ibnetdiscover on a port of that rail) and "
                     f"verify them all, or name the subnets with --subnet/--rail to check only those")
    return lines
