"""Writing a plan folder: the old or the new plan at every instant, replaces only an earlier plan and nothing else,
cleans what killed runs left behind."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import CLUSTERS, ROOT, run_cli
from gpucloud import write
from gpucloud.write import MANIFEST, RefusedOutput, is_plan_folder, write_tree

PLAN = json.dumps({"generator": "gpucloud", "format": 1}).encode()


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_writes_files_with_plain_modes(tmp_path):
    out = tmp_path / "plan"
    write_tree(out, {"plan.json": PLAN, "slurm/slurm.conf": b"ClusterName=t\n"})
    assert _files(out) == ["plan.json", "slurm/slurm.conf"]
    assert stat.S_IMODE((out / "slurm" / "slurm.conf").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "slurm").stat().st_mode) == 0o755
    assert is_plan_folder(out)
    assert _leftovers(tmp_path) == []


def test_replaces_an_earlier_plan_entirely(tmp_path):
    out = tmp_path / "plan"
    write_tree(out, {"plan.json": PLAN, "old.txt": b"old"})
    write_tree(out, {"plan.json": PLAN, "new.txt": b"new"})
    assert _files(out) == ["new.txt", "plan.json"]
    assert _leftovers(tmp_path) == []


def test_an_empty_folder_is_fine(tmp_path):
    out = tmp_path / "plan"
    out.mkdir()
    write_tree(out, {"plan.json": PLAN})
    assert _files(out) == ["plan.json"]


@pytest.mark.parametrize("marker", [None, b"not json", b'{"generator": "someone-else"}', b"[1, 2]"])
def test_refuses_a_folder_that_is_not_a_plan(tmp_path, marker):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_bytes(b"precious")
    if marker is not None:
        (out / "plan.json").write_bytes(marker)
    before = {p: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RefusedOutput):
        write_tree(out, {"plan.json": PLAN})
    assert {p: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


def test_refuses_a_file(tmp_path):
    out = tmp_path / "plan"
    out.write_bytes(b"x")
    with pytest.raises(RefusedOutput):
        write_tree(out, {"plan.json": PLAN})
    assert out.read_bytes() == b"x"


def test_a_path_outside_the_folder_writes_nothing(tmp_path):
    out = tmp_path / "plan"
    with pytest.raises(ValueError):
        write_tree(out, {"plan.json": PLAN, "../escape.txt": b"x"})
    assert not out.exists() and not (tmp_path / "escape.txt").exists()
    assert _leftovers(tmp_path) == []


def test_a_failure_half_way_keeps_the_earlier_plan(tmp_path):
    out = tmp_path / "plan"
    write_tree(out, {"plan.json": PLAN, "a.txt": b"first"})
    with pytest.raises(OSError):
        write_tree(out, {"plan.json": PLAN, "a": b"file", "a/b": b"cannot be both a file and a folder"})
    assert (out / "a.txt").read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


# --- the old or the new plan at every instant -------------------------------------------------------------------

def _plan(tag: str) -> dict[str, bytes]:
    return {"plan.json": PLAN, "version.txt": tag.encode(), "slurm/slurm.conf": f"# {tag}\n".encode()}


def _is_complete(out: Path, tag: str) -> bool:
    return (is_plan_folder(out) and (out / "version.txt").read_bytes() == tag.encode()
            and (out / "slurm" / "slurm.conf").read_bytes() == f"# {tag}\n".encode())


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from gpucloud import write
    out, step, exchange = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "exchange"
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    real_rename, real_exchange, renames = os.rename, write._exchange, []
    def rename(a, b):
        renames.append(a)
        if step == f"rename{len(renames)}":
            die()
        real_rename(a, b)
    def exchange_step(a, b):
        if not exchange:
            raise write._NoExchange()
        if step == "exchange":
            die()
        real_exchange(a, b)
        if step == "after-exchange":
            die()
    os.rename = rename
    if hasattr(write, "_exchange"):
        write._exchange = exchange_step
    write.write_tree(out, {"plan.json": %r, "version.txt": b"new", "slurm/slurm.conf": b"# new\\n"})
""" % PLAN)


