"""Host planner: stable allocation (growing, appending, excluding, reordering never moves a host), hostlists, and
golden CSVs of the examples."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import CLUSTERS, ROOT, assert_golden, run_cli
from gpucloud.hostlist import compress, expand, pool_hostlist
from gpucloud.plan.hosts import plan_hosts
from gpucloud.spec import schema
from gpucloud.spec.model import build

GOLDEN = ROOT / "tests" / "golden" / "hosts"


def _data(name: str) -> dict:
    return yaml.safe_load((CLUSTERS / f"{name}.yaml").read_text(encoding="utf-8"))


def _hosts(data: dict) -> dict[str, tuple]:
    assert schema.validate(data) == []
    out = {}
    for pp in plan_hosts(build(data)):
        for h in pp.hosts:
            # Everything physical or configured on the machine: moving any of it means recabling or readdressing.
            out[h.name] = (h.pool, h.rack, h.slot, h.u, h.management, h.bmc, h.storage, h.ipoib)
    return out


def _assert_kept(before: dict, after: dict, gone=()):
    for name, place in before.items():
        if name in gone:
            assert name not in after
            continue
        assert after.get(name) == place, f"{name} moved: {place} -> {after.get(name)}"


@pytest.mark.parametrize("example", ["lab", "ishikari", "abci3", "hokkaido-10k"])
def test_growing_a_pool_moves_nobody(example):
    data = _data(example)
    before = _hosts(data)
    grown = copy.deepcopy(data)
    grown["node_pools"][0]["count"] += 3
    after = _hosts(grown)
    _assert_kept(before, after)
    assert len(after) == len(before) + 3


@pytest.mark.parametrize("example", ["lab", "ishikari", "abci3"])
def test_appending_a_pool_moves_nobody(example):
    data = _data(example)
    before = _hosts(data)
    added = copy.deepcopy(data)
    used = {p["id"] for p in added["node_pools"]}
    added["node_pools"].append({"name": "extra", "id": max(used) + 1, "model": "hgx-h100-8", "count": 2,
                                "hostname": "extra{index:02}", "rack": {"name": "x{rack:02}"}})
    after = _hosts(added)
    _assert_kept(before, after)
    assert {n for n in after if n.startswith("extra")} == {"extra01", "extra02"}


@pytest.mark.parametrize("example", ["lab", "ishikari", "abci3"])
def test_excluding_a_broken_node_moves_nobody(example):
    data = _data(example)
    before = _hosts(data)
    pool = data["node_pools"][0]
    broken = pool.get("start", 1) + 1
    name = pool["hostname"].format(index=broken)
    data["node_pools"][0]["exclude"] = [broken]
    after = _hosts(data)
    _assert_kept(before, after, gone={name})
    assert len(after) == len(before) - 1


def test_reordering_pools_with_explicit_ids_moves_nobody():
    data = _data("ishikari")
    before = _hosts(data)
    data["node_pools"].reverse()
    _assert_kept(before, _hosts(data))


def test_every_address_is_unique_per_network():
    hosts = _hosts(_data("abci3"))
    for column in (4, 5, 6):
        values = [h[column] for h in hosts.values() if h[column]]
        assert len(values) == len(set(values))
    rails = [ip for h in hosts.values() for ip in h[7]]
    assert len(rails) == len(set(rails)) and len(rails) == 766 * 8 + 5 + 3


def test_addresses_follow_the_documented_formula():
    data = _data("ishikari")
    hosts = _hosts(data)
    # gpu id 0 owns block 1 of /22 in 10.16.0.0/16: 10.16.4.0/22; position p gets .1 + p.
    assert hosts["gpu0001"][4] == "10.16.4.1"
    assert hosts["gpu0250"][4] == "10.16.4.250"
    # Position 249 with 4 per rack: rack 1 + 249 // 4 = 63, slot 249 % 4 = 1, unit 2 + 1 * 8U.
    assert hosts["gpu0250"][1:4] == ("g063", 1, 10)
    # Rail r is the r-th /16 of 10.32.0.0/13.
    assert hosts["gpu0001"][7][:3] == ("10.32.4.1", "10.33.4.1", "10.34.4.1")
    assert hosts["login01"][4] == "10.16.8.1" and hosts["ctl02"][4] == "10.16.12.2"


@pytest.mark.parametrize("pattern, start, count, exclude", [
    ("gpu{index:04}", 1, 250, ()),
    ("gpu{index:04}", 1001, 1100, (1001, 1500, 2100)),
    ("login{index}", 1, 5, ()),
    ("n{index}", 0, 120, (7,)),
    ("n{index:02}", 95, 10, ()),       # outgrows its padding
    ("r{index:03}x", 1, 20, (1, 2, 3, 4, 5)),
])
def test_pool_hostlist_is_the_compressed_names(pattern, start, count, exclude):
    data = {"name": "t", "networks": {"management": {"cidr": "10.0.0.0/16"}, "bmc": {"cidr": "10.1.0.0/16"}},
            "node_pools": [{"name": "p", "model": "cpu-1u", "count": count, "start": start, "hostname": pattern,
                            "exclude": list(exclude)}]}
    pool = build(data).pools[0]
    names = [pool.hostname_for(i) for i in pool.indices if i not in pool.exclude]
    expression = pool_hostlist(pool)
    assert sorted(expand(expression)) == sorted(names)
    assert expression == compress(names)


@pytest.mark.parametrize("example", ["lab", "ishikari", "abci3"])
def test_hosts_csv_golden(example):
    proc = run_cli("hosts", str(CLUSTERS / f"{example}.yaml"), "--output", "csv")
    assert proc.returncode == 0, proc.stderr
    assert_golden(GOLDEN / f"{example}.csv", proc.stdout)


def test_hosts_text_summary():
    proc = run_cli("hosts", str(CLUSTERS / "ishikari.yaml"))
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["gpu", "250", "x", "hgx-h100-8"] and lines[0].endswith("gpu[0001-0250]")
    assert lines[-1].split() == ["total", "254", "2000", "GPUs"]
