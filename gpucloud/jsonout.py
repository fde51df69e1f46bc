"""Canonical JSON for plan files: sorted keys, two-space indent, and every flat record on one line.

A host, a cable or a finding is one line, so a pull-request diff shows one line per changed record and a
100,000-GPU plan stays a few MB.
"""

from __future__ import annotations

import json
from typing import Any

_SCALARS = (str, int, float, bool, type(None))


def _flat(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, _SCALARS) for v in value)
    if isinstance(value, dict):
        return all(isinstance(v, _SCALARS) or (isinstance(v, (list, tuple)) and
                                                all(isinstance(x, _SCALARS) for x in v)) for v in value.values())
    return False


def _emit(value: Any, indent: int, out: list[str]) -> None:
    if _flat(value) and not (isinstance(value, dict) and len(value) > 12):
        out.append(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": ")))
        return
    pad = "  " * (indent + 1)
    end = "  " * indent
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{\n")
        for i, key in enumerate(sorted(value)):
            out.append(f"{pad}{json.dumps(str(key), ensure_ascii=False)}: ")
            _emit(value[key], indent + 1, out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append(end + "}")
        return
    if isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        out.append("[\n")
        for i, item in enumerate(value):
            out.append(pad)
            _emit(item, indent + 1, out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append(end + "]")
        return
    out.append(json.dumps(value, ensure_ascii=False))


def dumps(value: Any) -> str:
    out: list[str] = []
    _emit(value, 0, out)
    out.append("\n")
    return "".join(out)


def dump_bytes(value: Any) -> bytes:
    return dumps(value).encode("utf-8")
