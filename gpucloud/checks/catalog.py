"""Checks: every hardware model and switch named in the spec exists, in the catalog or the spec's own
hardware.models, and every model of the spec (or pool override) resolves to a consistent machine."""

from __future__ import annotations

from gpucloud import catalog
from gpucloud.checks import check
from gpucloud.findings import Finding, choices_hint


@check("catalog-model")
def unknown_models(spec):
    """A pool names a hardware model that is neither in the catalog nor in the spec's hardware.models."""
    for pool in spec.pools:
        if pool.model not in catalog.SERVERS and pool.model not in spec.models:
            failed = any(path[:3] == ("hardware", "models", pool.model) for path, _, _ in spec.hardware_errors)
            if failed:
                continue  # catalog-hardware says what is wrong with the model
            yield Finding("catalog-model", "error", (*pool.path, "model"),
                          f"unknown hardware model {pool.model!r} in pool {pool.name!r}",
                          choices_hint(pool.model, [*catalog.SERVERS, *spec.models], "models"))


@check("catalog-hardware")
def hardware(spec):
    """A model of the spec, or a pool's override, that does not make a consistent machine."""
    for path, message, hint in spec.hardware_errors:
        yield Finding("catalog-hardware", "error", path, message, hint)


@check("catalog-hardware-rails")
def rails_per_gpu(spec):
    """GPUs and compute adapters in pairs: GPUDirect RDMA gives each GPU the adapter on its own PCIe switch."""
    for pool in spec.pools:
        model = pool.hardware
        if model is None or not model.gpus or not model.rails or model.gpus == model.rails:
            continue
        if model != (spec.models.get(pool.model) or catalog.SERVERS.get(pool.model)):
            where = (*pool.path, "hardware")  # the pool's override made it so
        elif pool.model in spec.models:
            where = ("hardware", "models", pool.model)
        else:
            where = (*pool.path, "model")
        yield Finding("catalog-hardware-rails", "warning", where,
                      f"pool {pool.name}: {model.gpus} GPUs but {model.rails} compute adapters; a rail-optimized "
                      "fabric gives each GPU an adapter of its own",
                      "set gpu.count and compute_hcas.count to the machine's real numbers")


@check("catalog-switch")
def unknown_switches(spec):
    """A fabric names a switch that is not in the catalog."""
    for fabric in spec.fabrics.values():
        if fabric.kind == "ethernet":
            continue  # Ethernet switches: checks/ethernet.py
        if fabric.switch not in catalog.SWITCHES and fabric.switch not in catalog.SWITCH_ALIASES:
            yield Finding("catalog-switch", "error", (*fabric.path, "switch"),
                          f"unknown switch model {fabric.switch!r}",
                          choices_hint(fabric.switch, catalog.switch_names(), "switches"))
