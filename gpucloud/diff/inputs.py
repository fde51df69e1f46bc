"""Turn what the user names (a spec, a plan folder, or a spec at a git revision) into a plan.json document.

A spec is checked and planned in memory, then passed through the same JSON encoding plan.json uses, so that a spec
and the plan folder written from it compare equal. Problems are returned as InputProblem for the CLI to print and
exit 2 with; nothing here raises for a user mistake.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gpucloud.diff.side import EMPTY

if TYPE_CHECKING:
    from gpucloud.pipeline import Checked


@dataclass
class InputProblem(Exception):
    message: str
    hint: str = ""
    checked: Checked | None = None  # whose findings explain the problem
    text: dict = field(default_factory=dict)

    def write(self, out) -> None:
        """The findings that explain the problem (file:line, caret), then the error and its hint, as the CLI prints
        them and the pull-request comment quotes them."""
        if self.checked is not None:
            from gpucloud import report

            c = self.checked
            report.text(c.findings, {c.loaded.file: c.loaded.text}, out, False)
        out.write(f"error: {self.message}\n")
        if self.hint:
            out.write(f"  hint: {self.hint}\n")


def _stacks_of_plan(plan) -> list[dict] | None:
    """The Pulumi stack split of a plan, without running Pulumi (resource counts are the layout's estimate)."""
    from gpucloud.plan.stacks import estimates

    return estimates(plan) or None


def comparable_stacks(old: dict, new: dict) -> None:
    """An estimate and a dry-run count of resources differ without any change: compare hosts only then."""
    po, pn = old.get("pulumi"), new.get("pulumi")
    if isinstance(po, dict) and isinstance(pn, dict) and "resources" in po and po.get("resources") != pn.get("resources"):
        for side in (po, pn):
            side["resources"] = "not compared (one side is an estimate)"
            side["stacks"] = [{k: v for k, v in s.items() if k != "resources"} for s in side.get("stacks", ())]


def _stacks_of_folder(folder: Path) -> list[dict] | None:
    try:
        with (folder / "pulumi" / "stacks.json").open("rb") as fh:
            stacks = json.load(fh).get("stacks", [])
    except (OSError, ValueError, AttributeError):
        return None
    return [{k: s[k] for k in ("stack", "hosts", "shared", "resources") if k in s} for s in stacks]


def document_of(checked) -> dict:
    from gpucloud.plan import build_plan
    from gpucloud.render.plan_json import document

    plan = build_plan(checked.spec, tuple(checked.findings))
    # Through JSON, as plan.json is (tuples become lists, keys strings), so a spec equals its plan folder.
    doc = json.loads(json.dumps(document(plan)))
    stacks = _stacks_of_plan(plan)
    if stacks is not None and "pulumi" not in doc:
        doc["pulumi"] = {"stacks": stacks, "resources": "estimate"}
    from gpucloud.diff.links import LINKS, of_plan

    doc[LINKS] = of_plan(plan)
    return doc


def _checked(path: Path, shown_as: str | None = None):
    from gpucloud.pipeline import check_spec

    checked = check_spec(path)
    if shown_as is not None:
        checked.findings = [replace(f, file=shown_as) for f in checked.findings]
        checked.loaded.file = shown_as
    if checked.fails("error"):
        raise InputProblem(f"{shown_as or path}: the spec has errors, so it cannot be planned",
                           "fix the errors above (gpucloud validate shows them too)", checked=checked)
    return checked


def load_side(path: Path) -> tuple[dict, str]:
    """A spec file or a plan folder -> (plan.json document, label)."""
    from gpucloud.write import MARKER, is_plan_folder

    if path.is_dir():
        if not is_plan_folder(path):
            raise InputProblem(f"{path} is a folder but holds no gpucloud plan.json",
                               "name a spec file, or a folder written by 'gpucloud plan --out'")
        with (path / MARKER).open("rb") as fh:
            doc = json.load(fh)
        stacks = _stacks_of_folder(path)
        if stacks is not None and "pulumi" not in doc:
            doc["pulumi"] = {"stacks": stacks, "resources": "dry run"}
        from gpucloud.diff.links import LINKS, of_folder

        found = of_folder(path, sorted(set(doc.get("fabric") or {}) | set(doc.get("ethernet") or {})))
        if found is not None:
            doc[LINKS] = found
        return doc, str(path)
    if not path.exists():
        raise InputProblem(f"{path} does not exist", "name a spec file or a plan folder")
    return document_of(_checked(path)), str(path)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputProblem(f"could not run git: {exc}", "install git, or diff two files instead") from None


def load_base(ref: str, spec: Path) -> tuple[dict, str]:
    """The spec as it is at git revision ``ref``; a spec that did not exist there diffs against an empty cluster."""
    if not spec.is_file():
        raise InputProblem(f"{spec} does not exist", "name the spec file as it is in the working copy")
    folder = spec.resolve().parent
    top = _git(["rev-parse", "--show-toplevel"], folder)
    if top.returncode != 0:
        raise InputProblem(f"{spec} is not inside a git repository", "run from a clone, or diff two files instead")
    if _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], folder).returncode != 0:
        raise InputProblem(f"unknown git revision '{ref}'",
                           "fetch it first (actions/checkout with fetch-depth: 0), or name a branch, tag or commit")
    rel = spec.resolve().relative_to(Path(top.stdout.decode().strip()).resolve()).as_posix()
    label = f"{ref}:{rel}"
    shown = _git(["show", f"{ref}:{rel}"], folder)
    if shown.returncode != 0:
        return dict(EMPTY), f"{label} (new spec)"
    with tempfile.TemporaryDirectory(prefix="gpucloud-base-") as tmp:
        copy = Path(tmp) / spec.name
        copy.write_bytes(shown.stdout)
        return document_of(_checked(copy, shown_as=label)), label
