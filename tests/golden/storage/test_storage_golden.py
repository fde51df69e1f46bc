"""Golden copies of the storage/ files and the plan.json storage section for every example spec.

Refresh with GPUCLOUD_UPDATE_GOLDEN=1 python -m pytest tests/golden/storage and read the diff.
"""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, ROOT
from gpucloud import jsonout
from gpucloud.plan import Plan, build_plan
from gpucloud.render import storage
from gpucloud.spec import load

GOLDEN = ROOT / "tests" / "golden" / "storage"


def storage_plan(spec_path) -> Plan:
    spec = load(spec_path).spec
    return build_plan(spec)


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_storage_files(spec, golden):
    plan = storage_plan(spec)
    files = storage.render(plan)
    files["section.json"] = jsonout.dump_bytes(storage.section(plan))
    folder = GOLDEN / spec.stem
    for path, data in files.items():
        golden(folder / path.removeprefix("storage/"), data)
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()
    # A file the renderer stopped writing must leave the goldens too.
    assert on_disk == {path.removeprefix("storage/") for path in files}
