"""Exit codes: every documented outcome has its own, and an internal error (a bug) never shares one with a result.

The example specs and every invalid case go through the commands a CI job runs, in process through
``gpucloud.cli.main`` (the same function ``python -m gpucloud`` and the ``gpucloud`` script call); none may end in
the internal-error code or print a traceback. A forced exception in a real process must end in exactly that code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gpucloud.commands.diff  # noqa: F401  - imported now: it binds sys.stderr as a default argument, and capsys
# would otherwise hand it a stream that is closed once the first test ends
from conftest import CLUSTERS, EXAMPLES, ROOT
from gpucloud import cli

INVALID = sorted((ROOT / "tests" / "specs" / "invalid").glob("*.yaml"))
VALID = sorted((ROOT / "tests" / "specs" / "valid").glob("*.yaml"))
DOCUMENTED = {0, 1, 2, 3}
# Writing the largest plans takes seconds each; the plan golden tests cover them, here the code paths matter.
PLANNED = [p for p in EXAMPLES if p.stem in ("lab", "ishikari")] + VALID


def _expected_exit(spec: Path) -> int:
    """The exit code of `validate` from the case's header line (`# expect: exit=N ...`)."""
    header = spec.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return int(header.split("exit=", 1)[1].split()[0])


def _exit_code(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["gpucloud", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    code = exc.value.code
    code = 0 if code is None else code
    return code, capsys.readouterr().err


def _assert_documented(code: int, err: str, what: str) -> None:
    assert code != cli.EXIT_INTERNAL and "Traceback" not in err, f"{what}: internal error\n{err[-3000:]}"
    assert code in DOCUMENTED, f"{what}: undocumented exit code {code}\n{err[-2000:]}"


@pytest.mark.parametrize("spec", INVALID, ids=lambda p: p.stem)
def test_invalid_specs_never_end_in_the_internal_code(spec: Path, tmp_path, monkeypatch, capsys):
    commands = [("validate", str(spec)), ("hosts", str(spec))]
    if _expected_exit(spec) != 0:
        # Cases with warnings only plan like valid specs (some of them large): the valid specs cover that path.
        commands += [("plan", str(spec), "--out", str(tmp_path / "plan")), ("diff", str(spec), str(spec))]
    for args in commands:
        code, err = _exit_code(monkeypatch, capsys, *args)
        _assert_documented(code, err, " ".join(args))
        if _expected_exit(spec) != 0:
            assert code != 0, f"{' '.join(args)} accepted an invalid spec"
    assert not (tmp_path / "plan").exists()


@pytest.mark.parametrize("spec", EXAMPLES + VALID, ids=lambda p: p.stem)
def test_valid_specs_never_end_in_the_internal_code(spec: Path, monkeypatch, capsys):
    for args in (("validate", str(spec)), ("hosts", str(spec)), ("hosts", "-o", "csv", str(spec))):
        code, err = _exit_code(monkeypatch, capsys, *args)
        _assert_documented(code, err, " ".join(args))
        assert code == 0, f"{' '.join(args)}: exit {code}\n{err[-2000:]}"


@pytest.mark.parametrize("spec", PLANNED, ids=lambda p: p.stem)
def test_plan_and_diff_never_end_in_the_internal_code(spec: Path, tmp_path, monkeypatch, capsys):
    code, err = _exit_code(monkeypatch, capsys, "plan", str(spec), "--out", str(tmp_path / "plan"))
    _assert_documented(code, err, f"plan {spec}")
    assert code == 0
    code, err = _exit_code(monkeypatch, capsys, "diff", str(tmp_path / "plan"), str(spec))
    _assert_documented(code, err, f"diff {spec}")
    assert code == 0


def test_usage_errors_are_2_not_internal(tmp_path, monkeypatch, capsys):
    for args in (("validate", str(tmp_path / "missing.yaml")), ("plan", str(CLUSTERS / "lab.yaml")),
                 ("no-such-command",), ("diff", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")),
                 ("plan", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out"))):
        code, err = _exit_code(monkeypatch, capsys, *args)
        _assert_documented(code, err, " ".join(args))
        assert code == 2, f"{' '.join(args)}: exit {code}\n{err}"


def test_forced_internal_error_exits_70_with_traceback_and_message():
    """A real process started as `python -m gpucloud` (runpy, as -m does): an exception escaping a command ends in
    70, says it is a bug and shows where it happened."""
    code = ("import runpy, sys, gpucloud.pipeline as p\n"
            "def boom(*a, **k):\n    raise RuntimeError('forced failure')\n"
            "p.check_spec = boom\n"
            f"sys.argv = ['gpucloud', 'validate', {str(CLUSTERS / 'lab.yaml')!r}]\n"
            "runpy.run_module('gpucloud', run_name='__main__', alter_sys=True)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == cli.EXIT_INTERNAL == 70, res.stderr
    assert "Traceback (most recent call last)" in res.stderr
    assert "RuntimeError: forced failure" in res.stderr
    assert "internal error (exit 70): this is a bug in gpucloud" in res.stderr
    assert res.stdout == ""



def test_an_interrupt_exits_130_not_1(monkeypatch, capsys):
    """Ctrl-C (or a CI job cancelled with SIGINT) must not read as findings either."""
    import gpucloud.pipeline

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(gpucloud.pipeline, "check_spec", interrupted)
    code, err = _exit_code(monkeypatch, capsys, "validate", str(CLUSTERS / "lab.yaml"))
    assert code == 130 and "Traceback" not in err
