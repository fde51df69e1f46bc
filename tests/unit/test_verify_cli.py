"""``gpucloud verify`` refuses to run (exit 2, no traceback) when it cannot do its job; these need no sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parent.parent / "fixtures" / "verify" / "site.yaml"


@pytest.fixture
def known(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("")
    return path


@pytest.mark.parametrize("args, message", [
    (["--limit", "gpu[01-03],gpux01"], "--limit names host(s) not in the plan: gpux01"),
    (["--limit", "gpu[01-"], "--limit 'gpu[01-' is not a hostlist"),
    (["--address", "gpu01"], "--address 'gpu01' is not HOST=ADDRESS"),
    (["--address", "gpu99=10.0.0.1"], "the address map names host(s) not in the plan: gpu99"),
])
def test_bad_arguments_exit_2(cli, known, args, message):
    proc = cli("verify", str(SPEC), "--known-hosts", str(known), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_did_you_mean_for_a_misspelt_host(cli, known):
    proc = cli("verify", str(SPEC), "--known-hosts", str(known), "--limit", "gpuu01")
    assert proc.returncode == 2 and "hint: did you mean 'gpu01'?" in proc.stderr


def test_missing_known_hosts_exit_2(cli, tmp_path):
    proc = cli("verify", str(SPEC), "--known-hosts", str(tmp_path / "absent"))
    assert proc.returncode == 2
    assert "cannot read known_hosts file" in proc.stderr and "hint:" in proc.stderr


def test_unreadable_key_and_bad_address_file_exit_2(cli, known, tmp_path):
    bad_key = tmp_path / "id"
    bad_key.write_text("not a key\n")
    proc = cli("verify", str(SPEC), "--known-hosts", str(known), "--key", str(bad_key))
    assert proc.returncode == 2 and f"cannot use key {bad_key}" in proc.stderr
    amap = tmp_path / "addresses.yaml"
    amap.write_text("- gpu01\n")
    proc = cli("verify", str(SPEC), "--known-hosts", str(known), "--addresses", str(amap))
    assert proc.returncode == 2 and "must be a mapping of host names to addresses" in proc.stderr


def test_invalid_spec_exit_2(cli, known, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.read_text().replace("count: 12", "count: -1"))
    proc = cli("verify", str(spec), "--known-hosts", str(known))
    assert proc.returncode == 2
    assert "verify needs a valid spec" in proc.stderr and "Traceback" not in proc.stderr
