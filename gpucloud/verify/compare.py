"""Facts against expectations. Each function reads one section and yields findings; ``compare`` runs them all.

Messages are the same words for every host with the same problem (so the report can group hosts by them); what
differs per host goes into ``detail``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Iterator, TypeGuard

from gpucloud.plan.software import upstream
from gpucloud.verify import parse
from gpucloud.verify.collect import Collected, Section
from gpucloud.verify.expect import GPU_MEMORY_TOLERANCE, HostExpect
from gpucloud.verify.model import HostFinding, HostResult

# Slurm node states (base or flag) that mean the node will not run jobs.
BAD_SLURM_STATES = ("DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING", "INVALID_REG",
                    "INVALID", "UNKNOWN", "FUTURE", "NO_RESPOND")
# Tools and their section names, for collector errors.
TOOLS = {"gpus": "nvidia-smi", "nvlink": "nvidia-smi nvlink", "ibstat": "ibstat", "ibstatus": "ibstatus",
         "addresses": "ip", "mounts": "findmnt", "slurm": "scontrol", "kernel": "uname", "hostname": "hostname",
         "packages": "dpkg-query"}


class _Host:
    def __init__(self, he: HostExpect, timed_out: bool = False):
        self.he = he
        self.timed_out = timed_out  # sections cut off by the host timeout are covered by one timeout finding
        self.findings: list[HostFinding] = []

    def add(self, check: str, message: str, detail: str = "") -> None:
        self.findings.append(HostFinding(self.he.name, check, message, detail))


def _usable(sec: Section | None, h: _Host, name: str) -> TypeGuard[Section]:
    """Whether a section ran cleanly; records a collector finding when it did not."""
    tool = TOOLS.get(name, name)
    if h.timed_out and (sec is None or sec.rc is None):
        return False
    if sec is None:
        h.add("collector", f"{tool} did not run")
        return False
    first_err = next((line for line in sec.err.splitlines() if line.strip()), "")
    if sec.rc is None:
        h.add("collector", f"{tool} did not finish before the host timeout")
    elif sec.rc == 127:
        h.add("collector", f"{tool} not found", first_err)
    elif sec.rc == 124 or sec.rc == 137:
        h.add("collector", f"{tool} timed out", first_err)
    elif sec.rc != 0:
        h.add("collector", f"{tool} failed", f"exit {sec.rc}" + (f": {first_err}" if first_err else ""))
    else:
        return True
    return False


def _indices(values) -> str:
    return ",".join(str(v) for v in values)


def check_gpus(h: _Host, sections: dict[str, Section]) -> None:
    pe = h.he.pool
    sec = sections.get("gpus")
    if not _usable(sec, h, "gpus"):
        return
    gpus = parse.gpus(sec.out)
    if len(gpus) != pe.gpus:
        h.add("gpu-count", f"{len(gpus)} GPUs, expected {pe.gpus}",
              "present: " + (" ".join(g.bus_id for g in gpus) or "none"))
    wrong = sorted({g.name for g in gpus if pe.gpu_family and pe.gpu_family not in g.name.split()})
    for name in wrong:
        h.add("gpu-model", f"GPU model '{name}', expected {pe.gpu_family}")
    if pe.gpu_memory_mib:
        lo, hi = pe.gpu_memory_mib * (1 - GPU_MEMORY_TOLERANCE), pe.gpu_memory_mib * (1 + GPU_MEMORY_TOLERANCE)
        odd = [g for g in gpus if g.memory_mib is not None and not lo <= g.memory_mib <= hi]
        for mib in sorted({g.memory_mib for g in odd if g.memory_mib is not None}):
            h.add("gpu-memory", f"GPU memory {mib} MiB, expected about {pe.gpu_memory_mib} MiB",
                  "GPU " + _indices(g.index for g in odd if g.memory_mib == mib))
    if pe.driver:
        for driver in sorted({g.driver for g in gpus if g.driver != pe.driver}):
            h.add("gpu-driver", f"driver {driver}, expected {pe.driver}")
    off = [g.index for g in gpus if g.persistence != "Enabled"]
    if off:
        h.add("gpu-persistence", "persistence mode disabled", "GPU " + _indices(off))
    no_ecc = [g.index for g in gpus if g.ecc_mode == "Disabled"]
    if no_ecc:
        h.add("gpu-ecc-mode", "ECC disabled", "GPU " + _indices(no_ecc))
    bad = [g for g in gpus if g.ecc_uncorrected_volatile]
    if bad:
        h.add("gpu-ecc-uncorrected", "uncorrected ECC errors since the last driver load",
              "; ".join(f"GPU {g.index} ({g.bus_id}, {g.uuid}): {g.ecc_uncorrected_volatile}" for g in bad))


def check_nvlink(h: _Host, sections: dict[str, Section]) -> None:
    if "nvlink" not in sections and not h.he.pool.nvswitch:
        return
    sec = sections.get("nvlink")
    if not _usable(sec, h, "nvlink"):
        return
    links = parse.nvlink(sec.out)
    down = {gpu: sorted(n for n, speed in per.items() if speed is None) for gpu, per in links.items()}
    down = {gpu: n for gpu, n in down.items() if n}
    no_links = sorted(gpu for gpu, per in links.items() if not per)
    if down or no_links:
        parts = [f"GPU {gpu} link {_indices(n)}" for gpu, n in sorted(down.items())]
        parts += [f"GPU {gpu} reports no links" for gpu in no_links]
        h.add("nvlink-inactive", "NVLink links inactive", "; ".join(parts))


def check_hcas(h: _Host, sections: dict[str, Section]) -> tuple[str, ...]:
    """Port count, state, rate and width; returns the host's firmware versions for the pool comparison."""
    expected = h.he.pool.ports
    sec = sections.get("ibstat")
    if not _usable(sec, h, "ibstat"):
        return ()
    cas = parse.ibstat(sec.out)
    ports = [p for ca in cas for p in ca.ports if p.link_layer == "InfiniBand"]
    need = len(expected)
    if len(ports) < need:
        h.add("hca-count", f"{len(ports)} InfiniBand ports, expected {need}",
              "present: " + (" ".join(p.name for p in ports) or "none"))
    active = [p for p in ports if p.active]
    if len(active) < min(need, len(ports)):
        down = [p for p in ports if not p.active]
        h.add("ib-port-down", "InfiniBand port not active",
              "; ".join(f"{p.name} {p.state}/{p.physical}" for p in down))
    shapes = {}
    st = sections.get("ibstatus")
    if _usable(st, h, "ibstatus"):  # without it only the rate is known, not the width
        shapes = parse.ibstatus(st.out)
    allowed = {(e.rate_gbps, e.width, e.generation) for e in expected}
    allowed_rates = {e.rate_gbps for e in expected}
    want = " or ".join(sorted({e.text for e in expected}))
    for p in active:
        shape = shapes.get(p.name)
        ok = shape in allowed if shape else p.rate_gbps in allowed_rates
        if not ok:
            got = f"{shape[0]} Gb/s ({shape[1]} {shape[2]})" if shape else f"{p.rate_gbps} Gb/s"
            h.add("ib-rate", f"InfiniBand port at {got}, expected {want}", p.name)
    return tuple(sorted({ca.firmware for ca in cas if ca.firmware}))


