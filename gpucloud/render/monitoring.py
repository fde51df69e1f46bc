"""monitoring/: Prometheus (scrape jobs, file_sd targets, alert rules), Alertmanager routing, Grafana dashboards.

Everything comes from plan.monitoring (targets, labels, planned link rates) and plan.storage (mounts); the files are
checked by promtool and amtool and loaded by a real Prometheus in the tests (tests/integration/test_monitoring.py).
"""

from __future__ import annotations

import json

import yaml

from gpucloud.plan.monitoring import ALERTMANAGER_CLUSTER_PORT, MonitoringPlan, ScrapePool

ROOT = "monitoring"
PROM = f"{ROOT}/prometheus"
HEADER = "# Rendered by gpucloud from the plan; edit the spec, not this file.\n"
# DCGM clock event (throttle) reason bits: 0x20 software thermal slowdown, 0x40 hardware thermal slowdown.
THERMAL_BITS = "floor({m} / 32) % 4 > 0"


def _yaml(data) -> bytes:
    return (HEADER + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)).encode()


def _json(data) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _targets(job: ScrapePool) -> list[dict]:
    out = []
    for g in job.groups:
        labels = {"pool": job.pool, "rack": g.rack}
        if g.su:
            labels["su"] = str(g.su)
        out.append({"labels": labels, "targets": [f"{h}:{job.port}" for h in g.hosts]})
    return out


def _compute_devices(job: ScrapePool) -> list[str]:
    return [f"mlx5_{job.rail_offset + r}" for r in range(job.rails)]


def _scrape_config(job: ScrapePool) -> dict:
    cfg: dict = {
        "job_name": job.job_name,
        "file_sd_configs": [{"files": [job.file], "refresh_interval": "5m"}],
        # instance = the host name (no port), so node, GPU and Slurm series of a host join on it; job = the
        # exporter, whatever the pool.
        "relabel_configs": [
            {"source_labels": ["__address__"], "regex": "([^:]+):[0-9]+", "target_label": "instance",
             "replacement": "$1"},
            {"target_label": "job", "replacement": job.exporter},
        ],
    }
    devices = _compute_devices(job)
    if job.exporter == "node" and devices:
        rules = [{"source_labels": ["device"], "regex": "|".join(devices), "target_label": "fabric",
                  "replacement": "compute"}]
        if job.railed:
            rules += [{"source_labels": ["device"], "regex": dev, "target_label": "rail", "replacement": str(r)}
                      for r, dev in enumerate(devices)]
        cfg["metric_relabel_configs"] = rules
    return cfg


def prometheus_config(plan) -> dict:
    mon: MonitoringPlan = plan.monitoring
    return {
        "global": {"scrape_interval": "30s", "scrape_timeout": "10s", "evaluation_interval": "30s",
                   "external_labels": {"cluster": plan.spec.name}},
        "rule_files": ["rules/*.yml"],
        # Every Prometheus sends to every Alertmanager, which de-duplicate among themselves; without monitoring
        # hosts in the spec, the one on the same host.
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": list(mon.alertmanagers) or ["127.0.0.1:9093"]}]}]},
        "scrape_configs": [_scrape_config(j) for j in mon.jobs],
    }


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str, **labels: str) -> dict:
    return {"alert": name, "expr": expr, "for": for_, "labels": {"severity": severity, **labels},
            "annotations": {"summary": summary, "description": description}}


def _regex(names) -> str:
    return "|".join(sorted(names))


def _mounts(plan) -> list[tuple[str, str, tuple[str, ...]]]:
    """(filesystem, mount point, pools) of every planned mount that stays mounted (automounts come and go)."""
    st = plan.storage
    if st is None:
        return []
    out = [(fs.name, fs.mount, fs.pools) for fs in st.lustre if fs.pools]
    out += [(fs.name, fs.mount, fs.pools) for fs in st.nfs if fs.pools and not fs.automount]
    local: dict[tuple[str, str], list[str]] = {}
    for s in st.local:
        local.setdefault((s.name, s.mount), []).append(s.pool)
    out += [(name, mount, tuple(pools)) for (name, mount), pools in local.items()]
    return sorted(out)