def _killed_write(out: Path, step: str, exchange: bool = True) -> int:
    """Run write_tree in a process that SIGKILLs itself at ``step``: nothing of ours runs after that point."""
    res = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(out), step, "exchange" if exchange else "two-renames"],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    return res.returncode


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
@pytest.mark.parametrize("step", ["rename1", "rename2", "exchange", "after-exchange"])
def test_a_kill_at_any_step_leaves_a_complete_plan(tmp_path, step, exchange):
    """Today's replacement was two renames with nothing at --out between them; each step is killed in turn."""
    out = tmp_path / "plan"
    write_tree(out, _plan("old"))
    rc = _killed_write(out, step, exchange)
    if rc != -signal.SIGKILL:
        assert rc == 0 and _is_complete(out, "new")  # the run never reached that step
    elif not exchange and step == "rename2":
        # Without RENAME_EXCHANGE the one window: the old plan is complete next to --out, and is put back first.
        assert not out.exists()
        (aside,) = [p for p in tmp_path.iterdir() if ".gpucloud-old-" in p.name]
        assert _is_complete(aside, "old")
        write.clean_leftovers(out)
        assert _is_complete(out, "old")
    else:
        assert _is_complete(out, "old") or _is_complete(out, "new"), sorted(os.listdir(tmp_path))
    # The next run replaces whatever is there and removes what the killed run left behind.
    write_tree(out, _plan("next"))
    assert _is_complete(out, "next")
    assert _leftovers(tmp_path) == []


def test_the_exchange_is_used_here(tmp_path):
    """The test machines' file systems support RENAME_EXCHANGE, so the tests above cover it, not only the fallback."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    write._exchange(a, b)
    assert (b / "x").read_text() == "a" and not (a / "x").exists()


def test_an_interruption_inside_the_fallback_puts_the_old_plan_back(tmp_path, monkeypatch):
    out = tmp_path / "plan"
    write_tree(out, _plan("old"))
    monkeypatch.setattr(write, "_exchange", lambda a, b: (_ for _ in ()).throw(write._NoExchange()))
    real, calls = os.rename, []

    def rename(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(a, b)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        write_tree(out, _plan("new"))
    assert _is_complete(out, "old")
    assert _leftovers(tmp_path) == []


# --- leftovers of killed runs -----------------------------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_runs_are_removed_and_a_running_writer_is_left_alone(tmp_path):
    out = tmp_path / "plan"
    write_tree(out, _plan("old"))
    dead = _dead_pid()
    for name in (f".plan.gpucloud-new-{dead}-abc123", f".plan.gpucloud-old-{dead}-def456",
                 ".plan.tmp-k3j4h5g6", ".plan.old-a1b2c3d4"):  # the last two: names of earlier versions
        (tmp_path / name / "slurm").mkdir(parents=True)
        (tmp_path / name / "plan.json").write_bytes(PLAN)
    live = subprocess.Popen(["sleep", "60"])
    try:
        running = tmp_path / f".plan.gpucloud-new-{live.pid}-zzz999"
        running.mkdir()
        unrelated = [tmp_path / ".plan.tmp-notours", tmp_path / ".other.tmp-a1b2c3d4", tmp_path / "notes"]
        for path in unrelated:
            path.mkdir()
        write_tree(out, _plan("new"))
        assert _is_complete(out, "new")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["plan", running.name] + [p.name for p in unrelated])
    finally:
        live.kill()
        live.wait()


def test_an_old_plan_left_aside_by_an_earlier_version_is_put_back(tmp_path):
    """Today's code killed between its renames leaves .plan.old-XXXXXXXX and no plan: the next run restores it."""
    aside = tmp_path / ".plan.old-q1w2e3r4"
    write_tree(aside, _plan("old"))
    write.clean_leftovers(tmp_path / "plan")
    assert _is_complete(tmp_path / "plan", "old")


