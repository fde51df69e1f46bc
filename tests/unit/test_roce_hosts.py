"""The hosts' side of the Ethernet fabric: inventory variables from the plan, NCCL's RoCE settings, and QoS that
agrees with the switches' by construction (one roce section drives both) and is refused when it does not."""

from __future__ import annotations

import dataclasses
import json

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan.layers import INVENTORY, inventory_variables
from gpucloud.render import ethernet, inventory, roce_hosts


def _plan(**roce):
    spec = check_spec(CLUSTERS / "sakuraone.yaml").spec
    if roce:
        fabric = spec.fabrics["compute"]
        fabric = dataclasses.replace(fabric, roce=dataclasses.replace(fabric.roce, **roce))
        spec = dataclasses.replace(spec, fabrics={**spec.fabrics, "compute": fabric})
    return build_plan(spec)


def _variables(plan):
    """The rendered inventory's variables: each group's, each host's own."""
    return inventory_variables(inventory.render(plan)[INVENTORY])


def _both(plan):
    groups, hosts = _variables(plan)
    dbs = {p.split("/")[-2]: json.loads(d) for p, d in ethernet.render(plan).items() if p.endswith("config_db.json")}
    return (groups, hosts), groups["pool_gpu"], dbs


def test_pool_variables_carry_the_rail_devices_and_nccl_settings():
    (groups, _), pool, _ = _both(_plan())
    devices = ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_7", "mlx5_11"]
    assert pool["roce_host_devices"] == devices
    assert pool["roce_host_nccl"] == {"NCCL_IB_HCA": "=" + ",".join(devices), "NCCL_IB_GID_INDEX": "3",
                                      "NCCL_IB_TC": "106"}
    assert (pool["roce_host_priority"], pool["roce_host_pfc"], pool["roce_host_mtu"]) == (3, "0,0,0,1,0,0,0,0", 9000)
    assert groups["pool_ctl"]["gpucloud_pool"] == "ctl"
    assert not any(k.startswith("roce_host_") for group, v in groups.items() if group != "pool_gpu" for k in v)


def test_host_variables_are_the_planned_ports():
    plan = _plan()
    _, hosts = _variables(plan)
    host = hosts["gpu0065"]
    planned = [p for p in plan.ethernet[0].ports if p.host == "gpu0065"]
    assert [(h["device"], h["address"], h["gateway"]) for h in host["roce_host_ports"]] == \
        [(p.device, f"{p.address}/{p.prefixlen}", p.gateway) for p in planned]
    assert [h["table"] for h in host["roce_host_ports"]] == list(range(100, 108))
    assert "ansible_host" in hosts["ctl01"] and "roce_host_ports" not in hosts["ctl01"]


def test_hosts_and_switches_agree_and_follow_one_field():
    for roce in ({}, {"dscp": 24, "lossless_priority": 4}):
        _, pool, dbs = _both(_plan(**roce))
        for name, db in dbs.items():
            assert roce_hosts.qos_disagreements(db, pool) == [], name
        if roce:
            assert pool["roce_host_dscp"] == 24 and pool["roce_host_nccl"]["NCCL_IB_TC"] == str(24 << 2 | 2)
            assert dbs["c-spine-001"]["DSCP_TO_TC_MAP"]["ROCE"]["24"] == "4"


def test_disagreeing_qos_is_refused():
    _, pool, dbs = _both(_plan())
    db = dbs["c-leaf-su001-r0"]
    db["DSCP_TO_TC_MAP"]["ROCE"]["26"] = "0"
    db["PORT_QOS_MAP"]["Ethernet0"]["pfc_enable"] = "4"
    found = roce_hosts.qos_disagreements(db, pool)
    assert any("DSCP 26" in f for f in found) and any("PORT_QOS_MAP Ethernet0" in f for f in found)
    assert roce_hosts.qos_disagreements(dbs["c-spine-001"], {**pool, "roce_host_traffic_class": 98})
