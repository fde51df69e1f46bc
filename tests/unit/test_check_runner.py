"""The check runner: every check that can run does, and a check that needs a broken part of the spec (or a model
the catalog lacks) says nothing rather than something misleading."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from conftest import CLUSTERS, EXAMPLES, ROOT
from gpucloud.checks import _guarded, _run_one, all_checks, run_checks
from gpucloud.findings import choices_hint, did_you_mean
from gpucloud.pipeline import FIELD_SOURCES, check_spec
from gpucloud.spec import Spec, load


def _write(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


SPECS = [*EXAMPLES, *sorted((ROOT / "tests" / "specs" / "valid").glob("*.yaml")),
         *sorted((ROOT / "tests" / "specs" / "invalid").glob("*.yaml"))]


def test_recording_reads_changes_no_finding():
    """A check run through the recording stand-ins finds exactly what it finds on the model itself."""
    specs = [s for s in (load(p).spec for p in SPECS) if s is not None]
    assert len(specs) > 50
    for spec in specs:
        for check_id, fn in all_checks().items():
            assert _guarded(check_id, fn, spec, frozenset({"-"}), {"-"}) == _run_one(check_id, fn, spec), \
                (spec.source, check_id)


def test_a_check_reading_a_broken_part_is_dropped_and_the_others_kept():
    spec = load(ROOT / "tests" / "specs" / "invalid" / "provider-no-tls.yaml").spec
    assert {f.check for f in run_checks(spec)} >= {"provider-tls"}
    assert "provider-tls" not in {f.check for f in run_checks(spec, broken={"provider"})}
    overlapping = load(ROOT / "tests" / "specs" / "invalid" / "network-overlap.yaml").spec
    assert "network-overlap" in {f.check for f in run_checks(overlapping, broken={"provider"})}


def test_schema_errors_do_not_stop_the_checks_of_other_sections(tmp_path):
    lab = (CLUSTERS / "lab.yaml").read_text()
    spec = tmp_path / "two.yaml"
    spec.write_text(lab.replace('  cuda: "12.4"', "  cuda: 12.4")
                    .replace("bmc: {cidr: 10.101.0.0/22", "bmc: {cidr: 10.100.0.0/22"))
    checked = check_spec(spec)
    assert {(f.check, f.json_path) for f in checked.findings if f.level == "error"} == {
        ("schema", "$.software.cuda"), ("network-overlap", "$.networks.management.cidr")}
    assert checked.spec is None  # nothing is planned from a spec with schema errors


def test_a_broken_fabric_section_silences_the_checks_that_read_it(tmp_path):
    lab = (CLUSTERS / "lab.yaml").read_text()
    two_defaults = lab.replace("{name: debug, pools: [gpu],", "{name: debug, pools: [gpu], default: true,")
    broken_value = two_defaults.replace("    scalable_unit: 2\n", "    scalable_unit: two\n")
    checks = {f.check for f in check_spec(_write(tmp_path, broken_value)).findings}
    # Slurm and the pools only ask whether a compute fabric exists, which a broken fabric mapping still says.
    assert checks == {"schema", "slurm-default-partition"}
    start, end = two_defaults.index("fabric:\n"), two_defaults.index("slurm:\n")
    unreadable = two_defaults[:start] + "fabric: [compute]\n" + two_defaults[end:]
    checks = {f.check for f in check_spec(_write(tmp_path, unreadable, "list.yaml")).findings}
    assert checks == {"schema"}  # which fabrics exist is unknown now: Slurm's and the pools' checks wait


def test_every_field_of_the_model_has_its_sources():
    assert set(FIELD_SOURCES) == {f.name for f in dataclasses.fields(Spec)}


def test_an_unknown_model_brings_no_follow_on_findings(tmp_path):
    lab = (CLUSTERS / "lab.yaml").read_text()
    spec = tmp_path / "model.yaml"
    spec.write_text(lab.replace("model: hgx-h100-8", "model: hgx-h100-9"))
    found = {(f.check, f.level) for f in check_spec(spec).findings}
    baseline = {(f.check, f.level) for f in check_spec(CLUSTERS / "lab.yaml").findings}  # infos of the lab itself
    assert found - baseline == {("catalog-model", "error")}


def test_did_you_mean_ignores_case():
    assert did_you_mean("GPU", ["gpu", "login"]) == "did you mean 'gpu'?"
    assert did_you_mean("HGX-H100-9", ["hgx-h100-8", "cpu-1u"]) == "did you mean 'hgx-h100-8'?"
    assert did_you_mean("Debug", ["debug"]) == "did you mean 'debug'?"
    assert choices_hint("LOGIN", ["login", "gpu"], "pools") == "did you mean 'login'?"
    assert did_you_mean("storage", ["gpu", "login"]) == ""
