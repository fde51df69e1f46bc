"""Golden copies of the rendered slurm/ files for every example spec (topology.conf belongs to the fabric's goldens).

Refresh with GPUCLOUD_UPDATE_GOLDEN=1 python -m pytest tests/golden/test_slurm_golden.py and read the diff.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import EXAMPLES, ROOT
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.slurm import plan_slurm
from gpucloud.render.slurm import render
from gpucloud.spec import load

GOLDEN = ROOT / "tests" / "golden" / "slurm"


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_slurm_files(spec, golden):
    loaded = load(spec)
    files = render(SimpleNamespace(slurm=plan_slurm(loaded.spec, plan_hosts(loaded.spec))))
    expected = {p.name for p in (GOLDEN / spec.stem).glob("*")} if (GOLDEN / spec.stem).exists() else set()
    for path, data in files.items():
        golden(GOLDEN / spec.stem / path.removeprefix("slurm/"), data)
    if expected:  # a file the renderer stopped writing must go from the goldens too
        assert expected == {path.removeprefix("slurm/") for path in files}
