"""The data flow of DESIGN.md as plain functions: load -> check -> plan -> render -> write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpucloud.findings import LEVELS, Finding
from gpucloud.spec import Loaded, load

# Findings that mean the file itself could not be read as a spec (exit code 2 rather than 1).
UNREADABLE_PREFIXES = ("yaml-", "spec-")


@dataclass
class Checked:
    loaded: Loaded
    findings: list[Finding] = field(default_factory=list)

    @property
    def spec(self):
        return self.loaded.spec

    @property
    def unreadable(self) -> bool:
        return any(f.check.startswith(UNREADABLE_PREFIXES) and f.level == "error" for f in self.findings)

    def fails(self, fail_on: str = "error") -> bool:
        return any(LEVELS[f.level] >= LEVELS[fail_on] for f in self.findings)


def check_spec(path: str | Path, ignore: tuple[str, ...] = ()) -> Checked:
    loaded = load(path)
    # What kept the spec from being read cannot be ignored: '--ignore yaml-tab' must not make a broken file valid.
    findings = [f for f in loaded.findings if loaded.spec is None or f.check not in ignore]
    if loaded.spec is not None:
        from gpucloud.checks import run_checks

        findings.extend(f.located(loaded.file, loaded.locations) for f in run_checks(loaded.spec, ignore))
    findings.sort(key=Finding.sort_key)
    return Checked(loaded=loaded, findings=findings)


def plan_files(checked: Checked) -> dict[str, bytes]:
    """Plan and render a spec that passed its checks."""
    from gpucloud.plan import build_plan
    from gpucloud.render import render_all

    plan = build_plan(checked.spec, tuple(checked.findings))
    return render_all(plan)
