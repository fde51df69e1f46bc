"""Files verify reads besides the spec are read within limits: a wrong path (/dev/zero, a binary, a deep YAML
document) ends in a located error and exit code 2, never a traceback or a process that grows until it is killed.
The /dev/zero cases read a capped amount (one bounded line) and fail at line 1."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.hostlist import MAX_EXPANDED, HostlistTooLarge, expand, expanded_size
from gpucloud.verify.inputs import MAX_LINE, InputError, address_file, lines

SPEC = Path(__file__).resolve().parent.parent / "fixtures" / "verify" / "site.yaml"
ZERO = "/dev/zero"


@pytest.fixture
def known(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text("")
    return path


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr


def test_dev_zero_is_refused_after_one_bounded_line():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError) as exc:
        for _ in lines(Path(ZERO), "known_hosts file"):
            pass
    assert exc.value.message.startswith(f"{ZERO}:1: line longer than {MAX_LINE:,} bytes")
    # ru_maxrss is in KiB: reading /dev/zero whole would add gigabytes; one line adds at most a few MiB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024


def test_size_limit_names_the_line_and_the_override(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1000 + b"\n" * (1024 * 1024 + 1))
    with pytest.raises(InputError) as exc:
        list(lines(big, "ibnetdiscover dump", max_mib=1))
    # 1,001 bytes on line 1, then one byte a line: line 1,047,577 passes 1 MiB.
    assert exc.value.message == f"{big}:1047577: ibnetdiscover dump is larger than 1 MiB"
    assert "--max-input-mib" in exc.value.hint


@pytest.mark.parametrize("content, message", [
    ("[" * 50000 + "\n", ":1: the address map must be a mapping"),  # a YAML parser recurses on this
    (b"gpu01: \xff\xfe10.0.0.1\n", ":1: address map is not UTF-8 text"),
    ("# ok\ngpu01: 10.0.0.1\ngpu02 10.0.0.2\n", ":3: the address map must be a mapping"),
    ("gpu01: 10.0.0.1\ngpu01: 10.0.0.2\n", ":2: gpu01 is listed twice (first on line 1)"),
])
def test_bad_address_files_are_located(tmp_path, content, message):
    path = tmp_path / "addresses.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError) as exc:
        address_file(path)
    assert f"{path}{message}" in exc.value.message


def test_address_file_reads_what_yaml_reads(tmp_path):
    path = tmp_path / "addresses.yaml"
    text = "---\n# reach these through the jump network\ngpu01: 10.0.0.1\n'gpu02': \"10.0.0.2\"  # moved\n\n"
    path.write_text(text)
    assert address_file(path) == yaml.safe_load(text) == {"gpu01": "10.0.0.1", "gpu02": "10.0.0.2"}


def test_hostlist_size_is_bounded_before_expanding():
    assert expanded_size("gpu[0-99999999999]") == 100_000_000_000
    assert expanded_size("gpu[01-03,07],login[1-2]") == 6
    assert expanded_size("rack[1-2]-node[1-4]") == 8
    with pytest.raises(HostlistTooLarge):
        expand("gpu[0-99999999999]")
    with pytest.raises(HostlistTooLarge):
        expand("gpu1," * 300000)  # short names, but more than MAX_EXPRESSION characters
    assert len(expand("gpu[1-10]", limit=10)) == 10
    with pytest.raises(HostlistTooLarge):
        expand("gpu[1-10]", limit=9)
    assert MAX_EXPANDED >= 12_500 * 10  # far above the largest plan


@pytest.mark.parametrize("args, message", [
    (["--limit", "gpu[0-99999999999]"], "--limit 'gpu[0-99999999999]' is too large: the expression names "
                                        "100,000,000,000 hosts, more than 1,000,000"),
    (["--known-hosts", ZERO], f"{ZERO}:1: line longer than"),
    (["--addresses", ZERO], f"{ZERO}:1: line longer than"),
])
def test_verify_cli_refuses_unbounded_inputs(cli, known, args, message):
    proc = cli("verify", str(SPEC), "--known-hosts", str(known), *args)
    _no_traceback(proc)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "hint:" in proc.stderr


def test_verify_cli_known_hosts_limit_can_be_raised(cli, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(("# padding\n" * 120000))  # 1.1 MiB of comments
    proc = cli("verify", str(SPEC), "--known-hosts", str(kh), "--max-input-mib", "1", "--limit", "gpu01")
    _no_traceback(proc)
    assert proc.returncode == 2 and "known_hosts file is larger than 1 MiB" in proc.stderr


def test_fabric_verify_cli_refuses_dev_zero(cli):
    proc = cli("fabric", "verify", str(CLUSTERS / "lab.yaml"), "--ibnetdiscover", ZERO)
    _no_traceback(proc)
    assert proc.returncode == 2 and f"{ZERO}:1: line longer than" in proc.stderr


class _Flood:
    """A channel whose remote end prints without end, as a collector stuck in a loop does."""

    def __init__(self):
        self.sent = 0

    def settimeout(self, _):
        pass

    def recv(self, n):
        self.sent += n
        return b"y\n" * (n // 2)

    def recv_stderr_ready(self):
        return False


def test_a_host_that_floods_its_output_is_cut_off_at_the_limit():
    import time

    from gpucloud.verify.collect import OutputTooLarge, _read

    chan = _Flood()
    with pytest.raises(OutputTooLarge):
        _read(chan, time.monotonic() + 3600, limit=1024 * 1024)
    assert chan.sent <= 1024 * 1024 + 2 * 65536


def test_flooding_host_is_reported_not_fatal(monkeypatch):
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.verify import run
    from gpucloud.verify.collect import ConnectFailed, SshOptions
    from gpucloud.verify.expect import expectations

    he = expectations(build_plan(check_spec(SPEC).spec))[0]

    def flood(*_):
        raise ConnectFailed("output-limit", "the host sent more than 16 MiB; verify stopped reading it")
    monkeypatch.setattr(run, "run_host", flood)
    result = run.verify_host(he, None, SshOptions(user=None, port=22, timeout=5))
    assert result.status == "nonconforming"
    assert [(f.check, f.message) for f in result.findings] == [("output-limit", "collector output over the limit")]


def test_verify_cli_refuses_a_key_that_is_not_a_small_file(cli, known):
    proc = cli("verify", str(SPEC), "--known-hosts", str(known), "--key", ZERO)
    _no_traceback(proc)
    assert proc.returncode == 2 and f"cannot use key {ZERO}: not a regular file" in proc.stderr
