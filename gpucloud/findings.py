"""Findings: user mistakes as data. Every stage reports them; only the CLI decides the exit code."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Iterable, Literal, Mapping, Sequence

Level = Literal["error", "warning", "info"]
LEVELS: dict[str, int] = {"info": 0, "warning": 1, "error": 2}

Path = tuple[str | int, ...]


def json_path(path: Sequence[str | int]) -> str:
    """``("node_pools", 0, "count")`` -> ``$.node_pools[0].count``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.isidentifier():
            out.append(f".{part}")
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # stable id, usable with --ignore
    level: Level
    path: Path
    message: str
    hint: str = ""
    file: str = ""
    line: int = 0
    col: int = 0

    @property
    def json_path(self) -> str:
        return json_path(self.path)

    def located(self, file: str, locations: Mapping[Path, tuple[int, int]]) -> "Finding":
        """Attach file:line:col from the nearest located ancestor of the path."""
        if self.line:
            return replace(self, file=file)
        path = self.path
        while path and path not in locations:
            path = path[:-1]
        line, col = locations.get(path, (1, 1))
        return replace(self, file=file, line=line, col=col)

    def as_dict(self) -> dict:
        return {
            "check": self.check,
            "level": self.level,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.json_path,
            "message": self.message,
            "hint": self.hint,
        }

    def sort_key(self) -> tuple:
        return (self.file, self.line, self.col, -LEVELS[self.level], self.check, self.message)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A 'did you mean' hint, or '' when nothing is close. Case is ignored: 'GPU' finds 'gpu'."""
    options = sorted({str(c) for c in candidates})
    folded: dict[str, str] = {}
    for option in options:
        folded.setdefault(option.casefold(), option)
    key = str(word).casefold()
    if key in folded and folded[key] != word:
        return f"did you mean '{folded[key]}'?"
    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.6)
    if close and folded[close[0]] != word:
        return f"did you mean '{folded[close[0]]}'?"
    return ""


def choices_hint(word: str, candidates: Iterable[str], what: str) -> str:
    """Did-you-mean when something is close, else the list of valid choices (shortened)."""
    options = sorted({str(c) for c in candidates})
    guess = did_you_mean(word, options)
    if guess:
        return guess
    if not options:
        return f"no {what} is defined"
    shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    return f"valid {what}: {shown}"


def worst(findings: Iterable[Finding]) -> int:
    return max((LEVELS[f.level] for f in findings), default=-1)
