"""gpucloud diff and pr-comment through the real CLI: inputs (specs, plan folders, a git base), output formats and
the exit codes CI gates on."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS, ROOT, assert_golden

GOLDEN = ROOT / "tests" / "golden" / "review"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "-c", "init.defaultBranch=main",
                    *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A users' repository with the lab spec committed on main."""
    (tmp_path / "clusters").mkdir()
    shutil.copy(CLUSTERS / "lab.yaml", tmp_path / "clusters" / "lab.yaml")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "clusters/lab.yaml")
    git(tmp_path, "commit", "-q", "-m", "lab")
    return tmp_path


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def test_spec_and_its_plan_folder_are_the_same(cli, tmp_path):
    out = tmp_path / "plan"
    assert cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(out)).returncode == 0
    proc = cli("diff", str(out), str(CLUSTERS / "lab.yaml"))
    no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No changes." in proc.stdout


def test_base_revision_driver_change_as_json(cli, repo):
    spec = repo / "clusters" / "lab.yaml"
    edit(spec, lambda d: d["software"].update(nvidia_driver="550.127.05"))
    proc = cli("diff", "--base", "HEAD", str(spec), "--output", "json", cwd=repo)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["old"] == "HEAD:clusters/lab.yaml" and doc["changed"] and not doc["destroys_data"]
    changes = [c for s in doc["steps"] for c in s["changes"]]
    driver = next(c for c in changes if c["field"] == "nvidia_driver")
    assert (driver["impact"], driver["hosts"], driver["step"]) == ("drain-reboot", "gpu[01-02]", 4)


def test_removing_a_filesystem_exits_3(cli, repo):
    spec = repo / "clusters" / "lab.yaml"
    edit(spec, lambda d: d.update(storage=[fs for fs in d["storage"] if fs["name"] != "home"]))
    proc = cli("diff", "--base", "HEAD", str(spec), cwd=repo)
    assert proc.returncode == 3, proc.stderr
    assert "| destroys data | remove filesystem home |" in proc.stdout
    assert "**1. Back up**" in proc.stdout


def test_a_new_spec_diffs_against_nothing(cli, repo):
    new = repo / "clusters" / "lab2.yaml"
    shutil.copy(CLUSTERS / "lab.yaml", new)
    proc = cli("diff", "--base", "HEAD", str(new), cwd=repo)
    assert proc.returncode == 1 and "(new spec)" in proc.stdout and "add pool gpu" in proc.stdout


@pytest.mark.parametrize("args,words", [
    (["--base", "no-such-ref", "clusters/lab.yaml"], "unknown git revision 'no-such-ref'"),
    (["clusters/lab.yaml"], "diff needs OLD and NEW"),
    (["clusters/lab.yaml", "missing.yaml"], "missing.yaml does not exist"),
    (["--base", "HEAD", "gone/missing.yaml"], "gone/missing.yaml does not exist"),
    (["--base", "HEAD", "clusters/lab.yaml", "clusters/lab.yaml"], "--base takes exactly one spec"),
    ([".", "clusters/lab.yaml"], "holds no gpucloud plan.json"),
])
def test_usage_errors_exit_2_with_a_hint(cli, repo, args, words):
    proc = cli("diff", *args, cwd=repo)
    no_traceback(proc)
    assert proc.returncode == 2 and words in proc.stderr and "hint:" in proc.stderr


def test_a_spec_with_errors_exits_2_pointing_at_the_line(cli, repo):
    spec = repo / "clusters" / "lab.yaml"
    spec.write_text(spec.read_text().replace("count: 2\n", "count: -2\n", 1))
    proc = cli("diff", "--base", "HEAD", str(spec), cwd=repo)
    no_traceback(proc)
    assert proc.returncode == 2
    line = spec.read_text().splitlines().index("    count: -2") + 1
    assert f"lab.yaml:{line}:" in proc.stderr and "$.node_pools[0].count" in proc.stderr
    assert "the spec has errors" in proc.stderr


