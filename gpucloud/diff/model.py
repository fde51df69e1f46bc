"""The records a diff produces: one Change per thing that changed, and the Diff that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpucloud.diff.impact import STEPS, step_for, worst
from gpucloud.impact import Impact

EXIT_SAME, EXIT_CHANGED, EXIT_DESTROYS = 0, 1, 3


@dataclass(frozen=True)
class Change:
    section: str  # spec area: pools, hosts, networks, fabric, slurm, storage, tenants, software, provider, plan
    subject: str  # what changed, e.g. "partition debug"
    action: str  # add | remove | change
    impact: Impact
    field: str = ""  # the setting, for a change inside a record
    old: Any = None
    new: Any = None
    hosts: str = ""  # affected hosts, hostlist-compressed
    host_count: int = 0
    note: str = ""  # why this impact, and what the operator must know

    @property
    def step(self) -> int:
        return step_for(self.impact, self.action)

    def sort_key(self) -> tuple:
        return (self.step, -self.impact.rank, self.section, self.subject, self.field, self.action)

    def as_dict(self) -> dict:
        return {
            "section": self.section, "subject": self.subject, "field": self.field, "action": self.action,
            "impact": self.impact.value, "step": self.step, "old": self.old, "new": self.new,
            "hosts": self.hosts, "host_count": self.host_count, "note": self.note,
        }


@dataclass
class Diff:
    old_name: str
    new_name: str
    changes: list[Change] = field(default_factory=list)
    # What the planners derive from the changes (switch and cable counts, Slurm node groups, stacks): shown apart,
    # because each follows from a change above and carries no decision of its own.
    derived: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about the comparison itself (e.g. a section missing)

    def sorted(self) -> list[Change]:
        return sorted(self.changes, key=Change.sort_key)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.derived)

    @property
    def worst(self) -> Impact:
        return worst(c.impact for c in self.changes + self.derived)

    @property
    def destroys_data(self) -> bool:
        return any(c.impact is Impact.DESTROYS_DATA for c in self.changes)

    @property
    def exit_code(self) -> int:
        if self.destroys_data:
            return EXIT_DESTROYS
        return EXIT_CHANGED if self.changed else EXIT_SAME

    def counts(self) -> dict[str, int]:
        out = {i.value: 0 for i in Impact}
        for c in self.changes:
            out[c.impact.value] += 1
        return out

    def steps(self) -> list[dict]:
        """The order of work: each step that has changes, with its changes."""
        by_step: dict[int, list[Change]] = {}
        for c in self.sorted():
            by_step.setdefault(c.step, []).append(c)
        if self.destroys_data:
            by_step[1] = []  # the backups; the reporters list the destroys-data changes there
        return [{"step": n, "title": title, "what": what, "changes": by_step[n]}
                for n, title, what in STEPS if n in by_step]

    def as_dict(self) -> dict:
        return {
            "old": self.old_name, "new": self.new_name, "changed": self.changed,
            "destroys_data": self.destroys_data, "worst_impact": self.worst.value if self.changed else None,
            "exit_code": self.exit_code, "counts": self.counts(), "notes": list(self.notes),
            "steps": [{"step": s["step"], "title": s["title"], "what": s["what"],
                       "changes": [c.as_dict() for c in s["changes"]]} for s in self.steps()],
            "derived": [c.as_dict() for c in sorted(self.derived, key=Change.sort_key)],
        }
