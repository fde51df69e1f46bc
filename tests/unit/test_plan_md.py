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
