"""The acceptance parsers on the tools' output formats (stand-ins written from the documented formats, see
tests/fixtures/accept/README.md), and node.py's checks run against the stand-in commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpucloud.accept import node

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "accept"


def text(name: str) -> str:
    return (FIX / name).read_text()


def test_dcgm_pass_has_no_failures():
    assert node.parse_dcgm(text("dcgm-r2-pass.json")) == []


def test_dcgm_fail_names_test_gpu_and_warning():
    (failure,) = node.parse_dcgm(text("dcgm-r2-fail.json"))
    assert failure.startswith("GPU Memory gpu 3: Pending page retirements")


def test_dcgm_4_top_key_and_text_around_the_json():
    data = json.loads(text("dcgm-r2-fail.json"))
    wrapped = "Successfully ran diagnostic\n" + json.dumps({"DCGM Diagnostic": data["DCGM GPU Diagnostic"]}) + "\n"
    assert len(node.parse_dcgm(wrapped)) == 1


def test_dcgm_skip_and_warn_are_not_failures():
    results = [{"gpu_id": "0", "status": "Skip"}, {"gpu_id": "1", "status": "Warn", "warnings": [{"warning": "x"}]}]
    data = {"DCGM GPU Diagnostic": {"test_categories": [{"category": "Stress", "tests": [
        {"name": "Targeted Power", "results": results}]}]}}
    assert node.parse_dcgm(json.dumps(data)) == []


@pytest.mark.parametrize("bad", ["", "Error: unable to connect to host engine", '{"other": 1}'])
def test_dcgm_garbage_is_a_parse_error(bad):
    with pytest.raises(node.ParseError):
        node.parse_dcgm(bad)


@pytest.mark.parametrize("name, busbw", [("nccl-1node-healthy.txt", 380.9541), ("nccl-1node-slow.txt", 37.4577),
                                         ("nccl-2node-healthy.txt", 296.475), ("nccl-2node-slow.txt", 76.5082)])
def test_nccl_reads_the_avg_bus_bandwidth_line(name, busbw):
    got = node.parse_nccl(text(name))
    assert got == {"busbw": pytest.approx(busbw, abs=1e-4), "wrong": 0}


def test_nccl_counts_wrong_values_and_out_of_bounds():
    lines = text("nccl-1node-healthy.txt").splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip().startswith("8388608"))
    cols = lines[row].rsplit(None, 1)
    lines[row] = cols[0] + "      5"  # in-place #wrong
    assert node.parse_nccl("\n".join(lines))["wrong"] == 5
    failed = text("nccl-1node-healthy.txt").replace("Out of bounds values : 0 OK", "Out of bounds values : 3 FAILED")
    assert node.parse_nccl(failed)["wrong"] == 3


def test_nccl_without_summary_is_a_parse_error():
    with pytest.raises(node.ParseError):
        node.parse_nccl("NCCL WARN NET/IB : No device found.\n")


def test_ibstat_ports():
    cas = node.parse_ibstat(text("ibstat-mlx5_3-down.txt"))
    assert sorted(cas) == [f"mlx5_{i}" for i in range(10)]
    assert cas["mlx5_0"][1] == {"state": "Active", "physical": "LinkUp", "rate": 400, "link_layer": "InfiniBand"}
    assert cas["mlx5_3"][1]["state"] == "Down" and cas["mlx5_3"][1]["physical"] == "Polling"


def test_sysfs_rate():
    assert node.parse_sysfs_rate("400 Gb/sec (4X NDR)\n") == (400, "4X", "NDR")
    assert node.parse_sysfs_rate("200 Gb/sec (2X NDR)") == (200, "2X", "NDR")
    with pytest.raises(node.ParseError):
        node.parse_sysfs_rate("unknown")


def test_ib_write_bw_average_in_gbps():
    assert node.parse_ib_write_bw(text("ib_write_bw-healthy.txt")) == pytest.approx(391.87)
    assert node.parse_ib_write_bw(text("ib_write_bw-slow.txt")) == pytest.approx(187.42)
    # without --report_gbits perftest prints MB/sec (10^6 bytes): 48983.75 MB/s = 391.87 Gb/s
    assert node.parse_ib_write_bw(text("ib_write_bw-mbsec.txt")) == pytest.approx(391.87, abs=0.01)
    with pytest.raises(node.ParseError):
        node.parse_ib_write_bw("Couldn't connect to localhost:18515\n")


def _node_py(tmp_path, fault: str | None, *args: str) -> tuple[int, list[dict]]:
    faults = tmp_path / "faults"
    faults.write_text(f"{fault} n1\n" if fault else "")
    env = {**os.environ, "PATH": f"{FIX / 'bin'}:{os.environ['PATH']}", "SLURMD_NODENAME": "n1",
           "GPUCLOUD_FAKE_FAULTS": str(faults), "GPUCLOUD_ACCEPT_SYSFS": str(FIX / "sysfs")}
    p = subprocess.run([sys.executable, node.__file__, *args], capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines()]


GATES = ("--gpus", "8", "--nccl-min", "360", "--devices", "mlx5_0,mlx5_3", "--rate", "400", "--width", "4X",
         "--ib-min", "360")


@pytest.mark.parametrize("fault, reason", [
    (None, ""),
    ("dcgm", "dcgm GPU Memory gpu 3: Pending page retirements together with a DBE were detected on GPU 3."),
    ("nccl", "nccl busbw 37.5 < 360 GB/s"),
    ("ib-down", "ib mlx5_3 Down/Polling"),
    ("ib-slow", "ib_write_bw mlx5_0 187.4 < 360 Gb/s"),
])
def test_node_checks_verdict(tmp_path, fault, reason):
    rc, lines = _node_py(tmp_path, fault, *GATES)
    assert lines[-1] == {"verdict": "fail" if fault else "pass", "reason": reason}
    assert rc == (1 if fault else 0)


def test_node_checks_wrong_rate_or_width(tmp_path):
    _, lines = _node_py(tmp_path, None, "--devices", "mlx5_0", "--rate", "200", "--width", "2X")
    assert lines[-1]["reason"] == "ib mlx5_0 rate 400 != 200"
    _, lines = _node_py(tmp_path, None, "--devices", "mlx5_0", "--rate", "400", "--width", "2X")
    assert lines[-1]["reason"] == "ib mlx5_0 width 4X != 2X"


def test_node_checks_missing_tool_fails(tmp_path):
    env = {"PATH": "/nonexistent", "GPUCLOUD_ACCEPT_SYSFS": str(FIX / "sysfs")}
    p = subprocess.run([sys.executable, node.__file__, "--gpus", "8"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 1
    assert json.loads(p.stdout.splitlines()[-1])["reason"].startswith("dcgm diag -r 2: no JSON object")
