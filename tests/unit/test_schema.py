"""The JSON Schema is the public contract: valid 2020-12, closed objects, documented fields, examples that use it."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator

from conftest import EXAMPLES, ROOT, run_cli
from gpucloud.spec import load, schema

SCHEMA_FILE = ROOT / "schemas" / "cluster.schema.json"
DOC = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _walk(node, path="#"):
    """Every subschema that describes data, with its location ('if' conditions only test data, so they are skipped)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("properties", "$defs", "patternProperties"):
                for name, sub in value.items():
                    yield from _walk(sub, f"{path}/{key}/{name}")
            elif key in ("items", "additionalProperties", "then", "else", "not", "propertyNames",
                         "contains"):
                yield from _walk(value, f"{path}/{key}")
            elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
                for i, sub in enumerate(value):
                    yield from _walk(sub, f"{path}/{key}/{i}")


def test_schema_is_valid_2020_12():
    assert DOC["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(DOC)


def test_schema_has_an_id_and_a_title():
    assert DOC["$id"].startswith("https://") and DOC["$id"].endswith("cluster.schema.json")
    assert DOC["title"] and DOC["description"]


def test_packaged_schema_is_the_same_file():
    assert schema.schema_text() == SCHEMA_FILE.read_text(encoding="utf-8")


def test_every_object_is_closed():
    open_objects = []
    for path, sub in _walk(DOC):
        is_object = sub.get("type") == "object" or "properties" in sub
        if not is_object or "additionalProperties" in sub or "unevaluatedProperties" in sub:
            continue
        # Filesystems close additionalProperties inside each kind's if/then branch instead.
        branches = [b.get("then", {}) for b in sub.get("allOf", ()) if "if" in b]
        if branches and all(b.get("additionalProperties") is False for b in branches):
            continue
        open_objects.append(path)
    assert open_objects == []


def _described(prop: dict) -> bool:
    if prop.get("description"):
        return True
    ref = prop.get("$ref", "")  # a bare $ref shows the description of what it points at
    return ref.startswith("#/$defs/") and bool(DOC["$defs"].get(ref.split("/")[-1], {}).get("description"))


def test_every_property_has_a_description():
    missing = [f"{path}/properties/{name}"
               for path, sub in _walk(DOC) for name, prop in sub.get("properties", {}).items()
               if isinstance(prop, dict) and not _described(prop)]
    assert missing == []


def test_every_pattern_compiles():
    for path, sub in _walk(DOC):
        if "pattern" in sub:
            re.compile(sub["pattern"])


def test_every_ref_resolves():
    refs = [sub["$ref"] for _, sub in _walk(DOC) if "$ref" in sub]
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/") and ref.split("/")[-1] in DOC["$defs"], ref


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_starts_with_the_schema_comment(example):
    first = example.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/cluster.schema.json"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_validates_against_the_schema(example):
    loaded = load(example)
    assert [f for f in loaded.findings if f.level == "error"] == []
    assert loaded.spec is not None
    Draft202012Validator(DOC).validate(loaded.data)  # the plain validator agrees with ours


def test_examples_validate_through_the_cli():
    proc = run_cli("validate", *map(str, EXAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unknown_key_gets_did_you_mean():
    data = {"name": "t", "networks": {"management": {"cidr": "10.0.0.0/16"}, "bmc": {"cidr": "10.1.0.0/16"}},
            "node_pools": [{"name": "a", "model": "cpu-1u", "count": 1, "hostnme": "a{index}"}]}
    (f,) = schema.validate(data)
    assert f.path == ("node_pools", 0, "hostnme") and f.hint == "did you mean 'hostname'?"


def test_enum_gets_did_you_mean():
    data = {"name": "t", "networks": {"management": {"cidr": "10.0.0.0/16"}, "bmc": {"cidr": "10.1.0.0/16"}},
            "node_pools": [{"name": "a", "model": "cpu-1u", "count": 1, "roles": ["slurm-controler"]}]}
    (f,) = schema.validate(data)
    assert f.path == ("node_pools", 0, "roles", 0) and f.hint == "did you mean 'slurm-controller'?"


def test_every_mistake_is_reported_at_once():
    data = {"name": "T", "networks": {"management": {"cidr": "10.0.0.0/16", "vlan": 0}},
            "node_pools": [{"name": "a", "model": "cpu-1u", "count": 0}]}
    paths = sorted(str(f.path) for f in schema.validate(data))
    assert paths == sorted(str(p) for p in [("name",), ("networks",), ("networks", "management", "vlan"),
                                            ("node_pools", 0, "count")])


def test_secret_positions_come_from_the_schema():
    """Every place the schema puts a secret reference, found through its $refs, not from a hand-kept list."""
    positions = schema.secret_positions()
    assert ("provider", "password") in positions
    assert ("slurm", "accounting", "database_password") in positions
    refs = json.dumps(schema.schema()).count('"$ref": "#/$defs/secret_ref"')
    assert len(positions) >= refs


def test_hides_values_inside_a_secret_reference_but_not_its_name():
    assert schema.hides(("provider", "password"), "hunter2")
    assert schema.hides(("slurm", "accounting", "database_password", "value"), "hunter2")
    assert schema.hides(("provider", "password", "secret"), "Not a Name!")
    assert not schema.hides(("provider", "password", "secret"), "bmc-password")
    assert not schema.hides(("provider", "username"), "admin")


def test_long_values_are_shortened_in_messages(tmp_path):
    spec = tmp_path / "long.yaml"
    spec.write_text((ROOT / "tests" / "specs" / "valid" / "minimal.yaml").read_text().replace(
        "name: minimal", "name: " + "x" * 5000))
    (finding,) = [f for f in load(spec).findings if f.path == ("name",)]
    assert len(finding.message) < 120 and "..." in finding.message


def test_a_literal_password_is_not_quoted_in_schema_findings(tmp_path):
    spec = tmp_path / "pw.yaml"
    spec.write_text((ROOT / "tests" / "specs" / "valid" / "minimal.yaml").read_text()
                    + "provider: {kind: redfish, username: admin, password: 12345678, extra: 1}\n")
    findings = load(spec).findings
    password = [f for f in findings if f.path == ("provider", "password")]
    assert password and "secret" in password[0].hint
    for f in findings:
        assert "12345678" not in f.message + f.hint


def test_a_password_written_as_a_key_is_not_named(tmp_path):
    """'password: {S3cretPass}' is a mapping whose only key is the password."""
    spec = tmp_path / "key.yaml"
    spec.write_text((ROOT / "tests" / "specs" / "valid" / "minimal.yaml").read_text()
                    + "provider: {kind: redfish, username: admin, password: {S3cretPass}}\n")
    loaded = load(spec)
    assert loaded.findings and all("S3cretPass" not in f.message + f.hint + f.json_path for f in loaded.findings)
    assert any(f.json_path == "$.provider.password" for f in loaded.findings)
    assert "S3cretPass" not in loaded.text and "password: {**********}" in loaded.text
