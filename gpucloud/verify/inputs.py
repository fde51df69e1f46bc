"""Files that verify reads besides the spec (known_hosts, the address map, an ibnetdiscover dump), read with limits.

The spec loader bounds what it reads; these files come from the same operators and deserve the same care: a wrong
path (``/dev/zero``, a binary, a disk image) must end in a clear error with exit code 2, not in a process that
grows until the kernel kills it. Every file is read line by line in binary with a bound on the line length and on
the total size, so memory stays bounded whatever the file holds, and every error names ``file:line``.

Limits: ``MAX_LINE`` bytes per line (the longest known_hosts line, an RSA-16384 key with a long host list, is a few
KiB), and ``DEFAULT_MAX_MIB`` MiB per file, which the commands' ``--max-input-mib`` raises. An ibnetdiscover dump of
a 12,500-node fabric is tens of MB.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

MAX_LINE = 64 * 1024
DEFAULT_MAX_MIB = 256


class InputError(Exception):
    """A verify input cannot be used; a user mistake, reported with exit code 2."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


def lines(path: Path, what: str, max_mib: int = DEFAULT_MAX_MIB, strict_utf8: bool = False
          ) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) of ``path``; raises InputError for an unreadable, oversized or
    (with ``strict_utf8``) undecodable file, naming file:line."""
    limit = max_mib * 1024 * 1024
    total = 0
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    with fh:
        lineno = 0
        while True:
            try:
                raw = fh.readline(MAX_LINE + 1)
            except OSError as exc:
                raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
            if not raw:
                return
            lineno += 1
            total += len(raw)
            if len(raw) > MAX_LINE:
                raise InputError(f"{path}:{lineno}: line longer than {MAX_LINE:,} bytes (is this the {what}?)",
                                 f"check the path: a {what} is a text file of short lines")
            if total > limit:
                raise InputError(f"{path}:{lineno}: {what} is larger than {max_mib:,} MiB",
                                 f"check the path; if the file is right, raise the limit with --max-input-mib")
            if b"\0" in raw:
                raise InputError(f"{path}:{lineno}: {what} holds NUL bytes (is this the {what}?)",
                                 f"check the path: a {what} is a text file")
            try:
                line = raw.decode("utf-8", "strict" if strict_utf8 else "replace")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno}: {what} is not UTF-8 text (byte {exc.start + 1} of the line)",
                                 f"save the {what} as UTF-8") from None
            yield lineno, line.rstrip("\r\n")


_PAIR = re.compile(r"""^\s*(?P<q1>["']?)(?P<host>[^\s"':#{}\[\],]+)(?P=q1)\s*:\s+"""
                   r"""(?P<q2>["']?)(?P<addr>[^\s"'#{}\[\],]+)(?P=q2)\s*(?:#.*)?$""")


def address_file(path: Path, max_mib: int = DEFAULT_MAX_MIB) -> dict[str, str]:
    """The address map: one ``host: address`` per line (a flat YAML mapping; comments, blank lines and a leading
    ``---`` allowed). Anything else is an error naming its line, so a wrong file never reaches a YAML parser's
    recursion or an encoding error."""
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for lineno, line in lines(path, "address map", max_mib, strict_utf8=True):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or (stripped == "---" and not out):
            continue
        m = _PAIR.match(line)
        if m is None:
            raise InputError(f"{path}:{lineno}: the address map must be a mapping of host names to addresses, "
                             f"one 'host: address' per line; got {stripped[:60]!r}",
                             "write e.g. 'gpu001: 10.0.0.5'")
        host = m.group("host")
        if host in first:
            raise InputError(f"{path}:{lineno}: {host} is listed twice (first on line {first[host]})",
                             "keep one address per host")
        first[host] = lineno
        out[host] = m.group("addr")
    return out
