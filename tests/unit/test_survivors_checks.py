"""Rack boundaries the rest of the fast suite let through: a rack filled exactly to its top unit.

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
    pool = {"name": "p", "model": model, "count": per_rack * 2, "rack": {"nodes_per_rack": per_rack, "first_u": first_u}}
    assert heights([pool]) == []


@pytest.mark.parametrize("model, per_rack, first_u, top", [
    ("hgx-h100-8", 6, 2, 49), ("cpu-1u", 2, 48, 49), ("cpu-2u", 23, 4, 49)])
def test_one_unit_over_the_top_warns(model, per_rack, first_u, top):
    pool = {"name": "p", "model": model, "count": per_rack, "rack": {"nodes_per_rack": per_rack, "first_u": first_u}}
    (f,) = heights([pool])
    assert f.level == "warning" and f"reach unit {top}" in f.message and f.path[-1] == "rack"
