"""The SAKURAONE-sized Ethernet fabric (16 leaves, 8 spines, 512 leaf-spine cables) as a twin: FRR runs every
switch's rendered frr.conf in its own network namespace, over a veth pair per planned cable.

Asserts that BGP unnumbered converges to full ECMP (every leaf reaches every other leaf's hosts over each of its
uplinks, through every spine), that the switches' LLDP tables match cabling.csv, and that a moved cable is named by
device and port by the LLDP comparison (gpucloud.verify.lldp).
"""

from __future__ import annotations

import json

import pytest

from conftest import CLUSTERS
from ethernet_twin import Twin, available
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import ethernet
from gpucloud.verify import lldp

pytestmark = [pytest.mark.integration, pytest.mark.skipif(available() is not None, reason=str(available()))]


@pytest.fixture(scope="module")
def twin():
    plan = build_plan(check_spec(CLUSTERS / "sakuraone.yaml").spec)
    files = ethernet.render(plan)
    t = Twin(plan.ethernet[0], files)
    try:
        t.start()
        yield t
    finally:
        t.stop()


def _leaves(t: Twin):
    return [s for s in t.fp.switches if s.tier == 1]


def _converged(t: Twin):
    leaves = _leaves(t)
    for leaf in leaves:
        routes = t.ecmp(leaf.name)
        if any(routes.get(o.subnet, (0, 0))[0] != t.fp.ecmp_paths for o in leaves if o is not leaf):
            return False
    return True


def test_every_leaf_reaches_every_other_leafs_hosts_over_every_spine(twin):
    fp = twin.fp
    assert (fp.count(1), fp.count(2), fp.ecmp_paths) == (16, 8, 32)
    if not twin.wait(lambda: _converged(twin), timeout=180):
        leaf = _leaves(twin)[0]
        pytest.fail("BGP did not converge to full ECMP; c-leaf-su001-r0 has "
                    f"{sorted(twin.ecmp(leaf.name).items())}\n{twin.vtysh(leaf.name, 'show ip bgp')}\n"
                    f"{twin.vtysh(_leaves(twin)[1].name, 'show ip route')}")
    spine_of = {(twin.fp.switches[c.leaf].name, c.leaf_port): twin.fp.switches[c.spine].name for c in fp.links}
    for leaf in _leaves(twin):
        table = json.loads(twin.vtysh(leaf.name, "show ip route bgp json"))
        for other in _leaves(twin):
            if other is leaf:
                continue
            entry = next(e for e in table[other.subnet] if e.get("selected"))
            ports = {h["interfaceName"] for h in entry["nexthops"] if h.get("fib")}
            assert len(ports) == fp.ecmp_paths
            assert {spine_of[(leaf.name, p)] for p in ports} == {s.name for s in fp.switches if s.tier == 2}


def _tables(t: Twin) -> dict[str, dict]:
    return {sw.name: t.lldp(sw.name) for sw in t.fp.switches}


def test_lldp_neighbours_match_the_cabling_plan(twin):
    cabling = twin.files["fabric/compute/cabling.csv"].decode()
    # The twin has no hosts: compare the fabric cables only (host ports are covered by unit tests).
    fabric_rows = "\n".join(line for line in cabling.splitlines() if ",node_leaf," not in line) + "\n"
    result = twin.wait(lambda: lldp.compare(fabric_rows, _tables(twin)) == [], timeout=60)
    assert result, [m.describe() for m in lldp.compare(fabric_rows, _tables(twin))][:5]


def test_a_moved_cable_is_named_by_port(twin):
    cabling = twin.files["fabric/compute/cabling.csv"].decode()
    fabric_rows = "\n".join(line for line in cabling.splitlines() if ",node_leaf," not in line) + "\n"
    first, second = 0, 40  # c-leaf-su001-r0's first uplink and c-leaf-su001-r1's ninth: different spines
    a, b = twin.cables[first], twin.cables[second]
    assert a[2] != b[2]
    twin.swap_spine_ends(first, second)

    def found():
        found = {(m.device, m.port) for m in lldp.compare(fabric_rows, _tables(twin))}
        return found if found == {(a[0], a[1]), (b[0], b[1]), (a[2], a[3]), (b[2], b[3])} else None

    assert twin.wait(found, timeout=60), [m.describe() for m in lldp.compare(fabric_rows, _tables(twin))]
    by_port = {(m.device, m.port): m for m in lldp.compare(fabric_rows, _tables(twin))}
    moved = by_port[(a[0], a[1])]
    assert moved.planned == (a[2], a[3]) and moved.seen == (b[2], b[3])
    assert f"{a[0]} {a[1]}: LLDP sees {b[2]} {b[3]}, the plan says {a[2]} {a[3]}" == moved.describe()
