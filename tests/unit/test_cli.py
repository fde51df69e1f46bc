"""The CLI as a user runs it: exit codes, output formats, and a plan folder that is atomic and byte-identical."""

from __future__ import annotations

import json

import pytest

from conftest import CLUSTERS, ROOT, run_cli
from gpucloud import __version__

LAB = str(CLUSTERS / "lab.yaml")
INVALID = ROOT / "tests" / "specs" / "invalid"


@pytest.fixture
def warning_only(tmp_path):
    """A spec whose only finding is a warning: BMC certificates not verified."""
    p = tmp_path / "warn.yaml"
    p.write_text((ROOT / "tests" / "specs" / "valid" / "minimal.yaml").read_text()
                 + "provider: {kind: redfish, username: admin, password: {secret: bmc}, verify_tls: false}\n")
    return str(p)


@pytest.fixture
def with_error(tmp_path):
    p = tmp_path / "bad.yaml"
    lab = (CLUSTERS / "lab.yaml").read_text()
    p.write_text(lab.replace("pools: [gpu], default: true", "pools: [gpus], default: true"))
    return str(p)


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"gpucloud {__version__}"


def test_validate_exit_codes(with_error, tmp_path):
    assert run_cli("validate", LAB).returncode == 0
    bad = run_cli("validate", with_error)
    assert bad.returncode == 1 and "reference-pool" in bad.stderr and "did you mean 'gpu'?" in bad.stderr
    assert run_cli("validate", str(tmp_path / "missing.yaml")).returncode == 2
    assert run_cli("validate", str(INVALID / "yaml-tab.yaml")).returncode == 2
    usage = run_cli("validate", "--output", "xml", LAB)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    assert run_cli("validate").returncode == 2


def test_validate_text_points_at_file_line_col(with_error):
    proc = run_cli("validate", with_error)
    line = next(l for l in proc.stderr.splitlines() if "reference-pool" in l)
    file, lineno, col, rest = line.split(":", 3)
    assert file == with_error and int(lineno) > 1 and int(col) > 1
    assert rest.startswith(" error[reference-pool] $.slurm.partitions[0].pools[0]: ")
    assert proc.stdout.startswith(f"{with_error}: invalid (1 error(s)")


def test_validate_json_shape_and_several_files(with_error):
    proc = run_cli("validate", "--output", "json", LAB, with_error)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [r["file"] for r in doc["results"]] == [LAB, with_error]
    assert [r["valid"] for r in doc["results"]] == [True, False]
    (f,) = [f for f in doc["results"][1]["findings"] if f["level"] == "error"]
    assert set(f) == {"check", "level", "file", "line", "col", "path", "message", "hint"}
    assert f["path"] == "$.slurm.partitions[0].pools[0]" and f["line"] > 1


def test_fail_on_warning_and_ignore(warning_only, with_error):
    proc = run_cli("validate", "--output", "json", warning_only)
    assert proc.returncode == 0
    assert [f["check"] for f in json.loads(proc.stdout)["results"][0]["findings"]] == ["provider-tls"]
    assert run_cli("validate", "--fail-on", "warning", warning_only).returncode == 1
    assert run_cli("validate", "--fail-on", "warning", "--ignore", "provider-tls", warning_only).returncode == 0
    assert run_cli("validate", "--ignore", "reference-pool", with_error).returncode == 0
    # Ignoring what stopped the file from being read does not make it valid.
    assert run_cli("validate", "--ignore", "yaml-tab", str(INVALID / "yaml-tab.yaml")).returncode == 2
    assert run_cli("validate", "--ignore", "schema", str(INVALID / "schema-wrong-type.yaml")).returncode == 1


def test_schema_prints_the_schema():
    proc = run_cli("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == json.loads((ROOT / "schemas" / "cluster.schema.json").read_text())


def test_checks_lists_ids():
    proc = run_cli("checks")
    ids = {line.split()[0] for line in proc.stdout.splitlines()}
    assert {"network-overlap", "hostname-collision", "reference-pool", "software-cuda-driver"} <= ids


def test_hosts_formats():
    text = run_cli("hosts", LAB)
    csv = run_cli("hosts", LAB, "--output", "csv")
    js = run_cli("hosts", LAB, "--output", "json")
    assert text.returncode == csv.returncode == js.returncode == 0
    assert "gpu[01-02]" in text.stdout
    rows = csv.stdout.splitlines()
    assert rows[0].startswith("name,pool,index,rack,slot,u,management,bmc,storage,ipoib0") and len(rows) == 5
    hosts = json.loads(js.stdout)
    assert [h["name"] for h in hosts] == ["gpu01", "gpu02", "ctl01", "login01"]
    assert hosts[0]["ipoib"][0] == rows[1].split(",")[9]


def test_hosts_refuses_a_spec_with_errors(with_error):
    proc = run_cli("hosts", with_error)
    assert proc.returncode == 2 and proc.stdout == ""


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_is_byte_identical_across_runs_and_hash_seeds(tmp_path):
    one, two = tmp_path / "one", tmp_path / "elsewhere" / "two"
    a = run_cli("plan", LAB, "--out", str(one), env={"PYTHONHASHSEED": "1"})
    b = run_cli("plan", LAB, "--out", str(two), env={"PYTHONHASHSEED": "4242"})
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ta, tb = _tree(one), _tree(two)
    assert "plan.json" in ta and ta == tb
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary folders left behind
    assert str(tmp_path).encode() not in b"".join(ta.values())  # the output folder does not leak into the plan


def test_plan_replaces_an_earlier_plan(tmp_path):
    out = tmp_path / "plan"
    assert run_cli("plan", LAB, "--out", str(out)).returncode == 0
    (out / "stale.txt").write_text("from an older version")  # a file the earlier plan wrote, listed as its own:
    with (out / "plan-files.txt").open("a") as listed:
        listed.write("stale.txt\n")
    proc = run_cli("plan", LAB, "--out", str(out))
    assert proc.returncode == 0 and not (out / "stale.txt").exists() and (out / "plan.json").exists()


def test_plan_refuses_a_folder_that_is_not_a_plan(tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = run_cli("plan", LAB, "--out", str(out))
    assert proc.returncode == 2 and "refusing" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"


def test_plan_writes_nothing_for_a_spec_with_errors(tmp_path, with_error):
    out = tmp_path / "plan"
    proc = run_cli("plan", with_error, "--out", str(out))
    assert proc.returncode == 2 and "nothing was written" in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "bad.yaml"]


def test_text_report_caret_and_long_lines():
    import io

    from gpucloud import report
    from gpucloud.findings import Finding

    src = "name: t\n" + "x: [" + "1, " * 200 + "oops]\n"
    col = src.splitlines()[1].index("oops") + 1
    out = io.StringIO()
    report.text([Finding("schema", "error", ("x",), "bad", "fix it", "s.yaml", 2, col)], {"s.yaml": src}, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "s.yaml:2:%d: error[schema] $.x: bad" % col
    shown, caret = lines[1], lines[2]
    assert len(shown) < 140 and shown.startswith("    2 | ...")
    assert shown[caret.index("^")] == "o" and shown[caret.index("^"):].startswith("oops")
    assert lines[3] == "  hint: fix it"
