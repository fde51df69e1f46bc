"""Writing a plan folder: atomic, replaces only an earlier plan, never leaves temporary folders behind."""

from __future__ import annotations

import json
import stat

import pytest

from gpucloud.write import RefusedOutput, is_plan_folder, write_tree

PLAN = json.dumps({"generator": "gpucloud", "format": 1}).encode()


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


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
