"""The acceptance run's order against a recording stand-in for the Slurm client: reserve before resume, drain on
failure, never leave an untested node in service (the real daemons: tests/integration/test_accept_slurm.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CLUSTERS
from gpucloud.accept import run
from gpucloud.accept.slurm import NodeState
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan.acceptance import acceptance_nodes

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "accept"


class FakeSlurm:
    def __init__(self, states, node_out=None, pair_ok=True, explode=False):
        self.states = states
        self.calls = []
        self.node_out = node_out or {}
        self.pair_ok = pair_ok
        self.explode = explode

    def nodes(self):
        return self.states

    def drain(self, nodes, reason):
        self.calls.append(("drain", nodes, reason))

    def resume(self, nodes):
        self.calls.append(("resume", nodes))

    def reserve(self, name, nodes, user):
        self.calls.append(("reserve", nodes))

    def unreserve(self, name):
        self.calls.append(("unreserve",))

    def srun(self, args, timeout):
        node = next(a.split("=", 1)[1] for a in args if a.startswith("--nodelist="))
        if self.explode is True or (self.explode == "pair" and "," in node):
            raise KeyboardInterrupt
        if "," in node:
            name = "nccl-2node-healthy.txt" if self.pair_ok else "nccl-2node-slow.txt"
            return 0, (FIX / name).read_text(), ""
        verdict = self.node_out.get(node, {"verdict": "pass", "reason": ""})
        return (0 if verdict["verdict"] == "pass" else 1), json.dumps(verdict) + "\n", ""


@pytest.fixture(scope="module")
def nodes():
    return acceptance_nodes(build_plan(check_spec(CLUSTERS / "lab.yaml").spec))


def held(*names, state="drained"):
    return {n: NodeState(n, state, "accept: pending") for n in names}


def test_reservation_comes_before_resume_and_goes_last(nodes):
    slurm = FakeSlurm(held("gpu01", "gpu02"))
    verdicts = run.accept(slurm, nodes, run.Options(parallel=2))
    assert [v.result for v in verdicts] == ["pass", "pass"]
    assert slurm.calls == [("reserve", "gpu[01-02]"), ("resume", "gpu[01-02]"), ("unreserve",)]


def test_a_failed_node_is_drained_with_its_reason(nodes):
    slurm = FakeSlurm(held("gpu01", "gpu02"),
                      node_out={"gpu02": {"verdict": "fail", "reason": "nccl busbw 41.2 < 360 GB/s"}})
    verdicts = {v.node.name: v for v in run.accept(slurm, nodes, run.Options())}
    assert verdicts["gpu02"].result == "fail"
    assert ("drain", "gpu02", "accept: nccl busbw 41.2 < 360 GB/s") in slurm.calls
    assert verdicts["gpu01"].result == "pass"
    assert verdicts["gpu01"].pairs == [{"nodes": ["gpu01"], "ok": None,
                                        "reason": "no partner in its pool for a two-node run"}]


def test_a_failed_pair_of_two_holds_both(nodes):
    slurm = FakeSlurm(held("gpu01", "gpu02"), pair_ok=False)
    verdicts = run.accept(slurm, nodes, run.Options())
    assert [v.result for v in verdicts] == ["fail", "fail"]
    assert ("drain", "gpu01", "accept: nccl pair busbw 76.5 < 280 GB/s (with gpu02)") in slurm.calls


def test_nodes_in_service_are_skipped_and_nothing_is_reserved(nodes):
    slurm = FakeSlurm(held("gpu01", state="idle") | held("gpu02", state="draining"))
    verdicts = run.accept(slurm, nodes, run.Options())
    assert [v.result for v in verdicts] == ["skipped", "skipped"]
    assert verdicts[0].reason.startswith("not held (state idle)")
    assert slurm.calls == []


def test_an_interrupted_run_drains_every_node_without_a_verdict(nodes):
    slurm = FakeSlurm(held("gpu01", "gpu02") | {"gpu02": NodeState("gpu02", "down*", "")}, explode=True)
    with pytest.raises(KeyboardInterrupt):
        run.accept(slurm, nodes, run.Options())
    assert slurm.calls[-2:] == [("drain", "gpu[01-02]", run.INTERRUPTED_REASON), ("unreserve",)]


def test_a_node_that_passed_its_own_checks_is_not_in_service_before_its_pair_run(nodes):
    slurm = FakeSlurm(held("gpu01", "gpu02"), explode="pair")
    with pytest.raises(KeyboardInterrupt):
        run.accept(slurm, nodes, run.Options())
    assert slurm.calls[-2:] == [("drain", "gpu[01-02]", run.INTERRUPTED_REASON), ("unreserve",)]


def test_reports_are_deterministic(nodes):
    slurm = FakeSlurm(held("gpu01", "gpu02"),
                      node_out={"gpu02": {"verdict": "fail", "reason": "ib mlx5_3 Down/Polling"}})
    a = run.accept(slurm, nodes, run.Options())
    b = run.accept(FakeSlurm(slurm.states, slurm.node_out), nodes, run.Options(parallel=1))
    assert run.report_json("lab", a) == run.report_json("lab", b)
    md = run.report_markdown("lab", a).decode()
    assert "| gpu02 | gpu | 1 | fail | accept: ib mlx5_3 Down/Polling |" in md


@pytest.mark.parametrize("args, message", [
    (["--limit", "gpu[01-"], "is not a hostlist"),
    (["--limit", "gpu[1-99999999]"], "is too large"),
    (["--limit", "login01"], "not compute nodes of lab: login01"),
])
def test_cli_usage_errors_exit_2_before_touching_slurm(args, message):
    from conftest import run_cli

    res = run_cli("accept", str(CLUSTERS / "lab.yaml"), *args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
