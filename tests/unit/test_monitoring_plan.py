"""The monitoring planner and renderer: labels agree with the fabric plan, target files scale with pools, rules follow
the plan (rates, mounts, controllers)."""

from __future__ import annotations

import json

import yaml

from conftest import ROOT
from gpucloud.plan import build_plan
from gpucloud.plan.fabric import plan_fabric
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.monitoring import plan_monitoring, rate_bytes
from gpucloud.render import monitoring as render_monitoring
from gpucloud.spec import load


def _spec(name):
    return load(ROOT / "clusters" / f"{name}.yaml").spec


def test_su_label_is_the_fabric_planners_leaf_group_of_every_host():
    # Two compute pools: the second starts on the SU after the first pool's last (partial) SU.
    spec = _spec("hokkaido-10k")
    pools = plan_hosts(spec)
    mon = plan_monitoring(spec, pools)
    fp = plan_fabric(spec, pools, "compute")
    leaf_group = {e.host: fp.switches[e.leaf].group for e in fp.endpoints if not e.service}
    su_of = {h: g.su for j in mon.jobs if j.exporter == "node" for g in j.groups for h in g.hosts}
    assert leaf_group  # the comparison covers the compute hosts
    assert {h: su_of[h] for h in leaf_group} == leaf_group
    assert su_of["gpu1001"] == 9  # h200's first host: 250 h100 nodes fill SUs 1-8
    # service hosts take free ports: no SU label
    assert {su_of[h] for h in su_of if h.startswith(("ctl", "login"))} == {0}


def test_target_files_grow_with_pools_not_hosts():
    spec = _spec("colossus-100k")
    pools = plan_hosts(spec)
    mon = plan_monitoring(spec, pools)
    assert {j.job_name for j in mon.jobs} == {"node-gpu", "dcgm-gpu", "node-login", "node-ctl", "slurm-ctl"}
    node = next(j for j in mon.jobs if j.job_name == "node-gpu")
    assert sum(len(g.hosts) for g in node.groups) == 12500
    # one target group per (rack, SU): 4 nodes a rack, 32 a SU
    assert len(node.groups) == 12500 // 4
    assert mon.servers == ("ctl01", "ctl02", "ctl03", "ctl04")


def test_every_host_is_a_target_of_its_pools_file_once(tmp_path):
    plan = build_plan(_spec("ishikari"))
    files = render_monitoring.render(plan)
    for exporter, pool, port in (("node", "gpu", 9100), ("dcgm", "gpu", 9400), ("node", "ctl", 9100),
                                 ("slurm", "ctl", 9092)):
        groups = json.loads(files[f"monitoring/prometheus/targets/{exporter}/{pool}.json"])
        targets = [t for g in groups for t in g["targets"]]
        assert targets == [f"{h.name}:{port}" for h in plan.pool(pool).hosts]
        assert all(g["labels"]["pool"] == pool for g in groups)
    assert "monitoring/prometheus/targets/dcgm/ctl.json" not in files  # no GPUs there
    cfg = yaml.safe_load(files["monitoring/prometheus/prometheus.yml"])
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["ctl01:9093", "ctl02:9093"]
    assert cfg["global"]["external_labels"] == {"cluster": "ishikari"}


def test_rail_relabelling_only_where_hosts_sit_on_rails():
    cfg = yaml.safe_load(render_monitoring.render(build_plan(_spec("ishikari")))["monitoring/prometheus/prometheus.yml"])
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    gpu_rules = jobs["node-gpu"]["metric_relabel_configs"]
    assert [r["regex"] for r in gpu_rules if r["target_label"] == "rail"] == [f"mlx5_{r}" for r in range(8)]
    assert [r["replacement"] for r in gpu_rules if r["target_label"] == "rail"] == [str(r) for r in range(8)]
    # the controllers' one compute HCA takes a free port: on the compute fabric, on no rail
    assert [r["target_label"] for r in jobs["node-ctl"]["metric_relabel_configs"]] == ["fabric"]
    assert "metric_relabel_configs" not in jobs["dcgm-gpu"]


def test_planned_rate_alerts_follow_the_pools_link_rate():
    assert rate_bytes("ndr") == 50_000_000_000 and rate_bytes("ndr200") == 25_000_000_000
    assert rate_bytes("xdr") == 100_000_000_000 and rate_bytes(None) == 0
    rules = yaml.safe_load(render_monitoring.render(build_plan(_spec("abci3")))["monitoring/prometheus/rules/gpucloud.yml"])
    rate_rules = {r["labels"]["pool"]: r["expr"] for g in rules["groups"] for r in g["rules"]
                  if r["alert"] == "IbLinkBelowPlannedRate"}
    # ABCI 3.0: NDR200 adapters on an NDR200 fabric
    assert rate_rules["h200"] == 'node_infiniband_rate_bytes_per_second{fabric="compute",pool="h200"} < 25000000000'


def test_mount_and_daemon_alerts_name_the_planned_pools():
    plan = build_plan(_spec("lab"))
    rules = yaml.safe_load(render_monitoring.render(plan)["monitoring/prometheus/rules/gpucloud.yml"])
    by_name = {}
    for g in rules["groups"]:
        for r in g["rules"]:
            by_name.setdefault(r["alert"], []).append(r)
    mounts = {r["labels"]["filesystem"]: r["expr"] for r in by_name["FilesystemNotMounted"]}
    assert mounts["scratch"].startswith('up{job="node",pool=~"gpu"} == 1 unless')
    assert 'mountpoint="/scratch"' in mounts["scratch"]
    assert set(mounts) == {"home", "scratch"}
    assert 'pool=~"ctl"' in by_name["SlurmctldDown"][0]["expr"]
    assert 'pool=~"ctl"' in by_name["SlurmdbdDown"][0]["expr"]


def test_an_automounted_filesystem_is_not_watched_as_mounted():
    import dataclasses

    plan = build_plan(_spec("lab"))
    nfs = tuple(dataclasses.replace(fs, automount=True) for fs in plan.storage.nfs)
    plan = dataclasses.replace(plan, storage=dataclasses.replace(plan.storage, nfs=nfs))
    rules = yaml.safe_load(render_monitoring.render(plan)["monitoring/prometheus/rules/gpucloud.yml"])
    watched = {r["labels"]["filesystem"] for g in rules["groups"] for r in g["rules"]
               if r["alert"] == "FilesystemNotMounted"}
    assert watched == {"scratch"}


def test_alertmanager_sends_critical_alerts_to_on_call_and_holds_no_credentials():
    am = yaml.safe_load(render_monitoring.render(build_plan(_spec("lab")))["monitoring/alertmanager/alertmanager.yml"])
    assert am["route"]["routes"] == [{"matchers": ['severity="critical"'], "receiver": "on-call"}]
    assert am["receivers"] == [{"name": "operators"}, {"name": "on-call"}]


def test_an_ndr_adapter_on_ndr200_ports_is_planned_at_ndr200():
    import dataclasses

    spec = _spec("lab")
    fabric = dataclasses.replace(spec.fabrics["compute"], rate="ndr200")
    spec = dataclasses.replace(spec, fabrics={**spec.fabrics, "compute": fabric})
    rates = {p.pool: (p.ib_rate, p.ib_rate_bytes) for p in plan_monitoring(spec, plan_hosts(spec)).pools}
    assert rates["gpu"] == ("ndr200", 25_000_000_000)
    assert rates == {**rates, "ctl": ("ndr200", 25_000_000_000)}
