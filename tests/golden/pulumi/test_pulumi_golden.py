"""Golden copies of the plan's pulumi/ folder for the examples (GPUCLOUD_UPDATE_GOLDEN=1 rewrites them).

Small clusters are kept whole; for a split cluster the stack index, the shared stack and the last pod (the others
are the same code over other hosts). Hashes (layer triggers, stack input digests) are masked: they follow every
byte the other renderers write and are tested where they are made (tests/unit/test_stack.py: a trigger moves exactly
when its layer's inputs move), so this file changes only when the stack itself does.
"""

from __future__ import annotations

import re

import pytest

from conftest import CLUSTERS, assert_golden, run_cli
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import pulumi as pulumi_render
from gpucloud.render import rendered_files

pytest.importorskip("pulumi")

HERE = __import__("pathlib").Path(__file__).resolve().parent
EXAMPLES = {"lab": None, "ishikari": None, "hokkaido-10k": ("shared", "h200-pod001")}
SHA256 = re.compile(rb"\b[0-9a-f]{64}\b")


def masked(data: bytes) -> bytes:
    return SHA256.sub(b"<sha256>", data)


def rendered(name: str) -> dict[str, bytes]:
    checked = check_spec(CLUSTERS / f"{name}.yaml")
    plan = build_plan(checked.spec, tuple(checked.findings))
    return pulumi_render.render(plan, rendered_files(plan))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_pulumi_folder(name, monkeypatch, tmp_path):
    monkeypatch.setenv("GPUCLOUD_CACHE_DIR", str(tmp_path))
    files = rendered(name)
    keep = EXAMPLES[name]
    wanted = sorted(files) if keep is None else ["pulumi/stacks.json"] + [f"pulumi/{name}-{k}.json" for k in keep]
    for path in wanted:
        assert_golden(HERE / name / path.split("/", 1)[1], masked(files[path]))
    # Secrets never reach the folder, whatever the stack.
    assert not any(b"dry-run-placeholder" in data for data in files.values())


def test_plan_writes_the_same_folder_twice(tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"plan{i}"
        result = run_cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(out),
                         env={"GPUCLOUD_CACHE_DIR": str(tmp_path / "cache")})
        assert result.returncode == 0, result.stderr
        outs.append({p.name: p.read_bytes() for p in sorted((out / "pulumi").iterdir())})
    assert outs[0] == outs[1]
    assert sorted(outs[0]) == ["lab.json", "stacks.json"]
    assert masked(outs[0]["lab.json"]) == (HERE / "lab" / "lab.json").read_bytes()
