"""The pull-request comment: for each changed spec, the plan at a glance and its classified changes against the
base branch, behind one marker so that CI updates its comment instead of adding a new one per push.

The exit code gates the check: 2 when a spec has errors, 3 when a change destroys data and nobody approved it
(--allow-destroy, set by the workflow from a label), 1 when something changes, 0 when nothing does.
"""

from __future__ import annotations

import io
from pathlib import Path

from gpucloud.diff.inputs import InputProblem

MARKER = "<!-- gpucloud-plan -->"
ALLOW_LABEL = "gpucloud/allow-data-loss"
LIMIT = 60000  # GitHub refuses comments over 65,536 characters
EXIT_OK, EXIT_CHANGED, EXIT_ERRORS, EXIT_DESTROYS = 0, 1, 2, 3


def _errors_block(exc: InputProblem) -> list[str]:
    buf = io.StringIO()
    exc.write(buf)
    from gpucloud import markdown as md

    return md.fence(buf.getvalue().rstrip("\n")[:8000], "text")


def _section(spec: Path, base: str, allow_destroy: bool, max_rows: int) -> tuple[list[str], int]:
    from gpucloud.diff import compare, report
    from gpucloud.diff.inputs import _checked, document_of, load_base
    from gpucloud.plan import build_plan

    from gpucloud import markdown as md

    head = [f"### {md.code(spec.as_posix())}", ""]
    try:
        checked = _checked(spec)
        old, old_label = load_base(base, spec)
    except InputProblem as exc:
        return head + [":x: **The spec cannot be planned.**", "", *_errors_block(exc), ""], EXIT_ERRORS
    plan = build_plan(checked.spec, tuple(checked.findings))
    diff = compare(old, document_of(checked), old_label, spec.as_posix())
    warnings = sum(f.level == "warning" for f in checked.findings)
    lines = head + md.pairs(plan.figures.rows()) + [""]
    if warnings:
        lines += [f":warning: {warnings} warning(s); see plan.md (`gpucloud plan`) for each.", ""]
    if diff.destroys_data:
        lines += [f":rotating_light: **Destroys data.** " + (
            "Allowed by the `" + ALLOW_LABEL + "` label." if allow_destroy else
            "The check fails until a maintainer adds the `" + ALLOW_LABEL + "` label."), ""]
    lines += report.markdown(diff, heading="####", max_rows=max_rows, fold_derived=True).splitlines() + [""]
    code = diff.exit_code
    if code == EXIT_DESTROYS and allow_destroy:
        code = EXIT_CHANGED
    return lines, code


def estimate_note() -> str:
    from gpucloud.plan.figures import estimate_note as note

    return note()


def build_comment(specs: list[Path], base: str, allow_destroy: bool = False) -> tuple[str, int]:
    """(comment body, exit code). The body always starts with MARKER."""
    from gpucloud import markdown as md

    rows = 200
    while True:
        parts, codes = [], []
        for spec in sorted(specs, key=lambda p: p.as_posix()):
            lines, code = _section(spec, base, allow_destroy, rows)
            parts += lines
            codes.append(code)
        worst = EXIT_ERRORS if EXIT_ERRORS in codes else max(codes, default=EXIT_OK)
        verdict = {EXIT_OK: "no changes", EXIT_CHANGED: "changes, none destroys data",
                   EXIT_DESTROYS: "**changes that destroy data**", EXIT_ERRORS: "**specs with errors**"}[worst]
        body = "\n".join([MARKER, f"## gpucloud plan: {verdict}", "",
                          f"Compared with {md.code(base)}. Impact classes, from mild to severe: none, reconfigure, "
                          "restart a daemon, drain + reboot, reimage, hardware / cabling work, destroys data.", "",
                          *parts, "---", "", estimate_note()]).rstrip("\n") + "\n"
        if len(body) <= LIMIT or rows <= 10:
            return body[:LIMIT], worst
        rows //= 2
