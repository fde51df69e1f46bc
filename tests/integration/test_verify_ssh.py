"""gpucloud verify against a real sshd on loopback: one alias per node, stand-in tools printing recorded output.

The cluster is tests/fixtures/verify/site.yaml. Healthy H100, H200, login and controller nodes sit next to nodes
with one fault each; every run goes through the real CLI, as an operator would run it.
"""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest

from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.verify.expect import expectations

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "verify"
SPEC = FIXTURES / "site.yaml"

_spec = importlib.util.spec_from_file_location("verify_harness", FIXTURES / "harness.py")
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(harness.SSHD is None or harness.SSH_KEYGEN is None,
                       reason="openssh-server and openssh-client are needed (.ci/run installs them)"),
]

NET = "127.77.0."
# host -> (alias, model, recorded files that differ from the model's healthy node)
NODES = {
    "gpu01": (1, "hgx-h100-8", {}),
    "gpu02": (2, "hgx-h100-8", {}),
    "gpu03": (3, "hgx-h100-8", {"nvidia-smi-query": "broken/h100-missing-gpu-query",
                                "nvidia-smi-nvlink": "broken/h100-missing-gpu-nvlink"}),
    "gpu04": (4, "hgx-h100-8", {"nvidia-smi-query": "broken/h100-ecc-query"}),
    "gpu05": (5, "hgx-h100-8", {"ibstat": "broken/h100-rate200-ibstat",
                                "ibstatus": "broken/h100-rate200-ibstatus"}),
    "gpu06": (6, "hgx-h100-8", {"ibstat": "broken/h100-port-down-ibstat",
                                "ibstatus": "broken/h100-port-down-ibstatus",
                                "ip-addr.json": "broken/h100-port-down-ip-addr.json"}),
    "gpu07": (7, "hgx-h100-8", {"findmnt.json": "broken/h100-no-lustre-findmnt.json"}),
    "gpu08": (8, "hgx-h100-8", {"running": "broken/slurmd-down-running",
                                "scontrol-node": "broken/slurmd-down-scontrol-node"}),
    "gpu09": (9, "hgx-h100-8", {"running": "broken/slurmd-down-running",
                                "scontrol-node": "broken/slurmd-down-scontrol-node"}),
    "gpu11": (11, "hgx-h100-8", {}),  # its known_hosts line holds another key
    "gpu12": (12, "hgx-h100-8", {}),  # no known_hosts line at all
    "hgpu01": (13, "hgx-h200-8", {}),  # known_hosts line hashed, as HashKnownHosts writes it
    "hgpu02": (14, "hgx-h200-8", {"nvidia-smi-query": "broken/h200-old-driver-query",
                                  "uname-r": "broken/old-kernel-uname-r"}),
    "login01": (15, "cpu-2u", {}),
    "ctl01": (16, "cpu-1u", {}),
}
UNREACHABLE = "gpu10"  # an alias nothing listens on
HANGING_GPU = 10  # alias whose nvidia-smi never answers; the tests point gpu01 at it with --address