def test_pr_comment_body_and_gate(cli, repo):
    spec = repo / "clusters" / "lab.yaml"

    def change(d):
        d["slurm"]["partitions"][1]["max_time"] = "02:00:00"
        d["storage"] = [fs for fs in d["storage"] if fs["name"] != "home"]
    edit(spec, change)
    body = repo / "comment.md"
    proc = cli("pr-comment", "clusters/lab.yaml", "--base", "HEAD", "--out", str(body), cwd=repo)
    no_traceback(proc)
    assert proc.returncode == 3, proc.stderr
    text = body.read_text()
    assert text.startswith("<!-- gpucloud-plan -->\n")
    assert "The check fails until a maintainer adds the `gpucloud/allow-data-loss` label" in text
    assert "| GPUs | 16 x NVIDIA H100 SXM5 80GB |" in text
    assert "| reconfigure (scontrol reconfigure) | partition debug max_time | 01:00:00 -> 02:00:00 |" in text
    assert_golden(GOLDEN / "lab-pr-comment.md", text)
    allowed = cli("pr-comment", "clusters/lab.yaml", "--base", "HEAD", "--allow-destroy", cwd=repo)
    assert allowed.returncode == 1 and "Allowed by the `gpucloud/allow-data-loss` label" in allowed.stdout


def test_pr_comment_shows_spec_errors_and_exits_2(cli, repo):
    spec = repo / "clusters" / "lab.yaml"
    spec.write_text(spec.read_text().replace("model: hgx-h100-8", "model: hgx-h100-9", 1))
    proc = cli("pr-comment", "clusters/lab.yaml", "--base", "HEAD", cwd=repo)
    no_traceback(proc)
    assert proc.returncode == 2
    assert "## gpucloud plan: **specs with errors**" in proc.stdout
    assert "hgx-h100-9" in proc.stdout and "did you mean" in proc.stdout


def test_two_plan_folders(cli, tmp_path):
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.render import plan_json

    spec = tmp_path / "lab.yaml"
    shutil.copy(CLUSTERS / "lab.yaml", spec)
    folders = []
    for name, driver in (("old", "550.90.07"), ("new", "550.127.05")):
        edit(spec, lambda d: d["software"].update(nvidia_driver=driver))
        folder = tmp_path / name
        folder.mkdir()
        for rel, data in plan_json.render(build_plan(check_spec(spec).spec)).items():
            (folder / rel).write_bytes(data)
        folders.append(str(folder))
    proc = cli("diff", *folders, "-o", "json")
    assert proc.returncode == 1, proc.stderr
    changes = [c for s in json.loads(proc.stdout)["steps"] for c in s["changes"]]
    assert {(c["field"], c["impact"]) for c in changes} == {("nvidia_driver", "drain-reboot"),
                                                          ("fabric_manager", "drain-reboot")}


def test_pr_comment_escapes_spec_text(cli, repo):
    """'<!--' in a description must not open an HTML comment that hides the rest of the pull-request comment, and
    '|', backticks and newlines must not break the table rows they land in."""
    spec = repo / "clusters" / "lab.yaml"

    def change(d):
        d["metadata"]["description"] = "Lab <!-- hidden"
        d["tenants"][0]["description"] = "a | b `c`\nsecond line <!--"
    edit(spec, change)
    proc = cli("pr-comment", "clusters/lab.yaml", "--base", "HEAD", cwd=repo)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    # The marker is the only HTML comment left.
    assert [i for i in range(len(text)) if text.startswith("<!--", i) and text[i - 1:i] != "\\"] == [0]
    rows = [line for line in text.splitlines() if line.startswith("| none | tenant research description")]
    assert len(rows) == 1, text
    assert len([i for i, ch in enumerate(rows[0]) if ch == "|" and rows[0][i - 1] != "\\"]) == 6, rows[0]
    assert "a \\| b \\`c\\` second line \\<!--" in rows[0]
    assert "| none | metadata description |" in text
