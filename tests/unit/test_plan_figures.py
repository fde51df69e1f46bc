"""The at-a-glance figures and the training estimate are planned once (Plan.figures): plan.md and plan.json show
the same numbers, and neither renderer computes its own."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import Plan, build_plan
from gpucloud.render import plan_json, plan_md, storage


def plan_of(name: str) -> Plan:
    checked = check_spec(CLUSTERS / f"{name}.yaml")
    assert checked.spec is not None
    return build_plan(checked.spec, tuple(checked.findings))


def row(text: str, label: str) -> str:
    m = re.search(rf"^\| {re.escape(label)} \| (.*) \|$", text, re.M)
    assert m, f"no row {label!r} in:\n{text[:2000]}"
    return m.group(1)


def num(n: float) -> str:
    return f"{n:,.0f}" if n >= 100 else f"{n:,.1f}"


def both(plan: Plan) -> tuple[str, dict]:
    md = plan_md.render(plan)["plan.md"].decode()
    doc = json.loads(plan_json.render(plan)["plan.json"])
    return md, doc["figures"]


@pytest.mark.parametrize("name", ["lab", "ishikari"])
def test_plan_json_carries_the_numbers_plan_md_shows(name):
    md, fig = both(plan_of(name))
    assert row(md, "nodes") == f"{fig['nodes']:,} ({fig['gpu_nodes']:,} with GPUs) in {fig['racks']:,} racks"
    assert row(md, "GPUs") == ", ".join(f"{n:,} x {gpu}" for gpu, n in sorted(fig["gpus"].items()))
    assert row(md, "peak dense BF16") == f"{num(fig['peak_dense_bf16_pflops'])} PFLOPS"
    assert row(md, "peak dense FP8") == f"{num(fig['peak_dense_fp8_pflops'])} PFLOPS"
    est = fig["training_estimate"]
    assert est["mfu"] == 0.4 and est["flops"] == 6 * 175e9 * 300e9
    assert row(md, "GPT-3 175B on 300B tokens") == f"~{est['days']:,.1f} days at 40% MFU (BF16)"


def test_ishikari_figures_in_plan_json():
    fig = both(plan_of("ishikari"))[1]
    assert (fig["nodes"], fig["gpu_nodes"]) == (254, 250)
    assert fig["gpus"] == {"NVIDIA H100 SXM5 80GB": 2000}
    # 6 * 175e9 * 300e9 / (2,000 * 989.4e12 * 0.40) / 86,400 s
    assert fig["training_estimate"]["days"] == pytest.approx(6 * 175e9 * 300e9 / (2000 * 989.4e12 * 0.4) / 86400)


def test_both_renderers_read_the_planned_figures():
    """Planted figures appear in both files: a renderer that computed its own would show the real ones."""
    plan = plan_of("lab")
    planted = dataclasses.replace(plan.figures, nodes=7, gpu_nodes=5, racks=3, gpus=(("Planted GPU", 40),),
                                  peak_bf16_pflops=123.0, peak_fp8_pflops=246.0, server_power_kw=50.0,
                                  training_days=321.5)
    md, fig = both(dataclasses.replace(plan, figures=planted))
    assert row(md, "nodes") == "7 (5 with GPUs) in 3 racks"
    assert row(md, "GPUs") == "40 x Planted GPU"
    assert row(md, "peak dense BF16") == "123 PFLOPS"
    assert row(md, "GPT-3 175B on 300B tokens") == "~321.5 days at 40% MFU (BF16)"
    assert row(md, "server power (nameplate)") == "50.0 kW"
    assert (fig["nodes"], fig["gpu_nodes"], fig["racks"]) == (7, 5, 3)
    assert fig["gpus"] == {"Planted GPU": 40}
    assert fig["peak_dense_bf16_pflops"] == 123.0 and fig["server_power_kw"] == 50.0
    assert fig["training_estimate"]["days"] == 321.5


def test_no_gpus_means_no_training_estimate():
    plan = plan_of("lab")
    md, fig = both(dataclasses.replace(plan, figures=dataclasses.replace(plan.figures, training_days=None)))
    assert "GPT-3" not in md and fig["training_estimate"] is None


def test_storage_section_reads_the_planned_figures():
    """Quota ratio, bandwidth per GPU and client links come from StoragePlan.figures, not the renderer."""
    plan = plan_of("ishikari")
    st = plan.storage
    lustre = st.lustre[0].name
    planted = tuple(dataclasses.replace(f, hosts=11, quota_bytes=2**40, quota_ratio=0.125,
                                        bandwidth_per_gpu=2 * 10**9, client_links_gbps=999)
                    if f.name == lustre else f for f in st.figures)
    section = storage.section(dataclasses.replace(plan, storage=dataclasses.replace(st, figures=planted)))
    entry = next(f for f in section["filesystems"] if f["name"] == lustre)
    assert (entry["hosts"], entry["quota_bytes"], entry["quota"], entry["quota_ratio"]) == (11, 2**40, "1 TiB", 0.125)
    assert (entry["bandwidth_per_gpu"], entry["client_links_gbps"]) == ("2 GB/s", 999)


def test_storage_figures_for_ishikari():
    st = plan_of("ishikari").storage
    for f in st.lustre:
        fig = st.figures_of(f.name)
        gpus = 2000 if "gpu" in f.pools else 0
        assert fig.bandwidth_per_gpu == (f.bandwidth // gpus if f.bandwidth and gpus else None)
        quota = sum(p.block_bytes or 0 for p in st.projects if p.filesystem == f.name)
        assert fig.quota_bytes == quota
        assert fig.quota_ratio == (round(quota / f.capacity, 3) if f.capacity else None)
    assert [f.name for f in st.figures] == [f.name for f in (*st.lustre, *st.nfs)]
