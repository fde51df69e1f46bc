"""Figures planner: the cluster at a glance (nodes, racks, GPUs, peak dense BF16/FP8, nameplate power) and the
training-time estimate, computed once so plan.md, plan.json and the pull-request comment show the same numbers.

* peak dense throughput: GPUs x the catalog's dense BF16/FP8 TFLOPS per GPU (no sparsity);
* training estimate: a GPT-3-class run, 175B parameters on 300B tokens (Brown et al. 2020, "Language Models are
  Few-Shot Learners"), costed at 6 FLOPs per parameter per token (Kaplan et al. 2020, "Scaling Laws for Neural
  Language Models"), at a model FLOPs utilisation (MFU) public reports quote for H100-class clusters;
* power: the catalog's nameplate kW per server, summed over every host (GPU or not); an NVL72 tray's share is its
  rack's published power over the rack's trays, so the racks' figure is what the sum gives;
* NVLink domains (NVL72 racks): how many, their GPUs, power per rack and per scalable unit (the racks of one
  spine-leaf group of the compute fabric, else of one fabric SU).

Per pool, never per host except for counting distinct racks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpucloud.markdown import duration_text, num_text
from gpucloud.plan.hosts import PoolPlan, nvlink_domains
from gpucloud.spec.model import Spec

if TYPE_CHECKING:
    from gpucloud.plan import Plan

GPT3_PARAMS = 175e9
GPT3_TOKENS = 300e9
GPT3_FLOPS = 6 * GPT3_PARAMS * GPT3_TOKENS
# Model FLOPs utilisation at scale on H100-class clusters: Meta's "The Llama 3 Herd of Models" (2024), Table 4,
# reports 38-43% BF16 MFU training Llama 3 405B on 8,192-16,384 H100 GPUs; we use the middle of that range.
MFU = 0.40
MFU_SOURCE = ("Llama 3 405B pre-training: 38-43% BF16 MFU on 8,192-16,384 H100 GPUs (Meta, \"The Llama 3 Herd "
              "of Models\", 2024, Table 4)")


@dataclass(frozen=True)
class Figures:
    nodes: int
    gpu_nodes: int  # hosts of pools whose model has GPUs
    racks: int  # distinct racks holding at least one host
    gpus: tuple[tuple[str, int], ...]  # (GPU model name, count), sorted by name
    peak_bf16_pflops: float  # dense, no sparsity
    peak_fp8_pflops: float
    server_power_kw: float  # nameplate, every server
    training_days: float | None  # the GPT-3 estimate at MFU; None without GPUs
    # Rack-scale NVLink (NVL72): domains (racks), GPUs of a full domain, the largest rack's power, and the racks and
    # power of one scalable unit (the racks of one spine-leaf group, else of one fabric SU); zero without NVL72 pools
    nvlink_domains: int = 0
    domain_gpus: int = 0
    rack_power_kw: float = 0.0
    su_racks: int = 0
    su_power_kw: float = 0.0

    def rows(self) -> list[tuple[str, str]]:
        """The at-a-glance rows as plan.md and the pull-request comment print them (label, value)."""
        out = [
            ("nodes", f"{self.nodes:,} ({self.gpu_nodes:,} with GPUs) in {self.racks:,} racks"),
            ("GPUs", ", ".join(f"{n:,} x {name}" for name, n in self.gpus) or "none"),
            ("peak dense BF16", f"{num_text(self.peak_bf16_pflops)} PFLOPS"),
            ("peak dense FP8", f"{num_text(self.peak_fp8_pflops)} PFLOPS"),
        ]
        if self.training_days is not None:
            out.append(("GPT-3 175B on 300B tokens", f"~{duration_text(self.training_days)} at {MFU:.0%} MFU (BF16)"))
        power = self.server_power_kw
        out.append(("server power (nameplate)",
                    f"{power / 1000:,.1f} MW" if power >= 1000 else f"{num_text(power)} kW"))
        if self.nvlink_domains:
            out.append(("NVLink domains", f"{self.nvlink_domains:,} racks of {self.domain_gpus} GPUs"))
            su = self.su_power_kw
            out.append(("power per rack / per SU", f"{num_text(self.rack_power_kw)} kW / "
                        + (f"{su / 1000:,.2f} MW" if su >= 1000 else f"{num_text(su)} kW")
                        + f" ({self.su_racks} racks)"))
        return out


def estimate_note() -> str:
    """How the training estimate is made, with its sources: printed once under the at-a-glance table."""
    return (f"Training estimate: 6 x 175e9 parameters x 300e9 tokens = {GPT3_FLOPS:.3g} FLOPs at {MFU:.0%} of peak "
            f"dense BF16; {MFU:.0%} is the figure public reports quote for H100-class clusters: {MFU_SOURCE}.")


def training_days(pools: tuple[PoolPlan, ...]) -> float | None:
    peak = sum(len(pp.hosts) * pp.model.gpus * pp.model.gpu.bf16_dense_tflops
               for pp in pools if pp.model.gpu is not None) * 1e12
    if not peak:
        return None
    return GPT3_FLOPS / (peak * MFU) / 86400


def plan_figures(spec: Spec, pools: tuple[PoolPlan, ...]) -> Figures:
    gpus: Counter[str] = Counter()
    bf16 = fp8 = 0.0
    gpu_nodes = 0
    for pp in pools:
        gpu = pp.model.gpu
        if gpu is None or not pp.hosts:
            continue
        n = len(pp.hosts) * pp.model.gpus
        gpu_nodes += len(pp.hosts)
        gpus[gpu.name] += n
        bf16 += n * gpu.bf16_dense_tflops
        fp8 += n * gpu.fp8_dense_tflops
    domains = nvlink_domains(pools)
    rack_kw = max((d.rack_power_kw for d in domains), default=0.0)
    trays = max((d.trays for d in domains), default=0)
    su_racks = 0
    compute = spec.fabrics.get("compute")
    if domains and compute is not None:
        per_unit = max(1, compute.scalable_unit // trays)
        su_racks = per_unit * (compute.spine_leaf_groups[0] if compute.spine_leaf_groups else 1)
    elif domains:
        su_racks = 1
    return Figures(
        nodes=sum(len(pp.hosts) for pp in pools),
        gpu_nodes=gpu_nodes,
        racks=len({h.rack for pp in pools for h in pp.hosts}),
        gpus=tuple(sorted(gpus.items())),
        peak_bf16_pflops=bf16 / 1000,
        peak_fp8_pflops=fp8 / 1000,
        server_power_kw=sum(len(pp.hosts) * pp.model.power_kw for pp in pools),
        training_days=training_days(pools),
        nvlink_domains=len(domains), domain_gpus=max((d.trays * d.gpus // max(1, len(d.hosts)) for d in domains),
                                                    default=0),
        rack_power_kw=rack_kw, su_racks=su_racks, su_power_kw=su_racks * rack_kw,
    )


def section(plan: Plan) -> dict[str, Any]:
    """plan.json's ``figures``: the numbers behind plan.md's at-a-glance table, unrounded."""
    figures = plan.figures
    return {
        "nodes": figures.nodes,
        "gpu_nodes": figures.gpu_nodes,
        "racks": figures.racks,
        "gpus": dict(figures.gpus),
        "peak_dense_bf16_pflops": figures.peak_bf16_pflops,
        "peak_dense_fp8_pflops": figures.peak_fp8_pflops,
        "server_power_kw": figures.server_power_kw,
        **({"nvlink": {"domains": figures.nvlink_domains, "domain_gpus": figures.domain_gpus,
                       "rack_power_kw": figures.rack_power_kw, "su_racks": figures.su_racks,
                       "su_power_kw": figures.su_power_kw}} if figures.nvlink_domains else {}),
        "training_estimate": None if figures.training_days is None else {
            "parameters": GPT3_PARAMS, "tokens": GPT3_TOKENS, "flops": GPT3_FLOPS, "mfu": MFU,
            "days": figures.training_days,
        },
    }
