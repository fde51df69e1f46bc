"""The hosts' side of an Ethernet (RoCEv2) fabric, as inventory variables for the roce_host role.

Every QoS value comes from the fabric's roce section, the same one render/sonic.py writes into the switches'
config_db.json: the NICs trust DSCP, run PFC on the lossless priority only, mark RoCE with the DSCP the switches map
to that priority, and send CNPs with the DSCP and priority the switches give CNPs. ``qos_disagreements`` compares a
rendered switch configuration with the hosts' variables, for a plan folder edited by hand.

NCCL settings for RoCE (docs.nvidia.com NCCL environment variables): ``NCCL_IB_HCA`` lists the rail devices in rail
order with ``=`` (exact names: mlx5_1 must not also match mlx5_11), ``NCCL_IB_GID_INDEX`` 3 (the RoCEv2 GID of the
port's IPv4 address on ConnectX), ``NCCL_IB_TC`` the traffic class (DSCP << 2 with ECT(0)).
"""

from __future__ import annotations

from gpucloud.plan import Plan, PoolPlan
from gpucloud.plan.ethernet import EthernetFabricPlan

ROUTE_TABLE_BASE = 100  # rail r routes from table 100 + r
RULE_PRIORITY_BASE = 1000
GID_INDEX = 3


def _fabric(plan: Plan, name: str | None) -> EthernetFabricPlan | None:
    return next((fp for fp in plan.ethernet if fp.name == name), None)


def host_vars(plan: Plan) -> dict[str, dict]:
    """Per host: its NIC on every rail with the planned address, gateway and policy-routing table."""
    out: dict[str, dict] = {}
    for fp in plan.ethernet:
        for p in fp.ports:
            out.setdefault(p.host, {"roce_host_ports": []})["roce_host_ports"].append(
                {"rail": p.rail, "device": p.device, "address": f"{p.address}/{p.prefixlen}", "gateway": p.gateway,
                 "table": ROUTE_TABLE_BASE + p.rail, "rule_priority": RULE_PRIORITY_BASE + p.rail})
    return out


def pfc_vector(priority: int) -> str:
    """mlnx_qos --pfc: one 0/1 per priority 0-7."""
    return ",".join("1" if i == priority else "0" for i in range(8))


def nccl_env(fp: EthernetFabricPlan, devices: tuple[str, ...]) -> dict[str, str]:
    return {"NCCL_IB_HCA": "=" + ",".join(devices), "NCCL_IB_GID_INDEX": str(GID_INDEX),
            "NCCL_IB_TC": str(fp.traffic_class())}


def pool_vars(plan: Plan, pp: PoolPlan) -> dict:
    """The pool's RoCE settings; empty for a pool on no Ethernet fabric."""
    fp = _fabric(plan, pp.pool.fabric)
    if fp is None:
        return {}
    r = fp.roce
    devices = pp.model.devices("compute")
    return {
        "roce_host_devices": list(devices),
        "roce_host_rail_blocks": list(fp.rail_blocks[:len(devices)]),
        "roce_host_mtu": r.mtu,
        "roce_host_priority": r.lossless_priority,
        "roce_host_pfc": pfc_vector(r.lossless_priority),
        "roce_host_dscp": r.dscp,
        "roce_host_cnp_dscp": r.cnp_dscp,
        "roce_host_cnp_priority": r.cnp_priority,
        "roce_host_traffic_class": fp.traffic_class(),
        "roce_host_nccl": nccl_env(fp, devices),
    }


def qos_disagreements(config_db: dict, pool: dict) -> list[str]:
    """Where a switch's QoS (config_db.json) and a pool's RoCE settings (its group variables) disagree."""
    out = []
    prio, dscp, cnp, cnp_dscp = (str(pool["roce_host_priority"]), str(pool["roce_host_dscp"]),
                                 str(pool["roce_host_cnp_priority"]), str(pool["roce_host_cnp_dscp"]))
    for name, mapping in config_db.get("DSCP_TO_TC_MAP", {}).items():
        if mapping.get(dscp) != prio:
            out.append(f"DSCP_TO_TC_MAP {name}: DSCP {dscp} (the hosts' RoCE marking) goes to {mapping.get(dscp)}, "
                       f"the hosts run PFC on {prio}")
        if mapping.get(cnp_dscp) != cnp:
            out.append(f"DSCP_TO_TC_MAP {name}: DSCP {cnp_dscp} (the hosts' CNPs) goes to {mapping.get(cnp_dscp)}, "
                       f"the hosts send CNPs on {cnp}")
    for port, qos in config_db.get("PORT_QOS_MAP", {}).items():
        if qos.get("pfc_enable") != prio:
            out.append(f"PORT_QOS_MAP {port}: PFC on {qos.get('pfc_enable')}, the hosts on {prio}")
    if int(pool["roce_host_traffic_class"]) >> 2 != int(dscp):
        out.append(f"NCCL_IB_TC {pool['roce_host_traffic_class']} does not carry DSCP {dscp}")
    return out
