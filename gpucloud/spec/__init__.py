"""Stage 1: read a spec file, validate it against the JSON Schema, and build the typed model.

``load(path)`` never raises for a user mistake: it returns the model (or None) and every finding, located.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from gpucloud.findings import Finding, Path
from gpucloud.spec import loader, schema
from gpucloud.spec.model import Spec, build


@dataclass
class LoadedSpec:
    """A spec file after the schema: the typed model (None when it has errors), every finding, and the source."""

    file: str
    spec: Spec | None
    findings: list[Finding] = field(default_factory=list)
    locations: dict[Path, tuple[int, int]] = field(default_factory=dict)
    data: Any = None
    text: str = ""
    # Top-level keys of data with a schema or value error (or required and missing); '*' for the whole document.
    broken: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return self.spec is not None and not any(f.level == "error" for f in self.findings)


def _values(data: dict) -> list[Finding]:
    """Values the schema's patterns let through but that are still not usable (e.g. 10.0.0.300/33)."""
    out = []
    for name, net in (data.get("networks") or {}).items():
        try:
            cidr = ipaddress.IPv4Network(net["cidr"], strict=False)
        except ValueError as exc:
            out.append(Finding("network-cidr", "error", ("networks", name, "cidr"), f"invalid network: {exc}",
                               "write an IPv4 network such as 10.16.0.0/16"))
            continue
        if str(cidr) != net["cidr"]:
            out.append(Finding("network-cidr", "error", ("networks", name, "cidr"),
                               f"{net['cidr']} has host bits set", f"write the network address: {cidr}"))
        if "gateway" in net:
            try:
                gw = ipaddress.IPv4Address(net["gateway"])
            except ValueError as exc:
                out.append(Finding("network-gateway", "error", ("networks", name, "gateway"), str(exc),
                                   "write an IPv4 address inside the network"))
                continue
            if gw not in cidr:
                out.append(Finding("network-gateway", "error", ("networks", name, "gateway"),
                                   f"gateway {gw} is outside {cidr}", f"pick an address inside {cidr}"))
    for i, tenant in enumerate(data.get("tenants") or ()):
        pkey = tenant.get("pkey")
        if pkey is not None and not (0x0001 <= int(pkey, 16) <= 0x7FFE):
            out.append(Finding("tenant-pkey", "error", ("tenants", i, "pkey"),
                               f"partition key {pkey} is outside 0x0001-0x7ffe",
                               "0x7fff is the default partition and the top bit is the membership flag"))
    return out


def load(path: str | FsPath) -> LoadedSpec:
    raw = loader.load_file(path, schema.hides, schema.hides_key)
    result = LoadedSpec(file=raw.file, spec=None, locations=raw.locations, data=raw.data, text=raw.text)
    result.findings.extend(raw.findings)
    if not raw.ok or raw.data is None:
        return result
    problems = schema.validate(raw.data, raw.scalars)
    broken = schema.broken_sections(raw.data, problems)
    if "*" not in broken:  # the value checks of the sections the schema accepted
        problems += _values({k: v for k, v in raw.data.items() if k not in broken})
    result.findings.extend(f.located(raw.file, raw.locations) for f in problems)
    if problems:
        result.broken = broken | schema.broken_sections(raw.data, problems)
        return result
    try:
        result.spec = build(raw.data, source=raw.file)
        _discovered(result)
    except Exception as exc:  # a schema-valid spec the model cannot hold is our bug; report it, don't crash
        result.findings.append(internal_error("building the model", exc, raw.file))
    return result


def _discovered(result: LoadedSpec) -> None:
    """Attach the discovered-hardware file beside the spec (clusters/discovered/<name>.yaml) when there is one."""
    from dataclasses import replace

    from gpucloud.spec import discovered

    if not result.file or result.spec is None:
        return
    hosts, findings = discovered.read(discovered.path_beside(result.file))
    result.findings.extend(findings)
    if hosts:
        result.spec = replace(result.spec, discovered=hosts)


def internal_error(stage: str, exc: Exception, file: str = "") -> Finding:
    """A finding for an unexpected exception, so the user sees a located report instead of a traceback."""
    return Finding("internal-error", "error", (), f"gpucloud failed while {stage}: {type(exc).__name__}: {exc}",
                   "this is a bug in gpucloud; please report it together with the spec", file, 1, 1)


__all__ = ["load", "LoadedSpec", "Spec", "internal_error"]
