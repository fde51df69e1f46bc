"""The rendered Lustre quota script, run twice against a recording stand-in for lfs: the first run tags projects and
sets limits, the second only reads. The stand-in keeps project tags and limits in a JSON file and logs every call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import CLUSTERS
from gpucloud.plan import build_plan
from gpucloud.render.storage import quota_scripts
from gpucloud.spec import load

# Prints what the real lfs prints for the three subcommands the script uses (formats from lfs-project(1) and
# lfs-quota(1)): 'project -d DIR' -> "PROJID FLAG DIR"; 'quota -q -p ID MNT' -> one row of 9 columns.
FAKE_LFS = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    state_path, log = os.environ["LFS_STATE"], os.environ["LFS_LOG"]
    state = json.load(open(state_path)) if os.path.exists(state_path) else {{"projects": {{}}, "limits": {{}}, "used": {{}}}}
    args = sys.argv[1:]
    with open(log, "a") as fh:
        fh.write(" ".join(args) + "\\n")
    if args[:2] == ["project", "-d"]:
        pid, flag = state["projects"].get(args[2], [0, "-"])
        print(f"{{pid}} {{flag}} {{args[2]}}")
    elif args[:1] == ["project"] and "-p" in args:
        state["projects"][args[-1]] = [int(args[args.index("-p") + 1]), "P" if "-s" in args else "-"]
    elif args[:3] == ["quota", "-q", "-p"]:
        pid = args[3]
        b, i = state["limits"].get(pid, [0, 0])
        used = state["used"].get(pid, 4)
        star = "*" if b and used > b else ""
        print(f"  {{args[4]}}  {{used}}{{star}}  0  {{b}}  -  1  0  {{i}}  -")
    elif args[:1] == ["setquota"]:
        pid = args[args.index("-p") + 1]
        state["limits"][pid] = [int(args[args.index("-B") + 1]), int(args[args.index("-I") + 1])]
    else:
        sys.exit("unexpected lfs call: " + " ".join(args))
    json.dump(state, open(state_path, "w"))
""")


@pytest.fixture
def fake_lfs(tmp_path):
    lfs = tmp_path / "lfs"
    lfs.write_text(FAKE_LFS.format(python=sys.executable))
    lfs.chmod(0o755)
    return lfs


def script_for(name: str, spec_name: str = "ishikari") -> str:
    spec = load(CLUSTERS / f"{spec_name}.yaml").spec
    plan = build_plan(spec)
    return quota_scripts(plan)[f"storage/quota/{name}.sh"].decode()


def run(script_path, tmp_path, lfs, **env):
    return subprocess.run(["sh", str(script_path)], capture_output=True, text=True, timeout=60, env={
        **os.environ, "MOUNT": str(tmp_path / "lustre"), "LFS": str(lfs), "LFS_STATE": str(tmp_path / "state.json"),
        "LFS_LOG": str(tmp_path / "lfs.log"), **env})


def writes(log_text: str) -> list[str]:
    return [line for line in log_text.splitlines() if line.startswith(("setquota", "project -p"))]


def test_quota_script_is_idempotent(tmp_path, fake_lfs):
    script = tmp_path / "scratch.sh"
    script.write_text(script_for("scratch"))
    first = run(script, tmp_path, fake_lfs)
    assert first.returncode == 0, first.stderr
    log = (tmp_path / "lfs.log").read_text()
    state = json.loads((tmp_path / "state.json").read_text())
    mount = tmp_path / "lustre"
    # Every tenant with a scratch quota: its tree, its project tag with inheritance, and its limit in KiB.
    assert sorted(p.name for p in mount.iterdir()) == ["llm-lab", "startup-b", "univ-a"]
    assert sorted(p.name for p in (mount / "llm-lab").iterdir()) == ["llm01", "llm02", "llm03"]
    tags = {os.path.basename(d): v for d, v in state["projects"].items()}
    assert {t: flag for t, (_, flag) in tags.items()} == {"llm-lab": "P", "startup-b": "P", "univ-a": "P"}
    assert state["limits"][str(tags["llm-lab"][0])] == [4 * 10**15 // 1024, 0]
    assert len(writes(log)) == 6
    assert f"project -p {tags['llm-lab'][0]} -s -r {mount}/llm-lab" in log

    (tmp_path / "lfs.log").write_text("")
    second = run(script, tmp_path, fake_lfs)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""  # nothing created, tagged or set
    log = (tmp_path / "lfs.log").read_text()
    assert writes(log) == [] and log.count("quota -q -p") == 3 and log.count("project -d") == 3


def test_quota_below_use_is_refused(tmp_path, fake_lfs):
    script = tmp_path / "scratch.sh"
    script.write_text(script_for("scratch"))
    assert run(script, tmp_path, fake_lfs).returncode == 0
    state = json.loads((tmp_path / "state.json").read_text())
    pid = next(str(v[0]) for d, v in state["projects"].items() if d.endswith("startup-b"))
    state["used"][pid] = 2 * 10**15 // 1024  # startup-b already holds 2 PB
    (tmp_path / "state.json").write_text(json.dumps(state))
    shrunk = tmp_path / "shrunk.sh"
    shrunk.write_text(script_for("scratch").replace(f"tenant startup-b {pid} {10**15 // 1024}",
                                                    f"tenant startup-b {pid} {10**14 // 1024}"))
    refused = run(shrunk, tmp_path, fake_lfs)
    assert refused.returncode == 1 and "refused: project" in refused.stderr and "ALLOW_SHRINK=1" in refused.stderr
    assert json.loads((tmp_path / "state.json").read_text())["limits"][pid] == [10**15 // 1024, 0]
    forced = run(shrunk, tmp_path, fake_lfs, ALLOW_SHRINK="1")
    assert forced.returncode == 0
    assert json.loads((tmp_path / "state.json").read_text())["limits"][pid] == [10**14 // 1024, 0]
