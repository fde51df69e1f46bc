"""Reporters: text (file:line:col with the offending line and a caret) and JSON, over the same Finding records."""

from __future__ import annotations

import json
from typing import Iterable, TextIO

from gpucloud.findings import Finding

_COLOURS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}


MAX_SHOWN = 120  # characters of the offending line shown around the caret


def _source_line(text: str | None, line: int) -> str | None:
    if not text or line < 1:
        return None
    lines = text.splitlines()
    if line > len(lines):
        return None
    return lines[line - 1]


def _window(src: str, col: int) -> tuple[str, int]:
    """A long line (minified YAML) is cut to a window around the column, so one finding cannot flood the terminal."""
    if len(src) <= MAX_SHOWN:
        return src, col
    start = max(min(col - 1 - MAX_SHOWN // 2, len(src) - MAX_SHOWN), 0)
    cut = src[start:start + MAX_SHOWN]
    prefix = "..." if start else ""
    suffix = "..." if start + MAX_SHOWN < len(src) else ""
    return prefix + cut + suffix, col - start + len(prefix)


def text(findings: Iterable[Finding], sources: dict[str, str], out: TextIO, colour: bool = False) -> None:
    for f in findings:
        level = f"{_COLOURS[f.level]}{f.level}\033[0m" if colour else f.level
        where = f"{f.file}:{f.line}:{f.col}" if f.line else f.file
        out.write(f"{where}: {level}[{f.check}] {f.json_path}: {f.message}\n")
        src = _source_line(sources.get(f.file), f.line)
        if src is not None:
            shown, col = _window(src.expandtabs(1), f.col)
            gutter = f"{f.line:>5} | "
            out.write(f"{gutter}{shown}\n")
            out.write(" " * (len(gutter) - 2) + "| " + " " * max(col - 1, 0) + "^\n")
        if f.hint:
            out.write(f"  hint: {f.hint}\n")


def as_json(results: list[dict], out: TextIO) -> None:
    json.dump({"results": results}, out, indent=2, sort_keys=True)
    out.write("\n")
