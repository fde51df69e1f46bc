"""Host-key checking: known, changed, unknown, revoked, hashed, ports, and the key types asked for."""

from __future__ import annotations

import base64

import paramiko
import pytest
from paramiko.hostkeys import HostKeys

from gpucloud.verify.known_hosts import HostKeyRefused, KnownHosts, KnownHostsError, fingerprint, lookup_names


@pytest.fixture(scope="module")
def keys():
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives import serialization

    def ed():
        raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        kind, blob = raw.decode().split()
        return paramiko.PKey.from_type_string(kind, base64.b64decode(blob))

    return {"a": ed(), "b": ed(), "c": ed()}


def line(names, key):
    return f"{names} {key.get_name()} {key.get_base64()}\n"


def test_known_changed_unknown(tmp_path, keys):
    path = tmp_path / "known_hosts"
    path.write_text("# comment\n\n" + line("[10.0.0.1]:2222,gpu01", keys["a"]) + line("10.0.0.2", keys["b"]))
    kh = KnownHosts.load(path)
    kh.check(lookup_names("10.0.0.1", "gpu01", 2222), keys["a"])
    kh.check(lookup_names("10.0.0.2", "gpu02", 22), keys["b"])
    with pytest.raises(HostKeyRefused) as changed:
        kh.check(lookup_names("10.0.0.2", "gpu02", 22), keys["a"])
    assert changed.value.check == "host-key-changed" and fingerprint(keys["b"]) in changed.value.detail
    with pytest.raises(HostKeyRefused) as unknown:
        kh.check(lookup_names("10.0.0.3", "gpu03", 22), keys["a"])
    assert unknown.value.check == "host-key-unknown"
    # the port matters: the entry for port 2222 says nothing about port 22
    with pytest.raises(HostKeyRefused):
        kh.check(lookup_names("10.0.0.1", "gpu01x", 22), keys["a"])


def test_planned_name_or_fqdn_is_accepted_when_the_address_is_not_listed(tmp_path, keys):
    path = tmp_path / "known_hosts"
    path.write_text(line("gpu05", keys["c"]) + line("gpu06.lab.example", keys["a"]))
    kh = KnownHosts.load(path)
    kh.check(lookup_names("10.0.0.5", "gpu05", 22), keys["c"])
    kh.check(lookup_names("10.0.0.6", "gpu06", 22, "gpu06.lab.example"), keys["a"])
    with pytest.raises(HostKeyRefused):
        kh.check(lookup_names("10.0.0.6", "gpu06", 22), keys["a"])


def test_hashed_revoked_and_certificate_authority_lines(tmp_path, keys):
    path = tmp_path / "known_hosts"
    path.write_text(line(HostKeys.hash_host("[127.0.0.9]:2200"), keys["a"]) +
                    "@revoked * " + f"{keys['b'].get_name()} {keys['b'].get_base64()}\n" +
                    "@cert-authority *.example " + f"{keys['c'].get_name()} {keys['c'].get_base64()}\n" +
                    line("10.0.0.7", keys["b"]) + "garbage\n")
    kh = KnownHosts.load(path)
    assert kh.skipped == 2
    kh.check(lookup_names("127.0.0.9", "hgpu01", 2200), keys["a"])
    with pytest.raises(HostKeyRefused) as revoked:
        kh.check(lookup_names("10.0.0.7", "gpu07", 22), keys["b"])
    assert revoked.value.check == "host-key-revoked"


def test_only_recorded_key_types_are_negotiated(tmp_path, keys):
    path = tmp_path / "known_hosts"
    path.write_text(line("10.0.0.1", keys["a"]))
    kh = KnownHosts.load(path)
    disabled = kh.disabled_algorithms(("10.0.0.1",))["keys"]
    assert "ssh-ed25519" not in disabled and "rsa-sha2-512" in disabled
    assert kh.disabled_algorithms(("10.9.9.9",)) == {}


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(KnownHostsError, match="cannot read"):
        KnownHosts.load(tmp_path / "nope")
