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


PASSWORD = "Hunter2-Sup3r-Secret"
DB_PASSWORD = "mariadb-pa55-LITERAL"


def test_a_long_list_is_not_echoed_in_the_message(tmp_path):
    pools = "".join(f'  - {{name: p{i}, id: {i}, model: cpu-1u, count: 1, hostname: "p{i}n{{index}}"}}\n'
                    for i in range(300))
    spec = tmp_path / "pools.yaml"
    spec.write_text("name: many\nnetworks:\n  management: {cidr: 10.0.0.0/16}\n  bmc: {cidr: 10.1.0.0/16}\n"
                    f"node_pools:\n{pools}")
    text = run_cli("validate", str(spec))
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert "$.node_pools: the list has 300 entries; at most 256 are allowed" in text.stderr
    assert max(len(line) for line in text.stderr.splitlines()) < 200
    js = json.loads(run_cli("validate", "--output", "json", str(spec)).stdout)
    (finding,) = [f for f in js["results"][0]["findings"] if f["path"] == "$.node_pools"]
    assert len(finding["message"]) < 100 and "p299" not in finding["message"]


def test_a_literal_password_is_never_echoed(tmp_path):
    spec = tmp_path / "secrets.yaml"
    spec.write_text(_flow_provider(LAB))
    outputs = {}
    outputs["validate"] = run_cli("validate", str(spec))
    outputs["validate json"] = run_cli("validate", "--output", "json", str(spec))
    outputs["plan"] = run_cli("plan", str(spec), "--out", str(tmp_path / "plan"))
    outputs["diff"] = run_cli("diff", str(CLUSTERS / "lab.yaml"), str(spec))
    for name, proc in outputs.items():
        assert "Traceback" not in proc.stderr, name
        assert proc.returncode == (1 if name.startswith("validate") else 2), (name, proc.stderr)
        both = proc.stdout + proc.stderr
        assert PASSWORD not in both and DB_PASSWORD not in both, name
    shown = outputs["validate"].stderr
    # Both literal passwords are reported at their place, and a finding on the password's line shows it masked.
    assert "$.provider.password: expected a mapping, got a literal value" in shown
    assert "$.slurm.accounting.database_password: expected a mapping" in shown
    assert "$.provider.username" in shown and "password: " + "*" * (len(PASSWORD) + 2) in shown
    assert not (tmp_path / "plan").exists()


def _flow_provider(lab: str) -> str:
    """The lab spec with literal passwords, the BMC one on the same line as a user name that breaks the schema."""
    start = lab.index("provider:\n")
    spec = lab[:start] + f'provider: {{kind: redfish, username: "Admin User", password: "{PASSWORD}"}}\n'
    spec = spec.replace("database_password: {secret: slurmdbd-db-password}", f"database_password: {DB_PASSWORD}")
    assert PASSWORD in spec and DB_PASSWORD in spec
    return spec


def test_examples_have_no_warnings():
    """Every example in clusters/ is clean: a spec people copy must not teach them to ignore warnings."""
    examples = sorted(str(p) for p in CLUSTERS.glob("*.yaml"))
    proc = run_cli("validate", "--output", "json", "--fail-on", "warning", *examples)
    results = json.loads(proc.stdout)["results"]
    assert [r["file"] for r in results] == examples
    noisy = {r["file"]: [(f["check"], f["line"], f["message"]) for f in r["findings"] if f["level"] != "info"]
             for r in results}
    assert noisy == {f: [] for f in examples}
    assert proc.returncode == 0


def test_every_mistake_is_reported_in_one_run(tmp_path):
    """Seven mistakes across the schema and five domains, each reported in the first run, and nothing else: no
    follow-on finding from the unknown model, no check silenced by a mistake in another section."""
    spec = tmp_path / "seven.yaml"
    spec.write_text(LAB
                    .replace('  cuda: "12.4"', "  cuda: 12.4")                                   # schema (software)
                    .replace("  password: {secret: bmc-password}",
                             '  password: {secret: bmc-password}\n  verify_tls: "no"')       # schema (provider)
                    .replace("model: hgx-h100-8", "model: hgx-h100-9")                        # catalog
                    .replace("bmc: {cidr: 10.101.0.0/22", "bmc: {cidr: 10.100.0.0/22")        # networks
                    .replace("{name: debug, pools: [gpu],", "{name: debug, pools: [gpu], default: true,")  # slurm
                    .replace("mount: /scratch,", "mount: /home,")                             # storage
                    .replace("{name: teaching, partitions: [debug]", "{name: teaching, partitions: [GPU]"))  # tenants
    proc = run_cli("validate", "--output", "json", str(spec))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    findings = json.loads(proc.stdout)["results"][0]["findings"]
    assert sorted((f["check"], f["path"]) for f in findings) == [
        ("catalog-model", "$.node_pools[0].model"),
        ("filesystem-duplicate-mount", "$.storage[1].mount"),
        ("network-overlap", "$.networks.management.cidr"),
        ("reference-partition", "$.tenants[1].partitions[0]"),
        ("schema", "$.provider.verify_tls"),
        ("schema", "$.software.cuda"),
        ("slurm-default-partition", "$.slurm.partitions[1].default"),
    ]
    hints = {f["check"]: f["hint"] for f in findings}
    assert hints["catalog-model"] == "did you mean 'hgx-h100-8'?"
    assert hints["reference-partition"] == "did you mean 'gpu'?"  # case ignored