def rules(plan) -> dict:
    mon: MonitoringPlan = plan.monitoring
    gpu = [
        _alert("GpuXidError", "DCGM_FI_DEV_XID_ERRORS > 0", "0m", "critical",
               "XID {{ $value }} on GPU {{ $labels.gpu }} of {{ $labels.instance }}",
               "dcgm-exporter reports XID error {{ $value }} (the last one seen) on GPU {{ $labels.gpu }}. Drain the "
               "node (scontrol update nodename={{ $labels.instance }} state=drain reason=xid) and look the code up "
               "in NVIDIA's XID catalogue."),
        _alert("GpuDoubleBitEccError", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL > 0", "0m", "critical",
               "Uncorrectable ECC errors on GPU {{ $labels.gpu }} of {{ $labels.instance }}",
               "{{ $value }} double-bit ECC errors since the last driver load: drain the node and reset the GPU."),
        _alert("GpuThermalThrottling",
               "(" + THERMAL_BITS.format(m="DCGM_FI_DEV_CLOCK_THROTTLE_REASONS") + ") or ("
               + THERMAL_BITS.format(m="DCGM_FI_DEV_CLOCKS_EVENT_REASONS") + ")", "5m", "warning",
               "GPU {{ $labels.gpu }} of {{ $labels.instance }} slows its clocks for heat",
               "The clock event reasons have the software or hardware thermal slowdown bit set: check the rack's "
               "cooling and the node's fans."),
    ]
    fabric = [
        _alert("IbLinkDown", 'node_infiniband_state_id{fabric="compute"} != 4', "2m", "critical",
               "{{ $labels.device }} (rail {{ $labels.rail }}) of {{ $labels.instance }} is not active",
               "The port state is {{ $value }} (4 is active): check the cable to the rail's leaf and the subnet "
               "manager."),
    ]
    for p in mon.pools:
        if p.ib_rate and p.ib_rate_bytes:  # a rate in bytes comes with its name
            fabric.append(_alert(
                "IbLinkBelowPlannedRate",
                f'node_infiniband_rate_bytes_per_second{{fabric="compute",pool="{p.pool}"}} < {p.ib_rate_bytes}',
                "5m", "warning",
                "{{ $labels.device }} (rail {{ $labels.rail }}) of {{ $labels.instance }} runs below "
                f"{p.ib_rate.upper()}",
                f"The link trained at {{{{ $value }}}} bytes/s; pool {p.pool} is planned at {p.ib_rate.upper()} "
                f"({p.ib_rate_bytes} bytes/s). Reseat or replace the cable or transceiver.", pool=p.pool))
    slurm = [
        # prometheus-slurm-exporter counts nodes per sinfo state string ("drained", "draining", "idle&drain", ...).
        _alert("SlurmNodesDrained", 'sum without (state) (slurm_node_count_per_state{state=~"(?i).*drain.*"}) > 0',
               "15m", "warning",
               "{{ $value }} Slurm nodes drained",
               "Nodes have been drained for 15 minutes; `sinfo -R` lists them with the reason."),
    ]
    for unit, pools in (("slurmctld", mon.controllers), ("slurmdbd", mon.dbd_pools)):
        if pools:
            slurm.append(_alert(
                f"{unit.capitalize()}Down",
                f'up{{job="node",pool=~"{_regex(pools)}"}} == 1 unless on(instance) '
                f'node_systemd_unit_state{{name="{unit}.service",state="active"}} == 1',
                "2m", "critical", f"{unit} is not running on {{{{ $labels.instance }}}}",
                f"systemd does not report {unit}.service active (node_exporter's systemd collector)."))
    storage = [
        _alert("FilesystemNotMounted",
               f'up{{job="node",pool=~"{_regex(pools)}"}} == 1 unless on(instance) '
               f'node_filesystem_size_bytes{{mountpoint="{mount}"}}',
               "5m", "critical", f"{name} is not mounted at {mount} on {{{{ $labels.instance }}}}",
               f"The plan mounts {name} at {mount} on pool {{{{ $labels.pool }}}}; run the storage playbook or "
               "check the server.", filesystem=name)
        for name, mount, pools in _mounts(plan)
    ]
    targets = [
        _alert("TargetDown", "up == 0", "5m", "warning",
               "{{ $labels.job }} exporter on {{ $labels.instance }} does not answer",
               "Prometheus cannot scrape {{ $labels.instance }} ({{ $labels.job }}): the host or its exporter is "
               "down."),
    ]
    groups = [("gpucloud-gpu", gpu), ("gpucloud-fabric", fabric), ("gpucloud-slurm", slurm),
              ("gpucloud-storage", storage), ("gpucloud-targets", targets)]
    return {"groups": [{"name": name, "rules": rs} for name, rs in groups if rs]}


def alertmanager_config(plan) -> dict:
    return {
        "route": {
            "receiver": "operators",
            "group_by": ["alertname", "cluster", "pool", "su"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [{"matchers": ['severity="critical"'], "receiver": "on-call"}],
        },
        # A host that does not answer at all says so once, not once per check that needs its metrics.
        "inhibit_rules": [{"source_matchers": ['alertname="TargetDown"'],
                           "target_matchers": ['alertname=~"FilesystemNotMounted|SlurmctldDown|SlurmdbdDown"'],
                           "equal": ["instance"]}],
        # Integrations (mail, chat, paging) carry credentials: they are added on the monitoring hosts
        # (monitoring_alertmanager_receivers), never written into the plan.
        "receivers": [{"name": "operators"}, {"name": "on-call"}],
    }


def _panel(pid: int, title: str, exprs: list[tuple[str, str]], y: int, x: int = 0) -> dict:
    return {"id": pid, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"}, "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
            "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": legend}
                        for i, (e, legend) in enumerate(exprs)]}