# --- symbolic links ---------------------------------------------------------------------------------------------

def test_a_symlink_to_a_plan_replaces_the_plan_it_points_to(tmp_path):
    real = tmp_path / "plans" / "current"
    write_tree(real, _plan("old"))
    out = tmp_path / "plan"
    out.symlink_to(real)
    write_tree(out, _plan("new"))
    assert out.is_symlink() and out.resolve() == real.resolve()
    assert _is_complete(real, "new")
    assert _leftovers(tmp_path) == [] and _leftovers(real.parent) == []


def test_cli_writes_through_a_symlink_to_a_plan(tmp_path):
    real = tmp_path / "real"
    assert run_cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(real)).returncode == 0
    out = tmp_path / "plan"
    out.symlink_to(real)
    proc = run_cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_symlink() and is_plan_folder(real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan", "real"]


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_a_symlink_loop_or_a_dangling_link_is_a_located_error(tmp_path, kind):
    out = tmp_path / "plan"
    if kind == "loop":
        out.symlink_to(tmp_path / "other")
        (tmp_path / "other").symlink_to(out)
    else:
        out.symlink_to(tmp_path / "missing")
    with pytest.raises(RefusedOutput) as exc:
        write_tree(out, _plan("new"))
    assert str(out) in str(exc.value)
    proc = run_cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: refusing to write the plan: {out}" in proc.stderr and "hint:" in proc.stderr
    assert out.is_symlink() and not (tmp_path / "missing").exists()


# --- files that are not the plan's ------------------------------------------------------------------------------

def test_a_foreign_file_in_a_plan_folder_is_refused_by_name(tmp_path):
    out = tmp_path / "plan"
    write_tree(out, _plan("old"))
    (out / "slurm" / "notes.txt").write_text("mine")
    (out / "link").symlink_to("/etc/hostname")
    before = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(RefusedOutput) as exc:
        write_tree(out, _plan("new"))
    assert "2 file(s) that are not part of it: link, slurm/notes.txt" in str(exc.value)
    assert {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _leftovers(tmp_path) == []


def test_cli_names_the_foreign_file_and_keeps_it(tmp_path):
    out = tmp_path / "plan"
    assert run_cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(out)).returncode == 0
    (out / "thesis.tex").write_text("precious")
    proc = run_cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(out))
    assert proc.returncode == 2 and "thesis.tex" in proc.stderr and "move them out" in proc.stderr, proc.stderr
    assert (out / "thesis.tex").read_text() == "precious" and is_plan_folder(out)


def test_a_plan_without_a_file_list_is_replaced_only_when_it_holds_the_new_plans_files(tmp_path):
    """Plans written before plan-files.txt: the files the new plan writes stand in for the list."""
    out = tmp_path / "plan"
    out.mkdir()
    for rel, data in _plan("old").items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    write_tree(out, _plan("new"))
    assert _is_complete(out, "new")
    (out / MANIFEST).unlink()
    (out / "stray.txt").write_text("?")
    with pytest.raises(RefusedOutput, match="stray.txt"):
        write_tree(out, _plan("newer"))
    assert _is_complete(out, "new")


def test_the_file_list_is_deterministic_and_lists_every_file(tmp_path):
    write_tree(tmp_path / "a", {"z.txt": b"", "plan.json": PLAN, "d/e.txt": b""})
    write_tree(tmp_path / "b", {"d/e.txt": b"", "z.txt": b"", "plan.json": PLAN})
    text = (tmp_path / "a" / MANIFEST).read_text()
    assert text == (tmp_path / "b" / MANIFEST).read_text()
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["d/e.txt", "plan.json", "z.txt"]


def test_a_relative_out_with_dots_names_the_folder_itself(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    write_tree(Path("../plans/x/../lab"), _plan("new"))
    assert _is_complete(tmp_path / "plans" / "lab", "new")
    assert sorted(p.name for p in (tmp_path / "plans").iterdir()) == ["lab"]
