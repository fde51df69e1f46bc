"""The rendered monitoring files against their real consumers: promtool, amtool, Prometheus and Alertmanager.

The lab plan is rendered, checked by promtool/amtool, its alert rules run through `promtool test rules` with a case
per alert (tests/fixtures/monitoring/rules_test.yml), and a real Prometheus scrapes stand-in exporters with the
plan's scrape jobs and relabelling; an XID reported by the dcgm-exporter stand-in reaches Alertmanager.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import EXAMPLES, ROOT
from gpucloud.plan import build_plan
from gpucloud.render.monitoring import render
from gpucloud.spec import load
from monitoring_harness import FIXTURES, MonitoringRig, missing_binaries, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())} "
                       "(apt-get install prometheus prometheus-alertmanager)"),
]


@pytest.fixture(scope="module")
def lab_files():
    return render(build_plan(load(ROOT / "clusters" / "lab.yaml").spec))


def _write(tmp_path, files):
    for path, data in files.items():
        out = tmp_path / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return tmp_path / "monitoring"


def _run(*argv, cwd):
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_promtool_and_amtool_accept_the_rendered_files(tmp_path, spec):
    conf = _write(tmp_path, render(build_plan(load(spec).spec)))
    got = _run("promtool", "check", "config", "prometheus.yml", cwd=conf / "prometheus")
    assert got.returncode == 0, got.stdout + got.stderr
    # check config also reads the rule files it names: make sure it found ours
    assert "1 rule files found" in got.stdout + got.stderr
    got = _run("promtool", "check", "rules", "rules/gpucloud.yml", cwd=conf / "prometheus")
    assert got.returncode == 0, got.stdout + got.stderr
    got = _run("amtool", "check-config", "alertmanager/alertmanager.yml", cwd=conf)
    assert got.returncode == 0, got.stdout + got.stderr


def test_every_alert_has_a_promtool_case(tmp_path, lab_files):
    conf = _write(tmp_path, lab_files)
    rules_dir = conf / "prometheus" / "rules"
    shutil.copy(FIXTURES / "rules_test.yml", rules_dir / "rules_test.yml")
    got = _run("promtool", "test", "rules", "rules_test.yml", cwd=rules_dir)
    assert got.returncode == 0, got.stdout + got.stderr
    import yaml

    alerts = {r["alert"] for g in yaml.safe_load(lab_files["monitoring/prometheus/rules/gpucloud.yml"])["groups"]
              for r in g["rules"]}
    cases = {t["alertname"] for case in yaml.safe_load((FIXTURES / "rules_test.yml").read_text())["tests"]
             for t in case.get("alert_rule_test", ()) if t.get("exp_alerts")}
    assert alerts == cases


def test_xid_from_a_stand_in_reaches_alertmanager(tmp_path, lab_files):
    rig = MonitoringRig(tmp_path, lab_files, {"gpu01": "127.0.0.11", "gpu02": "127.0.0.12"})
    dcgm = (FIXTURES / "dcgm-exporter.prom").read_text()
    node = (FIXTURES / "node-exporter.prom").read_text()
    try:
        gpu01 = rig.add_stand_in("gpu01", "dcgm", dcgm)
        # GPU 0 of gpu02 is held by job 4242: dcgm-exporter's HPC job mapping adds hpc_job to that GPU's series only.
        rig.add_stand_in("gpu02", "dcgm", dcgm.replace('{gpu="0",', '{gpu="0",hpc_job="4242",'))
        rig.add_stand_in("gpu01", "node", node)
        rig.add_stand_in("gpu02", "node", node)
        rig.rewrite()
        rig.start()
        # The plan's labels arrive on the scraped series: pool/rack/SU from file_sd, rail from metric relabelling.
        up = wait_for("both GPU nodes scraped by node and dcgm jobs",
                      lambda: (r := rig.query('up{pool="gpu"} == 1')) and len(r) == 4 and r, log=rig.prom_log)
        assert {(s["metric"]["job"], s["metric"]["rack"], s["metric"]["su"]) for s in up} == {
            ("node", "lab01", "1"), ("dcgm", "lab01", "1")}
        rails = rig.query('node_infiniband_state_id{instance="127.0.0.11",fabric="compute"}')
        assert sorted((s["metric"]["device"], s["metric"]["rail"]) for s in rails) == [
            (f"mlx5_{r}", str(r)) for r in range(8)]
        assert not rig.query('node_infiniband_state_id{instance="127.0.0.11",device="mlx5_8",fabric="compute"}')
        assert not [a for a in rig.alerts() if a["labels"]["alertname"] == "GpuXidError"]

        # Every dashboard query is valid PromQL for this Prometheus; the job view finds exactly the job's GPU.
        import json

        for board in ("cluster", "su", "job"):
            panels = json.loads(lab_files[f"monitoring/grafana/dashboards/{board}.json"])["panels"]
            for panel in panels:
                for target in panel["targets"]:
                    rig.query(target["expr"].replace("$su", "1").replace("$job", "4242"))  # HTTP 400 if invalid
        job_gpus = rig.query('DCGM_FI_DEV_GPU_UTIL{hpc_job="4242"}')
        assert [(s["metric"]["instance"], s["metric"]["gpu"]) for s in job_gpus] == [("127.0.0.12", "0")]
        traffic = next(t["expr"] for p in json.loads(lab_files["monitoring/grafana/dashboards/job.json"])["panels"]
                       for t in p["targets"] if "node_infiniband" in t["expr"]).replace("$job", "4242")
        # rate() needs two samples of the counter: wait for them rather than for a time
        nodes = wait_for("the job's node traffic", lambda: rig.query(traffic), log=rig.prom_log)
        assert [s["metric"]["instance"] for s in nodes] == ["127.0.0.12"]

        # GPU 3 of gpu01 reports XID 79 (fallen off the bus).
        gpu01.text = gpu01.text.replace(
            'device="nvidia3",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu01",DCGM_FI_DRIVER_VERSION="550.90.07"} 0',
            'device="nvidia3",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu01",DCGM_FI_DRIVER_VERSION="550.90.07"} 79',
            1)
        assert " 79" in gpu01.text
        fired = wait_for("GpuXidError in Alertmanager",
                         lambda: [a for a in rig.alerts() if a["labels"]["alertname"] == "GpuXidError"],
                         log=rig.am_log)
        assert len(fired) == 1
        labels = fired[0]["labels"]
        assert (labels["gpu"], labels["instance"], labels["pool"], labels["su"], labels["severity"],
                labels["cluster"]) == ("3", "127.0.0.11", "gpu", "1", "critical", "lab")
        assert fired[0]["annotations"]["summary"] == "XID 79 on GPU 3 of 127.0.0.11"
        # critical alerts go to the on-call receiver
        assert [r["name"] for r in fired[0]["receivers"]] == ["on-call"]
    finally:
        rig.stop()
