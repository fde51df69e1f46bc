"""Acceptance thresholds: what a node must reach before it takes jobs, per GPU model, node model and link rate.

Every figure names where it comes from. A spec may override them (``acceptance: {thresholds: {...}}``);
``thresholds_for`` applies the override on top of the catalog's figure.

* Single-node NCCL all-reduce bus bandwidth (nccl-tests ``all_reduce_perf -b 8M -e 8G -f 2 -g 8``, the
  "Avg bus bandwidth" line): an 8-GPU NVSwitch server is bounded by each GPU's NVLink bandwidth in one direction
  (NVLink 4 on H100/H200: 900 GB/s both ways, 450 GB/s one way). Alaya NeW's published nccl-tests guide
  (docs.alayanew.com, "NCCL-tests in practice", 2026) lists 460-480 GB/s busbw at large sizes for 8x H100 SXM5 and
  says a result more than 20 % below that points at a fault; the gate is 80 % of the one-way NVLink bandwidth. The
  average over 8 MiB-8 GiB sits below the large-message peak, which the 20 % margin absorbs.
* Two-node NCCL all-reduce (one pair of nodes, ``-g 8`` each): bounded by the node's compute rails, rails x link
  rate / 8 GB/s (8 x NDR 400 Gb/s = 400 GB/s); the gate is 70 %: the average over 8 MiB-8 GiB
  includes sizes too small to fill the rails.
* ib_write_bw loopback per rail: NVIDIA's ngc_multinode_perf RDMA test (github.com/Mellanox/ngc_multinode_perf,
  README: "Pass criterion is 90% of the port link speed"): 360 Gb/s on NDR, 180 on NDR200/HDR, 720 on XDR.
* DCGM: ``dcgmi diag -r 2`` (medium, minutes) by default; level 3 (long, ~30 min per node) is worth it on a new
  node and can be asked for in the spec. Any test with status Fail fails the node (DCGM user guide, "DCGM
  Diagnostics": Pass/Fail/Warn/Skip per test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gpucloud import catalog

NCCL_FRACTION = 0.8
# The pair gate reads the same average over 8 MiB-8 GiB, whose small sizes do not fill the rails; a lower share.
PAIR_FRACTION = 0.7
IB_WRITE_BW_FRACTION = 0.9
DEFAULT_DCGM_LEVEL = 2

_NVLINK_SOURCE = ("80 % of one-way NVLink bandwidth per GPU; 8x H100 SXM5 reach 460-480 GB/s busbw "
                  "(Alaya NeW, 'NCCL-tests in practice': more than 20 % below is a fault)")
_PAIR_SOURCE = ("70 % of rails x link rate / 8 (the node's share of the fabric); the average over 8 MiB-8 GiB "
                "includes sizes below the rails' saturation")
_IB_SOURCE = "90 % of the port link speed (NVIDIA ngc_multinode_perf RDMA test pass criterion)"

# One-way NVLink bandwidth per GPU, GB/s, by GPU catalog key (the data sheets give both directions together).
NVLINK_GBS: dict[str, tuple[float, str]] = {
    "h100-sxm5-80gb": (450.0, "NVIDIA H100 data sheet: NVLink 900 GB/s (SXM5)"),
    "h200-sxm-141gb": (450.0, "NVIDIA H200 data sheet: NVLink 900 GB/s"),
    "b200-sxm-180gb": (900.0, "NVIDIA HGX B200 data sheet: NVLink 5, 1.8 TB/s per GPU"),
    "b300-sxm-288gb": (900.0, "NVIDIA HGX B300 data sheet: NVLink 5, 1.8 TB/s per GPU"),
}


@dataclass(frozen=True)
class Threshold:
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class Thresholds:
    """The gates of one node model on one fabric rate; ``None``: not measured this way (no GPUs, no rails) or no
    figure (an override in the spec supplies one)."""

    nccl_busbw: Threshold | None
    nccl_pair_busbw: Threshold | None
    ib_write_bw: Threshold | None
    dcgm_level: int
    link_rate_gbps: int
    link_width: str

    def as_dict(self) -> dict:
        def one(t):
            return None if t is None else {"value": t.value, "unit": t.unit, "source": t.source}
        return {"nccl_busbw": one(self.nccl_busbw), "nccl_pair_busbw": one(self.nccl_pair_busbw),
                "ib_write_bw": one(self.ib_write_bw), "dcgm_level": self.dcgm_level,
                "link_rate_gbps": self.link_rate_gbps, "link_width": self.link_width}


def _gpu_key(model: catalog.ServerModel) -> str | None:
    for key, gpu in catalog.GPUS.items():
        if gpu is model.gpu:
            return key
    return None


def node_nccl_busbw(model: catalog.ServerModel) -> Threshold | None:
    """Only NVSwitch servers have an all-to-all NVLink bound; without one the figure depends on the bridge layout."""
    key = _gpu_key(model)
    if not model.gpus or not model.nvswitch or key not in NVLINK_GBS:
        return None
    nvlink, source = NVLINK_GBS[key]
    return Threshold(round(nvlink * NCCL_FRACTION, 1), "GB/s", f"{_NVLINK_SOURCE}; {source}")


def thresholds_for(model: catalog.ServerModel, rate: str | None,
                   overrides: Mapping[str, float] | None = None) -> Thresholds:
    """The gates for ``model`` on a fabric of ``rate`` (a key of ``catalog.LINK_RATES_GBPS``; None: no fabric),
    with the spec's overrides (``nccl_busbw_gbs``, ``nccl_pair_busbw_gbs``, ``ib_write_bw_gbps``, ``dcgm_level``)."""
    o = dict(overrides or {})
    rails = model.rails if rate else 0
    gbps = catalog.LINK_RATES_GBPS.get(rate, 0) if rate else 0
    width = catalog.LINK_SHAPE.get(rate, ("", ""))[0] if rate else ""
    nccl = node_nccl_busbw(model)
    pair = (Threshold(round(rails * gbps / 8 * PAIR_FRACTION, 1), "GB/s", _PAIR_SOURCE)
            if rails and model.gpus else None)
    ib = Threshold(round(gbps * IB_WRITE_BW_FRACTION, 1), "Gb/s", _IB_SOURCE) if rails else None
    spec = "the spec's acceptance.thresholds"
    if "nccl_busbw_gbs" in o:
        nccl = Threshold(float(o["nccl_busbw_gbs"]), "GB/s", spec)
    if "nccl_pair_busbw_gbs" in o:
        pair = Threshold(float(o["nccl_pair_busbw_gbs"]), "GB/s", spec)
    if "ib_write_bw_gbps" in o:
        ib = Threshold(float(o["ib_write_bw_gbps"]), "Gb/s", spec)
    return Thresholds(nccl_busbw=nccl if model.gpus else None, nccl_pair_busbw=pair, ib_write_bw=ib,
                      dcgm_level=int(o.get("dcgm_level", DEFAULT_DCGM_LEVEL)), link_rate_gbps=gbps,
                      link_width=width)
