"""plan.md: the figures a reviewer relies on are computed from the catalog, and every part of the plan shows up."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec, plan_files
from gpucloud.plan import build_plan, figures
from gpucloud.render import plan_md

_PLANS: dict = {}


def plan_of(name: str):
    if name not in _PLANS:
        checked = check_spec(CLUSTERS / f"{name}.yaml")
        _PLANS[name] = build_plan(checked.spec, tuple(checked.findings))
    return _PLANS[name]


def row(text: str, label: str) -> str:
    m = re.search(rf"^\| {re.escape(label)} \| (.*) \|$", text, re.M)
    assert m, f"no row {label!r} in:\n{text[:2000]}"
    return m.group(1)


def test_glance_figures_for_ishikari():
    text = plan_md.render_text(plan_of("ishikari"))
    assert row(text, "GPUs") == "2,000 x NVIDIA H100 SXM5 80GB"
    # 2,000 x 989.4 TFLOPS dense BF16 = 1,978.8 PFLOPS; FP8 twice that.
    assert row(text, "peak dense BF16") == "1,979 PFLOPS"
    assert row(text, "peak dense FP8") == "3,958 PFLOPS"
    # 6 * 175e9 * 300e9 / (2,000 * 989.4e12 * 0.40) / 86,400 s = 4.6 days
    assert row(text, "GPT-3 175B on 300B tokens") == "~4.6 days at 40% MFU (BF16)"
    assert "Llama 3 Herd of Models" in text and "38-43%" in text
    assert row(text, "nodes").startswith("254 (250 with GPUs)")


def test_training_estimate_scales_inversely_with_gpus():
    lab, colossus = plan_of("lab").figures.training_days, plan_of("colossus-100k").figures.training_days
    assert lab is not None and colossus is not None
    assert lab == pytest.approx(figures.GPT3_FLOPS / (16 * 989.4e12 * 0.4) / 86400)
    assert lab / colossus == pytest.approx(100_000 / 16)
    assert "hours at 40% MFU" in plan_md.render_text(plan_of("colossus-100k"))


def test_every_part_of_the_plan_has_its_section():
    text = plan_md.render_text(plan_of("ishikari"))
    for title in ("At a glance", "Bill of materials", "Node pools", "Fabric", "Slurm", "Storage", "Pulumi stacks",
                  "Warnings", "Files"):
        assert f"\n## {title}\n" in text
    assert re.search(r"^\| switch qm9700 \(compute fabric\) \| 96 \|", text, re.M)  # 64 leaves + 32 spines
    assert re.search(r"^\| server hgx-h100-8 \| 250 \|", text, re.M)
    assert re.search(r"^\| debug \| `gpu\[0001-0250\]` \|  \| 02:00:00 \|", text, re.M)
    assert re.search(r"^\| llm-lab \| gpu, debug \| 3 \| 1,024 \| 7-00:00:00 \| 0x0101 \| "
                     r"home 20 TiB, scratch 4 PB \|$", text, re.M)
    assert re.search(r"^\| scratch \| lustre \| /lustre/scratch \| 10 PB \|", text, re.M)


def test_warnings_from_the_checks_are_listed(tmp_path):
    # The examples are clean; the lab with one OpenSM host (no standby) warns.
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    for p in data["node_pools"]:
        p["roles"] = [r for r in p["roles"] if r != "subnet-manager" or p["name"] != "login"]
    spec = tmp_path / "lab.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(spec)
    warnings = [f for f in checked.findings if f.level == "warning"]
    assert warnings, "the lab spec with a single subnet manager is expected to carry a warning"
    text = plan_md.render_text(build_plan(checked.spec, tuple(checked.findings)))
    section = text.split("## Warnings", 1)[1].split("\n## ", 1)[0]
    for f in warnings:
        assert f"`{f.check}` line {f.line}" in section and f.message in section
    assert data["name"] == "lab"


def test_plan_folder_has_plan_md_with_real_stack_counts():
    checked = check_spec(CLUSTERS / "lab.yaml")
    files = plan_files(checked)
    text = files["plan.md"].decode()
    assert "`slurm/`" in text and "`fabric/`" in text
    stacks = __import__("json").loads(files["pulumi/stacks.json"])["stacks"]
    if all("resources" in s for s in stacks):  # the Pulumi SDK ran the dry run
        assert "| stack | hosts | resources |" in text
        assert f"| lab | 4 | {stacks[0]['resources']} |" in text


def test_plan_md_is_short_enough_for_a_comment_at_any_scale():
    for name in ("lab", "colossus-100k"):
        text = plan_md.render_text(plan_of(name))
        assert len(text) < 16000, (name, len(text))
        assert len(text.splitlines()) < 150


def _ethernet_variant(tmp_path, **edits):
    data = yaml.safe_load((CLUSTERS / "sakuraone.yaml").read_text())
    for key, value in edits.items():
        section, _, field = key.partition("__")
        if section == "gpu":
            data["node_pools"][0][field] = value
        else:
            data["slurm"][field] = value
    path = tmp_path / "sakuraone.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    return build_plan(checked.spec, tuple(checked.findings))


def test_ethernet_fabric_section_shows_switches_sus_and_slurm_topology():
    """A reviewer of an Ethernet fabric sees what to buy, each SU's nodes, leaves and ASNs, the Slurm switch each SU
    becomes, and that the spine ports are full (the next SU moves cables)."""
    text = plan_md.render_text(plan_of("sakuraone"))
    assert row(text, "switch ais800-64o (compute fabric)").startswith("24 | ")
    assert "16 leaf, 8 spine" in row(text, "switch ais800-64o (compute fabric)")
    assert row(text, "cables (compute fabric)") == "1,312 | node-leaf 800, leaf-spine 512"
    assert row(text, "1") == ("`su001` | `gpu[0001-0064]` | 0 | `c-leaf-su001-r[0-7]` | 4200001000-4200001007")
    assert row(text, "2") == ("`su002` | `gpu[0065-0100]` | 28 | `c-leaf-su002-r[0-7]` | 4200001008-4200001015")
    assert "Slurm (topology/tree): one switch per SU" in text
    assert "spine ports in use 512 of 512 (full:" in text
    assert "ECN marks from 1 MiB to 2 MiB of queue (5% at the top)" in text
    assert "MTU 9000 on the hosts, 9100 on the switch ports" in text


def test_ethernet_sus_fold_and_say_when_slurm_has_no_topology(tmp_path):
    plan = _ethernet_variant(tmp_path, gpu__count=1000, slurm__topology="none")
    text = plan_md.render_text(plan)
    sus = [ln for ln in text.splitlines() if re.match(r"^\| (\d+|\.\.\.)", ln) and "c-leaf" in ln or "more |" in ln]
    assert len(sus) == 8 and "| ... 9 more | 576 nodes |" in text  # 16 SUs: 6 shown, 9 folded, the last
    assert "`su001`" not in text and "no topology plugin (`slurm.topology: none`)" in text


def test_nvlink_section_says_how_many_whole_racks_roll_and_what_the_budget_became(tmp_path):
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text())
    data["node_pools"][0]["rollout"] = {"max_unavailable": 4}
    path = tmp_path / "nvl72.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    text = plan_md.render_text(build_plan(checked.spec, tuple(checked.findings)))
    assert ("Rolling updates of pool `gpu` (`gpucloud apply --allow-replace`, `gpucloud converge`): 1 whole rack(s) "
            "(18 trays) at a time; an apply batch drains every tray of its racks, replaced or not, a converge batch "
            "the trays with a disruptive change pending (budget 4 is less than one rack: raised to 1 rack (18 trays)"
            ) in text