EXPECTED_CHECKS = {
    "gpu01": set(), "gpu02": set(), "hgpu01": set(), "login01": set(), "ctl01": set(),
    "gpu03": {"gpu-count"},
    "gpu04": {"gpu-ecc-uncorrected"},
    "gpu05": {"ib-rate"},
    "gpu06": {"ib-port-down", "ipoib-down"},
    "gpu07": {"mount-missing"},
    "gpu08": {"service", "slurm-state"},
    "gpu09": {"service", "slurm-state"},
    "gpu10": {"unreachable"},
    "gpu11": {"host-key-changed"},
    "gpu12": {"host-key-unknown"},
    "hgpu02": {"gpu-driver", "gpu-persistence", "kernel"},
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from paramiko.hostkeys import HostKeys

    tmp = tmp_path_factory.mktemp("verify")
    plan = build_plan(check_spec(SPEC).spec)
    by_name = {he.name: he for he in expectations(plan)}
    hosts_root = tmp / "hosts"
    client_pub = harness.keygen(tmp / "client_key")
    port = harness.free_port()
    addresses = {}
    for name, (alias, model, overrides) in NODES.items():
        addr = NET + str(alias)
        addresses[name] = addr
        harness.render_host(hosts_root, addr, by_name[name], model, overrides)
    hang = harness.render_host(hosts_root, NET + str(HANGING_GPU), by_name["gpu01"], "hgx-h100-8")
    (hang / "nvidia-smi-query.hang").write_text("")
    addresses[UNREACHABLE] = NET + "200"
    listen = sorted({a for n, a in addresses.items() if n != UNREACHABLE} | {NET + str(HANGING_GPU)},
                    key=lambda a: int(a.rsplit(".", 1)[1]))
    sshd = harness.Sshd(tmp / "sshd", listen, port, hosts_root, client_pub).start()
    other_pub = harness.keygen(tmp / "another_host_key")
    lines = []
    for name, addr in sorted(addresses.items()):
        entry = harness.host_entry(addr, port)
        if name == "gpu12":
            continue
        if name == "gpu11":
            lines.append(harness.known_hosts_line([entry], other_pub))
        elif name == "hgpu01":
            lines.append(harness.known_hosts_line([HostKeys.hash_host(entry)], sshd.host_public_key))
        else:
            lines.append(harness.known_hosts_line([entry], sshd.host_public_key))
    lines.append(harness.known_hosts_line([harness.host_entry(NET + str(HANGING_GPU), port)], sshd.host_public_key))
    known = tmp / "known_hosts"
    known.write_text("# test cluster\n" + "".join(lines))
    address_file = tmp / "addresses.yaml"
    address_file.write_text("".join(f"{n}: {a}\n" for n, a in sorted(addresses.items())))
    base = ["verify", str(SPEC), "--known-hosts", str(known), "--key", str(tmp / "client_key"),
            "--port", str(port), "--addresses", str(address_file), "--timeout", "20"]
    try:
        yield {"base": base, "tmp": tmp, "port": port, "known": known, "addresses": addresses}
    finally:
        sshd.stop()


def _run(cli, site, *extra):
    return cli(*site["base"], *extra)


@pytest.fixture(scope="module")
def report(site):
    """One run over the whole cluster, shared by the tests that read its JSON."""
    import os
    import subprocess
    import sys

    root = FIXTURES.parent.parent.parent
    return subprocess.run([sys.executable, "-m", "gpucloud", *site["base"], "--output", "json"],
                          capture_output=True, text=True, timeout=300, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})


def test_every_fault_is_found_on_its_host_and_nowhere_else(report):
    assert report.returncode == 1, report.stderr
    doc = json.loads(report.stdout)
    got = {h["host"]: set() for h in doc["hosts"]}
    for f in doc["findings"]:
        got[f["host"]].add(f["check"])
    assert got == {**{h: set() for h in got}, **EXPECTED_CHECKS}
    status = {h["host"]: h["status"] for h in doc["hosts"]}
    assert status["gpu01"] == status["hgpu01"] == status["login01"] == status["ctl01"] == "conforming"
    assert status["gpu10"] == "unreachable"
    assert status["gpu11"] == status["gpu12"] == "refused"
    assert status["gpu03"] == "nonconforming"
    assert doc["summary"] == {"hosts": 16, "conforming": 5, "warning": 0, "nonconforming": 8, "timeout": 0,
                              "unreachable": 1, "refused": 2, "auth-failed": 0}
    assert "traceback" not in report.stderr.lower()


def _findings(report, host, check):
    return [f for f in json.loads(report.stdout)["findings"] if f["host"] == host and f["check"] == check]


