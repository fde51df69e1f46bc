"""The twin of a fabric of spine-leaf groups (DGX SuperPOD GB200 RA): one SU of 8 GB200 NVL72 racks, 144 trays of
4 rails, one leaf per rack and rail, the rail-r leaves of the SU under 6 spines of their own, and core group j over
spine j of every group. OpenSM must route it with ftree (no fallback), ibnetdiscover must find every planned cable,
and paths must run as the RA draws them: same rail, other rack: leaf, spine, leaf; other rail: through a core."""

from __future__ import annotations

import dataclasses

import pytest
from test_fabric_twin import Twin, _lids, _switches_on_path, needs_ibsim

from conftest import CLUSTERS
from gpucloud.plan import build_plan
from gpucloud.render.fabric import render
from gpucloud.spec import load
from gpucloud.verify.fabric import compare

pytestmark = pytest.mark.integration


@needs_ibsim
def test_opensm_routes_spine_leaf_groups(tmp_path):
    spec = load(CLUSTERS / "nvl72.yaml").spec
    spec = dataclasses.replace(spec, pools=tuple(dataclasses.replace(p, count=144) if p.name == "gpu" else p
                                                 for p in spec.pools))
    plan = build_plan(spec)
    fp = plan.fabrics[0]
    assert (fp.count(1), fp.count(2), fp.count(3), fp.tiers) == (32, 24, 12, 3)
    for rel, data in render(plan).items():
        if rel.startswith("fabric/compute/") and rel.count("/") == 2:
            (tmp_path / rel.rsplit("/", 1)[1]).write_bytes(
                data.replace(b"/etc/opensm", str(tmp_path).encode())
                .replace(b"/var/log/opensm.log", str(tmp_path / "opensm.log").encode()))
    # UFM manages this fabric in the spec; here OpenSM runs from the first tray's first rail with the same settings
    twin = Twin(tmp_path, tmp_path / "topology.net", "gb0001 mlx5_0")
    try:
        sm = twin.tool("opensm", "-F", str(tmp_path / "opensm.conf"), "--once", check=False)
        assert sm.returncode == 0, sm.stdout + sm.stderr
        log = (tmp_path / "opensm.log").read_text()
        assert "ftree tables configured on all switches" in log
        assert "fallback" not in log.lower() and "falling back" not in log.lower()
        dump = twin.tool("ibnetdiscover").stdout
        result = compare(fp, dump)
        assert result.clean, (result.missing[:5], result.unexpected[:5], result.swapped[:2])
        lids = _lids(dump)
        assert set(lids) == {e.desc for e in fp.endpoints} and all(lid > 0 for lid in lids.values())
        # gb0001 and gb0002 share rack nvl01; gb0019 is in nvl02
        assert len(_switches_on_path(twin, lids["gb0001 mlx5_0"], lids["gb0002 mlx5_0"])) == 1
        path = _switches_on_path(twin, lids["gb0001 mlx5_0"], lids["gb0019 mlx5_0"])
        assert len(path) == 3 and "-spine" in path[1], path
        path = _switches_on_path(twin, lids["gb0001 mlx5_0"], lids["gb0019 mlx5_1"])
        assert len(path) == 5 and "-core" in path[2], path
    finally:
        twin.stop()
