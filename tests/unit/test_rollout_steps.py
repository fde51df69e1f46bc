"""gpucloud.stack.rollout.roll with a stand-in Slurm: the order of the steps per batch, and where a failure stops.
The real engine and real Slurm run it in tests/integration/test_pulumi_rollout.py."""

from __future__ import annotations

import pytest

pytest.importorskip("pulumi.automation")

from gpucloud.plan.rollout import batches  # noqa: E402
from gpucloud.stack.rollout import Hooks, NodeSteps, RolloutFailed, held, roll  # noqa: E402

POOLS = [("gpu", ["gpu01", "gpu02", "gpu03"], 1)]


class FakeSlurm:
    """Nodes drain at once unless they run a job."""

    def __init__(self, log, busy=(), states=None):
        self.log, self.busy = log, set(busy)
        self.state = states or {n: "idle" for n in POOLS[0][1]}

    def states(self, nodes):
        return {n: self.state[n] for n in nodes if n in self.state}

    def drain(self, nodes, reason="x"):
        self.log.append(("drain", tuple(nodes)))
        for n in nodes:
            self.state[n] = "draining" if n in self.busy else "drained"

    def resume(self, nodes):
        self.log.append(("resume", tuple(nodes)))
        for n in nodes:
            self.state[n] = "idle"


def _run(slurm, log, converge_rc=0, health_rc=0, deleted=()):
    nodes = {n: NodeSteps((f"urn:{n}",), n in deleted, "gpu") for n in ("gpu01", "gpu02", "gpu03")}
    hooks = Hooks(slurm=slurm, converge=lambda h: log.append(("converge", tuple(h))) or converge_rc,
                  health=lambda h: log.append(("health", tuple(h))) or health_rc, poll_interval=1,
                  sleep=lambda s: log.append(("sleep", s)))
    roll(None, batches(list(nodes), POOLS), nodes, {"gpu": 3}, {"gpu"}, hooks, lambda m: None,
         lambda stack, urns: log.append(("up", tuple(urns))))


def test_each_batch_is_drained_replaced_converged_checked_and_resumed_before_the_next():
    log: list = []
    _run(FakeSlurm(log), log)
    want = []
    for n in ("gpu01", "gpu02", "gpu03"):
        want += [("drain", (n,)), ("up", (f"urn:{n}",)), ("converge", (n,)), ("health", (n,)), ("resume", (n,))]
    assert log == want


def test_a_failed_health_check_stops_with_the_rest_untouched_and_the_node_drained():
    log: list = []
    slurm = FakeSlurm(log)
    with pytest.raises(RolloutFailed) as exc:
        _run(slurm, log, health_rc=1)
    assert log[-1] == ("health", ("gpu01",))
    assert not any(n in entry[1] for entry in log for n in ("gpu02", "gpu03") if entry[0] != "sleep")
    assert slurm.state == {"gpu01": "drained", "gpu02": "idle", "gpu03": "idle"}
    text = str(exc.value)
    assert "batch 1/3" in text and "health check" in text and "nodes left untouched: gpu02, gpu03" in text


def test_a_node_still_running_a_job_is_never_replaced_and_the_drain_is_undone():
    log: list = []
    slurm = FakeSlurm(log, busy={"gpu01"})
    with pytest.raises(RolloutFailed) as exc:
        _run(slurm, log)
    assert not any(entry[0] == "up" for entry in log)
    assert [e for e in log if e[0] == "sleep"] == [("sleep", 1)] * 3  # the pool's drain_timeout, 3 s
    assert log[-1] == ("resume", ("gpu01",))
    assert "gpu01 (draining) still run jobs after 3 s" in str(exc.value)


def test_a_deleted_node_is_drained_then_powered_off_and_stays_drained():
    log: list = []
    slurm = FakeSlurm(log)
    _run(slurm, log, deleted={"gpu03"})
    assert log[-2:] == [("drain", ("gpu03",)), ("up", ("urn:gpu03",))]
    assert slurm.state["gpu03"] == "drained"


def test_a_node_drained_before_the_rollout_stays_drained():
    log: list = []
    slurm = FakeSlurm(log, states={"gpu01": "drained", "gpu02": "idle", "gpu03": "idle"})
    _run(slurm, log)
    assert ("resume", ("gpu01",)) not in log and slurm.state["gpu01"] == "drained"


@pytest.mark.parametrize("state, want", [("drained", True), ("drained*", True), ("down*", True), ("idle", False),
                                         ("draining", False), ("mixed+drain", False), ("allocated", False),
                                         ("fail", True), ("failing", False), ("idle+drain", True)])
def test_held(state, want):
    assert held(state) is want


def test_nodes_outside_slurm_are_converged_but_neither_drained_nor_health_checked():
    log: list = []
    nodes = {"login01": NodeSteps(("urn:login01",), False, "login")}
    hooks = Hooks(slurm=FakeSlurm(log, states={}), converge=lambda h: log.append(("converge", tuple(h))) or 0,
                  health=lambda h: log.append(("health", tuple(h))) or 0)
    roll(None, batches(["login01"], [("login", ["login01"], 1)]), nodes, {}, set(), hooks, lambda m: None,
         lambda stack, urns: log.append(("up", tuple(urns))))
    assert log == [("up", ("urn:login01",)), ("converge", ("login01",))]


