"""Diagrams: well-formed SVG, what a reader needs on it, and bounded size however large the cluster."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import diagrams

SVG = "{http://www.w3.org/2000/svg}"
_PLANS: dict = {}


def plan_of(name: str):
    if name not in _PLANS:
        _PLANS[name] = build_plan(check_spec(CLUSTERS / f"{name}.yaml").spec)
    return _PLANS[name]


def texts(root) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("name", ["lab", "ishikari", "colossus-100k"])
def test_svgs_are_well_formed_and_bounded(name):
    files = diagrams.render(plan_of(name))
    assert sorted(files) == [diagrams.FABRIC_SVG, diagrams.RACKS_SVG]
    for path, data in files.items():
        root = ET.fromstring(data)
        assert root.tag == f"{SVG}svg"
        assert int(root.get("width")) <= 2000 and int(root.get("height")) <= 2000, path
        # Aggregation keeps the drawing readable: a bounded number of shapes at any scale.
        assert len(list(root.iter(f"{SVG}rect"))) < 900, path
        assert not list(root.iter(f"{SVG}script")) and b"href" not in data
    assert files == diagrams.render(plan_of(name))  # deterministic


def test_lab_fabric_draws_every_switch_and_its_links():
    root = ET.fromstring(diagrams.render_fabric(plan_of("lab")))
    words = texts(root)
    fp = plan_of("lab").fabrics[0]
    for s in fp.switches:
        assert s.name in words
    assert words.count("18 links") == 2  # leaf-spine (9 leaves x 2) and node-leaf (18 HCA ports) cables of the lab


def test_colossus_fabric_is_aggregated_per_plane_and_group():
    root = ET.fromstring(diagrams.render_fabric(plan_of("colossus-100k")))
    words = texts(root)
    assert any(w.startswith("one of 8 rail planes drawn") for w in words)
    assert "SU 1" in words and "SU 391" in words and "... 382 more" in words
    assert any("100,020" in w for w in words)  # node-leaf cables of the whole fabric in the header
    assert not any(w.startswith("c-leaf-") for w in words)  # no single switch drawn at this scale


def test_rack_elevation_groups_identical_neighbours():
    root = ET.fromstring(diagrams.render_racks(plan_of("colossus-100k")))
    words = texts(root)
    assert "r0001 ... r3125" in words and "x 3,125 racks" in words
    assert "gpu00001" in words and "gpu00005" not in words  # the first rack's names stand for the run
    lab = texts(ET.fromstring(diagrams.render_racks(plan_of("lab"))))
    for host in ("gpu01", "gpu02", "ctl01", "login01"):
        assert host in lab


def test_no_fabric_still_gives_a_readable_svg(tmp_path):
    import yaml

    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    del data["fabric"]
    data["networks"].pop("ipoib", None)
    for t in data.get("tenants", ()):
        t.pop("pkey", None)
    path = tmp_path / "nofabric.yaml"
    path.write_text(yaml.safe_dump(data))
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings if f.level == "error"]
    root = ET.fromstring(diagrams.render_fabric(build_plan(checked.spec)))
    assert any("no InfiniBand fabric planned" in w for w in texts(root))


def test_ethernet_fabric_diagram_shows_the_sus_as_slurm_switches():
    """SAKURAONE's RoCE fabric is drawn (it said 'no InfiniBand fabric planned'): its spines, one box per SU of rail
    leaves, and under each the nodes that are that SU's Slurm switch; its switches stand in the rack elevations."""
    files = diagrams.render(plan_of("sakuraone"))
    shown = texts(ET.fromstring(files[diagrams.FABRIC_SVG]))
    assert not any("no InfiniBand fabric" in t for t in shown)
    assert [t for t in shown if t.startswith("c-spine-")] == [f"c-spine-{i:03}" for i in range(1, 9)]
    assert shown.count("8 leaves, rails 0-7") == 2
    i = shown.index("su001")
    assert shown[i + 1] == "64 hosts" and shown[shown.index("su002") + 1] == "36 hosts"
    assert any(t.startswith("Slurm topology/tree: one switch per SU") for t in shown)
    racks = texts(ET.fromstring(files[diagrams.RACKS_SVG]))
    assert "c-leaf-su001-r0" in racks and "c-spine-001" in racks