def test_findings_name_the_part_at_fault(report):
    (missing,) = _findings(report, "gpu03", "gpu-count")
    assert missing["message"] == "7 GPUs, expected 8"
    assert "00000000:DB:00.0" not in missing["detail"] and "00000000:BA:00.0" in missing["detail"]
    (ecc,) = _findings(report, "gpu04", "gpu-ecc-uncorrected")
    assert ecc["detail"].startswith("GPU 5 (00000000:AB:00.0") and ecc["detail"].endswith(": 2")
    (rate,) = _findings(report, "gpu05", "ib-rate")
    assert rate["message"] == "InfiniBand port at 200 Gb/s (4X HDR), expected 400 Gb/s (4X NDR)"
    assert rate["detail"] == "mlx5_3/1"
    (down,) = _findings(report, "gpu06", "ib-port-down")
    assert down["detail"] == "mlx5_6/1 Down/Polling"
    (ipoib,) = _findings(report, "gpu06", "ipoib-down")
    assert ipoib["message"] == "IPoIB interface of rail 6 down"
    (mount,) = _findings(report, "gpu07", "mount-missing")
    assert mount["message"] == "/lustre/scratch (lustre) not mounted"
    (state,) = _findings(report, "gpu08", "slurm-state")
    assert state["message"] == "Slurm state DOWN+NOT_RESPONDING" and state["detail"].startswith("Not responding")
    (driver,) = _findings(report, "hgpu02", "gpu-driver")
    assert driver["message"] == "driver 535.183.01, expected 550.90.07"
    (kernel,) = _findings(report, "hgpu02", "kernel")
    assert kernel["level"] == "warning"
    assert kernel["message"] == "kernel 5.15.0-113-generic, pool hgpu mostly runs 5.15.0-119-generic"
    (changed,) = _findings(report, "gpu11", "host-key-changed")
    assert "SHA256:" in changed["detail"] and changed["level"] == "error"
    (unknown,) = _findings(report, "gpu12", "host-key-unknown")
    assert f"[{NET}12]" in unknown["detail"]


def test_problems_group_hosts_as_a_hostlist(report):
    problems = {(p["check"], p["message"]): p for p in json.loads(report.stdout)["problems"]}
    slurmd = problems[("service", "slurmd not running")]
    assert slurmd["hosts"] == "gpu[08-09]" and slurmd["count"] == 2
    keys = [p["hosts"] for p in problems.values() if p["check"].startswith("host-key")]
    assert sorted(keys) == ["gpu11", "gpu12"]
    # errors before warnings, the widest problem first
    levels = [p["level"] for p in json.loads(report.stdout)["problems"]]
    assert levels == sorted(levels, key=lambda lv: lv != "error")


def test_the_refused_host_key_is_never_written(report, site):
    assert "gpu12" not in site["known"].read_text()
    assert f"[{NET}12]" not in site["known"].read_text()


def test_text_table_and_limit(cli, site):
    proc = _run(cli, site, "--limit", "gpu[07-09],login01")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "HOSTS", "HOSTLIST", "PROBLEM"]
    rows = {tuple(line.split()[:3]) for line in lines[1:4]}
    assert rows == {("service", "2", "gpu[08-09]"), ("slurm-state", "2", "gpu[08-09]"), ("mount-missing", "1", "gpu07")}
    assert "  gpu08: Not responding [slurm@2024-09-03T09:12:44]" in lines
    assert lines[-1] == "verify verifylab: 4 host(s): 1 conforming, 3 nonconforming"


def test_conforming_hosts_exit_zero(cli, site):
    proc = _run(cli, site, "--limit", "gpu[01-02],hgpu01,login01,ctl01", "--parallel", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "verify verifylab: 5 host(s): 5 conforming\n"


def test_hung_collector_and_silent_host_are_bounded_by_the_timeout(cli, site):
    silent = socket.socket()
    silent.bind((NET + "201", site["port"]))
    silent.listen(8)  # completes the TCP handshake but never sends an SSH banner
    try:
        proc = _run(cli, site, "--limit", "gpu01,gpu02", "--address", f"gpu01={NET}{HANGING_GPU}",
                    "--address", f"gpu02={NET}201", "--timeout", "3", "--output", "json")
    finally:
        silent.close()
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    by_host = {h["host"]: h for h in doc["hosts"]}
    assert by_host["gpu02"]["status"] == "timeout"
    checks = {(f["host"], f["check"], f["message"]) for f in doc["findings"]}
    # nvidia-smi hangs, is killed by the collector timeout, and everything else on the node is still checked
    assert by_host["gpu01"]["status"] == "nonconforming"
    assert ("gpu01", "collector", "nvidia-smi timed out") in checks
    assert {c for h, c, _ in checks if h == "gpu01"} == {"collector"}
