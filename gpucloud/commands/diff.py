"""The bodies of `gpucloud diff` and `gpucloud pr-comment`; cli.py only parses options and calls these."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from gpucloud.diff.inputs import InputProblem

EXIT_USAGE = 2


def _problem(exc: InputProblem, err: TextIO) -> int:
    exc.write(err)
    return EXIT_USAGE


def sides(paths: list[Path], base: str | None) -> tuple[dict, str, dict, str]:
    from gpucloud.diff.inputs import load_base, load_side

    if base is not None:
        if len(paths) != 1:
            raise InputProblem("--base takes exactly one spec", "gpucloud diff --base origin/main clusters/x.yaml")
        old, old_label = load_base(base, paths[0])
        new, new_label = load_side(paths[0])
        return old, old_label, new, new_label
    if len(paths) != 2:
        raise InputProblem("diff needs OLD and NEW (specs or plan folders), or --base REF SPEC",
                           "gpucloud diff old.yaml new.yaml, or gpucloud diff --base origin/main clusters/x.yaml")
    old, old_label = load_side(paths[0])
    new, new_label = load_side(paths[1])
    return old, old_label, new, new_label


def run_diff(paths: list[Path], base: str | None, as_json: bool, out: TextIO = sys.stdout,
             err: TextIO = sys.stderr) -> int:
    from gpucloud.diff import compare
    from gpucloud.diff import report

    try:
        old, old_label, new, new_label = sides(paths, base)
    except InputProblem as exc:
        return _problem(exc, err)
    diff = compare(old, new, old_label, new_label)
    out.write(report.as_json(diff) if as_json else report.markdown(diff) + "\n")
    return diff.exit_code


def run_pr_comment(specs: list[Path], base: str, allow_destroy: bool, output: Path | None,
                   err: TextIO = sys.stderr) -> int:
    from gpucloud.diff.review import build_comment

    try:
        body, code = build_comment(specs, base, allow_destroy)
    except InputProblem as exc:
        return _problem(exc, err)
    if output is None:
        sys.stdout.write(body)
        return code
    try:
        output.write_text(body, encoding="utf-8")
    except OSError as exc:
        err.write(f"error: could not write {output}: {exc}\n  hint: choose a writable path for --out\n")
        return EXIT_USAGE
    return code
