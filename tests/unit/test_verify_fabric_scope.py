"""fabric verify on a fabric split into per-rail subnets: a dump of one subnet is checked against that subnet, the
report names the subnets checked and those not, and a partial check is not a match (exit 1) unless the operator
scoped it with --subnet/--rail (exit 0)."""

from __future__ import annotations

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import fabric as render_fabric
from gpucloud.verify.fabric import compare, report


@pytest.fixture(scope="module")
def per_rail(tmp_path_factory):
    """The lab spec split into eight rail subnets (OpenSM on the GPU nodes, which have a port on every rail), and
    the rendered topology.net of every subnet."""
    tmp = tmp_path_factory.mktemp("per-rail")
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["fabric"]["compute"]["split"] = "per-rail"
    data["fabric"]["compute"]["subnet_manager"]["pool"] = "gpu"
    spec = tmp / "lab-rails.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(spec)
    assert not checked.fails("error"), [f.message for f in checked.findings]
    plan = build_plan(checked.spec)
    files = render_fabric.render(plan)
    nets = {r: files[f"fabric/compute/rail{r}/topology.net"].decode() for r in range(8)}
    return spec, plan.fabrics[0], nets, tmp


def test_one_rail_dump_is_a_partial_check(per_rail):
    _, fp, nets, _ = per_rail
    result = compare(fp, nets[3])
    assert result.clean and not result.complete and not result.matches
    assert result.checked == ["rail3"] and result.unchecked == [f"rail{r}" for r in range(8) if r != 3]
    text = report(result)
    assert text[0] == "checked: 1 of 8 subnet(s): rail3"
    assert text[1] == "not checked: 7 subnet(s): rail[0-2,4-7] (the dump shows none of their switches)"
    assert "fabric matches the plan" not in text and text[-1].startswith("partial check: subnet(s) rail3 match")


def test_every_rail_dumped_is_a_match(per_rail):
    _, fp, nets, _ = per_rail
    result = compare(fp, "\n".join(nets.values()))
    assert result.matches and result.checked == [f"rail{r}" for r in range(8)] and not result.unchecked
    assert report(result)[-1] == "fabric matches the plan"


def test_cli_exit_codes_with_and_without_scope(cli, per_rail):
    spec, _, nets, tmp = per_rail
    dump = tmp / "rail3.txt"
    dump.write_text(nets[3])
    partial = cli("fabric", "verify", str(spec), "--ibnetdiscover", str(dump))
    assert partial.returncode == 1 and "partial check" in partial.stdout
    assert "fabric matches the plan" not in partial.stdout
    scoped = cli("fabric", "verify", str(spec), "--ibnetdiscover", str(dump), "--rail", "3")
    assert scoped.returncode == 0, scoped.stdout + scoped.stderr
    assert "subnet(s) rail3 match the plan (the check was limited to them)" in scoped.stdout
    # Scoped to the wrong subnet: the named subnet's switches are absent, the dump's links are unexpected.
    wrong = cli("fabric", "verify", str(spec), "--ibnetdiscover", str(dump), "--subnet", "rail2")
    assert wrong.returncode == 1 and "absent: c-leaf-su001-r2 is not in the fabric" in wrong.stdout
    typo = cli("fabric", "verify", str(spec), "--ibnetdiscover", str(dump), "--subnet", "rial2")
    assert typo.returncode == 2 and "did you mean 'rail2'?" in typo.stderr and "Traceback" not in typo.stderr


def test_scope_on_a_single_subnet_fabric_is_a_usage_error(cli, per_rail):
    _, _, nets, tmp = per_rail
    dump = tmp / "any.txt"
    dump.write_text(nets[0])
    proc = cli("fabric", "verify", str(CLUSTERS / "lab.yaml"), "--ibnetdiscover", str(dump), "--rail", "1")
    assert proc.returncode == 2 and "is one subnet" in proc.stderr
