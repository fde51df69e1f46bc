"""`gpucloud validate` output for a person and for programs, through the real CLI: many findings are capped per
check in text and all listed in JSON; values are shortened and secrets never echoed; every mistake of a spec is
reported in one run; the examples are clean."""

from __future__ import annotations

import json

from conftest import CLUSTERS, run_cli

LAB = (CLUSTERS / "lab.yaml").read_text(encoding="utf-8")


def _with_bad_users(n: int) -> str:
    users = "".join(f"      - U{i}\n" for i in range(n))
    return LAB.replace("tenants:\n", f"tenants:\n  - name: bulk\n    partitions: [gpu]\n    users:\n{users}", 1)


def test_text_caps_findings_per_check_and_counts_the_rest(tmp_path):
    spec = tmp_path / "users.yaml"
    spec.write_text(_with_bad_users(45))
    proc = run_cli("validate", str(spec))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("error[schema]") == 20
    assert f"{spec}: ... and 25 more finding(s) of check schema (--output json lists them all)" in proc.stderr
    assert proc.stdout == f"{spec}: invalid (45 error(s), 0 warning(s))\n"
    every = run_cli("validate", "--max-per-check", "0", str(spec))
    assert every.stderr.count("error[schema]") == 45 and "more finding(s)" not in every.stderr


def test_json_lists_every_finding(tmp_path):
    spec = tmp_path / "users.yaml"
    spec.write_text(_with_bad_users(45))
    proc = run_cli("validate", "--output", "json", str(spec))
    (result,) = json.loads(proc.stdout)["results"]
    assert len(result["findings"]) == 45 and result["valid"] is False
    assert {f["path"] for f in result["findings"]} == {f"$.tenants[0].users[{i}]" for i in range(45)}