def check_ipoib(h: _Host, sections: dict[str, Section]) -> None:
    sec = sections.get("addresses")
    if not _usable(sec, h, "addresses"):
        return
    try:
        ifaces = parse.interfaces(sec.out)
    except (ValueError, json.JSONDecodeError) as exc:
        h.add("collector", "ip printed no JSON", str(exc)[:200])
        return
    where = {addr: (iface, plen) for iface in ifaces for addr, plen in iface.addresses}
    prefix = h.he.pool.ipoib_prefix
    for rail, addr in enumerate(h.he.host.ipoib):
        found = where.get(addr)
        if found is None:
            h.add("ipoib-missing", f"IPoIB address of rail {rail} missing", f"{addr}/{prefix}")
            continue
        iface, plen = found
        if not iface.up:
            h.add("ipoib-down", f"IPoIB interface of rail {rail} down", f"{iface.name} {iface.operstate}")
        if plen != prefix:
            h.add("ipoib-prefix", f"IPoIB address of rail {rail} has prefix /{plen}, expected /{prefix}",
                  f"{iface.name} {addr}/{plen}")


def check_mounts(h: _Host, sections: dict[str, Section]) -> None:
    sec = sections.get("mounts")
    if not _usable(sec, h, "mounts"):
        return
    try:
        mounted = parse.mounts(sec.out)
    except (ValueError, json.JSONDecodeError) as exc:
        h.add("collector", "findmnt printed no JSON", str(exc)[:200])
        return
    for m in h.he.pool.mounts:
        found = mounted.get(m.mount)
        if found is None:
            h.add("mount-missing", f"{m.mount} ({m.kind}) not mounted")
            continue
        source, fstype = found
        if fstype not in m.fstypes:
            h.add("mount-type", f"{m.mount} is {fstype}, expected {'/'.join(m.fstypes)}", source)
        elif m.source and fstype != "autofs":
            matches = source.endswith(m.source) if m.kind == "lustre" else source == m.source
            if not matches:
                h.add("mount-source", f"{m.mount} is mounted from another source than planned",
                      f"{source}, expected {'...' if m.kind == 'lustre' else ''}{m.source}")


