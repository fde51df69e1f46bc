"""The loader: every way a file can fail to be a spec is a located finding, never an exception."""

from __future__ import annotations

import pytest

from gpucloud.spec import load, loader


def _checks(result):
    return [(f.check, f.line, f.col) for f in result.findings]


def test_locations_of_keys_and_items():
    text = "name: t\nnode_pools:\n  - name: a\n    count: 2\n  - {name: b}\n"
    r = loader.load_text(text, "s.yaml")
    assert r.ok
    assert r.locations[("name",)] == (1, 1)
    assert r.locations[("node_pools", 0)] == (3, 5)
    assert r.locations[("node_pools", 0, "count")] == (4, 5)
    assert r.locations[("node_pools", 1, "name")] == (5, 6)


def test_duplicate_key_points_at_the_second_and_names_the_first():
    r = loader.load_text("name: a\nx: 1\nname: b\n", "s.yaml")
    (f,) = r.findings
    assert (f.check, f.line, f.path) == ("yaml-duplicate-key", 3, ("name",))
    assert "line 1" in f.message


def test_not_utf8_gives_the_byte_position(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_bytes(b"name: t\nmetadata: {site: \"M\xfcnchen\"}\n")
    (f,) = loader.load_file(p).findings
    assert (f.check, f.line, f.col) == ("yaml-encoding", 2, 20)
    assert "0xfc" in f.message


def test_bom_is_accepted(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_bytes(b"\xef\xbb\xbfname: t\n")
    r = loader.load_file(p)
    assert r.ok and r.data == {"name": "t"}


def test_tab_indentation():
    (f,) = loader.load_text("a:\n\tb: 1\n", "s.yaml").findings
    assert (f.check, f.line, f.col) == ("yaml-tab", 2, 1)


def test_tab_inside_a_quoted_value_is_fine():
    assert loader.load_text('a: "x\ty"\n', "s.yaml").ok


def test_alias_bomb_is_refused_at_the_key_that_expands():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    r = loader.load_text("\n".join(lines) + "\n", "s.yaml")
    assert r.data is None
    (f,) = r.findings
    assert f.check == "yaml-too-many-nodes" and f.path == ("f",) and f.line == 6


def test_modest_aliases_are_allowed():
    r = loader.load_text("a: &r {x: 1}\nb: *r\nc: *r\n", "s.yaml")
    assert r.ok and r.data == {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1}}


def test_recursive_alias():
    r = loader.load_text("a: &a\n  b: *a\n", "s.yaml")
    (f,) = r.findings
    assert (f.check, f.path, f.line) == ("yaml-recursive-alias", ("a", "b"), 2)


def test_deep_nesting_is_refused_without_crashing():
    text = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"
    (f,) = loader.load_text(text, "s.yaml").findings
    assert f.check == "yaml-too-deep" and f.line == 1


def test_nesting_at_the_limit_is_fine():
    depth = loader.MAX_DEPTH - 1
    assert loader.load_text("a: " + "[" * depth + "]" * depth + "\n", "s.yaml").ok


def test_size_limit(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_bytes(b"name: t\n" + b"# padding\n" * (loader.MAX_BYTES // 10 + 1))
    r = loader.load_file(p)
    (f,) = r.findings
    assert f.check == "spec-too-large" and r.data is None


@pytest.mark.parametrize("text, check, line", [
    ("a: 1\n---\nb: 2\n", "yaml-multiple-documents", 2),
    ("- a\n- b\n", "spec-not-mapping", 1),
    ("just words\n", "spec-not-mapping", 1),
    ("", "spec-empty", 1),
    ("# only a comment\n", "spec-empty", 1),
    ("a: !thing 1\n", "yaml-tag", 1),
    ("a: !!binary aGVsbG8=\n", "yaml-tag", 1),
    ("a: !!set {x, y}\n", "yaml-tag", 1),
    ("a: &m {x: 1}\nb:\n  <<: *m\n", "yaml-merge-key", 3),
    ("a:\n  on: 1\n", "yaml-key-type", 2),
    ("a:\n  ~: 1\n", "yaml-key-type", 2),
    ("? [x]\n: 1\n", "yaml-key-type", 1),
    ("a: [1, 2\nb: 3\n", "yaml-syntax", 2),
    ("a: *nowhere\n", "yaml-syntax", 1),
    ("a: \"bell\x07\"\n", "yaml-character", 1),
])
def test_file_level_failures(text, check, line):
    r = loader.load_text(text, "s.yaml")
    assert not r.ok
    assert any(f.check == check and f.line == line for f in r.findings), _checks(r)


def test_unreadable_paths(tmp_path):
    missing = loader.load_file(tmp_path / "nope.yaml")
    folder = loader.load_file(tmp_path)
    assert [f.check for f in missing.findings] == ["spec-unreadable"]
    assert [f.check for f in folder.findings] == ["spec-unreadable"]


def test_dates_stay_text_and_raw_scalars_are_kept():
    r = loader.load_text("d: 2024-06-01\nv: 12.10\nn: 0x10\n", "s.yaml")
    assert r.data == {"d": "2024-06-01", "v": 12.1, "n": 16}
    assert r.scalars[("v",)] == "12.10" and r.scalars[("n",)] == "0x10"


def test_schema_hint_quotes_the_value_as_written(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\nnetworks: {management: {cidr: 10.0.0.0/16}, bmc: {cidr: 10.1.0.0/16}}\n"
                 "node_pools: [{name: a, model: cpu-1u, count: 1}]\nsoftware: {cuda: 12.10}\n")
    (f,) = load(p).findings
    assert f.path == ("software", "cuda") and f.hint == "quote the value: '12.10'"


def test_float_where_an_integer_is_expected(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\nnetworks: {management: {cidr: 10.0.0.0/16}, bmc: {cidr: 10.1.0.0/16}}\n"
                 "node_pools: [{name: a, model: cpu-1u, count: 2.0}]\n")
    r = load(p)
    assert r.spec is None
    assert [(f.check, f.path) for f in r.findings] == [("schema", ("node_pools", 0, "count"))]


def test_huge_sizes_are_exact(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\nnetworks: {management: {cidr: 10.0.0.0/16}, bmc: {cidr: 10.1.0.0/16}}\n"
                 "node_pools: [{name: a, model: cpu-1u, count: 1}]\n"
                 f"storage: [{{name: s, kind: local, mount: /s, capacity: {'9' * 400}.5EB}}]\n"
                 "tenants: [{name: x, storage_quota: {s: 1.1PB}}]\n")
    r = load(p)
    assert r.spec is not None, r.findings
    assert r.spec.storage[0].capacity == (10 ** 400 - 1) * 10 ** 18 + 5 * 10 ** 17
    assert r.spec.tenants[0].storage_quota == (("s", 1_100_000_000_000_000),)


def test_endless_input_is_cut_at_the_size_limit():
    import os

    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    (f,) = loader.load_file("/dev/zero").findings
    assert f.check == "spec-too-large"


def test_hidden_values_are_masked_in_the_shown_text_keeping_columns():
    text = ('provider: {kind: redfish, username: "é", password: "hunter2", verify_tls: false}\n'
            "other:\n  secret: |\n    two\n    lines\nlast: 1\n")
    hide = lambda path, value: path in (("provider", "password"), ("other", "secret"))  # noqa: E731
    result = loader.load_text(text, "x.yaml", hide)
    assert result.data["provider"]["password"] == "hunter2"  # the data is untouched
    assert "hunter2" not in result.text and "two" not in result.text and "lines" not in result.text
    shown = result.text.splitlines()
    assert shown[0] == 'provider: {kind: redfish, username: "é", password: *********, verify_tls: false}'
    assert shown[3:] == ["    ***", "    *****", "last: 1"]
    assert loader.load_text(text, "x.yaml").text == text


def test_a_repeated_or_tagged_secret_is_masked_too():
    text = "provider:\n  password: {secret: bmc}\n  password: hunter2\nslurm:\n  pw: !!omap [{a: swordfish}]\n"
    hide = lambda path, value: path[:2] in (("provider", "password"), ("slurm", "pw"))  # noqa: E731
    result = loader.load_text(text, "x.yaml", hide)
    assert {f.check for f in result.findings} == {"yaml-duplicate-key", "yaml-tag"}
    assert "hunter2" not in result.text and "swordfish" not in result.text
    assert "  password: {secret: ***}\n" in result.text  # the hide rule given here masks names too