def _dashboard(uid: str, title: str, variables: list[dict], panels: list[dict]) -> dict:
    ds = {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}
    return {"uid": uid, "title": title, "schemaVersion": 39, "version": 1, "editable": False, "refresh": "1m",
            "time": {"from": "now-6h", "to": "now"}, "tags": ["gpucloud"],
            "templating": {"list": [ds] + variables}, "panels": panels}


def _var(name: str, query: str, multi: bool = True) -> dict:
    return {"name": name, "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": name}, "refresh": 2, "multi": multi, "includeAll": multi,
            "sort": 3}


def dashboards(plan) -> dict[str, dict]:
    name = plan.spec.name
    per_gpu = "{{instance}} gpu {{gpu}}"
    ib_rx = 'rate(node_infiniband_port_data_received_bytes_total{su=~"$su",fabric="compute"}[5m])'
    ib_tx = 'rate(node_infiniband_port_data_transmitted_bytes_total{fabric="compute"}[5m])'
    cluster = _dashboard("gpucloud-cluster", f"{name}: cluster", [], [
        _panel(1, "GPU utilisation by pool (%)", [("avg by (pool) (DCGM_FI_DEV_GPU_UTIL)", "{{pool}}")], 0),
        _panel(2, "Nodes by Slurm state", [("sum by (state) (slurm_node_count_per_state)", "{{state}}")], 0, 12),
        _panel(3, "Compute IB ports not active",
               [('count by (pool) (node_infiniband_state_id{fabric="compute"} != 4)', "{{pool}}")], 8),
        _panel(4, "Firing alerts", [('count by (alertname) (ALERTS{alertstate="firing"})', "{{alertname}}")], 8, 12),
        _panel(5, "Exporters down", [("count by (job, pool) (up == 0)", "{{job}} {{pool}}")], 16),
        _panel(6, "GPU power by pool (W)", [("sum by (pool) (DCGM_FI_DEV_POWER_USAGE)", "{{pool}}")], 16, 12),
    ])
    su = _dashboard("gpucloud-su", f"{name}: scalable unit", [_var("su", 'label_values(up{job="node"}, su)')], [
        _panel(1, "GPU utilisation by node (%)",
               [('avg by (instance) (DCGM_FI_DEV_GPU_UTIL{su=~"$su"})', "{{instance}}")], 0),
        _panel(2, "IB receive by rail (bytes/s)", [(f"sum by (rail) ({ib_rx})", "rail {{rail}}")], 0, 12),
        _panel(3, "IB ports not active",
               [('node_infiniband_state_id{su=~"$su",fabric="compute"} != 4', "{{instance}} rail {{rail}}")], 8),
        _panel(4, "GPU temperature (C)",
               [('max by (instance) (DCGM_FI_DEV_GPU_TEMP{su=~"$su"})', "{{instance}}")], 8, 12),
    ])
    # A job's GPUs carry hpc_job (dcgm-exporter's HPC job mapping, written by the Slurm prolog): the GPU panels select
    # on that label; the job's network traffic is the node series of the hosts those GPUs are on (joined on instance).
    job_gpus = 'group by (instance) (DCGM_FI_DEV_GPU_UTIL{hpc_job="$job"})'
    job = _dashboard("gpucloud-job", f"{name}: job",
                     [_var("job", "label_values(DCGM_FI_DEV_GPU_UTIL, hpc_job)", False)], [
        _panel(1, "GPU utilisation (%)", [('DCGM_FI_DEV_GPU_UTIL{hpc_job="$job"}', per_gpu)], 0),
        _panel(2, "GPU memory used (MiB)", [('DCGM_FI_DEV_FB_USED{hpc_job="$job"}', per_gpu)], 0, 12),
        _panel(3, "Power (W)", [('DCGM_FI_DEV_POWER_USAGE{hpc_job="$job"}', per_gpu)], 8),
        _panel(4, "IB traffic of the job's nodes (bytes/s)",
               [(f"sum by (instance) ({ib_tx}) and on(instance) {job_gpus}", "{{instance}}")], 8, 12),
        _panel(5, "XID errors", [('DCGM_FI_DEV_XID_ERRORS{hpc_job="$job"} > 0', per_gpu)], 16),
    ])
    return {"cluster": cluster, "su": su, "job": job}


def render(plan) -> dict[str, bytes]:
    mon: MonitoringPlan | None = getattr(plan, "monitoring", None)
    if mon is None:
        return {}
    files = {f"{PROM}/prometheus.yml": _yaml(prometheus_config(plan)),
             f"{PROM}/rules/gpucloud.yml": _yaml(rules(plan)),
             f"{ROOT}/alertmanager/alertmanager.yml": _yaml(alertmanager_config(plan)),
             # The Alertmanagers' gossip peers (the role passes each host the others as --cluster.peer).
             f"{ROOT}/alertmanager/peers.json": _json([f"{h}:{ALERTMANAGER_CLUSTER_PORT}" for h in mon.servers])}
    for job in mon.jobs:
        files[f"{PROM}/{job.file}"] = _json(_targets(job))
    for name, board in dashboards(plan).items():
        files[f"{ROOT}/grafana/dashboards/{name}.json"] = _json(board)
    return files
