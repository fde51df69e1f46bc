"""Parsers for the documented output of the node tools verify runs. Pure functions of text; unknown lines are
skipped so that a newer tool version adding a field does not break verify.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass

# The nvidia-smi fields verify asks for, in this order (see ``nvidia-smi --help-query-gpu``).
GPU_FIELDS = ("index", "pci.bus_id", "uuid", "name", "memory.total", "driver_version", "persistence_mode",
              "ecc.mode.current", "ecc.errors.uncorrected.volatile.total", "ecc.errors.uncorrected.aggregate.total")


@dataclass(frozen=True)
class Gpu:
    index: int
    bus_id: str
    uuid: str
    name: str
    memory_mib: int | None
    driver: str
    persistence: str  # Enabled / Disabled
    ecc_mode: str  # Enabled / Disabled / [N/A]
    ecc_uncorrected_volatile: int | None
    ecc_uncorrected_aggregate: int | None


@dataclass(frozen=True)
class IbPort:
    ca: str
    port: int
    state: str  # Active, Down, Initializing, Armed
    physical: str  # LinkUp, Polling, Disabled, ...
    rate_gbps: int | None
    link_layer: str  # InfiniBand / Ethernet
    guid: str

    @property
    def name(self) -> str:
        return f"{self.ca}/{self.port}"

    @property
    def active(self) -> bool:
        return self.state == "Active" and self.physical == "LinkUp"


@dataclass(frozen=True)
class Ca:
    name: str
    ca_type: str
    firmware: str
    ports: tuple[IbPort, ...]


@dataclass(frozen=True)
class Interface:
    name: str
    link_type: str
    operstate: str
    up: bool
    addresses: tuple[tuple[str, int], ...]  # IPv4 (address, prefix length)


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None  # "[N/A]", "[Not Supported]"


def gpus(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=<GPU_FIELDS> --format=csv,noheader,nounits``."""
    out = []
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(row) != len(GPU_FIELDS) or not row[0].strip().isdigit():
            continue
        r = [c.strip() for c in row]
        out.append(Gpu(index=int(r[0]), bus_id=r[1], uuid=r[2], name=r[3], memory_mib=_int(r[4]), driver=r[5],
                       persistence=r[6], ecc_mode=r[7], ecc_uncorrected_volatile=_int(r[8]),
                       ecc_uncorrected_aggregate=_int(r[9])))
    return sorted(out, key=lambda g: g.index)


_NVLINK_GPU = re.compile(r"^GPU (\d+): ")
_NVLINK_LINK = re.compile(r"^\s*Link (\d+): (.*?)\s*$")


def nvlink(text: str) -> dict[int, dict[int, float | None]]:
    """``nvidia-smi nvlink --status``: GPU index -> link -> GB/s, None when the link is <inactive>."""
    out: dict[int, dict[int, float | None]] = {}
    current = None
    for line in text.splitlines():
        m = _NVLINK_GPU.match(line)
        if m:
            current = out.setdefault(int(m.group(1)), {})
            continue
        m = _NVLINK_LINK.match(line)
        if m and current is not None:
            value = m.group(2)
            speed = re.match(r"([0-9.]+) GB/s", value)
            current[int(m.group(1))] = float(speed.group(1)) if speed and float(speed.group(1)) > 0 else None
    return out


def ibstat(text: str) -> list[Ca]:
    """``ibstat``: every CA with its ports."""
    cas: list[Ca] = []
    ca: dict | None = None
    port: dict | None = None

    def close_port():
        nonlocal port
        if ca is not None and port is not None:
            ca["ports"].append(IbPort(ca["name"], port["num"], port.get("State", ""),
                                      port.get("Physical state", ""), _int(port.get("Rate", "")),
                                      port.get("Link layer", "InfiniBand"), port.get("Port GUID", "")))
        port = None

    def close_ca():
        nonlocal ca
        close_port()
        if ca is not None:
            cas.append(Ca(ca["name"], ca.get("CA type", ""), ca.get("Firmware version", ""), tuple(ca["ports"])))
        ca = None

    for line in text.splitlines():
        m = re.match(r"^CA '([^']+)'", line)
        if m:
            close_ca()
            ca = {"name": m.group(1), "ports": []}
            continue
        m = re.match(r"^\s+Port (\d+):\s*$", line)
        if m and ca is not None:
            close_port()
            port = {"num": int(m.group(1))}
            continue
        if ":" in line and ca is not None:
            key, value = (s.strip() for s in line.split(":", 1))
            (port if port is not None else ca)[key] = value
    close_ca()
    return sorted(cas, key=lambda c: c.name)


_IBSTATUS_HEAD = re.compile(r"^Infiniband device '([^']+)' port (\d+) status:")
_IBSTATUS_RATE = re.compile(r"^\s*rate:\s*(\d+) Gb/sec \((\d+X) (\w+)\)")


def ibstatus(text: str) -> dict[str, tuple[int, str, str]]:
    """``ibstatus``: "mlx5_0/1" -> (Gb/s, width, generation) from the sysfs rate line "400 Gb/sec (4X NDR)"."""
    out = {}
    current = None
    for line in text.splitlines():
        m = _IBSTATUS_HEAD.match(line)
        if m:
            current = f"{m.group(1)}/{m.group(2)}"
            continue
        m = _IBSTATUS_RATE.match(line)
        if m and current:
            out[current] = (int(m.group(1)), m.group(2), m.group(3))
    return out


def interfaces(text: str) -> list[Interface]:
    """``ip -j addr show``."""
    out = []
    for link in json.loads(text or "[]"):
        addrs = tuple((a["local"], int(a.get("prefixlen", 32))) for a in link.get("addr_info", ())
                      if a.get("family") == "inet" and "local" in a)
        flags = link.get("flags", ())
        out.append(Interface(link.get("ifname", ""), link.get("link_type", ""), link.get("operstate", ""),
                             "UP" in flags and "LOWER_UP" in flags, addrs))
    return out


def mounts(text: str) -> dict[str, tuple[str, str]]:
    """``findmnt --json --list --output TARGET,SOURCE,FSTYPE``: target -> (source, fstype); the last mount on a
    target wins, as it hides the ones below."""
    out = {}
    for fs in json.loads(text or "{}").get("filesystems", ()):
        out[fs.get("target", "")] = (fs.get("source") or "", fs.get("fstype") or "")
    return out


_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*)=")


def scontrol_node(text: str) -> dict[str, str] | None:
    """``scontrol show node -o NAME``: its fields, or None when Slurm does not know the node. Values may hold
    spaces (OS=Linux 5.15.0 #1 SMP ...), so a value runs to the next ``Key=``; Reason runs to the end of line."""
    line = " ".join(text.split("\n")).strip()
    if not line.startswith("NodeName="):
        return None
    head, _, reason = line.partition(" Reason=")
    fields = {}
    matches = list(_KEY.finditer(head))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(head)
        fields[m.group(1)] = head[m.end():end].strip()
    if reason:
        fields["Reason"] = reason.strip()
    return fields


def packages(text: str) -> dict[str, str]:
    """Installed package -> Debian version, from ``dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'``.

    Only packages dpkg reports as installed: the abbreviation's second letter ``i``, whatever the first says was
    selected (``ii``, or ``hi`` for a package the roles hold at its pin); removed ones that left their configuration
    behind (``rc``) and half-installed ones do not count.
    """
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip()[1:2] == "i" and parts[1]:
            out[parts[0].split(":", 1)[0]] = parts[1]  # name:arch for multi-arch packages
    return out
