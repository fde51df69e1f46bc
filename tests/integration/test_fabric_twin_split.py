"""The twin of a fabric with split host ports (NDR200 on QM9700 leaves): 128-port switches whose full-rate uplinks sit
on the first logical half of a 400G port. OpenSM must route it with ftree and ibnetdiscover must find every planned
cable, so the port numbering of split and full-rate ports is one the real tools accept."""

from __future__ import annotations

import dataclasses

import pytest
from test_fabric_twin import SPECS, Twin, _lids, needs_ibsim

from gpucloud.plan import build_plan
from gpucloud.render.fabric import render
from gpucloud.spec import load
from gpucloud.verify.fabric import compare

pytestmark = pytest.mark.integration


@needs_ibsim
def test_opensm_routes_split_host_ports_with_full_rate_uplinks(tmp_path):
    spec = load(SPECS["mid"]).spec
    pools = tuple(dataclasses.replace(p, model="hgx-h100-8-ndr200") if p.name in ("a", "b") else p
                  for p in spec.pools)
    spec = dataclasses.replace(spec, pools=pools, fabrics={
        "compute": dataclasses.replace(spec.fabrics["compute"], rate="ndr200")})
    plan = build_plan(spec)
    fp = plan.fabrics[0]
    assert fp.step == 2 and fp.radix == 128 and fp.leaf_up == 2  # 4 NDR200 slots: 2 uplinks at 400G
    for rel, data in render(plan).items():
        if rel.startswith("fabric/compute/") and rel.count("/") == 2:
            (tmp_path / rel.rsplit("/", 1)[1]).write_bytes(
                data.replace(b"/etc/opensm", str(tmp_path).encode())
                .replace(b"/var/log/opensm.log", str(tmp_path / "opensm.log").encode()))
    sm_host = next(e.desc for e in fp.endpoints if e.host in fp.subnets[0].sm_hosts)
    twin = Twin(tmp_path, tmp_path / "topology.net", sm_host)
    try:
        sm = twin.tool("opensm", "-F", str(tmp_path / "opensm.conf"), "--once", check=False)
        assert sm.returncode == 0, sm.stdout + sm.stderr
        log = (tmp_path / "opensm.log").read_text()
        assert "ftree tables configured on all switches" in log
        dump = twin.tool("ibnetdiscover").stdout
        result = compare(fp, dump)
        assert result.clean, (result.missing[:5], result.unexpected[:5], result.swapped[:2])
        lids = _lids(dump)
        assert set(lids) == {e.desc for e in fp.endpoints} and all(lid > 0 for lid in lids.values())
    finally:
        twin.stop()
