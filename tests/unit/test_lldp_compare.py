"""Miswire detection on an Ethernet fabric: LLDP neighbour tables (lldpcli show neighbors -f json) against
cabling.csv, by device and port. The tables here are built in lldpcli's shape; the twin
(tests/integration/test_ethernet_twin.py) reads real ones from lldpd."""

from __future__ import annotations

import json

import pytest

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import ethernet
from gpucloud.verify import lldp


@pytest.fixture(scope="module")
def cabling():
    plan = build_plan(check_spec(CLUSTERS / "sakuraone.yaml").spec)
    return ethernet.render(plan)["fabric/compute/cabling.csv"].decode()


def _entry(port, name, peer_port, id_type="ifname"):
    return {port: {"via": "LLDP", "chassis": {name: {"id": {"type": "mac", "value": "02:00:00:00:00:01"}}},
                   "port": {"id": {"type": id_type, "value": peer_port}, "ttl": "120"}}}


def _tables(cabling, devices, swap=None, host_port="enp1s0"):
    ends, hosts = lldp.planned_ends(cabling)
    if swap:
        (a, b) = swap
        ends[a], ends[b] = ends[b], ends[a]
    tables = {}
    for device in devices:
        entries = [_entry(port, peer, host_port if peer in hosts else peer_port)
                   for (dev, port), (peer, peer_port) in sorted(ends.items()) if dev == device]
        tables[device] = {"lldp": {"interface": entries[0] if len(entries) == 1 else entries}}
    return tables


def test_a_matching_fabric_has_no_miswire(cabling):
    assert lldp.compare(cabling, _tables(cabling, ["c-leaf-su001-r0", "c-spine-001"])) == []


def test_a_swapped_pair_is_named_by_port(cabling):
    swap = (("c-spine-001", "Ethernet0"), ("c-spine-001", "Ethernet32"))
    found = lldp.compare(cabling, _tables(cabling, ["c-spine-001"], swap=swap))
    assert [(m.device, m.port) for m in found] == [("c-spine-001", "Ethernet0"), ("c-spine-001", "Ethernet32")]
    assert found[0].describe() == ("c-spine-001 Ethernet0: LLDP sees c-leaf-su001-r1 Ethernet256, the plan says "
                                   "c-leaf-su001-r0 Ethernet256")


def test_a_host_on_the_wrong_leaf_port_is_found_by_name(cabling):
    swap = (("c-leaf-su001-r0", "Ethernet0"), ("c-leaf-su001-r0", "Ethernet4"))
    found = lldp.compare(cabling, _tables(cabling, ["c-leaf-su001-r0"], swap=swap))
    assert {(m.device, m.port, m.seen[0]) for m in found if m.seen} == {
        ("c-leaf-su001-r0", "Ethernet0", "gpu0002"), ("c-leaf-su001-r0", "Ethernet4", "gpu0001")}


def test_missing_and_unplanned_neighbours(cabling):
    tables = _tables(cabling, ["c-spine-001"])
    interfaces = tables["c-spine-001"]["lldp"]["interface"]
    interfaces.pop(0)  # Ethernet0 sees nothing
    interfaces.append(_entry("Ethernet999", "stray", "Ethernet1"))
    found = {(m.device, m.port): m for m in lldp.compare(cabling, tables)}
    assert set(found) == {("c-spine-001", "Ethernet0"), ("c-spine-001", "Ethernet999")}
    assert found[("c-spine-001", "Ethernet0")].seen is None
    assert "no cable on this port" in found[("c-spine-001", "Ethernet999")].describe()


def test_one_neighbour_comes_as_an_object():
    doc = {"lldp": {"interface": _entry("Ethernet8", "c-spine-002", "Ethernet4")}}
    assert lldp.parse_lldpcli(doc) == {"Ethernet8": ("c-spine-002", "Ethernet4")}
    assert lldp.parse_lldpcli({"lldp": {}}) == {}


def test_the_command_names_a_moved_cable_and_exits_1(cabling, tmp_path):
    from conftest import run_cli

    swap = (("c-spine-001", "Ethernet0"), ("c-spine-001", "Ethernet32"))
    for name, table in _tables(cabling, ["c-spine-001", "c-spine-002"], swap=swap).items():
        (tmp_path / f"{name}.json").write_text(json.dumps(table))
    res = run_cli("fabric", "lldp", str(CLUSTERS / "sakuraone.yaml"), "--tables", str(tmp_path))
    assert res.returncode == 1, res.stderr
    assert "c-spine-001 Ethernet0: LLDP sees c-leaf-su001-r1 Ethernet256" in res.stdout
    assert "2 of 24 switch(es) checked; 2 difference(s)" in res.stdout


def test_the_command_refuses_an_unknown_switch_file(tmp_path):
    from conftest import run_cli

    (tmp_path / "c-spine-099.json").write_text("{}")
    res = run_cli("fabric", "lldp", str(CLUSTERS / "sakuraone.yaml"), "--tables", str(tmp_path))
    assert res.returncode == 2 and "no switch 'c-spine-099'" in res.stderr
