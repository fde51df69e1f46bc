"""Golden copies of the monitoring/ files of the lab example (Prometheus, file_sd targets, rules, Alertmanager,
dashboards); promtool, amtool and a real Prometheus check the same files in tests/integration/test_monitoring.py.

Refresh with GPUCLOUD_UPDATE_GOLDEN=1 python -m pytest tests/golden/monitoring and read the diff.
"""

from __future__ import annotations

from conftest import ROOT
from gpucloud.plan import build_plan
from gpucloud.render import monitoring
from gpucloud.spec import load

GOLDEN = ROOT / "tests" / "golden" / "monitoring"


def test_lab_monitoring_files(golden):
    files = monitoring.render(build_plan(load(ROOT / "clusters" / "lab.yaml").spec))
    folder = GOLDEN / "lab"
    for path, data in files.items():
        golden(folder / path.removeprefix("monitoring/"), data)
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()
    # A file the renderer stopped writing must leave the goldens too.
    assert on_disk == {path.removeprefix("monitoring/") for path in files}


def test_rendering_is_byte_identical_across_runs():
    spec = load(ROOT / "clusters" / "ishikari.yaml").spec
    assert monitoring.render(build_plan(spec)) == monitoring.render(build_plan(spec))
