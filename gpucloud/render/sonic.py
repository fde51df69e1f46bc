"""SONiC configuration of every switch of an Ethernet fabric: fabric/<fabric>/switches/<switch>/config_db.json and
frr.conf (docs/fabric.md, "SONiC configuration").

config_db.json carries what SONiC's configuration manual (sonic-buildimage src/sonic-yang-models/doc/Configuration.md)
lists for a routed RoCE leaf or spine: DEVICE_METADATA (split-unified routing config, dynamic buffer model), PORT and
BREAKOUT_CFG (host cages 2 x 400G, uplink cages 1 x 800G), LOOPBACK_INTERFACE, INTERFACE (IPv6 link-local only on
fabric links: BGP unnumbered), the leaf's host VLAN and its gateway address, DEVICE_NEIGHBOR (what LLDP should see),
and QoS: DSCP_TO_TC_MAP, TC_TO_QUEUE_MAP, TC_TO_PRIORITY_GROUP_MAP, MAP_PFC_PRIORITY_TO_QUEUE, PORT_QOS_MAP (PFC and
the PFC watchdog on the lossless priority only), WRED_PROFILE (ECN marking), SCHEDULER, QUEUE, BUFFER_PG ("NULL":
the dynamic model sizes the lossless headroom from speed, MTU and CABLE_LENGTH), PFC_WD and CABLE_LENGTH.

With ``docker_routing_config_mode: split-unified`` SONiC's bgp container takes one frr.conf for all FRR daemons and
does not generate BGP from config_db, so BGP_NEIGHBOR stays empty. The same frr.conf runs the FRR twin
(tests/integration/test_ethernet_twin.py). Every value comes from the plan; QoS values come from the one roce section
that also drives the hosts (render/roce_hosts.py), so hosts and switches agree by construction.
"""

from __future__ import annotations

import ipaddress
import json

from gpucloud.plan.ethernet import LEAF_TIER, EthernetFabricPlan, EthSwitch

MAP = "ROCE"  # name of every QoS map
WRED = "ROCE_LOSSLESS"
HOST_VLAN = 1000
FRR_VERSION = "8.4"
TYPES = {1: "LeafRouter", 2: "SpineRouter"}


def _bool(v: bool) -> str:
    return "true" if v else "false"


def qos_maps(fp: EthernetFabricPlan) -> dict[str, dict]:
    """The fabric-wide QoS maps: RoCE's DSCP to the lossless priority, CNPs' DSCP to their own, everything else to 0;
    traffic class n to queue n, priority group n, and PFC priority n to queue n."""
    r = fp.roce
    dscp = {str(d): "0" for d in range(64)}
    dscp[str(r.dscp)] = str(r.lossless_priority)
    dscp[str(r.cnp_dscp)] = str(r.cnp_priority)
    ident = {str(i): str(i) for i in range(8)}
    return {
        "DSCP_TO_TC_MAP": {MAP: dict(sorted(dscp.items(), key=lambda kv: int(kv[0])))},
        "TC_TO_QUEUE_MAP": {MAP: ident},
        "TC_TO_PRIORITY_GROUP_MAP": {MAP: ident},
        "MAP_PFC_PRIORITY_TO_QUEUE": {MAP: ident},
        "WRED_PROFILE": {WRED: {
            "ecn": "ecn_all", "wred_green_enable": "true", "wred_yellow_enable": "false", "wred_red_enable": "false",
            "green_min_threshold": str(r.ecn_min_bytes), "green_max_threshold": str(r.ecn_max_bytes),
            "green_drop_probability": str(r.ecn_probability)}},
        "SCHEDULER": {"scheduler.lossy": {"type": "DWRR", "weight": "50"},
                      "scheduler.lossless": {"type": "DWRR", "weight": "50"},
                      "scheduler.cnp": {"type": "STRICT"}},
    }


def _neighbours(fp: EthernetFabricPlan) -> list[list[tuple[str, str, str, str]]]:
    """Per switch: (own port, peer device, peer port, kind) for every cable, in one pass over ports and links."""
    out: list[list[tuple[str, str, str, str]]] = [[] for _ in fp.switches]
    names = [s.name for s in fp.switches]
    for p in fp.ports:
        out[p.leaf].append((p.port, p.host, p.device, "host"))
    for link in fp.links:
        out[link.leaf].append((link.leaf_port, names[link.spine], link.spine_port, "fabric"))
        out[link.spine].append((link.spine_port, names[link.leaf], link.leaf_port, "fabric"))
    return out


def port_mtu(roce) -> int:
    """A switch port's MTU: the hosts' plus room for the headers, at most the switches' 9216."""
    return min(roce.mtu + 100, 9216)


