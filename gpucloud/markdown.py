"""Text from a spec (or from a file name, or a finding that quotes one) written into Markdown that GitHub renders:
plan.md, the diff and the pull-request comment. Every such place goes through these helpers, so that a description
holding ``<!--`` cannot hide the rest of a comment, a ``|`` cannot split a table row and a backtick cannot end a
code span early.

* ``text``  inline prose and table cells: one line, HTML and Markdown markup characters escaped;
* ``paragraph`` the same as a line of its own (a leading ``#``, ``>``, ``-`` or ``1.`` escaped too);
* ``code``  an inline code span whose fence is longer than any run of backticks inside it;
* ``fence`` a fenced block (```` ``` ````) around several lines, its fence longer than any inside;
* ``pairs`` a two-column table of (label, value) rows, both escaped;
* ``size_text``, ``num_text``, ``duration_text``: how plan.md, the diff and the pull-request comment write sizes,
  figures and durations, so the same number reads the same everywhere.

Escapes are CommonMark backslash escapes (any ASCII punctuation may be escaped), so what renders is exactly the
text the spec holds. Characters that cannot start markup in the middle of a line (``.``, ``-``, ``(``) are left
alone, so plain names and versions read the same in the raw file.
"""

from __future__ import annotations

import re

# Always markup: HTML and autolinks (<), entities (&), emphasis (*), links ([ ]), code (`), tables (|), and the
# backslash itself. '>' only quotes at the start of a line (see paragraph); '~' strikes through only in pairs.
_ALWAYS = re.compile(r"([\\`*\[\]<&|])")
# '_' opens emphasis only at a word boundary: leave slurm_conf alone, escape _word_.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What starts a block when it opens a line: heading, quote, list item, thematic break, setext underline.
_LINE_START = re.compile(r"^(#|>|[-+*=]|\d+[.)])")
_SPACE = re.compile(r"\s+")


def one_line(value) -> str:
    """Newlines, tabs and runs of spaces become one space: a table row or heading stays one line."""
    return _SPACE.sub(" ", str(value)).strip()


def text(value) -> str:
    """``value`` as literal Markdown text on one line, inside a line (a table cell, after a label)."""
    s = one_line(value)
    s = _ALWAYS.sub(r"\\\1", s)
    if s.count("~") > 1:
        s = s.replace("~", "\\~")
    return _UNDERSCORE.sub(r"\\_", s)


def paragraph(value) -> str:
    """``value`` as a paragraph of its own: also what would start a heading, quote or list is escaped."""
    s = text(value)
    m = _LINE_START.match(s)
    if m:
        cut = m.end() - 1  # before the marker's last character: '#', '>', '-', or the '.' of '1.'
        s = s[:cut] + "\\" + s[cut:]
    return s


def code(value) -> str:
    """``value`` as an inline code span on one line. Inside a table cell the caller still escapes '|'
    (GitHub reads ``\\|`` inside a code span in a table as a literal pipe)."""
    s = one_line(value)
    runs = [len(r) for r in re.findall(r"`+", s)]
    ticks = "`" * (max(runs, default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def cell_code(value) -> str:
    """An inline code span for a table cell."""
    return code(value).replace("|", "\\|")


def fence(body: str, info: str = "") -> list[str]:
    """A fenced code block around ``body``, as lines; the fence is longer than any backtick run in the body."""
    runs = [len(r) for r in re.findall(r"`{3,}", body)]
    ticks = "`" * max(3, max(runs, default=0) + 1)
    return [ticks + info, body, ticks]


def pairs(rows) -> list[str]:
    """A headerless two-column table of (label, value) rows, as plan.md's and the pull-request comment's at-a-glance
    table."""
    return ["| | |", "|---|---|"] + [f"| {text(k)} | {text(v)} |" for k, v in rows]


def num_text(n: float) -> str:
    """A figure: whole above 100, one decimal below."""
    return f"{n:,.0f}" if n >= 100 else f"{n:,.1f}"


def duration_text(days: float) -> str:
    if days < 1:
        return f"{days * 24:,.1f} hours"
    return f"{days:,.1f} days"


def size_text(n: int | None) -> str:
    """A byte count in the units the spec most likely used: binary when it divides evenly, decimal otherwise."""
    if not n:
        return "-"
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30)):
        if n >= size and n % size == 0:  # written in binary units in the spec: show it the same way
            return f"{n // size:,} {unit}"
    for unit, size in (("PB", 10**15), ("TB", 10**12), ("GB", 10**9)):
        if n >= size and n % size == 0:
            return f"{n // size:,} {unit}"
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,} B"
