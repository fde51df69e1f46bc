"""SONiC configuration of the Ethernet fabric's switches: every config_db.json against the schema written from SONiC's
configuration manual (no SONiC validator is installable here), references between its tables, QoS from the spec's one
roce section, DEVICE_NEIGHBOR against cabling.csv, and frr.conf through FRR's own parser (vtysh -C)."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from conftest import CLUSTERS, ROOT
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import ethernet, sonic

SCHEMA = json.loads((ROOT / "gpucloud" / "data" / "sonic_config_db.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


@pytest.fixture(scope="module")
def rendered():
    plan = build_plan(check_spec(CLUSTERS / "sakuraone.yaml").spec)
    files = ethernet.render(plan)
    return plan, files


def _dbs(files):
    return {path.split("/")[-2]: json.loads(data) for path, data in files.items() if path.endswith("config_db.json")}


def test_schema_is_valid_2020_12():
    Draft202012Validator.check_schema(SCHEMA)


def test_every_config_db_matches_the_schema(rendered):
    _, files = rendered
    dbs = _dbs(files)
    assert len(dbs) == 24
    for name, db in dbs.items():
        errors = sorted(VALIDATOR.iter_errors(db), key=lambda e: list(e.path))
        assert not errors, f"{name}: {errors[0].json_path}: {errors[0].message}"


@pytest.mark.parametrize("table,key,field,bad", [
    ("PORT_QOS_MAP", "Ethernet0", "pfc_enable", "9"),
    ("PORT", "Ethernet0", "speed", "400G"),
    ("DEVICE_METADATA", "localhost", "docker_routing_config_mode", "split_unified"),
    ("WRED_PROFILE", "ROCE_LOSSLESS", "ecn", "ecn_everything"),
])
def test_the_schema_refuses_a_wrong_value(rendered, table, key, field, bad):
    db = copy.deepcopy(_dbs(rendered[1])["c-leaf-su001-r0"])
    db[table][key][field] = bad
    assert list(VALIDATOR.iter_errors(db))


def test_tables_reference_only_what_exists(rendered):
    for name, db in _dbs(rendered[1]).items():
        ports = db["PORT"]
        up = {p for p, v in ports.items() if v["admin_status"] == "up"}
        for table in ("PORT_QOS_MAP", "INTERFACE", "DEVICE_NEIGHBOR"):
            assert set(db.get(table, {})) <= up, (name, table)
        assert {k.split("|")[0] for k in db["QUEUE"]} | {k.split("|")[0] for k in db["BUFFER_PG"]} <= up
        assert set(db["PFC_WD"]) - {"GLOBAL"} <= up and set(db["CABLE_LENGTH"]["AZURE"]) <= up
        for qos in db["PORT_QOS_MAP"].values():
            assert qos["dscp_to_tc_map"] in db["DSCP_TO_TC_MAP"] and qos["tc_to_queue_map"] in db["TC_TO_QUEUE_MAP"]
            assert qos["tc_to_pg_map"] in db["TC_TO_PRIORITY_GROUP_MAP"]
            assert qos["pfc_to_queue_map"] in db["MAP_PFC_PRIORITY_TO_QUEUE"]
        for q in db["QUEUE"].values():
            assert q["scheduler"] in db["SCHEDULER"] and q.get("wred_profile", "ROCE_LOSSLESS") in db["WRED_PROFILE"]
        # Breakout: each cage's ports share its lanes, no lane twice, and the mode gives the count and speed.
        lanes = [lane for v in ports.values() for lane in v["lanes"].split(",")]
        assert len(lanes) == len(set(lanes))
        by_cage: dict[str, list] = {}
        for p, v in ports.items():
            by_cage.setdefault(v["index"], []).append(v)
        for master, mode in db["BREAKOUT_CFG"].items():
            n, speed = re.fullmatch(r"(\d)x(\d+)G", mode["brkout_mode"]).groups()  # type: ignore[union-attr]
            members = by_cage[ports[master]["index"]]
            assert len(members) == int(n) and {m["speed"] for m in members} == {str(int(speed) * 1000)}
        for member in db.get("VLAN_MEMBER", {}):
            assert member.split("|")[1] in up and member.split("|")[0] in db["VLAN"]


def test_qos_comes_from_the_spec(rendered):
    plan, files = rendered
    roce = plan.ethernet[0].roce
    for db in _dbs(files).values():
        assert db["DSCP_TO_TC_MAP"]["ROCE"][str(roce.dscp)] == str(roce.lossless_priority)
        assert db["DSCP_TO_TC_MAP"]["ROCE"][str(roce.cnp_dscp)] == str(roce.cnp_priority)
        others = {v for k, v in db["DSCP_TO_TC_MAP"]["ROCE"].items() if k not in (str(roce.dscp), str(roce.cnp_dscp))}
        assert others == {"0"}
        assert {q["pfc_enable"] for q in db["PORT_QOS_MAP"].values()} == {str(roce.lossless_priority)}
        assert db["WRED_PROFILE"]["ROCE_LOSSLESS"]["green_min_threshold"] == str(roce.ecn_min_bytes)
        lossless = {k for k, v in db["QUEUE"].items() if v.get("wred_profile")}
        assert {k.split("|")[1] for k in lossless} == {str(roce.lossless_priority)}
        assert db["DEVICE_METADATA"]["localhost"]["docker_routing_config_mode"] == "split-unified"


def test_device_neighbors_match_the_cabling_plan(rendered):
    _, files = rendered
    rows = list(csv.DictReader(io.StringIO(files["fabric/compute/cabling.csv"].decode())))
    expected = {}
    for r in rows:
        expected[(r["b_device"], r["b_port"])] = (r["a_device"], r["a_port"])
        if r["tier"] != "node_leaf":
            expected[(r["a_device"], r["a_port"])] = (r["b_device"], r["b_port"])
    seen = {(name, port): (v["name"], v["port"]) for name, db in _dbs(files).items()
            for port, v in db["DEVICE_NEIGHBOR"].items()}
    assert seen == expected


def test_leaf_gateway_is_the_hosts_gateway(rendered):
    plan, files = rendered
    fp = plan.ethernet[0]
    dbs = _dbs(files)
    for p in fp.ports[:64]:
        leaf = fp.switches[p.leaf]
        assert f"Vlan1000|{p.gateway}/{p.prefixlen}" in dbs[leaf.name]["VLAN_INTERFACE"]


def test_frr_conf_peers_on_every_fabric_link(rendered):
    plan, files = rendered
    fp = plan.ethernet[0]
    dbs = _dbs(files)
    for sw in fp.switches:
        conf = files[f"fabric/compute/switches/{sw.name}/frr.conf"].decode()
        peers = set(re.findall(r"^ neighbor (Ethernet\d+) interface peer-group FABRIC$", conf, re.M))
        assert peers == set(dbs[sw.name]["INTERFACE"])
        assert f"router bgp {sw.asn}\n" in conf and f" bgp router-id {sw.loopback}\n" in conf
        paths = fp.up_cages if sw.tier == 1 else fp.links_per_spine
        assert f"  maximum-paths {paths}\n" in conf
        assert (f"  network {sw.subnet}\n" in conf) == (sw.tier == 1)


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="vtysh (apt: frr) is not installed")
def test_frr_accepts_every_frr_conf(rendered, tmp_path: Path):
    _, files = rendered
    for path, data in files.items():
        if path.endswith("frr.conf"):
            conf = tmp_path / "frr.conf"
            conf.write_bytes(data)
            out = subprocess.run(["vtysh", "-C", "-f", str(conf)], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, f"{path}: {out.stdout}{out.stderr}"


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="vtysh (apt: frr) is not installed")
def test_vtysh_refuses_a_broken_frr_conf(rendered, tmp_path: Path):
    conf = tmp_path / "frr.conf"
    good = rendered[1]["fabric/compute/switches/c-spine-001/frr.conf"]
    conf.write_bytes(good.replace(b"remote-as external", b"remote-as outside"))
    assert subprocess.run(["vtysh", "-C", "-f", str(conf)], capture_output=True, timeout=60).returncode != 0


def test_rendering_is_deterministic(rendered):
    plan, files = rendered
    assert ethernet.render(plan) == files
    assert sonic.MAP == "ROCE"
