"""The discovered-MAC file of a spec: ``clusters/discovered/<name>.yaml`` for ``clusters/<name>.yaml``.

It lives in a folder of its own so that ``clusters/*.yaml`` still means the specs.

The spec says what a cluster should be; this file records what the machines are: the MAC addresses each node's BMC
reports (Redfish ``EthernetInterfaces``). The provisioning plan reads it for its DHCP reservations, because a MAC is a
fact of the board, not an intent anyone writes by hand. Format::

    # Discovered MACs of cluster lab, written by gpucloud discover.
    hosts:
      gpu01: {mac: "52:54:00:00:01:01", macs: ["52:54:00:00:01:01", "52:54:00:00:01:02"]}

``mac`` is the port the node PXE-boots from (its DHCP reservation), ``macs`` every port the BMC lists. ``discover``
keeps a recorded ``mac`` while the BMC still lists it (an operator may have picked the onboard port by hand) and
otherwise takes the lowest one. A MAC that is no longer listed means the board was swapped: reported as a finding by
``gpucloud.checks.provisioning.mac_changes``.

Reading never raises for a mistake in the file: it returns findings located in the file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import yaml

from gpucloud.findings import Finding
from gpucloud.spec.model import HostHardware

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
HOST = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_BYTES = 64 << 20  # 12,500 hosts with 8 ports each is ~2.5 MiB


def path_beside(spec_file: str | Path) -> Path:
    """``clusters/lab.yaml`` -> ``clusters/discovered/lab.yaml``."""
    p = Path(spec_file)
    return p.parent / "discovered" / (p.stem + ".yaml")


def normal_mac(value: str) -> str:
    """Lower case with colons: what Redfish, Kea and the file all compare on."""
    return value.strip().lower().replace("-", ":")


def _line_of(text: str, host: str) -> int:
    m = re.search(rf"^\s+{re.escape(host)}\s*:", text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def parse(text: str, file: str) -> tuple[dict[str, HostHardware], list[Finding]]:
    findings: list[Finding] = []

    def bad(message: str, hint: str, host: str = "") -> None:
        findings.append(Finding("discovered-file", "error", ("discovered",) + ((host,) if host else ()), message, hint,
                                file, _line_of(text, host) if host else 1, 1))

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        findings.append(Finding("discovered-file", "error", ("discovered",), f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                "fix the file or delete it and run gpucloud discover again", file,
                                mark.line + 1 if mark else 1, mark.column + 1 if mark else 1))
        return {}, findings
    if data is None:
        return {}, findings
    if not isinstance(data, dict) or not isinstance(data.get("hosts", {}), dict) or set(data) - {"hosts"}:
        bad("the file must be a mapping with one key, hosts: {<host>: {mac: ..., macs: [...]}}",
            "see docs/provisioning.md for the format")
        return {}, findings
    out: dict[str, HostHardware] = {}
    for host, rec in (data.get("hosts") or {}).items():
        host = str(host)
        if not HOST.match(host):
            bad(f"{host[:64]!r} is not a host name", "use the planned host names (gpucloud hosts lists them)", host)
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("mac"), str) or \
                not isinstance(rec.get("macs", []), list) or set(rec) - {"mac", "macs"}:
            bad(f"host {host}: expected {{mac: <aa:bb:cc:dd:ee:ff>, macs: [...]}}", "write the MACs as strings",
                host)
            continue
        mac = normal_mac(rec["mac"])
        macs = tuple(sorted({normal_mac(str(m)) for m in rec.get("macs", [])} | {mac}))
        wrong = [m for m in macs if not MAC.match(m)]
        if wrong:
            bad(f"host {host}: {wrong[0][:32]!r} is not a MAC address", "write six hex pairs: 52:54:00:12:34:56",
                host)
            continue
        out[host] = HostHardware(mac=mac, macs=macs)
    return out, findings


def read(path: str | Path) -> tuple[dict[str, HostHardware], list[Finding]]:
    """The discovered-MAC file at ``path``; nothing (and no finding) when there is none."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            return {}, [Finding("discovered-file", "error", ("discovered",), f"larger than {MAX_BYTES >> 20} MiB",
                                "is this the right file?", str(p), 1, 1)]
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [Finding("discovered-file", "error", ("discovered",), f"cannot read it: {exc.__class__.__name__}",
                            "check the file's permissions and encoding (UTF-8)", str(p), 1, 1)]
    return parse(text, str(p))


def dump(cluster: str, hosts: dict[str, HostHardware]) -> str:
    """The file's text: sorted by host, one line per host, byte-identical for the same records."""
    lines = [f"# Discovered MACs of cluster {cluster}, written by gpucloud discover (MACs as the BMCs report them).",
             "# mac: the port the node PXE-boots from (its DHCP reservation); macs: every Ethernet port of the node.",
             "hosts:" if hosts else "hosts: {}"]
    for name in sorted(hosts):
        rec = hosts[name]
        macs = ", ".join(f'"{m}"' for m in rec.macs)
        lines.append(f'  {name}: {{mac: "{rec.mac}", macs: [{macs}]}}')
    return "\n".join(lines) + "\n"


def write(path: str | Path, cluster: str, hosts: dict[str, HostHardware]) -> None:
    """Write atomically (temporary file + rename), so a reader never sees half a file."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dump(cluster, hosts))
        os.replace(tmp, p)
    except BaseException:
        os.unlink(tmp)
        raise


def record(previous: HostHardware | None, reported: list[str]) -> HostHardware | None:
    """A host's record from the MACs its BMC reports now, keeping a recorded boot MAC the BMC still lists."""
    macs = tuple(sorted({normal_mac(m) for m in reported if MAC.match(normal_mac(m))}))
    if not macs:
        return previous
    mac = previous.mac if previous is not None and previous.mac in macs else macs[0]
    return HostHardware(mac=mac, macs=macs)