def check_services(h: _Host, sections: dict[str, Section]) -> None:
    for service in h.he.pool.services:
        sec = sections.get(f"service:{service}")
        if sec is None or sec.rc is None:
            _usable(sec, h, f"pgrep {service}")
        elif sec.rc == 1:
            h.add("service", f"{service} not running")
        elif sec.rc != 0:
            _usable(sec, h, f"pgrep {service}")


def check_slurm(h: _Host, sections: dict[str, Section]) -> None:
    sec = sections.get("slurm")
    if sec is None or sec.rc is None:
        _usable(sec, h, "slurm")
        return
    node = parse.scontrol_node(sec.out)
    if node is None:
        if "not found" in sec.out + sec.err:
            h.add("slurm-unknown", "not a node in Slurm")
        elif _usable(sec, h, "slurm"):
            h.add("collector", "scontrol printed no node")
        return
    state = node.get("State", "")
    bad = [s for s in state.replace("*", "+NOT_RESPONDING").split("+") if s in BAD_SLURM_STATES]
    if bad:
        reason = node.get("Reason", "")
        h.add("slurm-state", f"Slurm state {state}", reason)


def check_hostname(h: _Host, sections: dict[str, Section]) -> None:
    sec = sections.get("hostname")
    if not _usable(sec, h, "hostname"):
        return
    answered = sec.out.strip().split(".")[0]
    if answered != h.he.name:
        h.add("hostname", "answers with another hostname", f"'{answered}' at {h.he.address}")


def check_packages(h: _Host, sections: dict[str, Section]) -> None:
    """Every package the spec pins is installed at the pinned upstream version (software.*; plan/software.py)."""
    sec = sections.get("packages")
    if sec is not None and sec.rc == 1:  # dpkg-query: some name unknown, the others listed
        sec = Section(sec.out, "", 0)
    if not _usable(sec, h, "packages"):
        return
    installed = parse.packages(sec.out)
    for name, pinned in h.he.pool.packages:
        version = installed.get(name)
        if version is None:
            h.add("package-missing", f"{name} not installed, pinned {pinned}")
        elif upstream(version) != pinned:
            h.add("package-version", f"{name} {upstream(version)}, pinned {pinned}", f"installed {version}")


def compare(he: HostExpect, collected: Collected) -> HostResult:
    h = _Host(he, collected.timed_out)
    s = collected.sections
    check_hostname(h, s)
    firmware: tuple[str, ...] = ()
    pe = he.pool
    if pe.gpus:
        check_gpus(h, s)
        check_nvlink(h, s)
    if pe.ports:
        firmware = check_hcas(h, s)
        if pe.ipoib_prefix is not None:
            check_ipoib(h, s)
    if pe.mounts:
        check_mounts(h, s)
    check_services(h, s)
    if pe.slurm_node:
        check_slurm(h, s)
    if pe.packages:
        check_packages(h, s)
    kernel = None
    ks = s.get("kernel")
    if _usable(ks, h, "kernel"):
        kernel = ks.out.strip()
    result = HostResult(he.name, pe.pool, he.address, "timeout" if collected.timed_out else "ok",
                        h.findings, kernel, firmware)
    if collected.timed_out:
        result.findings.insert(0, HostFinding(he.name, "timeout", "did not finish within the host timeout",
                                              "collected so far: " + (", ".join(sorted(s)) or "nothing")))
    return result


def _version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in v.replace("-", ".").split("."))


def pool_drift(results: list[HostResult]) -> None:
    """Kernel and HCA firmware are not pinned by the spec, but a pool should run one of each: flag the hosts that
    differ from their pool's most common value (ties go to the newest)."""
    by_pool: dict[str, list[HostResult]] = {}
    for r in results:
        by_pool.setdefault(r.pool, []).append(r)
    for pool, members in by_pool.items():
        for check, value, what in (("kernel", lambda r: r.kernel, "kernel"),
                                   ("hca-firmware", lambda r: " ".join(r.firmware) or None, "HCA firmware")):
            counts = Counter(v for v in map(value, members) if v)
            if len(counts) < 2:
                continue
            common = max(counts, key=lambda v: (counts[v], _version_key(v)))
            for r in members:
                v = value(r)
                if v and v != common:
                    r.findings.append(HostFinding(r.host, check, f"{what} {v}, pool {pool} mostly runs {common}"))
