"""The DHCP load generator of bench/bench_dhcp.py against the real Kea with the plan's reservations: correctness only.

50 reserved MACs of a 254-node example each complete DISCOVER/OFFER/REQUEST/ACK and get exactly their planned
address, host name and the iPXE boot file; a MAC the plan does not know gets no answer at all; and the generator
notices a server that hands two clients each other's address (so a wrong answer cannot pass). Kea listens on a free
loopback port with udp sockets; nothing needs root or leaves the loopback. No time is asserted (bench/ measures).
"""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_dhcp  # noqa: E402
from gpucloud.render.provision import kea_config  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(bench_dhcp.KEA is None, reason="kea-dhcp4 is missing (apt-get install "
                                                                 "kea-dhcp4-server)")]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return bench_dhcp.example_plan("ishikari", tmp_path_factory.mktemp("plan"))


def test_fifty_clients_each_get_exactly_their_reservation_and_a_stranger_nothing(plan, tmp_path):
    p = plan.provision
    chosen = bench_dhcp.pick(p.reservations, 50)
    assert len(chosen) == 50 and len({r.pool for r in chosen}) > 1
    clients = bench_dhcp.clients_for(chosen) + [bench_dhcp.Client("stranger", "52:54:00:99:99:99", None)]
    kea = bench_dhcp.Kea(bench_dhcp.local_config(kea_config(p), tmp_path), tmp_path)
    try:
        result = bench_dhcp.run_clients(clients, kea.server, p.gateway, window=8,
                                        boot_file=f"{p.http_base}/ipxe/boot.ipxe")
    finally:
        kea.stop()
    assert result.problems() == []
    assert len(result.bound) == 50
    assert all(c.boot_file == "http://10.16.12.1:8080/ipxe/boot.ipxe" for c in result.bound)
    assert clients[-1].state == "silent"
    leases = (tmp_path / "kea-leases4.csv").read_text()
    for r in chosen:
        assert f"{r.address},{r.mac}," in leases


def test_a_server_that_swaps_two_reservations_is_caught(plan, tmp_path):
    p = plan.provision
    conf = bench_dhcp.local_config(kea_config(p), tmp_path)
    rows = conf["Dhcp4"]["subnet4"][0]["reservations"]
    rows[0]["ip-address"], rows[1]["ip-address"] = rows[1]["ip-address"], rows[0]["ip-address"]
    kea = bench_dhcp.Kea(json.loads(json.dumps(conf)), tmp_path)
    try:
        result = bench_dhcp.run_clients(bench_dhcp.clients_for(p.reservations[:4]), kea.server, p.gateway)
    finally:
        kea.stop()
    a, b = p.reservations[0], p.reservations[1]
    assert result.problems() == [
        f"{a.host} ({a.mac}): offered {b.address}, reserved {a.address}",
        f"{a.host} ({a.mac}): acknowledged {b.address}, reserved {a.address}",
        f"{b.host} ({b.mac}): offered {a.address}, reserved {b.address}",
        f"{b.host} ({b.mac}): acknowledged {a.address}, reserved {b.address}",
    ]
    assert [c.host for c in result.bound] == [p.reservations[2].host, p.reservations[3].host]