def config_db(fp: EthernetFabricPlan, sw: EthSwitch, cabled: list[tuple[str, str, str, str]]) -> dict:
    r, model = fp.roce, fp.model
    leaf = sw.tier == LEAF_TIER
    by_port = {port: (peer, peer_port, kind) for port, peer, peer_port, kind in cabled}
    mtu = str(port_mtu(r))
    ports: dict[str, dict] = {}
    breakout: dict[str, dict] = {}
    kinds: dict[str, str] = {}
    down = fp.down_cages if leaf else 0
    for cage in range(1, model.cages + 1):
        per = fp.per_cage if cage <= down else 1
        gbps = fp.host_gbps if cage <= down else model.gbps
        breakout[model.port_name(cage)] = {"brkout_mode": f"{per}x{gbps}G"}
        for sub in range(per):
            name = model.port_name(cage, sub, per)
            cabled_port = name in by_port
            ports[name] = {"admin_status": "up" if cabled_port else "down",
                           "alias": f"etp{cage}{'abcdefgh'[sub]}" if per > 1 else f"etp{cage}",
                           "index": str(cage), "lanes": model.lanes(cage, sub, per), "mtu": mtu,
                           "speed": str(gbps * 1000), "fec": "rs"}
            if cabled_port:
                kinds[name] = by_port[name][2]
                ports[name]["description"] = f"{by_port[name][0]}:{by_port[name][1]}"
    used = sorted(kinds, key=lambda n: int(n[len("Ethernet"):]))
    prio, cnp = str(r.lossless_priority), str(r.cnp_priority)
    db: dict[str, dict] = {
        "DEVICE_METADATA": {"localhost": {
            "hostname": sw.name, "hwsku": model.hwsku, "platform": model.platform, "type": TYPES[sw.tier],
            "bgp_asn": str(sw.asn), "bgp_router_id": sw.loopback, "docker_routing_config_mode": "split-unified",
            "buffer_model": "dynamic", "default_pfcwd_status": "enable"}},
        "BREAKOUT_CFG": breakout,
        "PORT": ports,
        "LOOPBACK_INTERFACE": {"Loopback0": {}, f"Loopback0|{sw.loopback}/32": {}},
        "INTERFACE": {p: {"ipv6_use_link_local_only": "enable"} for p in used if kinds[p] == "fabric"},
        "DEVICE_NEIGHBOR": {p: {"name": by_port[p][0], "port": by_port[p][1]} for p in used},
        **qos_maps(fp),
        "PORT_QOS_MAP": {p: {"dscp_to_tc_map": MAP, "tc_to_queue_map": MAP, "tc_to_pg_map": MAP,
                             "pfc_to_queue_map": MAP, "pfc_enable": prio, "pfcwd_sw_enable": prio} for p in used},
        "QUEUE": {f"{p}|{q}": v for p in used for q, v in (
            ("0", {"scheduler": "scheduler.lossy"}),
            (prio, {"scheduler": "scheduler.lossless", "wred_profile": WRED}),
            (cnp, {"scheduler": "scheduler.cnp"}))},
        "BUFFER_PG": {f"{p}|{prio}": {"profile": "NULL"} for p in used},
        "PFC_WD": {**{p: {"action": r.pfcwd_action, "detection_time": str(r.pfcwd_detection_ms),
                          "restoration_time": str(r.pfcwd_restoration_ms)} for p in used},
                   "GLOBAL": {"POLL_INTERVAL": str(min(100, r.pfcwd_detection_ms))}},
        "CABLE_LENGTH": {"AZURE": {p: r.host_cable if kinds[p] == "host" else r.fabric_cable for p in used}},
    }
    if leaf:
        vlan = f"Vlan{HOST_VLAN}"
        net = ipaddress.IPv4Network(sw.subnet)
        first = f"{net[1]}/{net.prefixlen}"  # the leaf: the hosts' gateway
        db["VLAN"] = {vlan: {"vlanid": str(HOST_VLAN), "mtu": mtu}}
        db["VLAN_MEMBER"] = {f"{vlan}|{p}": {"tagging_mode": "untagged"} for p in used if kinds[p] == "host"}
        db["VLAN_INTERFACE"] = {vlan: {}, f"{vlan}|{first}": {}}
    return db


def frr_conf(fp: EthernetFabricPlan, sw: EthSwitch, cabled: list[tuple[str, str, str, str]]) -> str:
    """bgpd's configuration: eBGP unnumbered on every fabric link (one session per cable), the loopback and, on a
    leaf, its hosts' subnet announced; ECMP over every uplink."""
    fabric_ports = sorted((port for port, _, _, kind in cabled if kind == "fabric"),
                          key=lambda n: int(n[len("Ethernet"):]))
    paths = fp.up_cages if sw.tier == LEAF_TIER else max(1, fp.links_per_spine)
    lines = [
        f"frr version {FRR_VERSION}",
        "frr defaults datacenter",
        f"hostname {sw.name}",
        "log syslog informational",
        "!",
        f"router bgp {sw.asn}",
        f" bgp router-id {sw.loopback}",
        " bgp bestpath as-path multipath-relax",
        " no bgp ebgp-requires-policy",
        " neighbor FABRIC peer-group",
        " neighbor FABRIC remote-as external",
        " neighbor FABRIC advertisement-interval 0",
        " neighbor FABRIC timers 3 9",
        " neighbor FABRIC timers connect 5",
        " neighbor FABRIC capability extended-nexthop",
        *(f" neighbor {p} interface peer-group FABRIC" for p in fabric_ports),
        " !",
        " address-family ipv4 unicast",
        f"  network {sw.loopback}/32",
        *([f"  network {sw.subnet}"] if sw.subnet else []),
        f"  maximum-paths {paths}",
        " exit-address-family",
        "exit",
        "!",
        "",
    ]
    return "\n".join(lines)


def render_fabric(fp: EthernetFabricPlan, base: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for sw, cabled in zip(fp.switches, _neighbours(fp)):
        d = f"{base}switches/{sw.name}/"
        files[d + "config_db.json"] = (json.dumps(config_db(fp, sw, cabled), indent=2, sort_keys=True) + "\n").encode()
        files[d + "frr.conf"] = frr_conf(fp, sw, cabled).encode()
    return files
