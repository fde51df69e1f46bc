"""The data flow of DESIGN.md as plain functions: load -> check -> plan -> render -> write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpucloud import catalog
from gpucloud.findings import LEVELS, Finding
from gpucloud.spec import LoadedSpec, Spec, load
from gpucloud.spec.model import build

# Findings that mean the file itself could not be read as a spec (exit code 2 rather than 1).
UNREADABLE_PREFIXES = ("yaml-", "spec-")


@dataclass
class Checked:
    loaded: LoadedSpec
    findings: list[Finding] = field(default_factory=list)

    @property
    def spec(self):
        return self.loaded.spec

    @property
    def unreadable(self) -> bool:
        return any(f.check.startswith(UNREADABLE_PREFIXES) and f.level == "error" for f in self.findings)

    def fails(self, fail_on: str = "error") -> bool:
        return any(LEVELS[f.level] >= LEVELS[fail_on] for f in self.findings)


# Which top-level keys of the spec each field of the model is built from.
FIELD_SOURCES: dict[str, frozenset[str]] = {
    "name": frozenset({"name"}),
    "metadata": frozenset({"metadata"}),
    "networks": frozenset({"networks"}),
    # A pool's default fabric and Slurm's default topology depend on whether a compute fabric is defined.
    # ... and a pool's hardware on the spec's own models (hardware.models) as well as its overrides.
    "pools": frozenset({"node_pools", "fabric names", "hardware"}),
    "models": frozenset({"hardware"}),
    "hardware_errors": frozenset({"hardware", "node_pools"}),
    "fabrics": frozenset({"fabric"}),
    "slurm": frozenset({"slurm", "name", "fabric names"}),
    "storage": frozenset({"storage"}),
    "tenants": frozenset({"tenants"}),
    "software": frozenset({"software"}),
    "provider": frozenset({"provider"}),
    "source": frozenset(),
    "provisioning": frozenset({"provisioning"}),
    "discovered": frozenset(),
}
# What a required key that failed is replaced by, so the rest of the model can still be built.
_STAND_INS = {"name": "invalid", "networks": {}, "node_pools": []}
_STAND_IN_FABRIC = {"switch": "qm9700"}


def _repaired(data: dict, broken: frozenset[str]) -> tuple[dict, frozenset[str]]:
    """The data without its broken sections, with stand-ins where the model needs a value, and the parts of the
    spec (FIELD_SOURCES' terms) that the model therefore does not reflect."""
    repaired = {k: v for k, v in data.items() if k not in broken}
    for key, stand_in in _STAND_INS.items():
        repaired.setdefault(key, stand_in)
    missing = set(broken)
    fabric = data.get("fabric")
    if "fabric" in broken:
        if isinstance(fabric, dict):
            # Pools and Slurm ask only whether a compute fabric exists; a stand-in keeps that answer.
            repaired["fabric"] = {"compute": _STAND_IN_FABRIC} if "compute" in fabric else {}
        else:
            missing.add("fabric names")
    return repaired, frozenset(missing)


def _check_model(loaded: LoadedSpec) -> tuple[Spec | None, frozenset[str]]:
    """The model the semantic checks run on, and the fields of it they must not rely on.

    A valid spec is checked as it is. A spec with schema or value errors is checked without the top-level sections
    that hold them. A pool whose model the catalog lacks is assumed to sit on the compute fabric (when there is one)
    rather than on none, so that no check reports a missing fabric the pool may well have.
    """
    data = loaded.data
    if not isinstance(data, dict) or "*" in loaded.broken:
        return loaded.spec, frozenset()
    if loaded.spec is not None:
        pools = data.get("node_pools", [])
        if not any(p.get("model") not in catalog.SERVERS and "fabric" not in p for p in pools):
            return loaded.spec, frozenset()
        broken: frozenset[str] = frozenset()
    elif any(f.check.startswith(UNREADABLE_PREFIXES) for f in loaded.findings) or not loaded.broken:
        return None, frozenset()
    else:
        broken = loaded.broken
    repaired, missing = _repaired(data, broken)
    if "compute" in repaired.get("fabric", {}):
        repaired["node_pools"] = [
            {**p, "fabric": "compute"} if p.get("model") not in catalog.SERVERS and "fabric" not in p else p
            for p in repaired["node_pools"]]
    try:
        model = build(repaired, source=loaded.file)
    except Exception:  # a part left out that the rest cannot do without: check nothing rather than crash
        return None, frozenset()
    return model, frozenset(f for f, sources in FIELD_SOURCES.items() if sources & missing)


def check_spec(path: str | Path, ignore: tuple[str, ...] = ()) -> Checked:
    loaded = load(path)
    # What kept the spec from being read cannot be ignored: '--ignore yaml-tab' must not make a broken file valid.
    findings = [f for f in loaded.findings if loaded.spec is None or f.check not in ignore]
    model, unusable = _check_model(loaded)
    if model is not None:
        from gpucloud.checks import run_checks

        findings.extend(f.located(loaded.file, loaded.locations) for f in run_checks(model, ignore, unusable))
    findings.sort(key=Finding.sort_key)
    return Checked(loaded=loaded, findings=findings)


def plan_files(checked: Checked) -> dict[str, bytes]:
    """Plan and render a spec that passed its checks."""
    from gpucloud.plan import build_plan
    from gpucloud.render import render_all

    plan = build_plan(checked.spec, tuple(checked.findings))
    return render_all(plan)