def test_an_nvlink_batch_drains_and_resumes_the_whole_rack_but_replaces_only_its_nodes():
    from gpucloud.plan.rollout import Domain

    log: list = []
    trays = ["t1", "t2", "t3", "t4"]
    slurm = FakeSlurm(log, states={"t1": "idle", "t2": "idle", "t3": "drained", "t4": "idle"})
    slurm.reasons = {"t3": "RMA: GPU 5 Xid 79"}
    nodes = {"t2": NodeSteps(("urn:t2",), False, "nv")}
    hooks = Hooks(slurm=slurm, converge=lambda h: log.append(("converge", tuple(h))) or 0,
                  health=lambda h: log.append(("health", tuple(h))) or 0)
    doms = {"nv": [Domain("r1", ("t1", "t2", "t3"), 3), Domain("r2", ("t4",), 3)]}
    roll(None, batches(["t2"], [("nv", trays, 3)], domains=doms), nodes, {}, {"nv"}, hooks, lambda m: None,
         lambda stack, urns: log.append(("up", tuple(urns))))
    # t3 was drained before (an operator's RMA): neither drained again (its reason stays) nor resumed; r2 is not
    # touched.
    assert log == [("drain", ("t2", "t1")), ("up", ("urn:t2",)), ("converge", ("t2",)), ("health", ("t2",)),
                   ("resume", ("t2", "t1"))]
    assert slurm.state == {"t1": "idle", "t2": "idle", "t3": "drained", "t4": "idle"}
    assert slurm.reasons == {"t3": "RMA: GPU 5 Xid 79"}


@pytest.mark.parametrize("before", ["draining", "drained*", "down*", "fail", "idle+drain", "mixed+drain"])
def test_a_node_an_operator_took_out_stays_out(before):
    """An operator's drain still in progress, a failed node: the rollout waits for it to run nothing like the
    others, but keeps its reason and never resumes it, even when the drain times out and is undone."""
    for jobs_end in (True, False):
        log: list = []
        slurm = FakeSlurm(log, states={"gpu01": "idle", "gpu02": before, "gpu03": "idle"})

        def wait(seconds, slurm=slurm, jobs_end=jobs_end):
            if jobs_end:  # the operator's drain completes while the rollout waits
                slurm.state["gpu02"] = "drained"

        nodes = {n: NodeSteps((f"urn:{n}",), False, "gpu") for n in ("gpu01", "gpu02")}
        hooks = Hooks(slurm=slurm, converge=lambda h: log.append(("converge", tuple(h))) or 0,
                      health=lambda h: log.append(("health", tuple(h))) or 0, poll_interval=1, sleep=wait)
        try:
            roll(None, batches(["gpu01", "gpu02"], [("gpu", ["gpu01", "gpu02", "gpu03"], 2)]), nodes, {"gpu": 3},
                 {"gpu"}, hooks, lambda m: None, lambda stack, urns: log.append(("up", tuple(urns))))
            finished = True
        except RolloutFailed:
            finished = False
        # Replaced when it ran nothing at the start or its jobs ended; never when they kept running.
        assert finished is (jobs_end or held(before))
        assert (("up", ("urn:gpu01", "urn:gpu02")) in log) is finished
        assert log[0] == ("drain", ("gpu01",)) and log[-1] == ("resume", ("gpu01",))
        assert not any(step in ("drain", "resume") and "gpu02" in hosts for step, hosts in log)


def test_describe_names_the_racks_the_trays_drained_with_them_and_the_budget_note():
    from gpucloud.plan.rollout import Domain
    from gpucloud.stack.rollout import describe

    doms = {"nv": [Domain("r1", ("t1", "t2", "t3"), 3)]}
    lines = describe(batches(["t2"], [("nv", ["t1", "t2", "t3"], 3)], domains=doms),
                     {"nv": "budget 1 is less than one rack: raised to 1 rack (3 trays)"})
    assert lines == ["  pool nv: budget 1 is less than one rack: raised to 1 rack (3 trays)",
                     "  batch 1/1: pool nv, 1 node(s) (budget 3): t2; whole NVLink domain(s) r1, drained with them: "
                     "t[1,3]"]


def test_apply_plans_whole_rack_batches_for_an_nvl72_pool():
    """stack/apply.py hands the rollout the plan's NVLink domains: replacing one tray drains its 17 rack-mates."""
    from conftest import CLUSTERS
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.stack.apply import budget_notes, plan_batches

    checked = check_spec(CLUSTERS / "nvl72.yaml")
    plan = build_plan(checked.spec, tuple(checked.findings))
    got = plan_batches({"gb0020": NodeSteps(("urn:gb0020",), False, "gpu"),
                        "gb0100": NodeSteps(("urn:gb0100",), False, "gpu")}, plan)
    assert [(b.nodes, b.racks, len(b.held)) for b in got] == [(("gb0020", "gb0100"), ("nvl02", "nvl06"), 36)]
    assert budget_notes(plan) == {}  # the example's budget, 108 trays, is 6 whole racks
