"""Every spec under tests/specs/ through the real CLI: invalid cases report the expected finding at the expected
line and JSON path with the expected exit code; valid specs and the examples in clusters/ pass; nothing prints a
traceback. Cases are picked up by file name, so a new file is a new test.

The CLI is run once per expected exit code over all the files that expect it (a process per file would cost a
minute on a small machine): the group's exit code must be the expected one, and each file's own exit code follows
from its findings by the CLI's rule (2 when the file cannot be read as a spec, 1 for errors, else 0).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT, run_cli

SPECS = ROOT / "tests" / "specs"
INVALID = sorted([*(SPECS / "invalid").glob("*.yaml"), *(SPECS / "invalid").glob("*.yml")])
VALID = sorted([*(SPECS / "valid").glob("*.yaml"), *(SPECS / "valid").glob("*.yml")])
_HEADER = re.compile(rb"^# expect: (.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")
UNREADABLE = ("yaml-", "spec-")


def expectation(path: Path) -> dict[str, str]:
    first = path.read_bytes().split(b"\n", 1)[0]
    m = _HEADER.match(first)
    assert m, f"{path.name}: the first line must be '# expect: exit=N check=ID line=N path=$...'"
    fields = dict(_FIELD.findall(m.group(1).decode("utf-8")))
    assert "exit" in fields and "check" in fields, f"{path.name}: the header needs at least exit= and check="
    return fields


def exit_code(findings: list[dict]) -> int:
    errors = [f for f in findings if f["level"] == "error"]
    if any(f["check"].startswith(UNREADABLE) for f in errors):
        return 2
    return 1 if errors else 0


@lru_cache(maxsize=None)
def group_run(files: tuple[str, ...]) -> tuple[int, dict[str, list[dict]], str]:
    proc = run_cli("validate", "--output", "json", *files)
    results = json.loads(proc.stdout)["results"] if proc.stdout.strip() else []
    return proc.returncode, {r["file"]: r["findings"] for r in results}, proc.stderr


def _group(expected_exit: str) -> tuple[str, ...]:
    return tuple(str(p) for p in INVALID if expectation(p)["exit"] == expected_exit)


def test_enough_invalid_cases():
    assert len(INVALID) >= 40


@pytest.mark.parametrize("expected", ["0", "1", "2"])
def test_group_exit_code(expected):
    files = _group(expected)
    if not files:
        pytest.skip(f"no case expects exit {expected}")
    rc, _, stderr = group_run(files)
    assert "Traceback" not in stderr, stderr
    assert rc == int(expected)


@pytest.mark.parametrize("case", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_case(case: Path):
    want = expectation(case)
    rc, by_file, stderr = group_run(_group(want["exit"]))
    assert "Traceback" not in stderr, stderr
    found = by_file[str(case)]
    assert exit_code(found) == int(want["exit"]), [(f["check"], f["level"], f["line"]) for f in found]
    matching = [f for f in found if f["check"] == want["check"]]
    assert matching, f"no {want['check']} finding; got {[(f['check'], f['line'], f['path']) for f in found]}"
    if "line" in want:
        assert any(f["line"] == int(want["line"]) for f in matching), \
            f"{want['check']} on lines {[f['line'] for f in matching]}, expected {want['line']}"
    if "path" in want:
        assert any(f["path"] == want["path"] for f in matching), \
            f"{want['check']} at {[f['path'] for f in matching]}, expected {want['path']}"
    for f in matching:
        assert f["message"] and f["hint"], f"{want['check']} needs a message and a hint"
        assert f["file"] == str(case) and f["col"] >= 1


def test_invalid_cases_as_text():
    """All invalid files in one run, text output: each is reported, as file:line:col with the JSON path."""
    proc = run_cli("validate", *map(str, INVALID))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2  # some files cannot be read as specs at all
    for case in INVALID:
        assert f"{case}: invalid" in proc.stdout or f"{case}: valid" in proc.stdout
    for case in INVALID:
        want = expectation(case)
        if "line" in want:
            assert re.search(rf"^{re.escape(str(case))}:{want['line']}:\d+: \w+\[{re.escape(want['check'])}\] \$",
                             proc.stderr, re.M), case.name


def test_single_file_exit_codes():
    """Per-file runs for one case of each kind, so the grouping above cannot hide a wrong exit code."""
    for expected in ("0", "1", "2"):
        files = _group(expected)
        if files:
            assert run_cli("validate", files[0]).returncode == int(expected), files[0]


def test_valid_specs():
    files = [str(p) for p in VALID + EXAMPLES]
    rc, by_file, stderr = group_run(tuple(files))
    assert "Traceback" not in stderr
    errors = {f: [x for x in found if x["level"] == "error"] for f, found in by_file.items()}
    assert rc == 0, {f: e for f, e in errors.items() if e}
    assert set(by_file) == set(files)
    assert len(VALID) >= 3
