"""The pairing schedule names a bad node (or a node with a bad cable) in two rounds; the acceptance planner finds
each node's SU, devices and gates from the plan and the catalog."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from conftest import CLUSTERS
from gpucloud import catalog
from gpucloud.catalog.acceptance import thresholds_for
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan.acceptance import PairSchedule, acceptance_nodes, by_su


def drive(nodes, bad, spares=()):
    """Run the schedule with a simulated fabric: a run fails when either node is bad."""
    sched = PairSchedule(list(nodes))
    runs = []
    while True:
        pairs = sched.next_round(spares)
        if not pairs:
            break
        for pair in pairs:
            runs.append(pair)
            sched.record(pair, not (set(pair) & set(bad)))
    assert sched.finished()
    return sched, runs


@pytest.mark.parametrize("n", [3, 4, 7, 8, 32])
def test_one_bad_node_is_isolated_in_two_rounds(n):
    nodes = [f"gpu{i:02d}" for i in range(n)]
    for bad in nodes:
        sched, runs = drive(nodes, {bad})
        assert set(sched.bad) == {bad}, (bad, runs)
        # more only in an SU of three whose one pair holds the bad node: nothing passed in round 1
        assert sched.rounds == 2 if n > 3 or bad == "gpu02" else sched.rounds <= 4
        assert sorted(sched.good) == sorted(set(nodes) - {bad})
        # the first round is disjoint pairs, the second re-tests only the failed pair (and the odd node)
        assert len(runs) <= n // 2 + 3
        # the run that condemns the bad node pairs it with a node that passed a run of its own
        a, b = sched.bad[bad]
        assert a == bad and b in sched.good


def test_a_ring_would_not_isolate_but_pairs_do():
    nodes = [f"gpu{i:02d}" for i in range(8)]
    sched, runs = drive(nodes, {"gpu05"})
    assert runs[:4] == [("gpu00", "gpu01"), ("gpu02", "gpu03"), ("gpu04", "gpu05"), ("gpu06", "gpu07")]
    assert runs[4:] == [("gpu04", "gpu00"), ("gpu05", "gpu01")]
    assert sched.bad == {"gpu05": ("gpu05", "gpu01")}


@given(st.integers(2, 40), st.data())
def test_every_bad_node_found_and_no_good_one_blamed(n, data):
    nodes = [f"n{i}" for i in range(n)]
    bad = set(data.draw(st.lists(st.sampled_from(nodes), max_size=n - 2, unique=True)))
    sched, _ = drive(nodes, bad)
    if len(set(nodes) - bad) >= 2:
        # two good nodes find each other sooner or later; from then on every suspect meets a good partner
        assert set(sched.bad) == bad
        assert sorted(sched.good) == sorted(set(nodes) - bad)
    else:
        assert set(sched.bad) >= bad


def test_no_known_good_node_fails_both_of_a_failed_pair():
    sched, runs = drive(["a", "b"], {"a"})
    assert runs == [("a", "b")]
    assert sched.bad == {"a": ("a", "b"), "b": ("a", "b")}


def test_suspects_pair_among_themselves_when_nothing_passed():
    # four nodes, two bad, one in each first-round pair: a new pairing of the suspects finds the good ones
    sched, runs = drive(["a", "b", "c", "d"], {"a", "c"})
    assert runs[:2] == [("a", "b"), ("c", "d")]
    assert runs[2:4] == [("a", "c"), ("b", "d")]
    assert set(sched.bad) == {"a", "c"} and sorted(sched.good) == ["b", "d"]


def test_spares_from_another_su_isolate_a_lone_pair():
    sched, runs = drive(["a", "b"], {"a"}, spares=["g1", "g2"])
    assert runs == [("a", "b"), ("a", "g1"), ("b", "g2")]
    assert sched.bad == {"a": ("a", "g1")} and "b" in sched.good


def test_a_lone_node_without_partner_is_untested_not_failed():
    sched, runs = drive(["a"], set())
    assert runs == [] and sched.untested == ["a"] and not sched.bad
    sched, runs = drive(["a"], set(), spares=["g"])
    assert runs == [("a", "g")] and sched.good == ["a"]


def test_record_before_next_round():
    sched = PairSchedule(["a", "b", "c", "d"])
    sched.next_round()
    with pytest.raises(RuntimeError):
        sched.next_round()


def _plan(name):
    checked = check_spec(CLUSTERS / name)
    return build_plan(checked.spec)


def test_lab_nodes_gates_and_su():
    plan = _plan("lab.yaml")
    nodes = acceptance_nodes(plan)
    assert [n.name for n in nodes] == ["gpu01", "gpu02"]
    n = nodes[0]
    assert (n.pool, n.su, n.gpus, n.partition) == ("gpu", 1, 8, "gpu")
    assert n.devices == tuple(f"mlx5_{i}" for i in range(8))
    t = n.thresholds
    assert (t.nccl_busbw.value, t.nccl_pair_busbw.value, t.ib_write_bw.value) == (360.0, 280.0, 360.0)
    assert (t.link_rate_gbps, t.link_width, t.dcgm_level) == (400, "4X", 2)
    assert all(x.source for x in (t.nccl_busbw, t.nccl_pair_busbw, t.ib_write_bw))
    assert acceptance_nodes(plan, only=["gpu02"])[0].name == "gpu02"


def test_ndr200_nodes_get_ndr200_gates():
    plan = _plan("abci3.yaml")
    nodes = acceptance_nodes(plan, only=[next(h.name for pp in plan.pools if "compute" in pp.pool.roles
                                              for h in pp.hosts)])
    t = nodes[0].thresholds
    assert (t.link_rate_gbps, t.link_width, t.ib_write_bw.value) == (200, "2X", 180.0)
    assert t.nccl_pair_busbw.value == 8 * 200 / 8 * 0.7


def test_ishikari_sus_follow_the_fabric_plan():
    plan = _plan("ishikari.yaml")
    nodes = acceptance_nodes(plan)
    groups = by_su(nodes)
    fp = next(f for f in plan.fabrics if f.name == "compute")
    assert len({su for _, su in groups}) == fp.sus
    assert max(len(v) for v in groups.values()) <= fp.su_size
    # slot s of SU k: the SU's nodes are consecutive in the plan
    first = groups[next(iter(groups))]
    assert first == [n.name for n in nodes[:len(first)]]


def test_spec_overrides_and_models_without_nvswitch():
    t = thresholds_for(catalog.server("hgx-h100-8"), "ndr", {"nccl_busbw_gbs": 300, "dcgm_level": 3})
    assert (t.nccl_busbw.value, t.nccl_busbw.source, t.dcgm_level) == (300.0, "the spec's acceptance.thresholds", 3)
    assert thresholds_for(catalog.server("h100-4"), "ndr").nccl_busbw is None
    cpu = thresholds_for(catalog.server("cpu-1u"), "ndr200")
    assert cpu.nccl_busbw is None and cpu.nccl_pair_busbw is None and cpu.ib_write_bw.value == 180.0


def test_resume_gate_arguments_come_from_the_catalog(capsys):
    from gpucloud.accept import gate

    assert gate.main(["--model", "hgx-h200-8-ndr200", "--rate-gbps", "200"]) == 0
    args = __import__("json").loads(capsys.readouterr().out)
    assert args == ["--gpus", "8", "--dcgm-level", "2", "--nccl-min", "360", "--devices",
                    ",".join(f"mlx5_{i}" for i in range(8)), "--rate", "200", "--width", "2X", "--ib-min", "180"]
    assert gate.gate_args("hgx-h100-8", 400, {"nccl_busbw_gbs": 300})[5] == "300"
    assert gate.main(["--model", "no-such-model"]) == 2


def test_devices_follow_the_models_rdma_names(tmp_path):
    """A DGX H100 names its compute rails mlx5_0, 3-6, 9-11: the checks look at those, not at mlx5_0-7."""
    import yaml

    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    dgx = ["mlx5_0", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9", "mlx5_10", "mlx5_11"]
    data["hardware"] = {"models": {"dgx-h100": {"base": "hgx-h100-8", "compute_hcas": {"devices": dgx},
                                                "storage_hcas": {"devices": ["mlx5_1", "mlx5_2"]}}}}
    data["node_pools"][0]["model"] = "dgx-h100"
    spec = tmp_path / "dgx.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(spec)
    assert not checked.fails(), [f.message for f in checked.findings]
    (n, _) = acceptance_nodes(build_plan(checked.spec))
    assert n.devices == tuple(dgx)


def test_resume_gate_for_a_model_of_the_specs_own(capsys):
    from gpucloud.accept import gate

    assert gate.main(["--model", "epyc-h100nvl-4", "--rate-gbps", "400", "--gpus", "4", "--rails", "4"]) == 0
    args = __import__("json").loads(capsys.readouterr().out)
    assert "--nccl-min" not in args  # no GPU type known: measured and reported, not gated
    assert args[args.index("--devices") + 1] == "mlx5_0,mlx5_1,mlx5_2,mlx5_3"
    assert args[args.index("--ib-min") + 1] == "360"
