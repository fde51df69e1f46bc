"""Check boundaries the rest of the fast suite let through: a rack filled exactly to its top unit, overlapping
networks after a smaller one and at a broadcast address, an exclude one past a pool's end, a 63-character hostname.

Each test fails under a one-line bug listed in scripts/mutants.py.
"""

from __future__ import annotations

import pytest

from gpucloud.checks import run_checks
from gpucloud.checks.racks import RACK_UNITS
from gpucloud.spec import schema
from gpucloud.spec.model import build


def spec_of(pools):
    data = {"name": "t", "networks": {"management": {"cidr": "10.0.0.0/16"}, "bmc": {"cidr": "10.1.0.0/16"}},
            "node_pools": pools}
    assert schema.validate(data) == []
    return build(data)


def heights(pools):
    return [f for f in run_checks(spec_of(pools)) if f.check == "rack-height"]


@pytest.mark.parametrize("model, per_rack, first_u, top", [
    ("hgx-h100-8", 6, 1, 48),  # 6 x 8U from unit 1: units 1-48
    ("cpu-1u", 1, 48, 48),  # one 1U server in the top unit
    ("cpu-2u", 23, 3, 48),  # 23 x 2U from unit 3: units 3-48
])
def test_rack_filled_exactly_to_its_top_unit_is_fine(model, per_rack, first_u, top):
    assert RACK_UNITS == top
    pool = {"name": "p", "model": model, "count": per_rack * 2,
            "rack": {"nodes_per_rack": per_rack, "first_u": first_u}}
    assert heights([pool]) == []


@pytest.mark.parametrize("model, per_rack, first_u, top", [
    ("hgx-h100-8", 6, 2, 49), ("cpu-1u", 2, 48, 49), ("cpu-2u", 23, 4, 49)])
def test_one_unit_over_the_top_is_refused(model, per_rack, first_u, top):
    pool = {"name": "p", "model": model, "count": per_rack, "rack": {"nodes_per_rack": per_rack, "first_u": first_u}}
    (f,) = heights([pool])
    assert f.level == "error" and f"reach unit {top}" in f.message and f.path[-1] == "rack"


# --- networks, pools and names ---

def ids(spec, check_id):
    return [f for f in run_checks(spec) if f.check == check_id]


def test_overlap_with_a_network_after_a_small_earlier_one_is_found():
    # Sorted by start: management, bmc, storage. storage lies inside bmc, not inside the first network seen.
    data = {"name": "t", "node_pools": [{"name": "gpu", "model": "hgx-h100-8", "count": 2}],
            "networks": {"management": {"cidr": "10.0.0.0/24"}, "bmc": {"cidr": "10.1.0.0/16"},
                         "storage": {"cidr": "10.1.5.0/24"}}}
    assert schema.validate(data) == []
    (f,) = ids(build(data), "network-overlap")
    assert f.path == ("networks", "storage", "cidr") and "bmc" in f.message


@pytest.mark.parametrize("offset, warns", [(0, False), (1, False), (2, True), (-1, True)])
def test_excluded_index_one_past_the_last_is_outside_the_pool(offset, warns):
    # start 5, count 2: indices 5 and 6; exclude 5 + 2 = 7 is one past the end.
    pool = {"name": "gpu", "model": "hgx-h100-8", "count": 2, "start": 5, "exclude": [5 + offset]}
    assert bool(ids(spec_of([pool]), "pool-exclude-range")) is warns


@pytest.mark.parametrize("length, refused", [(63, False), (64, True)])
def test_hostname_of_exactly_63_characters_is_a_dns_label(length, refused):
    pattern = "n" * (length - 2) + "{index:02}"
    spec = spec_of([{"name": "gpu", "model": "hgx-h100-8", "count": 2, "hostname": pattern}])
    assert len(spec.pools[0].hostname_for(2)) == length
    assert bool([f for f in ids(spec, "hostname-format") if "DNS label" in f.message]) is refused


def test_a_host_network_at_the_broadcast_address_of_another_overlaps():
    data = {"name": "t", "node_pools": [{"name": "gpu", "model": "hgx-h100-8", "count": 2}],
            "networks": {"management": {"cidr": "10.0.0.0/24"}, "bmc": {"cidr": "10.0.0.255/32"}}}
    assert schema.validate(data) == []
    (f,) = ids(build(data), "network-overlap")
    assert f.path == ("networks", "bmc", "cidr")
    data["networks"]["bmc"]["cidr"] = "10.0.1.0/32"
    assert ids(build(data), "network-overlap") == []
