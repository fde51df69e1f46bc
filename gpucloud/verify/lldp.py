"""Miswire detection for Ethernet fabrics: compare the switches' LLDP neighbour tables (``lldpcli show neighbors -f
json``, one per switch) with the planned cables (fabric/<fabric>/cabling.csv), by device and port.

A switch-to-switch cable is checked at both ends by system name and port name (LLDP port ID subtype ifname, which
SONiC sends: the SONiC interface name). A host's NIC is checked by system name only on the leaf side, since the
planned host end is the RDMA device (mlx5_N) and LLDP carries the host's netdev name. Only switches whose table was
given are checked; the report says which.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

End = tuple[str, str]  # (device, port)


@dataclass(frozen=True)
class Miswire:
    device: str
    port: str
    planned: End | None  # None: the plan has no cable on this port
    seen: End | None  # None: LLDP sees no neighbour there

    def describe(self) -> str:
        where = f"{self.device} {self.port}"
        if self.seen is None:
            return f"{where}: no LLDP neighbour; the plan has a cable to {self.planned[0]} {self.planned[1]}" \
                if self.planned else f"{where}: nothing planned, nothing seen"
        seen = f"{self.seen[0]} {self.seen[1]}"
        if self.planned is None:
            return f"{where}: LLDP sees {seen} but the plan has no cable on this port"
        return f"{where}: LLDP sees {seen}, the plan says {self.planned[0]} {self.planned[1]}"


def planned_ends(cabling_csv: str) -> tuple[dict[End, End], set[str]]:
    """Each switch port's planned peer, and the planned hosts (whose port names LLDP cannot confirm)."""
    ends: dict[End, End] = {}
    hosts: set[str] = set()
    for row in csv.DictReader(io.StringIO(cabling_csv)):
        a, b = (row["a_device"], row["a_port"]), (row["b_device"], row["b_port"])
        ends[b] = a
        if row["tier"] == "node_leaf":
            hosts.add(a[0])
        else:
            ends[a] = b
    return ends, hosts


def _items(value) -> list:
    """lldpcli's JSON gives a list for several entries and a bare object for one."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_lldpcli(doc: dict) -> dict[str, End]:
    """Local port -> (neighbour system name, neighbour port ID) from ``lldpcli show neighbors -f json``."""
    out: dict[str, End] = {}
    for entry in _items((doc.get("lldp") or {}).get("interface")):
        for local, info in entry.items():
            chassis = info.get("chassis") or {}
            name = next((k for k in chassis if k != "id"), None)
            if name is None:
                name = ((chassis.get("id") or {}).get("value")) or ""
            port = info.get("port") or {}
            port_id = (port.get("id") or {}).get("value", "")
            out[local] = (name, port_id)
    return out


def compare(cabling_csv: str, tables: dict[str, dict]) -> list[Miswire]:
    """Every difference between the planned cables and the LLDP tables of the switches in ``tables``."""
    ends, hosts = planned_ends(cabling_csv)
    out: list[Miswire] = []
    for device in sorted(tables):
        seen = parse_lldpcli(tables[device])
        planned_ports = {port for (dev, port) in ends if dev == device}
        for port in sorted(planned_ports | set(seen), key=_port_key):
            want, got = ends.get((device, port)), seen.get(port)
            if want is not None and got is not None and (want == got or (want[0] in hosts and got[0] == want[0])):
                continue
            out.append(Miswire(device, port, want, got))
    return out


def _port_key(port: str) -> tuple:
    digits = "".join(ch for ch in port if ch.isdigit())
    return (port.rstrip("0123456789"), int(digits) if digits else -1, port)
