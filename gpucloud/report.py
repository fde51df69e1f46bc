"""Reporters: text (file:line:col with the offending line and a caret) and JSON, over the same Finding records.

The text report is for a person: it shows at most ``PER_CHECK`` findings of each check per file (the first ones in
file order) and then one line counting the rest, so a spec with 190,000 findings prints a screenful instead of
burying the first mistake. The JSON report lists every finding: it is for programs, which filter themselves.
Both are linear in the number of findings: each source is split into lines once, not once per finding.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, TextIO

from gpucloud import jsonout
from gpucloud.findings import Finding

_COLOURS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}


MAX_SHOWN = 120  # characters of the offending line shown around the caret
PER_CHECK = 20  # findings of one check shown per file in the text report; the rest are counted


class _Sources:
    """Source lines by file, each source split once, on first use."""

    def __init__(self, sources: dict[str, str]) -> None:
        self._sources = sources
        self._lines: dict[str, list[str]] = {}

    def line(self, file: str, line: int) -> str | None:
        if line < 1:
            return None
        lines = self._lines.get(file)
        if lines is None:
            text = self._sources.get(file)
            lines = text.splitlines() if text else []
            self._lines[file] = lines
        return lines[line - 1] if line <= len(lines) else None


def _window(src: str, col: int) -> tuple[str, int]:
    """A long line (minified YAML) is cut to a window around the column, so one finding cannot flood the terminal."""
    if len(src) <= MAX_SHOWN:
        return src, col
    start = max(min(col - 1 - MAX_SHOWN // 2, len(src) - MAX_SHOWN), 0)
    cut = src[start:start + MAX_SHOWN]
    prefix = "..." if start else ""
    suffix = "..." if start + MAX_SHOWN < len(src) else ""
    return prefix + cut + suffix, col - start + len(prefix)


def text(findings: Iterable[Finding], sources: dict[str, str], out: TextIO, colour: bool = False,
         per_check: int | None = PER_CHECK) -> None:
    """Write findings for a person; ``per_check`` findings of each check per file at most (None or 0: all)."""
    lines = _Sources(sources)
    shown: Counter[tuple[str, str]] = Counter()
    hidden: Counter[tuple[str, str]] = Counter()
    for f in findings:
        key = (f.file, f.check)
        if per_check and shown[key] >= per_check:
            hidden[key] += 1
            continue
        shown[key] += 1
        level = f"{_COLOURS[f.level]}{f.level}\033[0m" if colour else f.level
        where = f"{f.file}:{f.line}:{f.col}" if f.line else f.file
        path = f.json_path
        if len(path) > MAX_SHOWN:  # a key of thousands of characters
            path = path[:MAX_SHOWN - 3] + "..."
        out.write(f"{where}: {level}[{f.check}] {path}: {f.message}\n")
        src = lines.line(f.file, f.line)
        if src is not None:
            shown_src, col = _window(src.expandtabs(1), f.col)
            gutter = f"{f.line:>5} | "
            out.write(f"{gutter}{shown_src}\n")
            out.write(" " * (len(gutter) - 2) + "| " + " " * max(col - 1, 0) + "^\n")
        if f.hint:
            out.write(f"  hint: {f.hint}\n")
    for (file, check), more in sorted(hidden.items()):
        out.write(f"{file}: ... and {more:,} more finding(s) of check {check} "
                  f"(--output json lists them all)\n")


def as_json(results: list[dict], out: TextIO) -> None:
    """Every finding, one per line (canonical JSON as plan files use: a 190,000-finding report stays quick)."""
    out.write(jsonout.dumps({"results": results}))
