"""The monitoring role on a monitoring host: Prometheus and Alertmanager installed from the plan's monitoring/ files
and started through the daemon role (direct service manager), on loopback with free ports under the test's folder."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import ROOT
from gpucloud.plan import build_plan
from gpucloud.render.monitoring import render
from gpucloud.spec import load
from monitoring_harness import get_json, missing_binaries, wait_for
from slurm_harness import free_port
from storage_harness import converge, need

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())} "
                       "(apt-get install prometheus prometheus-alertmanager)"),
]


def _stop(pidfile) -> None:
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def test_role_runs_prometheus_and_alertmanager_with_the_plans_files(tmp_path):
    need("ansible-playbook", "start-stop-daemon")
    if os.geteuid() != 0:
        pytest.skip("the role installs packages and writes its state folders as root")
    plan_dir = tmp_path / "plan"
    for path, data in render(build_plan(load(ROOT / "clusters" / "lab.yaml").spec)).items():
        (plan_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (plan_dir / path).write_bytes(data)
    etc = tmp_path / "etc"
    prom_port, am_port, gossip_port = free_port(), free_port(), free_port()
    pids = {"prometheus": tmp_path / "prometheus.pid", "alertmanager": tmp_path / "alertmanager.pid"}
    variables = {
        "gpucloud_service_manager": "direct", "monitoring_enabled": False, "monitoring_server": True,
        "monitoring_plan_dir": str(plan_dir), "monitoring_config_dir": str(etc), "monitoring_user": "root",
        "monitoring_prometheus_listen": f"127.0.0.1:{prom_port}",
        "monitoring_alertmanager_listen": f"127.0.0.1:{am_port}",
        "monitoring_alertmanager_cluster_listen": f"127.0.0.1:{gossip_port}",
        "monitoring_prometheus_storage": str(tmp_path / "tsdb"),
        "monitoring_alertmanager_storage": str(tmp_path / "am"),
        "monitoring_prometheus_pidfile": str(pids["prometheus"]),
        "monitoring_alertmanager_pidfile": str(pids["alertmanager"]),
    }
    try:
        first = converge(tmp_path, "monitoring", variables)
        assert first.rc == 0 and first.failed == 0, first.out[-4000:]
        cfg = wait_for("Prometheus loaded the plan's configuration",
                       lambda: get_json(f"http://127.0.0.1:{prom_port}/api/v1/status/config"))
        assert "job_name: node-gpu" in cfg["data"]["yaml"]
        rules = wait_for("rules loaded", lambda: get_json(f"http://127.0.0.1:{prom_port}/api/v1/rules")["data"]["groups"])
        assert {g["name"] for g in rules} >= {"gpucloud-gpu", "gpucloud-fabric", "gpucloud-slurm"}
        status = wait_for("Alertmanager up", lambda: get_json(f"http://127.0.0.1:{am_port}/api/v2/status"))
        assert "on-call" in status["config"]["original"]
        assert (etc / "targets" / "dcgm" / "gpu.json").is_file()

        again = converge(tmp_path, "monitoring", variables, run=1)
        assert again.rc == 0 and again.changed == 0, again.out[-4000:]

        # A pool gone from the plan: its target file goes, and Prometheus restarts without it.
        stale = etc / "targets" / "node" / "retired.json"
        stale.write_text("[]")
        third = converge(tmp_path, "monitoring", variables, run=2)
        assert third.rc == 0 and third.failed == 0 and third.changed > 0, third.out[-4000:]
        assert not stale.exists()
        wait_for("Prometheus back after the restart",
                 lambda: get_json(f"http://127.0.0.1:{prom_port}/api/v1/status/config"))
    finally:
        for pidfile in pids.values():
            _stop(pidfile)
